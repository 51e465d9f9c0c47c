"""HedgeCutClassifier: forget(S) after fit(D) equals fit(D \\ S); bad requests change nothing."""

from __future__ import annotations

import os
from pathlib import Path as Path_
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from forget import ForgetResult, Guarantee, HedgeCutClassifier, Path
from forget.errors import (
    ArtifactError,
    DuplicateRowIdsError,
    EmptyModelError,
    UnknownRowIdsError,
)
from forget.hedgecut import forest
from forget.warm import prepare


def refit_like(model: HedgeCutClassifier, X, y, ids) -> HedgeCutClassifier:
    """The model a fit on the remaining rows gives: same parameters, the cut-off domain pinned."""
    params = model.get_params() | {"feature_bounds": model.feature_bounds_}
    return HedgeCutClassifier(**params).fit(X, y, row_ids=ids)


def noise_forest(n_estimators: int, **params):
    """3,000 rows of noise features and labels (the top decisions are near ties that deletions
    flip), the cut-off domain declared (a refit has the very same parameters), and a forest of
    ``n_estimators`` trees on every row, fitted on them; the rng goes on to pick victims."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(3000, 6))
    y = (rng.random(3000) < 0.5).astype(int)
    bounds = np.array([[-4.0, 4.0]] * 6)
    m = HedgeCutClassifier(
        n_estimators=n_estimators, random_state=5, max_samples=1.0, feature_bounds=bounds, **params
    ).fit(X, y)
    return X, y, m, rng


def assert_same_forest(a: HedgeCutClassifier, b: HedgeCutClassifier, X) -> None:
    sa, sb = a.tree_structures(), b.tree_structures()
    assert len(sa) == len(sb)
    for t, (x, z) in enumerate(zip(sa, sb, strict=True)):
        assert x.shape == z.shape, (
            f"tree {t}: {x.shape[0]} nodes after forget, {z.shape[0]} after refit"
        )
        np.testing.assert_array_equal(x, z, err_msg=f"tree {t} differs")
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    # predict_proba scores with the compiled trees, refreshed after forget: the node arrays agree
    np.testing.assert_array_equal(a.predict_proba(X), a._node_proba(X))


@st.composite
def problems(draw):
    n = draw(st.integers(8, 70))
    d = draw(st.integers(1, 4))
    n_classes = draw(st.integers(2, 3))
    levels = draw(st.integers(2, 6))  # few distinct values: many duplicates and ties
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.integers(0, levels, size=(n, d)).astype(float) + rng.choice([0.0, 0.5], size=(n, d))
    y = rng.integers(0, n_classes, size=n)
    ids = rng.permutation(10 * n)[:n] + 1000
    n_del = draw(st.integers(1, n - 1))
    order = rng.permutation(n)[:n_del]
    cuts = sorted(draw(st.lists(st.integers(1, n_del), max_size=4)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, n_del], strict=True) if b > a]
    params = dict(
        n_estimators=draw(st.integers(1, 4)),
        min_samples_leaf=draw(st.integers(1, 3)),
        max_depth=draw(st.sampled_from([None, 2, 4])),
        max_features=draw(st.sampled_from(["sqrt", 1, 2, 1.0])) if d > 1 else 1,
        deletion_budget=draw(st.sampled_from([0.0, 0.05, 0.3])),
        hedge_min_samples=draw(st.sampled_from([0, 4, 256])),
        max_variants=draw(st.integers(0, 2)),
        max_hedge_depth=draw(st.integers(0, 2)),
        random_depth=draw(st.sampled_from([0, 0, 1, 3])),
        max_samples=draw(st.sampled_from([1.0, 1.0, 0.5, 0.2])),
        random_state=draw(st.integers(0, 2**31)),
    )
    if isinstance(params["max_features"], int) and params["max_features"] > d:
        params["max_features"] = d
    return X, y, ids, batches, params


@pytest.mark.parametrize("refit_share", [0, forest.REFIT_SHARE], ids=["kernel", "refit"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_forget_equals_refit_on_remaining_rows(refit_share, problem):
    """Both ways a forget goes: the deletion kernels alone (``REFIT_SHARE`` 0: never a refit),
    and as shipped, where a big share of the live rows (most batches here: the problems are
    small) is forgotten by fitting again."""
    X, y, ids, batches, params = problem
    model = HedgeCutClassifier(**params).fit(X, y, row_ids=ids)
    gone = np.zeros(len(y), dtype=bool)
    for batch in batches:
        with mock.patch.object(forest, "REFIT_SHARE", refit_share):
            result = model.forget(ids[batch].tolist())
        event(f"refit: {result.details.get('refit', 0)}")
        assert result.row_ids == tuple(ids[batch].tolist())
        assert len(result.paths) == len(batch)
        gone[batch] = True
        keep = ~gone
        assert_same_forest(model, refit_like(model, X[keep], y[keep], ids[keep]), X)
    assert model.n_rows_ == int((~gone).sum())


def served_walk(refit: HedgeCutClassifier, trees, X) -> np.ndarray:
    """The mean over ``trees`` of the refit's trees: what a forest with the others pending
    must predict."""
    S = refit._S
    roots = refit._roots[np.asarray(trees, dtype=np.int64)]
    Xf = np.asarray(X, dtype=np.float32)
    return forest.K.predict_proba_serial(Xf, roots, S[0], S[6], S[2], S[3], S[5])


def assert_serves_the_refits_other_trees(model, refit, X) -> None:
    pending, served = model.pending_, model.served_
    assert sorted(pending + served) == list(range(model.n_estimators))
    for t in served:  # every served tree is, already, the refit's tree
        np.testing.assert_array_equal(model._tree_structure(t), refit._tree_structure(t))
    np.testing.assert_array_equal(model.predict_proba(X), served_walk(refit, served, X))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.sampled_from([1, 2, 4, 12]), st.data())
def test_deferred_rebuilds_serve_the_refits_other_trees_then_equal_a_refit(problem, defer, data):
    """With ``defer_rows``, a deletion that calls for a rebuild of that many rows leaves its
    tree pending: predictions are the mean over the other trees, each the tree a fit on the
    remaining rows builds; ``retrain_pending`` (at random points) makes the forest the refit,
    artifact included."""
    X, y, ids, batches, params = problem
    model = HedgeCutClassifier(**params, defer_rows=defer).fit(X, y, row_ids=ids)
    gone = np.zeros(len(y), dtype=bool)
    for batch in batches:
        with mock.patch.object(forest, "REFIT_SHARE", 0):
            result = model.forget(ids[batch].tolist())
        gone[batch] = True
        keep = ~gone
        refit = refit_like(model, X[keep], y[keep], ids[keep])
        assert result.needs_retrain == bool(model.pending_)
        assert 2 * len(model.pending_) <= model.n_estimators
        event(f"pending after forget: {bool(model.pending_)}")
        assert_serves_the_refits_other_trees(model, refit, X)
        if data.draw(st.booleans(), label="retrain now"):
            trees = len(model.pending_)
            assert model.retrain_pending().shards == trees
            assert model.pending_ == ()
            assert_same_forest(model, refit, X)
    keep = ~gone
    refit = refit_like(model, X[keep], y[keep], ids[keep]).set_params(feature_bounds=None)
    assert model.to_bytes() == refit.to_bytes()  # the deferred rebuilds done first
    assert model.pending_ == ()
    assert_same_forest(model, refit, X)


def test_deferred_big_rebuilds_bound_the_rows_a_deletion_rebuilds():
    # rebuilds of 256 rows or more wait for retrain_pending, which leaves the forest equal to
    # a refit
    X, y, m, rng = noise_forest(8, defer_rows=256)
    victims = rng.permutation(3000)[:80]
    details, longest = [], 0
    with mock.patch.object(forest, "DEFERRED", 1):  # the list of deferred rebuilds grows
        m._no_deferred()  # a fresh list, of one entry
        for v in victims:
            details.append(m.forget([int(v)]).details)
            longest = max(longest, m._deferred.size)
            if len(m.pending_) >= 3:
                m.retrain_pending()
    # each subtree a deletion rebuilt held fewer than 256 rows (the rest waited)
    assert all(d["rows_rebuilt"] < 256 * max(1, d["subtrees_rebuilt"]) for d in details)
    assert sum(d["subtrees_deferred"] for d in details) > 0
    assert longest > 1
    keep = np.setdiff1d(np.arange(3000), victims)
    refit = refit_like(m, X[keep], y[keep], keep)
    if m.pending_:
        assert_serves_the_refits_other_trees(m, refit, X)
    m.compact()  # the deferred rebuilds first, then the canonical form
    assert m.pending_ == ()
    assert_same_forest(m, refit, X)
    assert m.to_bytes() == refit.to_bytes()


def test_retrain_pending_runs_beside_predictions_which_score_served_trees_throughout():
    """Predictions on another thread while the deferred rebuilds run: each answer is the
    refit's forest over the served trees (before the rebuilds are done) or over all of them
    (after), never a mix or a pending tree's old state; an artifact written meanwhile on a
    third thread (which rebuilds first too) is the refit's."""
    import threading

    X, y, m, rng = noise_forest(8, defer_rows=64)
    victims = []
    for v in rng.permutation(3000):
        victims.append(int(v))
        if m.forget([int(v)]).needs_retrain:
            break
    assert m.pending_
    keep = np.setdiff1d(np.arange(3000), victims)
    refit = refit_like(m, X[keep], y[keep], keep)
    probe = X[:200]
    during = served_walk(refit, m.served_, probe)
    after = refit.predict_proba(probe)
    assert not np.array_equal(during, after)
    answers, done = [], threading.Event()

    def predict() -> None:
        while not done.is_set():
            answers.append(m.predict_proba(probe))
        answers.append(m.predict_proba(probe))

    artifacts: list[bytes] = []
    thread = threading.Thread(target=predict)
    writer = threading.Thread(target=lambda: artifacts.append(m.to_bytes()))  # rebuilds too
    thread.start()
    writer.start()
    m.retrain_pending()
    writer.join()
    done.set()
    thread.join()
    assert answers and all(np.array_equal(a, during) or np.array_equal(a, after) for a in answers)
    np.testing.assert_array_equal(answers[-1], after)
    assert artifacts == [refit.to_bytes()]  # the two rebuilds took turns


