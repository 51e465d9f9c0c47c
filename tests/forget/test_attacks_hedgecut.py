"""Attacks on a HedgeCut forest that has forgotten rows: nothing it keeps gives them back.

An attacker holds the artifact (``to_bytes()``) or the model's memory, and the remaining
training rows. Each attack below recovered part of an erased row before issue 13 (bounds: its
extreme value; freed node records: its label; the row pool: its path, hence a box around its
features; the id list: its id; the class list: its label). The strongest property comes
first: after ``forget(S)`` the artifact is byte for byte the one ``fit(D \\ S)`` writes, so
every differencing attack against it learns what it would learn from a model never trained on
``S``.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forget import _persist
from forget.errors import UnknownRowIdsError
from forget.hedgecut import HedgeCutClassifier, forest

BIG_ID = 10**12  # distinctive ids: a match anywhere is that row's id and nothing else


@pytest.fixture(autouse=True)
def _deletion_kernels():
    """Every attack here meets what the deletion kernels leave: these forests are small, and
    a forget of 1/16 of their rows or more would otherwise fit again on the rest (a fresh
    model, clean by construction; ``test_hedgecut`` checks that path equals a refit too)."""
    with mock.patch.object(forest, "REFIT_SHARE", 0):
        yield


def artifact(model: HedgeCutClassifier) -> tuple[dict, dict, dict[str, np.ndarray]]:
    _, params, state, arrays = _persist.load(model.to_bytes(), "HedgeCutClassifier")
    return params, state, arrays


# ---------------------------------------------------------------------- byte identity


@st.composite
def problems(draw):
    n = draw(st.integers(6, 60))
    d = draw(st.integers(1, 4))
    n_classes = draw(st.integers(2, 4))
    levels = draw(st.sampled_from([2, 3, 6, 1000]))  # few levels: duplicates and ties
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.integers(0, levels, size=(n, d)).astype(float) + rng.choice([0.0, 0.5], size=(n, d))
    y = rng.integers(0, n_classes, size=n)
    ids = rng.permutation(10 * n)[:n] + BIG_ID
    n_del = draw(st.integers(1, n - 1))
    order = rng.permutation(n)[:n_del]
    cuts = sorted(draw(st.lists(st.integers(1, n_del), max_size=3)))
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
        max_samples=draw(st.sampled_from([1.0, 1.0, 0.5])),
        random_state=draw(st.integers(0, 2**31)),
    )
    if isinstance(params["max_features"], int) and params["max_features"] > d:
        params["max_features"] = d
    return X, y, ids, batches, params, draw(st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_artifact_after_forget_is_the_refits_byte_for_byte(problem):
    """``forget(S)`` then ``to_bytes()`` == ``fit(D \\ S)`` then ``to_bytes()``, after every
    batch; with declared bounds the whole archive, else all but the pinned parameter."""
    X, y, ids, batches, params, declare = problem
    if declare:  # bounds from a schema: the same parameters, so the same archive
        params["feature_bounds"] = np.array([[-1.0, 7.0]] * X.shape[1])
    model = HedgeCutClassifier(**params).fit(X, y, row_ids=ids)
    gone = np.zeros(len(y), dtype=bool)
    for batch in batches:
        model.forget(ids[batch].tolist())
        gone[batch] = True
        keep = ~gone
        refit = HedgeCutClassifier(**(params | {"feature_bounds": model.feature_bounds_})).fit(
            X[keep], y[keep], row_ids=ids[keep]
        )
        if declare:
            assert model.to_bytes() == refit.to_bytes()
        else:
            (p, s, a), (rp, rs, ra) = artifact(model), artifact(refit)
            assert s == rs
            assert {k: v for k, v in p.items() if k != "feature_bounds"} == {
                k: v for k, v in rp.items() if k != "feature_bounds"
            }
            assert sorted(a) == sorted(ra)
            for name in a:
                assert a[name].dtype == ra[name].dtype, name
                np.testing.assert_array_equal(a[name], ra[name], err_msg=name)
        # and the artifact loads as a model that forgets on exactly like the live one
        loaded = HedgeCutClassifier.from_bytes(model.to_bytes())
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_compact_makes_memory_the_refits():
    """``compact()`` leaves in memory what ``from_bytes(to_bytes())`` holds: the refit's."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    params: dict[str, Any] = dict(
        n_estimators=6, random_state=3, max_samples=1.0, deletion_budget=0.1,
        hedge_min_samples=16, max_variants=2, max_hedge_depth=2,
    )  # fmt: skip
    model = HedgeCutClassifier(**params).fit(X, y)
    victims = rng.permutation(300)[:40]
    model.forget(victims.tolist())
    keep = np.setdiff1d(np.arange(300), victims)
    refit = HedgeCutClassifier(**params, feature_bounds=model.feature_bounds_).fit(
        X[keep], y[keep], row_ids=keep
    )
    model.compact()
    refit.compact()  # a fit's own node order is its build order: compare in the canonical one
    for name in ("_X", "_y", "_pool", "_roots", "_prm", "_meta"):
        np.testing.assert_array_equal(getattr(model, name), getattr(refit, name), err_msg=name)
    np.testing.assert_array_equal(model._rows.ids, refit._rows.ids)
    used = int(refit._meta[0])
    for a, b in zip(model._S, refit._S, strict=True):
        np.testing.assert_array_equal(a[:used], b[:used])
    assert model.n_forgotten_ == 0 and model.budget_ == refit.budget_


