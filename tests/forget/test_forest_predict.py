"""HedgeCutClassifier.predict_proba scores with the trees' compiled form: bitwise the node
arrays' own numbers, recompiled tree by tree after forget, derived state never written."""

from __future__ import annotations

import copy
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forget import HedgeCutClassifier
from forget.hedgecut import _kernels as K
from forget.hedgecut._common import RESHAPED
from forget.hedgecut._compiled import CompiledTrees
from forget.hedgecut._validate import features
from forget.scoring import CompiledForest
from tests.forget.helpers import held_outside_trees, trees_held


def make(n=600, d=5, n_classes=2, seed=0, **params):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int) + (n_classes > 2) * (X[:, 1] > 1)
    params = {"n_estimators": 12, "random_state": seed, **params}
    return HedgeCutClassifier(**params).fit(X, y), X, y


@pytest.fixture
def calls(monkeypatch):
    """Counts of compiled-form work: whole compiles, refreshes (with the trees given),
    rewrites of leaves (with the trees whose leaves were rewritten), splices (the tree) and
    splices refused for want of room (the tree)."""
    seen: dict[str, list] = {k: [] for k in ("compile", "refresh", "leaves", "splice", "no room")}
    init, refresh = CompiledForest.__init__, CompiledForest.refresh
    set_leaves, splice = CompiledForest.set_leaves, CompiledForest.splice

    def counted_init(self, structures, *args, **kwargs):
        seen["compile"].append([np.array(s) for s in structures])
        init(self, structures, *args, **kwargs)

    def counted_refresh(self, changed):
        seen["refresh"].append(dict(changed))
        refresh(self, changed)

    def counted_set_leaves(self, trees, positions, values):
        failed = set_leaves(self, trees, positions, values)
        if len(trees):  # (a compile loads the kernel with an empty call)
            seen["leaves"].append(set(np.asarray(trees).tolist()) - set(failed))
        return failed

    def counted_splice(self, t, at, structure, depth):
        where = splice(self, t, at, structure, depth)
        seen["splice" if where is not None else "no room"].append(t)
        return where

    monkeypatch.setattr(CompiledForest, "__init__", counted_init)
    monkeypatch.setattr(CompiledForest, "splice", counted_splice)
    monkeypatch.setattr(CompiledForest, "refresh", counted_refresh)
    monkeypatch.setattr(CompiledForest, "set_leaves", counted_set_leaves)
    return seen


def updates(calls) -> int:
    """How many times the compiled form was brought up to date without compiling it whole."""
    return len(calls["refresh"]) + len(calls["leaves"]) + len(calls["splice"])


def touched_trees(before, after) -> set[int]:
    return {
        t for t, (a, b) in enumerate(zip(before, after, strict=True)) if not np.array_equal(a, b)
    }


def test_predict_proba_scores_with_the_compiled_form(calls, monkeypatch):
    model, X, _ = make()
    model.predict_proba(X[:1])
    (structures,) = calls["compile"]  # compiled on the first prediction, from the trees
    for a, b in zip(structures, model.tree_structures(), strict=True):
        np.testing.assert_array_equal(a, b)

    def refused(*args):
        raise AssertionError("predict_proba walked the node arrays")

    monkeypatch.setattr(K, "predict_proba_serial", refused)
    monkeypatch.setattr(K, "predict_proba_parallel", refused)
    proba = model.predict_proba(X)
    assert len(calls["compile"]) == 1
    monkeypatch.undo()
    np.testing.assert_array_equal(proba, model._node_proba(X))