@pytest.mark.parametrize("defer", [0, -3, 2.5, True, "100"])
def test_defer_rows_must_be_a_positive_int(defer):
    with pytest.raises(ValueError, match="defer_rows must be None or a positive int"):
        HedgeCutClassifier(defer_rows=defer).fit([[0.0], [1.0]], [0, 1])


def test_deletions_that_empty_leaves_and_whole_classes():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = np.where(X[:, 0] > 1.0, 2, (X[:, 1] > 0).astype(int))
    ids = np.arange(60)
    m = HedgeCutClassifier(n_estimators=8, min_samples_leaf=1, random_state=4).fit(X, y)
    # forget every row of class 2 (and so every leaf that held only them), then half of the rest
    victims = ids[y == 2].tolist() + ids[y != 2][::2].tolist()
    m.forget(victims)
    keep = np.setdiff1d(ids, victims)
    ref = refit_like(m, X[keep], y[keep], keep)
    assert_same_forest(m, ref, X)
    assert list(m.classes_) == [0, 1]  # no remaining row is of class 2: a refit never saw it
    assert m.predict_proba(X).shape == (60, 2)
    # declared classes stay, with a probability column of zeros
    d = HedgeCutClassifier(n_estimators=8, min_samples_leaf=1, random_state=4, classes=[0, 1, 2])
    d.fit(X, y).forget(victims)
    assert list(d.classes_) == [0, 1, 2]
    assert (d.predict(X) != 2).all()
    np.testing.assert_array_equal(d.predict_proba(X)[:, :2], m.predict_proba(X))