# ---------------------------------------------------------------------- bounds


def _ages(seed: int, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(17, 91, n), rng.integers(1, 17, n)]).astype(float)


@pytest.mark.parametrize("seed", range(5))
def test_bounds_hold_no_erased_extreme_value(seed):
    """The oldest subject (a unique age) and the least schooled leave no trace in the bounds.

    Before: the bounds were the data's extremes rounded to 3 significant digits, which keep
    ages exact: ``97.0`` was read straight off ``bounds``, and every other extreme value the
    row could have had gave other bounds.
    """
    X = _ages(seed)
    X[7] = [97.0, 0.0]  # unique extremes, both
    y = (X[:, 0] > 40).astype(int)
    model = HedgeCutClassifier(n_estimators=4, random_state=seed).fit(X, y)
    model.forget([7])
    _, _, a = artifact(model)
    for where in (a["bounds"], model.feature_bounds_):
        assert not np.isin(where[0], [97.0]).any(), "the erased age is in the bounds"
    # whatever extreme values the row had, the bounds are the same: they tell nothing of them
    for age, school in ((91.0, -0.5), (130.0, -30.0), (1e6, 0.75)):
        other = X.copy()
        other[7] = [age, school]
        twin = HedgeCutClassifier(n_estimators=4, random_state=seed).fit(other, y)
        np.testing.assert_array_equal(twin.feature_bounds_, model.feature_bounds_)


# ---------------------------------------------------------------------- freed node records


def _label_from_child_counts(ncls, parent, link) -> list[int]:
    """Labels that (child counts summed over a candidate's two sides) − parent counts gives
    one-hot: the label of a row that left the parent after the children stopped counting."""
    sides: dict[tuple[int, int], list[list[int]]] = {}
    for u in range(parent.shape[0]):
        p = int(parent[u])
        if p >= 0:
            sides.setdefault((p, int(link[u]) >> 1), [[], []])[int(link[u]) & 1].append(u)
    found = []
    for (p, _), (lefts, rights) in sides.items():
        for u0 in lefts:
            for u1 in rights:
                diff = ncls[u0].astype(np.int64) + ncls[u1] - ncls[p]
                if diff.sum() == 1 and diff.min() == 0:
                    found.append(int(np.argmax(diff)))
    return found


def _small_forest_problem():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, size=40)
    params = dict(n_estimators=5, max_samples=1.0, min_samples_leaf=3, random_state=5)
    return X, y, params


@pytest.mark.parametrize("where", ["artifact", "memory"])
def test_freed_nodes_give_no_label_back(where):
    """Before: freed nodes kept their counts, so for 33 of 40 erased rows (artifact) the
    children − parent difference was one-hot on the erased row's label."""
    X, y, params = _small_forest_problem()
    hits = 0
    for victim in range(X.shape[0]):
        model = HedgeCutClassifier(**params).fit(X, y)
        model.forget([victim])
        if where == "artifact":
            _, _, a = artifact(model)
            ncls, parent, link = a["node_ncls"], a["node_parent"], a["node_link"]
        else:
            used = int(model._meta[0])
            ncls, parent, link = (model._S[i][:used] for i in (0, 8, 9))
        hits += int(y[victim]) in _label_from_child_counts(ncls, parent, link)
    assert hits == 0, f"{hits} of {X.shape[0]} erased labels recovered from node counts"