@st.composite
def histories(draw):
    n = draw(st.integers(12, 160))
    d = draw(st.integers(1, 4))
    n_classes = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.integers(0, 5, size=(n, d)) + rng.choice([0.0, 0.5], size=(n, d))
    y = rng.integers(0, n_classes, size=n)
    y[rng.integers(n)] = n_classes  # a class of one row: forgetting it drops the class
    params = dict(
        n_estimators=draw(st.integers(1, 6)),
        min_samples_leaf=draw(st.integers(1, 3)),
        max_depth=draw(st.sampled_from([None, 2, 8])),
        max_samples=draw(st.sampled_from([1.0, 0.5, 0.2])),
        n_jobs=draw(st.sampled_from([None, 2])),
        random_state=draw(st.integers(0, 2**31)),
    )
    order = rng.permutation(n)[: draw(st.integers(1, n - 1))]
    steps = []
    for batch in np.array_split(order, draw(st.integers(1, 5))):
        # between deletions: no prediction, single rows (walked), or every row (refreshed)
        steps.append((batch, draw(st.sampled_from(["none", "one", "all", "compact", "reload"]))))
    return X, y, params, steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_predictions_equal_the_node_arrays_through_any_history(history):
    X, y, params, steps = history
    model = HedgeCutClassifier(**params).fit(X, y)
    queries = np.vstack([X, X + 0.25, X - 0.25])
    np.testing.assert_array_equal(model.predict_proba(queries), model._node_proba(queries))
    for batch, then in steps:
        if batch.size:
            model.forget(batch.tolist())
        if then == "one":
            for i in range(0, len(queries), 7):
                got = model.predict_proba(queries[i : i + 1])
                np.testing.assert_array_equal(got, model._node_proba(queries[i : i + 1]))
        elif then == "compact":
            model.compact()
        elif then == "reload":
            model = HedgeCutClassifier.from_bytes(model.to_bytes())
        if then != "none":
            np.testing.assert_array_equal(model.predict_proba(queries), model._node_proba(queries))
        if model._compiled.built and not model._compiled.stale:
            assert_compiled_as_anew(model)
    np.testing.assert_array_equal(model.predict_proba(queries), model._node_proba(queries))
    assert model.predict_proba(queries).shape == (len(queries), model.classes_.size)


def assert_compiled_as_anew(model) -> None:
    """The model's compiled form holds its trees as a fresh compile of them does (records
    reached from each root in order: features, cut-offs, leaves' values) and nothing else:
    whatever refreshes, rewrites and splices it went through, no record from before a
    deletion is left."""
    pool = model._compiled._forest._pool
    fresh = CompiledForest(model.tree_structures(), int(model.classes_.size), model.n_features_in_)
    for t, (a, b) in enumerate(zip(trees_held(pool), trees_held(fresh._pool), strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"tree {t}")
    assert held_outside_trees(pool) == 0


def shape(structure: np.ndarray) -> np.ndarray:
    """A structure without its leaves' counts: split features and cut-offs."""
    return structure[:, :2]


def test_forget_compiles_nothing_and_a_batch_updates_only_the_trees_it_changed(calls):
    """Trees whose splits stayed have their leaves rewritten in place; trees whose splits
    changed have the subtrees that changed spliced in; no other tree is touched."""
    model, X, _ = make(n=1500, n_estimators=20, max_samples=0.1, min_samples_leaf=20)
    model.predict_proba(X)
    before = model.tree_structures()
    victims = [3, 70, 140, 210]
    for v in victims:
        model.forget([v])
    assert updates(calls) == 0 and len(calls["compile"]) == 1  # deletions compile nothing
    after = model.tree_structures()
    changed = touched_trees(before, after)
    reshaped = {t for t in changed if not np.array_equal(shape(before[t]), shape(after[t]))}
    assert len(reshaped) <= model.n_estimators // 2 and changed - reshaped  # (not compiled anew)
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))
    (leaves,) = calls["leaves"]
    spliced = set(calls["splice"])
    assert calls["refresh"] == [] and spliced == reshaped  # no tree compiled again whole
    assert leaves - reshaped == changed - reshaped
    done = updates(calls)
    model.predict_proba(X)
    assert updates(calls) == done and len(calls["compile"]) == 1


def test_no_mark_of_where_a_forgotten_row_went_outlives_the_refresh():
    """The touched trees, the leaves the forgotten rows reached and the nodes where trees
    changed shape tell, in part, where those rows were: zeroed at the refresh, and at once
    when nothing is compiled."""
    model, X, _ = make(n=1500, n_estimators=20, max_samples=0.1, min_samples_leaf=20)
    compiled = model._compiled
    model.forget([3, 70])  # never predicted: nothing to refresh
    assert not compiled.touched.any() and not compiled.leaf_log.any() and not compiled.leaf_n[0]
    model.predict_proba(X[:1])
    model.forget(list(range(100, 400, 5)))
    logs = [getattr(compiled, k) for k in ("touched", "leaf_log", "leaf_n", "shape_log", "shape_n")]
    assert all(log.any() for log in logs)  # the test bites
    model.refresh_compiled()
    assert not any(log.any() for log in logs)
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))


