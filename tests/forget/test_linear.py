"""LinearRegression: forget(S) after fit(D) equals fit(D \\ S); refused requests change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.linear_model import Ridge

from forget import _persist
from forget.base import Guarantee, Path
from forget.errors import (
    ArtifactError,
    DuplicateRowIdsError,
    EmptyModelError,
    UnknownRowIdsError,
)
from forget.linear import LinearRegression


def make_data(seed: int, n: int, d: int, offset: float = 0.0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * scale * rng.uniform(0.5, 2.0, size=d) + offset
    y = X @ rng.normal(size=d) + rng.normal(size=n) + 3.0
    return X, y


def condition(X: np.ndarray, alpha: float, fit_intercept: bool) -> float:
    """Condition number of the (centred, ridged, unit-scaled) normal equations of ``X``."""
    Z = X - X.mean(axis=0) if fit_intercept else X
    A = Z.T @ Z + alpha * np.eye(X.shape[1])
    s = 1.0 / np.sqrt(np.maximum(A.diagonal(), 1e-300))
    return float(np.linalg.cond(A * np.outer(s, s)))


def assert_same_model(
    a: LinearRegression, b: LinearRegression, X: np.ndarray, rtol: float = 1e-8
) -> None:
    scale = 1.0 + np.abs(b.coef_).max() + abs(b.intercept_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=rtol, atol=rtol * scale)
    pred = b.predict(X)
    np.testing.assert_allclose(a.predict(X), pred, rtol=rtol, atol=rtol * (1 + np.abs(pred).max()))


@st.composite
def problems(draw):
    d = draw(st.integers(1, 6))
    n = draw(st.integers(2 * d + 6, 80))
    n_del = draw(st.integers(1, n - 2 * d - 4))
    return {
        "seed": draw(st.integers(0, 2**32 - 1)),
        "n": n,
        "d": d,
        "alpha": draw(st.sampled_from([0.0, 1e-3, 1.0, 30.0])),
        "fit_intercept": draw(st.booleans()),
        "offset": draw(st.sampled_from([0.0, 5.0, -1e3])),
        "scale": draw(st.sampled_from([1e-3, 1.0, 1e3])),
        "n_del": n_del,
        "one_by_one": draw(st.booleans()),
    }


@settings(max_examples=25, deadline=None)
@given(problems())
def test_forget_equals_refit_on_remaining_rows(p):
    X, y = make_data(p["seed"], p["n"], p["d"], p["offset"], p["scale"])
    ids = np.arange(1000, 1000 + p["n"])
    gone = np.random.default_rng(p["seed"] + 1).choice(ids, size=p["n_del"], replace=False)
    params = {"alpha": p["alpha"], "fit_intercept": p["fit_intercept"]}
    m = LinearRegression(**params).fit(X, y, row_ids=ids)
    if p["one_by_one"]:
        for i in gone:
            m.forget([i])
    else:
        m.forget(gone)
    keep = ~np.isin(ids, gone)
    ref = LinearRegression(**params).fit(X[keep], y[keep], row_ids=ids[keep])
    # 1e-8 on well-conditioned data; any method built on XᵀX (including a refit) is only
    # determined to ~cond·eps, so nearly collinear draws get that much slack.
    cond = condition(X[keep], p["alpha"], p["fit_intercept"])
    assert_same_model(m, ref, X, rtol=max(1e-8, 10 * cond * np.finfo(float).eps))
    # the exact sums make it more than close: the very same numbers, whatever the conditioning
    np.testing.assert_array_equal(m.coef_, ref.coef_)
    assert m.to_bytes() == ref.to_bytes()
    assert m.n_rows_ == keep.sum()
    np.testing.assert_array_equal(np.sort(m.row_ids_), ids[keep])


def test_batch_equals_one_by_one():
    X, y = make_data(0, 200, 5, offset=10.0)
    a = LinearRegression(alpha=0.5).fit(X, y)
    b = clone(a).fit(X, y)
    gone = np.arange(0, 150, 3)
    a.forget(gone)
    for i in gone:
        b.forget(i)
    assert_same_model(a, b, X)


def test_matches_sklearn_ridge():
    X, y = make_data(1, 300, 6, offset=50.0, scale=10.0)
    for alpha in (1e-2, 10.0):
        m = LinearRegression(alpha=alpha).fit(X, y)
        ref = Ridge(alpha=alpha).fit(X, y)
        np.testing.assert_allclose(m.coef_, ref.coef_, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(m.intercept_, ref.intercept_, rtol=1e-9)


def test_forget_result_and_many_deletions():
    X, y = make_data(2, 2000, 14, offset=3.0)
    m = LinearRegression(alpha=1.0).fit(X, y)
    r = m.forget([5])
    assert r.row_ids == (5,) and r.paths == (Path.FAST,) and r.guarantee is Guarantee.EXACT
    assert r.bound is None and not r.needs_retrain and r.seconds >= 0
    gone = np.r_[5, np.arange(100, 1900)]
    for i in np.arange(100, 1900):
        m.forget([i])
    keep = np.setdiff1d(np.arange(2000), gone)
    assert_same_model(m, LinearRegression(alpha=1.0).fit(X[keep], y[keep]), X)


def test_constant_and_collinear_features_match_refit():
    X, y = make_data(3, 60, 3)
    X = np.column_stack([X, np.full(60, 7.0), 2.0 * X[:, 0]])  # constant, duplicated
    m = LinearRegression().fit(X, y)
    m.forget(np.arange(20))
    ref = LinearRegression().fit(X[20:], y[20:], row_ids=np.arange(20, 60))
    assert m.coef_[3] == 0.0
    assert_same_model(m, ref, X)


def test_forgotten_rows_are_not_kept():
    X, y = make_data(4, 30, 3)
    m = LinearRegression().fit(X, y, row_ids=np.arange(30) * 10)
    m.forget([50, 70])
    assert not m._X[[5, 7]].any() and not m._y[[5, 7]].any()  # in memory: zeroed
    _, _, state, arrays = _persist.load(m.to_bytes())  # the artifact: only the rows held
    keep = np.delete(np.arange(30), [5, 7])
    np.testing.assert_array_equal(arrays["X"], X[keep])
    np.testing.assert_array_equal(arrays["y"], y[keep])
    np.testing.assert_array_equal(arrays["ids"], keep * 10)
    assert "alive" not in arrays and state["n"] == 28
    assert m.to_bytes() == LinearRegression().fit(X[keep], y[keep], row_ids=keep * 10).to_bytes()


def test_values_beyond_the_exact_sums_range_are_refused():
    X, y = make_data(4, 10, 2)
    X[3, 1] = 1e150
    with pytest.raises(ValueError, match="X must be below 2\\*\\*480"):
        LinearRegression().fit(X, y)
    with pytest.raises(ValueError, match="y must be below"):
        LinearRegression().fit(X[:, :1], np.full(10, -1e145))
    m = LinearRegression().fit(X[:, :1] * 1e-300, y * 1e140)  # tiny and huge, in range
    assert np.isfinite(m.coef_).all()


@pytest.mark.parametrize(
    ("request_ids", "error"),
    [
        ([999], UnknownRowIdsError),
        ([3, 3], DuplicateRowIdsError),
        ([1], UnknownRowIdsError),  # forgotten: no longer known
        ([2, 999], UnknownRowIdsError),
        (np.delete(np.arange(20), 1), EmptyModelError),
    ],
)
def test_refused_requests_change_nothing(request_ids, error):
    X, y = make_data(5, 20, 2)
    m = LinearRegression(alpha=0.1).fit(X, y)
    m.forget([1])
    before, pred = m.to_bytes(), m.predict(X)
    with pytest.raises(error):
        m.forget(request_ids)
    assert m.to_bytes() == before
    np.testing.assert_array_equal(m.predict(X), pred)


def test_empty_request_is_a_no_op():
    X, y = make_data(6, 20, 2)
    m = LinearRegression().fit(X, y)
    before = m.to_bytes()
    assert m.forget([]).n_forgotten == 0
    assert m.to_bytes() == before


@pytest.mark.parametrize(
    ("X", "y", "row_ids", "message"),
    [
        (np.array([[1.0, np.nan], [2.0, 1.0], [0.0, 1.0]]), np.ones(3), None, "NaN"),
        (np.array([[1.0, np.inf], [2.0, 1.0], [0.0, 1.0]]), np.ones(3), None, "infinity"),
        (np.ones((3, 2)), np.array([1.0, np.nan, 2.0]), None, "NaN"),
        (np.ones((3, 2)), np.ones(4), None, "inconsistent numbers of samples"),
        (np.ones(3), np.ones(3), None, "Expected 2D array"),
        (np.ones((3, 2)), np.ones((3, 2)), None, "y"),
        (np.ones((3, 2)), np.ones(3), [1, 2], "row_ids"),
        (np.ones((3, 2)), np.ones(3), [1, 1, 2], "more than once"),
    ],
)
def test_fit_rejects_bad_input(X, y, row_ids, message):
    with pytest.raises(ValueError, match=message):
        LinearRegression().fit(X, y, row_ids=row_ids)


def test_bad_hyperparameters_and_predict_shape():
    with pytest.raises(ValueError, match="alpha"):
        LinearRegression(alpha=-1.0).fit(np.ones((3, 1)), np.ones(3))
    m = LinearRegression().fit(*make_data(7, 10, 2))
    with pytest.raises(ValueError, match="features"):
        m.predict(np.ones((2, 3)))


def test_round_trip_and_forget_after_loading():
    X, y = make_data(8, 50, 4, offset=2.0)
    m = LinearRegression(alpha=0.3, fit_intercept=False).fit(X, y, row_ids=np.arange(50) + 7)
    m.forget([7, 8])
    loaded = LinearRegression.from_bytes(m.to_bytes())
    assert loaded.get_params() == m.get_params()
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
    assert loaded.to_bytes() == m.to_bytes()
    with pytest.raises(UnknownRowIdsError):
        loaded.forget([7])
    loaded.forget([9, 30])
    m.forget([9, 30])
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))


def test_artifacts_are_checked():
    with pytest.raises(ArtifactError):
        LinearRegression.from_bytes(b"not an artifact")
    other = _persist.dump("GaussianNB", {}, {}, {"x": np.zeros(1)})
    with pytest.raises(ArtifactError, match="GaussianNB"):
        LinearRegression.from_bytes(other)


def test_sklearn_protocol():
    m = LinearRegression(alpha=2.0, fit_intercept=False)
    assert m.get_params() == {"alpha": 2.0, "fit_intercept": False}
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "coef_")
    X, y = make_data(9, 40, 3)
    assert 0.0 < m.fit(X, y).score(X, y) <= 1.0


# ---------------------------------------------------------------- exactness (issue 13, item 3)
def constant_after_forget_case(seed: int, n: int, d: int, n_del: int):
    """Data whose feature ``j`` is constant on the rows kept and varies on the rows forgotten."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 10.0 ** rng.integers(-2, 3, size=d) + rng.normal(size=d) * 10
    j = int(rng.integers(d))
    gone = rng.choice(n, size=n_del, replace=False)
    c = float(rng.choice([0.0, 1.0, 0.1, -3.7, 1e3 + 0.1, 2.5e5]) * rng.uniform(0.5, 2.0))
    X[:, j] = c
    X[gone, j] = c + rng.normal(size=n_del) * 10.0 ** rng.integers(-1, 4)
    y = X @ rng.normal(size=d) + rng.normal(size=n)
    return X, y, gone, j