def test_freed_node_records_are_cleared_in_memory():
    X, y, params = _small_forest_problem()
    model = HedgeCutClassifier(**params).fit(X, y)
    model.forget(list(range(0, 40, 3)))
    used = int(model._meta[0])
    freed = model._S[1][:used] == -1
    assert freed.any()
    ncls, feat, thr, left = (model._S[i][:used] for i in (0, 2, 3, 4))
    assert not ncls[freed].any() and not left[freed].any()
    assert not feat[freed].any() and not thr[freed].any()
    leaves = model._S[1][:used] == 0  # final leaves keep no candidate counts either
    assert not left[leaves].any()


# ---------------------------------------------------------------------- the row pool


def test_row_pool_gives_no_path_back():
    """Before: node row ranges still held the erased row (``stop - start`` exceeded the
    node's count exactly on its path), so the deepest such node's box contained it."""
    X, y, params = _small_forest_problem()
    for victim in range(0, 40, 4):
        model = HedgeCutClassifier(**params).fit(X, y)
        model.forget([victim])
        _, _, a = artifact(model)
        span = a["node_stop"] - a["node_start"]
        live = a["node_ncand"] >= 0
        surplus = span[live] - a["node_ncls"][live].sum(axis=1)
        assert not surplus.any(), f"row {victim}: ranges still count it on {surplus.sum()} nodes"
        assert a["pool"].max() < a["X"].shape[0]


# ---------------------------------------------------------------------- ids


def test_forgotten_ids_leave_artifact_and_memory():
    """Before: the artifact kept every id, with ``alive=False`` for the erased ones."""
    X, y, params = _small_forest_problem()
    ids = BIG_ID + np.arange(40) * 7919
    model = HedgeCutClassifier(**params).fit(X, y, row_ids=ids)
    result = model.forget([int(ids[5]), int(ids[9])])
    assert result.row_ids == (int(ids[5]), int(ids[9]))
    _, state, a = artifact(model)
    for gone in (ids[5], ids[9]):
        assert str(int(gone)) not in repr(state)
        for name, arr in a.items():
            assert not (arr.dtype.kind in "iu" and (arr == gone).any()), f"id in {name!r}"
        assert not (model._rows.ids == gone).any()
    np.testing.assert_array_equal(a["row_ids"], np.delete(ids, [5, 9]))
    assert "alive" not in a
    with pytest.raises(UnknownRowIdsError):
        model.forget([int(ids[5])])


# ---------------------------------------------------------------------- classes


def test_a_label_only_the_erased_row_had_leaves_the_class_list():
    """Before: ``classes_`` and the artifact kept "rare" after its only row was forgotten."""
    X, y, params = _small_forest_problem()
    labels = np.array(["a", "b", "c", "rare"])[np.where(np.arange(40) == 17, 3, y)]
    model = HedgeCutClassifier(**params).fit(X, labels)
    model.forget([17])
    _, _, a = artifact(model)
    remaining = set(np.delete(labels, 17).tolist())
    assert set(a["classes"].tolist()) == remaining
    assert set(model.classes_.tolist()) == remaining
    assert model.predict_proba(X).shape == (40, len(remaining))
    keep = np.delete(np.arange(40), 17)
    refit = HedgeCutClassifier(**params, feature_bounds=model.feature_bounds_).fit(
        X[keep], labels[keep], row_ids=keep
    )
    np.testing.assert_array_equal(model.predict_proba(X), refit.predict_proba(X))
    model.forget([3])  # and it goes on forgetting with the shorter class list
    # declared classes stay: the user said what the label set is
    declared = HedgeCutClassifier(**params, classes=["a", "b", "c", "rare"]).fit(X, labels)
    declared.forget([17])
    assert declared.classes_.tolist() == ["a", "b", "c", "rare"]