def test_deletions_splice_the_subtrees_they_changed_into_the_compiled_trees(calls):
    """A deletion that reshapes a big tree (a split switched, a subtree made a leaf or
    rebuilt) has its compiled form replace the subtrees under the nodes that changed, never
    the tree: deletions one by one, and batches whose later rows change what earlier ones
    changed (a node freed and its record used again, a switch above a switch)."""
    model, X, _ = make(n=4000, n_estimators=8, min_samples_leaf=2)
    model.predict_proba(X)
    compiled = model._compiled._forest
    rng = np.random.default_rng(3)
    order = rng.permutation(len(X))
    start = 0
    for size in [1] * 30 + [25] * 8:
        model.forget(order[start : start + size].tolist())
        start += size
        np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))
        assert_compiled_as_anew(model)
        assert (model._compiled._pos[model._freed()] == -1).all()  # no place of a freed node
    assert len(calls["splice"]) > 30 and model._compiled._forest is compiled  # never anew
    assert model._freed().size
    # a tree is compiled again only when its slot has no room left for a subtree
    assert {t for refreshed in calls["refresh"] for t in refreshed} <= set(calls["no room"])


def test_splice_points_are_the_topmost_logged_nodes_still_in_their_trees():
    model, _, _ = make(n=2000, n_estimators=3)
    for row in range(0, 300, 3):  # one by one (a big batch is refitted): some nodes freed
        model.forget([row])
    S, roots = model._S, model._roots
    root = int(roots[0])
    child = int(S[5][root, S[6][root], 0])
    grandchild = int(S[5][child, S[6][child], 1])
    freed = model._free[: int(model._meta[K.M_NFREE])]
    log = np.array([[0, grandchild], [0, child], [1, child], [0, child], [0, grandchild]])
    assert model._splice_points(log).tolist() == [1]  # once, and only in its own tree
    log = np.array([[0, grandchild], [2, int(roots[2])], [0, root], [1, grandchild]])
    assert model._splice_points(log).tolist() == [1, 2]
    assert model._splice_points(np.array([[t, int(freed[0])] for t in range(3)])).size == 0
    leaves = model._live_leaves(np.array([[0, root], [0, grandchild], [1, grandchild]]))
    assert leaves.tolist() == [False, S[6][grandchild] < 0, False]
    cut = copy.deepcopy(model)  # the child made a leaf: its old subtree hangs off it, unused
    cut._S[6][child] = -1
    assert cut._splice_points(np.array([[0, grandchild], [0, child]])).tolist() == [1]
    assert cut._live_leaves(np.array([[0, grandchild], [0, child]])).tolist() == [False, True]


def test_a_full_shape_log_recompiles_the_trees_it_could_not_hold(calls):
    model, X, _ = make(n=4000, n_estimators=20, min_samples_leaf=2)
    model.predict_proba(X)
    model._compiled.shape_log = np.zeros((2, 2), np.int64)
    model.forget(list(range(0, 160, 4)))
    assert model._compiled.shape_n[0] == 2  # full: the trees past it are to recompile
    assert 0 < (model._compiled.touched == RESHAPED).sum() <= 10  # (not compiled anew)
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))
    assert calls["refresh"] and len(calls["compile"]) == 1
    assert_compiled_as_anew(model)


@pytest.mark.parametrize("log", [1, 3, 40])
def test_a_full_leaf_log_recompiles_the_trees_it_could_not_hold(calls, log):
    model, X, _ = make(n=1500, n_estimators=10, max_samples=0.3, min_samples_leaf=20)
    model.predict_proba(X)
    model._compiled.leaf_log = np.zeros((log, 2), np.int64)
    model.forget(list(range(0, 200, 4)))
    assert model._compiled.leaf_n[0] == log  # full: the trees past it are to recompile
    # the refresh priced as nothing: the batch never walks instead (rent-or-buy is timed,
    # and a loaded machine's timings made it walk: no refresh, no compile)
    model._compiled._per_node_s = model._compiled._per_leaf_s = 1e-12
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))
    assert calls["refresh"] or len(calls["compile"]) == 2


