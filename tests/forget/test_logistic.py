"""LogisticRegression: forget(S) stays within its certified bound of fit(D \\ S)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from forget import _persist
from forget.base import Guarantee, Path
from forget.errors import (
    DuplicateRowIdsError,
    EmptyModelError,
    UnknownRowIdsError,
)
from forget.logistic import LogisticRegression


def make_data(seed: int, n: int, d: int, k: int = 2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if k == 2:
        y = (X @ rng.normal(size=d) + rng.logistic(size=n) > 0).astype(int)
    else:
        y = np.argmax(X @ rng.normal(size=(d, k)) + rng.gumbel(size=(n, k)), axis=1)
    return X, y


def assert_within_bound(m: LogisticRegression, ref: LogisticRegression) -> float:
    """||θ - θ_ref|| <= (β + residual of ref) / (λ n): strong convexity of J on the rest."""
    lam_n = m.lam * ref.row_ids_.size
    theta, theta_ref = m._theta, ref._theta
    dist = np.linalg.norm(theta - theta_ref, axis=1)
    allowed = (m._beta + ref._beta) / lam_n
    assert (dist <= allowed * (1 + 1e-6) + 1e-12).all(), (dist, allowed)
    # the certified bound is a bound: the true gradient residual never exceeds it
    assert (m.gradient_norms() <= m._beta * (1 + 1e-6) + 1e-9).all()
    return float(dist.max())


@st.composite
def problems(draw):
    n = draw(st.integers(20, 120))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "n": n,
        "d": draw(st.integers(1, 4)),
        "k": draw(st.sampled_from([2, 2, 3])),
        "lam": draw(st.sampled_from([1e-2, 1e-1])),
        "fit_intercept": draw(st.booleans()),
        "budget": draw(st.sampled_from([np.inf, 1.0, 1e-3])),
        "n_del": draw(st.integers(1, n // 4)),
        "one_by_one": draw(st.booleans()),
    }


@settings(max_examples=25, deadline=None)
@given(problems())
def test_forget_is_within_its_bound_of_a_refit(p):
    X, y = make_data(p["seed"], p["n"], p["d"], p["k"])
    ids = np.arange(p["n"]) + 500
    gone = np.random.default_rng(p["seed"] + 1).choice(ids, size=p["n_del"], replace=False)
    params = {
        "lam": p["lam"],
        "fit_intercept": p["fit_intercept"],
        "removal_budget": p["budget"],
        "classes": np.arange(p["k"]),
    }
    m = LogisticRegression(**params).fit(X, y, row_ids=ids)
    results = [m.forget([i]) for i in gone] if p["one_by_one"] else [m.forget(gone)]
    keep = ~np.isin(ids, gone)
    ref = LogisticRegression(**params).fit(X[keep], y[keep], row_ids=ids[keep])
    assert_within_bound(m, ref)
    assert results[-1].bound == m.bound_
    for r in results:
        assert r.guarantee is Guarantee.APPROXIMATE and not r.needs_retrain
        assert r.bound <= p["budget"]
        assert r.paths == ((Path.SLOW if r.details["refit"] else Path.FAST),) * r.n_forgotten


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 120),
    d=st.integers(1, 4),
    scale=st.sampled_from([1.0, 10.0, 100.0]),
    lam=st.sampled_from([1e-3, 1e-2, 1e-1]),
    one_by_one=st.booleans(),
)
def test_the_gradient_residual_never_exceeds_the_reported_bound(seed, n, d, scale, lam, one_by_one):
    """Issue 13, item 4: unstandardised rows (``||x|| >> 1``) broke Guo et al.'s bound.

    Before the fix, 42 of 300 random batch deletions at scale 100 had a residual above ``β``
    (up to 15x). The bound now holds for any scale: it uses ``|a_i·v|`` itself, not ``||v||``.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * scale
    y = (X @ rng.normal(size=d) / scale + rng.logistic(size=n) > 0).astype(int)
    m = LogisticRegression(lam=lam, removal_budget=np.inf, classes=[0, 1]).fit(X, y)
    gone = rng.choice(n, size=int(rng.integers(1, n // 4 + 1)), replace=False)
    if one_by_one:
        for i in gone:
            m.forget([int(i)])
    else:
        m.forget(gone)
    residual, bound = m.gradient_norms(), m._beta
    assert (residual <= bound * (1 + 1e-9) + 1e-9).all(), (residual, bound)


def test_close_to_refit_on_a_well_conditioned_problem():
    X, y = make_data(0, 2000, 5)
    m = LogisticRegression(lam=1e-3, removal_budget=np.inf).fit(X, y)
    gone = np.arange(0, 40)
    r = m.forget(gone)
    for i in range(40, 60):
        m.forget([i])
    keep = np.arange(60, 2000)
    ref = LogisticRegression(lam=1e-3).fit(X[keep], y[keep], row_ids=keep)
    dist = assert_within_bound(m, ref)
    assert dist < 1e-3 * np.linalg.norm(ref._theta)
    assert r.details["refit"] == 0.0 and r.paths == (Path.FAST,) * 40
    assert np.mean(m.predict(X) == ref.predict(X)) >= 0.995
    assert m.score(X, y) == pytest.approx(ref.score(X, y), abs=0.005)


def test_batch_and_one_by_one_agree_within_their_bounds():
    X, y = make_data(1, 500, 3)
    a = LogisticRegression(lam=1e-2, removal_budget=np.inf).fit(X, y)
    b = clone(a).fit(X, y)
    gone = np.arange(0, 50, 5)
    a.forget(gone)
    for i in gone:
        b.forget([int(i)])
    lam_n = a.lam * (500 - gone.size)
    assert np.linalg.norm(a._theta - b._theta) <= (a.bound_ + b.bound_) / lam_n


def test_budget_triggers_an_exact_refit():
    X, y = make_data(2, 300, 3)
    m = LogisticRegression(lam=1e-2, removal_budget=1e-6).fit(X, y)
    r = m.forget([0, 1, 2])
    assert r.details["refit"] == 1.0 and r.paths == (Path.SLOW,) * 3 and m.n_refits_ == 1
    ref = LogisticRegression(lam=1e-2).fit(X[3:], y[3:])
    assert r.bound == m.bound_ < 1e-6
    np.testing.assert_allclose(m._theta, ref._theta, atol=1e-9)


def test_matches_sklearn_without_intercept():
    X, y = make_data(3, 400, 4)
    m = LogisticRegression(lam=1e-2, fit_intercept=False).fit(X, y)
    ref = SkLogisticRegression(C=1 / (1e-2 * 400), fit_intercept=False, tol=1e-12, max_iter=1000)
    np.testing.assert_allclose(m.coef_, ref.fit(X, y).coef_, atol=1e-6)
    np.testing.assert_allclose(m.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_multiclass_one_vs_rest():
    X, y = make_data(4, 300, 3, k=3)
    labels = np.array(["a", "b", "c"])[y]
    m = LogisticRegression(lam=1e-2).fit(X, labels)
    assert m.coef_.shape == (3, 3) and m.intercept_.shape == (3,)
    proba = m.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(m.predict(X), m.classes_[proba.argmax(axis=1)])
    assert m.score(X, labels) > 0.5
    m.forget(np.arange(10))
    ref = LogisticRegression(lam=1e-2).fit(X[10:], labels[10:], row_ids=np.arange(10, 300))
    assert_within_bound(m, ref)


@pytest.mark.parametrize(
    ("request_ids", "error"),
    [
        ([999], UnknownRowIdsError),
        ([3, 3], DuplicateRowIdsError),
        ([1], UnknownRowIdsError),  # forgotten before: no longer held
        ([1, 2], UnknownRowIdsError),
        (np.delete(np.arange(30), 1), EmptyModelError),
    ],
)
def test_refused_requests_change_nothing(request_ids, error):
    X, y = make_data(5, 30, 2)
    m = LogisticRegression(lam=0.1).fit(X, y)
    m.forget([1])
    before, proba = m.to_bytes(), m.predict_proba(X)
    with pytest.raises(error):
        m.forget(request_ids)
    assert m.to_bytes() == before
    np.testing.assert_array_equal(m.predict_proba(X), proba)


def test_the_artifact_holds_the_remaining_rows_only():
    X, y = make_data(6, 30, 2)
    m = LogisticRegression(lam=0.1).fit(X, y, row_ids=np.arange(30) * 10)
    m.forget([50, 70])
    _, _, state, arrays = _persist.load(m.to_bytes())
    keep = np.delete(np.arange(30), [5, 7])
    np.testing.assert_array_equal(arrays["A"], np.column_stack([X[keep], np.ones(28)]))
    np.testing.assert_array_equal(arrays["yk"], y[keep])
    np.testing.assert_array_equal(arrays["ids"], keep * 10)
    assert sorted(arrays) == ["A", "beta", "classes", "ids", "theta", "yk"]
    assert state == {"n_features_in": 2}  # no count of forgets, refits or iterations
    with pytest.raises(UnknownRowIdsError, match="not held"):
        m.forget([50])


def test_a_class_whose_last_row_goes_leaves_unless_declared():
    X, y = make_data(8, 120, 2, k=3)
    y[y == 2] = 1
    y[[3, 4]] = 2  # class 2: two rows
    free = LogisticRegression(lam=0.1, removal_budget=np.inf).fit(X, y)
    fixed = LogisticRegression(lam=0.1, removal_budget=np.inf, classes=[0, 1, 2]).fit(X, y)
    ovr_b = free._theta[1].copy()
    r = free.forget([3, 4])
    assert (
        r.details["classes_dropped"] == 1 and fixed.forget([3, 4]).details["classes_dropped"] == 0
    )
    assert free.classes_.tolist() == [0, 1] and fixed.classes_.tolist() == [0, 1, 2]
    assert free.coef_.shape == (1, 2) and free.predict_proba(X).shape == (120, 2)
    # the binary problem (1 against 0) is one-vs-rest problem 1, stepped on the rows left
    keep = np.delete(np.arange(120), [3, 4])
    ref = LogisticRegression(lam=0.1).fit(X[keep], y[keep], row_ids=keep)
    assert ref.classes_.tolist() == [0, 1]
    assert_within_bound(free, ref)
    assert np.linalg.norm(free._theta[0] - ovr_b) > 0  # moved by the step, not refitted
    np.testing.assert_array_equal(free.row_ids_, ref.row_ids_)
    loaded = LogisticRegression.from_bytes(free.to_bytes())
    np.testing.assert_array_equal(loaded.predict_proba(X), free.predict_proba(X))


def test_one_vs_rest_problems_of_the_classes_left_stay_as_they_are():
    X, y = make_data(11, 160, 2, k=3)
    y[[0, 1]] = 3  # four classes; class 3 has two rows
    m = LogisticRegression(lam=0.1, removal_budget=np.inf).fit(X, y)
    before = m._theta[:3].copy()
    m.forget([0, 1])
    assert m.classes_.tolist() == [0, 1, 2] and m._theta.shape == (3, 3)
    assert np.linalg.norm(m._theta - before, axis=1).max() < 0.5  # one small step each
    keep = np.arange(2, 160)
    assert_within_bound(m, LogisticRegression(lam=0.1).fit(X[keep], y[keep], row_ids=keep))


def test_forgetting_down_to_one_undeclared_class_is_refused():
    X, y = make_data(9, 40, 2)
    y[:] = 0
    y[[5, 6]] = 1
    m = LogisticRegression(lam=0.1).fit(X, y)
    before = m.to_bytes()
    with pytest.raises(EmptyModelError, match="one class"):
        m.forget([5, 6])
    assert m.to_bytes() == before
    declared = LogisticRegression(lam=0.1, classes=[0, 1]).fit(X, y)
    declared.forget([5, 6])
    assert declared.classes_.tolist() == [0, 1] and (declared.predict(X) == 0).all()


def test_a_zero_budget_refits_on_every_deletion_exactly():
    X, y = make_data(10, 80, 3)
    m = LogisticRegression(lam=0.05, removal_budget=0.0).fit(X, y, row_ids=np.arange(80))
    r = m.forget([3, 9])
    assert r.paths == (Path.SLOW, Path.SLOW) and m.n_refits_ == 1
    keep = np.delete(np.arange(80), [3, 9])
    ref = LogisticRegression(lam=0.05, removal_budget=0.0).fit(X[keep], y[keep], row_ids=keep)
    np.testing.assert_array_equal(m._theta, ref._theta)
    assert m.to_bytes() == ref.to_bytes()  # nothing in it depends on the erased rows


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.array([[1.0, np.nan], [2.0, 1.0], [0.0, 1.0]]), np.array([0, 1, 0]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 1.0], [0.0, 1.0]]), np.array([0, 1, 0]), "infinity"),
        (np.ones((3, 2)), np.array([0.0, np.nan, 1.0]), "NaN"),
        (np.ones((3, 2)), np.array([0, 1, 0, 1]), "inconsistent numbers of samples"),
        (np.ones(3), np.array([0, 1, 0]), "Expected 2D array"),
        (np.ones((3, 2)), np.array([0.5, 1.7, 2.2]), "Unknown label type"),
        (np.ones((3, 2)), np.array([1, 1, 1]), "needs 2 classes"),
    ],
)
def test_fit_rejects_bad_input(X, y, message):
    with pytest.raises(ValueError, match=message):
        LogisticRegression().fit(X, y)