def test_default_bounds_are_robust_and_values_beyond_them_route_alike():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 3)) * [1.0, 100.0, 0.01]
    y = (X[:, 0] + X[:, 1] / 100 > 0).astype(int)
    m = HedgeCutClassifier(n_estimators=10, random_state=0).fit(X, y)
    lo, hi = m.feature_bounds_[:, 0], m.feature_bounds_[:, -1]
    srt = np.sort(X, axis=0)
    # the ends lie on or beyond the 10th smallest / largest values, inside the extremes
    assert (lo <= srt[9]).all() and (hi >= srt[-10]).all()
    assert (lo > srt[0]).all() and (hi < srt[-1]).all()
    assert (np.diff(m.feature_bounds_, axis=1) >= 0).all()
    # beyond an end, every value goes the same way at every node
    Q = rng.normal(size=(50, 3)) * [1.0, 100.0, 0.01]
    for f in range(3):
        a, b = Q.copy(), Q.copy()
        a[:, f], b[:, f] = hi[f] + 1e-3, hi[f] * 10 + 1e6
        np.testing.assert_array_equal(m.predict_proba(a), m.predict_proba(b))
        a[:, f], b[:, f] = lo[f] - 1e-3, lo[f] * 10 - 1e6
        np.testing.assert_array_equal(m.predict_proba(a), m.predict_proba(b))


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] - X[:, 2] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    a = HedgeCutClassifier(
        n_estimators=10, random_state=1, max_variants=1, hedge_min_samples=8
    ).fit(X, y)
    b = clone(a).fit(X, y)
    victims = rng.permutation(200)[:60].tolist()
    a.forget(victims)
    for v in victims:
        b.forget([v])
    assert_same_forest(a, b, X)