def test_single_rows_walk_the_node_arrays_until_a_refresh_pays_for_itself(calls):
    model, X, _ = make(n=3000, n_estimators=20, max_samples=0.2)
    model.predict_proba(X[:1])
    compiled = model._compiled
    model.forget([5])
    assert compiled.touched.any()
    compiled._per_node_s = compiled._per_leaf_s = 1.0  # a refresh costing seconds: walk long
    for i in range(50):
        np.testing.assert_array_equal(
            model.predict_proba(X[i : i + 1]), model._node_proba(X[i : i + 1])
        )
    assert updates(calls) == 0 and compiled.stale and compiled._walked_s > 0
    compiled._per_node_s = compiled._per_leaf_s = compiled._walked_s / 1e9  # now it has paid
    model.predict_proba(X[:1])
    assert updates(calls) > 0 and not compiled.stale and compiled._walked_s == 0
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))


def test_a_batch_refreshes_first_when_walking_it_would_cost_more(calls):
    model, X, _ = make(n=3000, n_estimators=20, max_samples=0.2)
    model.predict_proba(X[:1])
    compiled = model._compiled
    assert compiled._per_row_s > 0  # timed at compile
    model.forget([5, 6])
    assert compiled.touched.any()
    compiled._per_node_s = compiled._per_leaf_s = 1.0
    model.predict_proba(X[:500])  # a refresh would cost more: the batch walks
    assert updates(calls) == 0 and compiled.stale
    compiled._per_node_s = compiled._per_leaf_s = 1e-12
    model.predict_proba(X[:500])  # now walking it would cost more: refreshed first
    assert updates(calls) > 0 and not compiled.stale


def test_deletions_that_touched_most_trees_compile_the_forest_anew(calls):
    model, X, _ = make(max_samples=0.5)
    model.predict_proba(X)
    model.forget(list(range(40)))  # 40 rows, each in half the trees: every tree touched
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))
    assert updates(calls) == 0 and len(calls["compile"]) == 2


def test_a_dropped_class_compiles_every_tree_again(calls):
    model, X, y = make(n_classes=3)
    model.predict_proba(X)
    lone = np.flatnonzero(y == 2)
    model.forget(lone.tolist())
    assert model.classes_.tolist() == [0, 1]
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2) and len(calls["compile"]) == 2
    np.testing.assert_array_equal(proba, model._node_proba(X))


def test_compact_compiles_the_canonical_trees_again_as_a_refit_would(calls):
    """After compact the compiled records are those compiled from a refit: no record of a
    refreshed tree from before a deletion (counts that would give a forgotten row's label
    back) stays in the scorer's slots."""
    model, X, y = make(max_samples=0.2)
    model.predict_proba(X)
    victims = list(range(0, 120, 3))
    for v in victims:
        model.forget([v])
        model.predict_proba(X)  # a batch: every deletion is refreshed, tree by tree
    assert updates(calls) > len(victims) // 2  # (a deletion may touch most trees)
    compiled = len(calls["compile"])
    model.compact()
    assert len(calls["compile"]) == compiled + 1  # at once, not on the next prediction
    keep = np.setdiff1d(np.arange(len(y)), victims)
    params = model.get_params() | {"feature_bounds": model.feature_bounds_}
    refit = HedgeCutClassifier(**params).fit(X[keep], y[keep], row_ids=keep)
    refit.predict_proba(X)
    ours, theirs = model._compiled._forest._pool, refit._compiled._forest._pool
    for name in ("rec", "vals", "sizes", "roots"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), err_msg=name)
    np.testing.assert_array_equal(model.predict_proba(X), refit.predict_proba(X))


def test_compact_builds_beside_the_model_and_swaps_inside_swap_alone():
    """The canonical form and its compiled trees are built while the model keeps its old
    state (so predictions on other threads go on, and see consistent state); the model
    takes the new form in one step, inside ``swap`` — a server's closed gate — and nothing
    of the build happens there."""
    model, X, y = make(max_samples=0.3)
    model.predict_proba(X)
    model.forget(list(range(0, 60, 2)))
    expected = model.predict_proba(X)
    before = dict(model.__dict__)
    answers: list[np.ndarray] = []
    seen: dict[str, object] = {}

    gate = threading.Lock()  # what a server's gate does: no prediction during the swap

    class Swap:
        def __enter__(self):
            stop.set()  # (a plain lock is not fair: the predicting loop would keep it)
            gate.acquire()
            # the build is done and the model untouched by it
            seen["untouched"] = all(model.__dict__[k] is v for k, v in before.items())
            seen["rows at entry"] = model._X.shape[0]
            return self

        def __exit__(self, *exc):
            seen["rows at exit"] = model._X.shape[0]
            gate.release()
            return False

    stop = threading.Event()

    def predict():
        while not stop.is_set():
            with gate:
                answers.append(model.predict_proba(X))

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(predict)
        model.compact(Swap())
        running.result()
    assert seen == {"untouched": True, "rows at entry": len(y), "rows at exit": len(y) - 30}
    assert answers  # predictions went on during the build, every one as before it
    for got in answers:
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(model.predict_proba(X), expected)
    assert model._compiled.built