def outlier_case(seed: int, n: int, d: int, magnitude: float, in_y: bool):
    """Well-conditioned data plus one outlier row (features or target of ``magnitude``)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.normal(size=d)
    y = X @ rng.normal(size=d) + rng.normal(size=n) + 3.0
    victim = int(rng.integers(n))
    sign = rng.choice([-1.0, 1.0], size=d)
    X[victim] = sign * magnitude * rng.uniform(0.5, 1.0, size=d)
    if in_y:
        y[victim] = -magnitude
    return X, y, victim


def forget_vs_refit_gap(X, y, gone, **params) -> tuple[float, LinearRegression]:
    """Largest gap (relative to the refit's scale) between forget(gone) and a refit."""
    ids = np.arange(X.shape[0])
    m = LinearRegression(**params).fit(X, y, row_ids=ids)
    m.forget(np.asarray(gone))
    keep = ~np.isin(ids, gone)
    ref = LinearRegression(**params).fit(X[keep], y[keep], row_ids=ids[keep])
    scale = 1.0 + np.abs(ref.coef_).max() + abs(ref.intercept_)
    gap = max(np.abs(m.coef_ - ref.coef_).max(), abs(m.intercept_ - ref.intercept_)) / scale
    return float(gap), ref


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(12, 60),
    st.integers(1, 5),
    st.integers(1, 4),
)
def test_a_feature_made_constant_by_forgetting_gets_the_refits_zero(seed, n, d, n_del):
    X, y, gone, j = constant_after_forget_case(seed, n, d, n_del)
    gap, ref = forget_vs_refit_gap(X, y, gone, alpha=0.0)
    assert ref.coef_[j] == 0.0
    assert gap <= 1e-9, f"forget differs from a refit by {gap:.3g} (relative)"


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(12, 60),
    st.integers(1, 4),
    st.sampled_from([1e6, 1e7, 1e8, 1e9]),
    st.booleans(),
    st.sampled_from([0.0, 1e-3, 1.0]),
    st.booleans(),
)
def test_forgetting_an_outlier_matches_a_refit(seed, n, d, magnitude, in_y, alpha, intercept):
    X, y, victim = outlier_case(seed, n, d, magnitude, in_y)
    gap, _ = forget_vs_refit_gap(X, y, [victim], alpha=alpha, fit_intercept=intercept)
    assert gap <= 1e-9, f"forget differs from a refit by {gap:.3g} (relative)"