def test_variants_are_switched_and_paths_reported():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    m = HedgeCutClassifier(
        n_estimators=20, random_state=0, deletion_budget=0.2, hedge_min_samples=16, max_variants=2
    ).fit(X, y)
    total: dict[str, float] = {"variant_switches": 0, "subtrees_rebuilt": 0}
    for v in rng.permutation(400)[:150]:
        r = m.forget([int(v)])
        assert isinstance(r, ForgetResult) and r.guarantee is Guarantee.EXACT
        assert (r.paths[0] is Path.SLOW) == (r.details["subtrees_rebuilt"] > 0)
        for key in total:
            total[key] += r.details[key]
    assert total["variant_switches"] > 0 and total["subtrees_rebuilt"] > 0
    keep = np.flatnonzero(m._rows.alive)
    assert_same_forest(m, refit_like(m, X[keep], y[keep], keep), X)


def test_build_stack_grows_in_fit_and_forget():
    # a node may push 2 * (max_variants + 1) children: 82 here, past the first stack of 64
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(scale=0.3, size=300) > 0).astype(int)
    m = HedgeCutClassifier(
        n_estimators=3, random_state=2, max_features=4, max_variants=40, hedge_min_samples=4,
        deletion_budget=0.3, max_samples=1.0, min_samples_leaf=1,
    ).fit(X, y)  # fmt: skip
    victims = rng.permutation(300)[:120]
    for batch in np.array_split(victims, 6):
        m.forget(batch.tolist())
    keep = np.setdiff1d(np.arange(300), victims)
    assert_same_forest(m, refit_like(m, X[keep], y[keep], keep), X)