def test_compact_and_reload_compile_nothing_until_a_prediction(calls):
    model, X, _ = make()
    model.forget([1])
    model.compact()
    loaded = HedgeCutClassifier.from_bytes(model.to_bytes())
    assert calls["compile"] == [] and not loaded._compiled.built
    np.testing.assert_array_equal(loaded.predict_proba(X), model._node_proba(X))
    assert len(calls["compile"]) == 1


def test_the_artifact_never_holds_the_compiled_form():
    bounds = np.array([[-5.0, 5.0]] * 5)  # declared: a refit has the very same parameters
    model, X, y = make(feature_bounds=bounds)
    blob = model.to_bytes()
    model.predict_proba(X)
    assert model.to_bytes() == blob
    model.forget([4, 9])
    model.predict_proba(X)
    keep = np.setdiff1d(np.arange(len(y)), [4, 9])
    refit = HedgeCutClassifier(**model.get_params()).fit(X[keep], y[keep], row_ids=keep)
    refit.predict_proba(X[:1])
    assert model.to_bytes() == refit.to_bytes()


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_copies_drop_the_compiled_form_and_compile_it_again_on_use(duplicate):
    model, X, _ = make()
    proba = model.predict_proba(X)
    twin = duplicate(model)
    assert model._compiled.built and not twin._compiled.built
    assert twin._compiled is not model._compiled
    np.testing.assert_array_equal(twin.predict_proba(X), proba)
    twin.forget([2])
    np.testing.assert_array_equal(model.predict_proba(X), proba)  # the original is untouched


def test_a_change_of_n_jobs_compiles_again_with_its_threads():
    model, X, _ = make()
    model.predict_proba(X)
    assert model._compiled._forest.threads_ == 1
    model.set_params(n_jobs=2)
    np.testing.assert_array_equal(model.predict_proba(X), model._node_proba(X))
    assert model._compiled._forest.threads_ == 2


def test_concurrent_predictions_after_a_forget_refresh_once_and_agree(calls):
    model, X, _ = make(n=2000, n_estimators=30, max_samples=0.1)
    model.predict_proba(X)
    model.forget([10, 11, 12])
    want = model._node_proba(X)
    start = threading.Barrier(8)

    def predict(i: int) -> np.ndarray:
        start.wait()
        return model.predict_proba(X[: 1 + (i % 2) * (len(X) - 1)])  # single rows and batches

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(predict, range(8)))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, want[: len(got)], err_msg=f"thread {i}")
    # one thread did it: one sync (a rewrite of leaves, a refresh of reshaped trees, or both)
    assert len(calls["refresh"]) <= 1 and len(calls["leaves"]) <= 1 and updates(calls) > 0
    assert len(calls["compile"]) == 1


def test_refresh_compiled_brings_the_form_up_to_date_before_any_prediction(calls, monkeypatch):
    model, X, _ = make(n_estimators=20, max_samples=0.1)
    model.refresh_compiled()  # nothing compiled yet: nothing to do
    assert calls["compile"] == [] and updates(calls) == 0
    model.predict_proba(X[:1])
    model.forget([3])
    model.refresh_compiled()  # what a server does before it answers an erasure
    done = updates(calls)
    assert done > 0 and not model._compiled.stale
    model.refresh_compiled()  # up to date: nothing more
    assert updates(calls) == done

    def refused(*args):
        raise AssertionError("predict_proba walked the node arrays")

    monkeypatch.setattr(K, "predict_proba_serial", refused)
    monkeypatch.setattr(K, "predict_proba_parallel", refused)
    proba = model.predict_proba(X)  # neither walks nor refreshes
    monkeypatch.undo()
    assert updates(calls) == done
    np.testing.assert_array_equal(proba, model._node_proba(X))