@pytest.mark.parametrize(
    "params",
    [{"lam": 0.0}, {"lam": -1.0}, {"tol": float("nan")}, {"removal_budget": -1.0}, {"max_iter": 0}],
)
def test_bad_hyperparameters(params):
    with pytest.raises(ValueError, match=next(iter(params))):
        LogisticRegression(**params).fit(np.eye(4), np.array([0, 1, 0, 1]))


def test_round_trip_and_forget_after_loading():
    X, y = make_data(7, 80, 3)
    m = LogisticRegression(lam=0.05, classes=[0, 1]).fit(X, y, row_ids=np.arange(80) + 9)
    m.forget([9, 10])
    loaded = LogisticRegression.from_bytes(m.to_bytes())
    assert loaded.get_params() == m.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))
    assert loaded.to_bytes() == m.to_bytes()
    with pytest.raises(UnknownRowIdsError):
        loaded.forget([9])
    ra, rb = loaded.forget([11, 40]), m.forget([11, 40])
    assert ra.bound == rb.bound
    np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))


def test_sklearn_protocol():
    m = LogisticRegression(lam=0.5, removal_budget=2.0)
    params = clone(m).get_params()
    assert params["lam"] == 0.5 and params["removal_budget"] == 2.0 and params["classes"] is None
    assert not hasattr(clone(m), "coef_")