def test_a_forest_without_room_grows_its_node_arrays_and_still_equals_a_refit():
    # no room at all after fit: the first rebuild grows the arrays, whose new records are
    # untouched zeros until the builder hands them out (alloc_nodes)
    rng = np.random.default_rng(8)
    X = rng.normal(size=(1500, 5))
    y = (X[:, 0] + rng.normal(scale=0.8, size=1500) > 0).astype(int)
    bounds = np.array([[-5.0, 5.0]] * 5)  # declared: a refit has the very same parameters
    with mock.patch.object(forest, "_room", lambda nodes, n: nodes):
        m = HedgeCutClassifier(
            n_estimators=4, random_state=3, max_samples=1.0, feature_bounds=bounds
        ).fit(X, y)
    cap = m._S[0].shape[0]
    victims = rng.permutation(1500)[:150]
    for v in victims:
        m.forget([int(v)])
    assert m._S[0].shape[0] > cap  # grown, maybe more than once
    keep = np.setdiff1d(np.arange(1500), victims)
    refit = refit_like(m, X[keep], y[keep], keep)
    assert_same_forest(m, refit, X)
    assert m.to_bytes() == refit.to_bytes()


@pytest.mark.skipif(not Path_("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_room_for_nodes_costs_no_memory_until_a_node_takes_it():
    from forget.hedgecut._nodes import alloc_nodes

    def resident_mb() -> float:
        pages = int(Path_("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGESIZE") / 2**20

    before = resident_mb()
    S = alloc_nodes(2_000_000, 8, 2)  # 64 int32 a record: 512 MB of room
    assert S[5].shape == (2_000_000, 8, 2)
    assert resident_mb() - before < 40
    # nor does the row pool's room for subtrees built beside: only the rows in use
    rows = np.arange(10_000_000, dtype=np.int32)  # 40 MB in use
    before = resident_mb()
    pool = forest._with_room(rows)
    assert pool.size > 20_000_000  # 40 MB more of room
    assert resident_mb() - before < 60


def test_nbytes_counts_the_node_records_in_use_not_the_room_after_them():
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(400, 3)), rng.integers(0, 2, 400)
    roomy = HedgeCutClassifier(n_estimators=3, random_state=1).fit(X, y)
    with mock.patch.object(forest, "_room", lambda nodes, n: 10 * nodes + 4 * n):
        roomier = HedgeCutClassifier(n_estimators=3, random_state=1).fit(X, y)
    assert roomier._S[0].shape[0] > roomy._S[0].shape[0]
    assert roomier.nbytes_ == roomy.nbytes_ > X.nbytes


def test_big_rebuilds_on_gathered_rows_equal_a_refit():
    # subtrees of >= 512 rows are rebuilt on a gathered copy of their rows; the artifact
    # equals a refit's
    X, y, m, rng = noise_forest(4)
    victims = rng.permutation(3000)[:80]
    biggest = max(m.forget([int(v)]).details["rows_rebuilt"] for v in victims)
    assert biggest >= 512
    keep = np.setdiff1d(np.arange(3000), victims)
    refit = refit_like(m, X[keep], y[keep], keep)
    assert_same_forest(m, refit, X)
    assert m.to_bytes() == refit.to_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.sampled_from([0, 1]), st.sampled_from([8, 64]))
def test_a_superseded_subtree_kept_beside_switches_back_and_leaves_no_trace(
    seed, max_variants, hedge_min
):
    """A decision that moves to a candidate without a subtree keeps the old one beside the new
    (noise features: the top decisions are near ties that deletions flip back and forth);
    switching back to it is a switch, not a rebuild. After every deletion the forest equals a
    refit, and its artifact and compacted memory are the refit's (the kept subtrees go)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(800, 4))
    y = (rng.random(800) < 0.5).astype(int)
    bounds = np.array([[-5.0, 5.0]] * 4)  # declared: a refit has the very same parameters
    m = HedgeCutClassifier(
        n_estimators=3, random_state=seed, max_samples=1.0, feature_bounds=bounds,
        hedge_min_samples=hedge_min, max_variants=max_variants,
    ).fit(X, y)  # fmt: skip
    victims = rng.permutation(800)[:120]
    details = [m.forget([int(v)]).details for v in victims]
    keep = np.setdiff1d(np.arange(800), victims)
    refit = refit_like(m, X[keep], y[keep], keep)
    assert_same_forest(m, refit, X)
    assert m.to_bytes() == refit.to_bytes()
    m.compact()
    refit.compact()
    for name in ("_pool", "_roots", "_meta"):
        np.testing.assert_array_equal(getattr(m, name), getattr(refit, name), err_msg=name)
    for a, b in zip(m._S, refit._S, strict=True):
        np.testing.assert_array_equal(a, b)
    if max_variants == 0:  # no fit-time variants: every switch is to a kept subtree
        kept = sum(d["variant_switches"] for d in details)
        event("switched back to a kept subtree" if kept else "no switch back")


def test_kept_subtrees_are_switched_back_to_without_a_rebuild():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(3000, 6))
    y = (rng.random(3000) < 0.5).astype(int)
    m = HedgeCutClassifier(n_estimators=4, random_state=5, max_samples=1.0).fit(X, y)
    details = [m.forget([int(v)]).details for v in rng.permutation(3000)[:200]]
    assert m.max_variants == 0 and sum(d["variant_switches"] for d in details) > 0
    S = m._S
    child, active, ncand = S[5], S[6], S[1]
    live = ncand > 0
    others = (child[:, :, 0] >= 0) & (np.arange(child.shape[1]) != active[:, None])
    assert (others[live].sum(axis=1) <= 1).all()  # at most the one superseded subtree kept


@pytest.fixture
def fitted():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int)
    ids = np.arange(500, 620)
    return HedgeCutClassifier(n_estimators=6, random_state=2).fit(X, y, row_ids=ids), X, y, ids


@pytest.mark.parametrize(
    ("request_ids", "error"),
    [
        ([500, 9999], UnknownRowIdsError),
        ([501, 502, 501], DuplicateRowIdsError),
        ([1.5], ValueError),
        ([[500, 501]], ValueError),
    ],
)
def test_bad_requests_change_nothing(fitted, request_ids, error):
    model, X, _, _ = fitted
    before = model.to_bytes()
    with pytest.raises(error):
        model.forget(request_ids)
    assert model.to_bytes() == before


def test_already_forgotten_and_emptying_requests(fitted):
    model, _, _, ids = fitted
    model.forget([500])
    before = model.to_bytes()
    with pytest.raises(UnknownRowIdsError, match="500"):  # forgotten: no longer known
        model.forget([501, 500])
    with pytest.raises(EmptyModelError):
        model.forget(ids[1:].tolist())
    assert model.to_bytes() == before


def test_forgotten_values_leave_the_model(fitted):
    model, X, _, ids = fitted
    value = np.float32(X[7, 2])
    model.forget([int(ids[7])])
    assert not (value == model._X).any()
    blob = model.to_bytes()
    assert value.tobytes() not in HedgeCutClassifier.from_bytes(blob)._X.tobytes()


def test_persistence_round_trip_then_forget(fitted):
    model, X, y, ids = fitted
    model.forget([510, 511])
    loaded = HedgeCutClassifier.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    model.forget([520])
    loaded.forget([520])
    assert_same_forest(loaded, model, X)
    with pytest.raises(UnknownRowIdsError):
        loaded.forget([510])


def test_artifact_bytes_are_a_function_of_the_model_alone():
    """No clock in the archive: the same model gives the same bytes (the store hashes them)."""
    import io
    import zipfile

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    model = HedgeCutClassifier(n_estimators=4, random_state=0).fit(X, (X[:, 0] > 0).astype(int))
    data = model.to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    assert HedgeCutClassifier.from_bytes(data).to_bytes() == data


def test_string_labels_held_as_objects_survive_the_artifact():
    """Labels from pandas arrive as Python objects; the artifact holds them as numpy strings."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 2))
    y = np.where(X[:, 0] > 0, "yes", "no").astype(object)
    model = HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, y)
    back = HedgeCutClassifier.from_bytes(model.to_bytes())
    assert back.classes_.tolist() == ["no", "yes"]
    assert (back.predict(X) == model.predict(X)).all()
    assert (back.predict_proba(X) == model.predict_proba(X)).all()