def _forgotten(most: bool, round_: int, model) -> np.ndarray:
    """Forget one row (some trees change) or 40 (most trees, with no room to log where their
    structures changed: the form is compiled anew)."""
    if most:
        model._compiled.shape_log = np.zeros((0, 2), np.int64)
    model.forget(np.arange(40 * round_, 40 * round_ + (40 if most else 1)))
    assert model._compiled.stale
    if most:
        assert 2 * int((model._compiled.touched == RESHAPED).sum()) > model.n_estimators
    return model


@pytest.mark.parametrize("most", [False, True], ids=["some trees", "most trees: compiled anew"])
def test_a_refresh_beside_predictions_never_lets_one_score_a_half_built_form(most, monkeypatch):
    """A server refreshes after answering an erasure, beside its predictions: each prediction
    gives the numbers of the model that forgot (walked, waited for, or scored with the form
    once whole) and none fails on a form being built. The refresh lingers after marking the
    form current, so that predictions run in that window."""
    model, X, _ = make(n=3000, n_estimators=40, max_samples=0.2)
    model.predict_proba(X[:1])
    settled = CompiledTrees.settled
    for round_ in range(4):
        _forgotten(most, round_, model)  # no prediction runs beside forget (a server's gate)
        want = model._node_proba(X[:5])
        go, stop = threading.Barrier(5), threading.Event()

        def predict(go=go, stop=stop) -> list[np.ndarray]:
            go.wait()
            got = []
            while not stop.is_set() or not got:
                got.append(model.predict_proba(X[:5]))
            return got

        def lingering(self) -> None:
            settled(self)
            time.sleep(0.02)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(predict) for _ in range(4)]
            monkeypatch.setattr(CompiledTrees, "settled", lingering)
            go.wait()
            model.refresh_compiled()
            monkeypatch.setattr(CompiledTrees, "settled", settled)
            assert not model._compiled.stale
            stop.set()
            for f in futures:
                for got in f.result():
                    np.testing.assert_array_equal(got, want, err_msg=f"round {round_}")


class _Racing:
    """A model's compiled form whose refresh, on another thread, completes at the moment a
    prediction has read the form and not yet whether it is current: the interleaving a
    prediction beside a refresh can meet."""

    def __init__(self, real: CompiledTrees, model) -> None:
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_model", model)

    def __getattr__(self, name: str):
        value = getattr(self._real, name)
        if name == "_forest":
            self._real.refresh(self._model)
        return value

    def __setattr__(self, name: str, value) -> None:
        setattr(self._real, name, value)


def test_a_prediction_that_meets_a_refresh_midway_never_scores_the_form_from_before():
    model, X, _ = make(n=3000, n_estimators=40, max_samples=0.2)
    model.predict_proba(X[:1])
    before = model._compiled._forest
    _forgotten(True, 0, model)
    want = model._node_proba(X[:5])
    got = CompiledTrees.proba(_Racing(model._compiled, model), model, features(model, X[:5]))
    assert model._compiled._forest is not before  # compiled anew meanwhile
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("how", ["compact", "refit"])
def test_row_lookups_a_server_built_outlive_compaction_and_refits(how):
    """The row-id lookups (O(n) to build: ~26 ms at 300,000 rows) a server built before its
    first erasure are built again beside the compacted or refitted form, not by the first
    erasure after it; a model whose lookups were never built does not build them."""
    model, X, _ = make(n=800)
    plain = copy.deepcopy(model)
    model._rows.prepare()
    for m in (model, plain):
        if how == "compact":
            m.compact()
        else:  # half the rows: forgotten by a refit
            assert m.forget(list(range(0, 800, 2))).details["refit"] == 1
    assert model._rows.prepared and not plain._rows.prepared
    for m in (model, plain):
        m.forget([799])
    np.testing.assert_array_equal(model._node_proba(X), plain._node_proba(X))


def test_compact_to_bytes_is_compact_then_to_bytes():
    model, X, _ = make(n=1500, max_samples=0.3)
    model.predict_proba(X)
    model.forget(list(range(0, 300, 7)))
    twin = copy.deepcopy(model)
    data = model.compact_to_bytes()
    twin.compact()
    assert data == twin.to_bytes() == model.to_bytes()
    np.testing.assert_array_equal(model.predict_proba(X), twin.predict_proba(X))
    assert model.n_forgotten_ == 0 and model._compiled.built  # compacted: scored compiled
