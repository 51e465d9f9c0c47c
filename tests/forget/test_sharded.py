"""Sharded (SISA) through the conformance suite, and its own invariants: keyed membership,
what is served while shards are pending, slices, classes, the artifact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from forget import _persist, checks
from forget.errors import ArtifactError, EmptyModelError, UnknownRowIdsError
from forget.sharded import PendingRetrainError, Sharded, shard_seed
from tests.forget.test_conformance import make_data, problems

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _sharded(est: Any, **kw: Any) -> Callable[[], Sharded]:
    return lambda: Sharded(est, **{"n_shards": 3, "retrain": "now", **kw})


# name -> (factory, task, refuses NaN)
INNER: dict[str, tuple[Callable[[], Sharded], str, bool]] = {
    "DecisionTree": (_sharded(DecisionTreeClassifier(max_depth=4)), "classify", False),
    "LogisticRegression": (_sharded(LogisticRegression()), "classify", True),
    "HistGradientBoosting": (
        _sharded(HistGradientBoostingClassifier(max_iter=10, min_samples_leaf=3)),
        "classify",
        False,
    ),
    "RandomForest": (_sharded(RandomForestClassifier(n_estimators=5)), "classify", False),
    "MLP": (_sharded(MLPClassifier(hidden_layer_sizes=(8,), max_iter=50)), "classify", True),
    "SVC-vote": (_sharded(SVC(), aggregate="vote"), "classify", True),
    "SGD-slices": (_sharded(SGDClassifier(loss="log_loss"), n_slices=3), "classify", True),
    "Ridge": (_sharded(Ridge(alpha=0.1)), "regress", True),
    "RandomForestRegressor": (
        _sharded(RandomForestRegressor(n_estimators=4), n_shards=2),
        "regress",
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(INNER))
def test_forget_equals_refit(name):
    make, task, _ = INNER[name]

    @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(problems(task, "real"))
    def run(problem):
        X, y, ids, batches = problem
        checks.check_forget_equals_refit(make, X, y, ids, batches)
        checks.check_state_equals_refit(make, X, y, ids, batches)
        checks.check_batch_equals_one_by_one(make, X, y, ids, [i for b in batches for i in b])

    run()


# clone_and_params compares get_params() of a clone with ==: a clone holds a new estimator
# object, unequal by identity (test_clone_and_params checks the parameters it holds instead).
SUITE = sorted(set(checks.CHECKS) - {"clone_and_params"})


@pytest.mark.parametrize("check", SUITE)
@pytest.mark.parametrize("name", sorted(INNER))
def test_check(name, check):
    make, task, refuses_nan = INNER[name]
    if check == "bad_fit_input_is_refused" and not refuses_nan:
        pytest.skip("the learner takes NaN as missing values, and so does Sharded around it")
    X, y, ids = make_data(5, 48, 3, task, "real")
    checks.CHECKS[check](make, X, y, ids)


@pytest.mark.parametrize("check", ["bad_ids_change_nothing", "no_trace_in_memory"])
def test_check_while_pending(check):
    """Deferred retrain: a refused request changes nothing, and the dropped constituent
    leaves no trace of the row while its shard is pending."""
    X, y, ids = make_data(5, 48, 3, "classify", "real")
    checks.CHECKS[check](lambda: Sharded(DecisionTreeClassifier(), n_shards=3), X, y, ids)


def test_clone_and_params():
    from sklearn.base import clone

    m = Sharded(DecisionTreeClassifier(max_depth=3), n_shards=4, random_state=7)
    twin = clone(m)
    assert twin.estimator is not m.estimator
    assert twin.estimator.get_params() == m.estimator.get_params()
    assert {k: v for k, v in twin.get_params().items() if k != "estimator"} == {
        k: v for k, v in m.get_params().items() if k != "estimator"
    }
    m.set_params(estimator__max_depth=5)
    assert m.estimator.max_depth == 5
    X, y, ids = make_data(1, 40, 3, "classify", "real")
    twin.fit(X, y, row_ids=ids)
    assert not hasattr(m, "n_features_in_")


DETERMINISTIC = {
    "DecisionTree": lambda **kw: Sharded(DecisionTreeClassifier(max_depth=5), **kw),
    "LogisticRegression": lambda **kw: Sharded(LogisticRegression(), **kw),
    "HistGradientBoosting": lambda **kw: Sharded(
        HistGradientBoostingClassifier(max_iter=8, min_samples_leaf=3), **kw
    ),
    "SGD-slices": lambda **kw: Sharded(SGDClassifier(loss="log_loss"), n_slices=4, **kw),
}


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_forget_then_retrain_is_bitwise_a_refit(name):
    """forget(S) (deferred) then retrain_pending() == fit(D \\ S): the same probabilities bit
    for bit, and the same artifact byte for byte (before the retrain too)."""
    make = DETERMINISTIC[name]

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.integers(0, 2**32 - 1),
        n_shards=st.integers(1, 6),
        n_del=st.integers(1, 20),
        n_classes=st.integers(2, 3),
    )
    def run(seed, n_shards, n_del, n_classes):
        X, y, ids = make_data(seed, 80, 3, "classify", "real", n_classes)
        gone = np.random.default_rng(seed).choice(ids, size=n_del, replace=False)
        keep = ~np.isin(ids, gone)
        m = make(n_shards=n_shards, random_state=seed % 1000).fit(X, y, row_ids=ids)
        result = m.forget(gone.tolist())
        assert result.needs_retrain and m.pending_
        ref = make(n_shards=n_shards, random_state=seed % 1000)
        ref.fit(X[keep], y[keep], row_ids=ids[keep])
        assert m.to_bytes() == ref.to_bytes()
        m.retrain_pending()
        assert m.pending_ == ()
        np.testing.assert_array_equal(m.predict_proba(X), ref.predict_proba(X))
        np.testing.assert_array_equal(m.classes_, ref.classes_)

    run()


def test_while_pending_the_served_model_is_the_refit_without_the_pending_shards():
    X, y, ids = make_data(3, 120, 3, "classify", "real")
    make = DETERMINISTIC["DecisionTree"]
    m = make(n_shards=5).fit(X, y, row_ids=ids)
    gone = ids[:2].tolist()
    m.forget(gone)
    keep = ~np.isin(ids, gone)
    ref = make(n_shards=5).fit(X[keep], y[keep], row_ids=ids[keep])
    pending = set(m.pending_)
    assert pending and all(m._shards[s].model is None for s in pending)
    for s in set(range(5)) - pending:
        np.testing.assert_array_equal(
            m._shards[s].model.predict_proba(X), ref._shards[s].model.predict_proba(X)
        )
    served = [ref._shards[s].model for s in range(5) if s not in pending]
    expect = np.zeros((X.shape[0], ref.classes_.size))
    for c in served:
        expect[:, np.searchsorted(ref.classes_, c.classes_)] += c.predict_proba(X)
    np.testing.assert_array_equal(m.predict_proba(X), expect / len(served))


def test_membership_and_seeds_depend_on_the_row_id_and_seed_only():
    X, y, ids = make_data(2, 90, 3, "classify", "real")
    full = Sharded(DecisionTreeClassifier(), n_shards=4, n_slices=1, random_state=3)
    full.fit(X, y, row_ids=ids)
    part = Sharded(DecisionTreeClassifier(), n_shards=4, random_state=3)
    part.fit(X[::3], y[::3], row_ids=ids[::3])
    for a, b in zip(full._shards, part._shards, strict=True):
        assert set(b.ids.tolist()) == set(a.ids.tolist()) & set(ids[::3].tolist())
    for s, sh in enumerate(full._shards):
        assert sh.model.random_state == shard_seed(3, s)
    other = Sharded(DecisionTreeClassifier(), n_shards=4, random_state=4).fit(X, y, row_ids=ids)
    assert [a.ids.tolist() for a in other._shards] != [a.ids.tolist() for a in full._shards]


def test_slices_keep_the_checkpoints_before_the_earliest_affected_slice():
    X, y, ids = make_data(4, 160, 3, "classify", "real")
    m = Sharded(SGDClassifier(loss="log_loss"), n_shards=2, n_slices=4, retrain="deferred")
    m.fit(X, y, row_ids=ids)
    assert all(len(sh.checkpoints) == 3 for sh in m._shards)
    sh = m._shards[0]
    victim = int(sh.ids[np.flatnonzero(sh.slices == 2)[0]])
    m.forget([victim])
    assert m.pending_ == (0,) and m._resume[0] == 2
    assert sh.model is None and len(sh.checkpoints) == 2  # after slices 0 and 1 only
    assert len(m._shards[1].checkpoints) == 3
    m.retrain_pending()
    keep = ids != victim
    ref = Sharded(SGDClassifier(loss="log_loss"), n_shards=2, n_slices=4).fit(
        X[keep], y[keep], row_ids=ids[keep]
    )
    np.testing.assert_array_equal(m.predict_proba(X), ref.predict_proba(X))
    with pytest.raises(ValueError, match="partial_fit"):
        Sharded(DecisionTreeClassifier(), n_slices=2).fit(X, y)


@pytest.mark.parametrize(
    "n_slices,estimator", [(1, DecisionTreeClassifier()), (3, SGDClassifier(loss="log_loss"))]
)
def test_a_class_only_the_erased_rows_had_leaves(n_slices, estimator):
    X, y, ids = make_data(6, 60, 2, "classify", "real")
    y = y.copy()
    y[[4, 9]] = 7  # a class of two rows
    m = Sharded(estimator, n_shards=3, n_slices=n_slices).fit(X, y, row_ids=ids)
    assert 7 in m.classes_
    result = m.forget([int(ids[4]), int(ids[9])])
    assert result.details["classes_dropped"] == 1 and 7 not in m.classes_
    if n_slices > 1:  # every constituent was trained by partial_fit with classes=classes_
        assert m.pending_ == (0, 1, 2)
        with pytest.raises(PendingRetrainError, match="retrain_pending"):
            m.predict(X)
    m.retrain_pending()
    keep = ~np.isin(np.arange(60), [4, 9])
    ref = Sharded(estimator, n_shards=3, n_slices=n_slices).fit(X[keep], y[keep], ids[keep])
    np.testing.assert_array_equal(m.classes_, ref.classes_)
    np.testing.assert_array_equal(m.predict_proba(X), ref.predict_proba(X))
    assert m.to_bytes() == ref.to_bytes()


def test_one_class_and_empty_shards_are_defined():
    X = np.arange(12, dtype=float).reshape(6, 2)
    y = np.array([0, 0, 0, 1, 1, 1])
    m = Sharded(LogisticRegression(), n_shards=20).fit(X, y)  # LR refuses one class alone
    sizes = [sh.ids.size for sh in m._shards]
    assert sum(sizes) == 6 and 0 in sizes
    served = m._served()
    assert len(served) == sum(s > 0 for s in sizes)
    proba = m.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    single = [sh.model for sh in m._shards if sh.ids.size == 1]
    assert single and all(list(c.classes_) == [y[sh.ids[0]]] for c, sh in zip(
        single, [sh for sh in m._shards if sh.ids.size == 1], strict=True))  # fmt: skip


def test_bad_requests_raise_and_change_nothing():
    X, y, ids = make_data(7, 40, 3, "classify", "real")
    m = Sharded(DecisionTreeClassifier(), n_shards=1).fit(X, y, row_ids=ids)
    before = m.to_bytes()
    with pytest.raises(UnknownRowIdsError, match="1 row ids not held by Sharded"):
        m.forget([int(ids[0]), -5])
    with pytest.raises(EmptyModelError):
        m.forget(ids.tolist())
    with pytest.raises(ValueError, match="integers"):
        m.forget([1.5])
    assert m.to_bytes() == before and m.pending_ == ()
    m.forget([int(ids[0])])
    with pytest.raises(PendingRetrainError, match="all 1 constituents"):
        m.predict(X)
    m.retrain_pending()
    assert m.predict(X).shape == (40,)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"n_shards": 0}, "n_shards"),
        ({"aggregate": "max"}, "aggregate"),
        ({"retrain": "later"}, "retrain"),
        ({"random_state": None}, "random_state"),
    ],
)
def test_bad_parameters_are_refused(kw, match):
    X, y, _ = make_data(1, 30, 2, "classify", "real")
    with pytest.raises(ValueError, match=match):
        Sharded(DecisionTreeClassifier(), **kw).fit(X, y)
    with pytest.raises(ValueError, match="predict_proba"):
        Sharded(SVC()).fit(X, y)
    with pytest.raises(ValueError, match="vote"):
        Sharded(Ridge(), aggregate="vote").fit(X, y.astype(float))


def test_the_artifact_names_sklearn_estimators_only_and_holds_no_pickle():
    X, y, ids = make_data(8, 40, 2, "classify", "real")
    m = Sharded(MLPClassifier(hidden_layer_sizes=(4, 3), max_iter=30), n_shards=2).fit(X, y)
    data = m.to_bytes()
    kind, params, state, arrays = _persist.load(data)
    assert sorted(arrays) == ["X", "row_ids", "y"] and state == {}
    assert params["estimator"]["__estimator__"].startswith("sklearn.neural_network")
    np.testing.assert_array_equal(Sharded.from_bytes(data).predict_proba(X), m.predict_proba(X))
    params["estimator"]["__estimator__"] = "os.system"
    evil = _persist.dump(kind, params, state, arrays)
    with pytest.raises(ArtifactError, match="only sklearn"):
        Sharded.from_bytes(evil)
    odd = Sharded(MLPClassifier(hidden_layer_sizes=np.array([3]), max_iter=5)).fit(X, y)
    with pytest.raises(ValueError, match="without pickle"):
        odd.to_bytes()


def test_regressor_predicts_the_mean_of_its_shards():
    X, y, ids = make_data(9, 60, 3, "regress", "real")
    m = Sharded(DecisionTreeRegressor(max_depth=3), n_shards=3).fit(X, y, row_ids=ids)
    assert not hasattr(m, "predict_proba")
    expect = sum(sh.model.predict(X) for sh in m._shards) / 3
    np.testing.assert_array_equal(m.predict(X), expect)