def test_artifact_refuses_other_bytes():
    with pytest.raises(ArtifactError):
        HedgeCutClassifier.from_bytes(b"not an artifact")


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "Input X contains NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], "Input X contains infinity"),
        (np.zeros((3, 2)), [0, 1], "inconsistent numbers of samples"),
        (np.zeros(3), [0, 1, 0], "Expected 2D array"),
        ([["a", "b"], ["c", "d"]], [0, 1], "could not convert string to float"),
        (np.zeros((2, 2)) + 1j, [0, 1], "Complex data not supported"),
        (np.zeros((0, 2)), [], "0 sample"),
        (np.zeros((2, 0)), [0, 1], "0 feature"),
        (np.zeros((4, 2)), [0.5, 1.25, 2.0, 7.5], "Unknown label type: continuous"),
        (np.zeros((2, 2)), None, "requires y to be passed"),
        (np.zeros((2, 2)), [0, np.nan], "Input y contains NaN"),
    ],
)
def test_bad_training_data_is_refused(X, y, match):
    with pytest.raises(ValueError, match=match):
        HedgeCutClassifier(n_estimators=2).fit(X, y)


def test_sparse_input_is_refused_and_a_column_of_labels_is_raveled():
    from scipy import sparse
    from sklearn.exceptions import DataConversionWarning

    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    with pytest.raises(TypeError, match="Sparse data was passed"):
        HedgeCutClassifier(n_estimators=2).fit(sparse.csr_matrix(X), y)
    with pytest.warns(DataConversionWarning):  # (n, 1) labels: raveled, as scikit-learn does
        model = HedgeCutClassifier(n_estimators=2, random_state=0).fit(X, y[:, None])
    with pytest.raises(TypeError, match="Sparse data was passed"):
        model.predict(sparse.csr_matrix(X))
    with pytest.raises(ValueError, match="Reshape your data"):
        model.predict(X[0])


def test_a_refused_refit_keeps_the_fitted_width(fitted):
    """Validation records the new width first; a refused refit must not keep it, or rows of
    that width would reach kernels built for the fitted one."""
    model, X, y, _ = fitted
    before = model.predict_proba(X)
    with pytest.raises(ValueError, match="max_features gives 4"):
        model.set_params(max_features=4).fit(X[:, :3], y)
    assert model.n_features_in_ == 4
    np.testing.assert_array_equal(model.predict_proba(X), before)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
        model.predict(X[:, :3])


F32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("value", [1e308, -1e39, 3.5e38])
def test_values_beyond_float32_are_refused_naming_the_column(value):
    """The forest compares float32 values: a larger one would become infinite (and the
    cut-off domain with it); fit and predict refuse it rather than answer NaN or inf."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    bad = X.copy()
    bad[7, 2] = value
    with pytest.raises(ValueError, match=r"column 2 .*float32.* row 7"):
        HedgeCutClassifier(n_estimators=3).fit(bad, y)
    model = HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, y)
    for Q in (bad, bad.astype(object), bad.tolist()):  # the fast path and scikit-learn's
        with pytest.raises(ValueError, match=r"column 2 .*float32.* row 7"):
            model.predict_proba(Q)


def test_values_up_to_the_float32_range_fit_and_the_refit_recipe_holds():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    X[:5, 1] = F32_MAX  # the largest float32: still finite
    X[5:10, 1] = -F32_MAX
    y = (X[:, 0] > 0).astype(int)
    model = HedgeCutClassifier(n_estimators=4, random_state=3).fit(X, y)
    assert np.isfinite(model.feature_bounds_).all()
    assert np.isfinite(model.predict_proba(X)).all()
    model.forget([0, 20])
    keep = np.setdiff1d(np.arange(60), [0, 20])
    assert_same_forest(model, refit_like(model, X[keep], y[keep], keep), X)


@pytest.mark.parametrize("seed", [2**63, 2**64 + 5, -1, 1.5, "7", True])
def test_random_state_outside_the_int64_range_is_refused(seed):
    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"random_state must be None or an int in \[0, 2\*\*63\)"):
        HedgeCutClassifier(n_estimators=2, random_state=seed).fit(X, y)


@pytest.mark.parametrize("seed", [0, 2**63 - 1, np.int64(5), np.uint64(2**63 - 1), None])
def test_random_state_in_range_is_kept_as_the_seed(seed):
    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    model = HedgeCutClassifier(n_estimators=2, random_state=seed).fit(X, y)
    assert 0 <= model.seed_ < 2**63
    if seed is not None:
        assert model.seed_ == int(seed)


def test_predict_checks_width(fitted):
    model, *_ = fitted
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
        model.predict(np.zeros((2, 3)))


def test_duplicate_fit_ids_are_refused():
    with pytest.raises(DuplicateRowIdsError):
        HedgeCutClassifier(n_estimators=2).fit(np.zeros((3, 1)), [0, 1, 0], row_ids=[1, 1, 2])


def test_sklearn_compatibility_and_multiclass():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import cross_val_score

    X, y = load_iris(return_X_y=True)
    m = HedgeCutClassifier(n_estimators=20, random_state=0)
    assert clone(m).get_params() == m.get_params()
    assert cross_val_score(m, X, y, cv=3).mean() > 0.85
    m.fit(X, y)
    proba = m.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    assert set(HedgeCutClassifier(n_estimators=5, random_state=0).fit(X, labels).predict(X)) <= set(
        labels
    )


def test_parallel_fit_and_predict_match_serial():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    a = HedgeCutClassifier(n_estimators=12, random_state=9).fit(X, y)
    b = HedgeCutClassifier(n_estimators=12, random_state=9, n_jobs=2).fit(X, y)
    assert_same_forest(a, b, X)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.booleans())
def test_a_compaction_built_while_the_model_forgets_on_is_the_compaction_then(problem, warm):
    """``compaction()`` copies the state of one moment: its artifact is what
    ``compact_to_bytes`` gives at that moment, though the model forgets on meanwhile (the
    copies share nothing it changes); the twin, made to forget what the model forgot since,
    and adopted, leaves the model equal to a refit — and to the model that was never
    snapshotted, byte for byte."""
    X, y, ids, batches, params = problem
    if len(batches) < 2:
        batches = [batches[0][: len(batches[0]) // 2], batches[0][len(batches[0]) // 2 :]]
    first, *rest = batches
    model = HedgeCutClassifier(**params).fit(X, y, row_ids=ids)
    plain = HedgeCutClassifier(**params).fit(X, y, row_ids=ids)
    if warm:  # compiled trees and row lookups built: the twin builds them too
        model.predict_proba(X), plain.predict_proba(X)
        prepare(model), prepare(plain)
    model.forget(ids[first].tolist()), plain.forget(ids[first].tolist())
    job, derived = model.compaction(), model._derived()
    since = [ids[b].tolist() for b in rest if len(b)]
    for batch in since:
        model.forget(batch)
    artifact = job.build()
    assert artifact == plain.compact_to_bytes()  # the moment of the copy
    twin = job.model
    assert twin is not None and twin._derived() == derived  # built as the model had
    for batch in since:
        twin.forget(batch), plain.forget(batch)
    model.adopt(twin, None)
    assert model.compact_to_bytes() == plain.compact_to_bytes()
    np.testing.assert_array_equal(model.predict_proba(X), plain.predict_proba(X))
    keep = ~np.isin(ids, np.concatenate([ids[b] for b in batches]))
    assert_same_forest(model, refit_like(model, X[keep], y[keep], ids[keep]), X)
