"""Naive Bayes: forget(S) after fit(D) equals fit(D \\ S), same classes; refusals change nothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import naive_bayes as sk
from sklearn.base import clone

from forget import _persist
from forget.base import Guarantee, Path
from forget.errors import (
    DuplicateRowIdsError,
    EmptyModelError,
    UnknownRowIdsError,
)
from forget.naive_bayes import GaussianNB, MultinomialNB

MODELS = [GaussianNB, MultinomialNB]


def make_data(kind, seed, n, d, k, offset=0.0, scale=1.0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    if kind is MultinomialNB:
        rates = rng.uniform(0.2, 5.0, size=(k, d))
        X = rng.poisson(rates[y]).astype(float)
        return (X * scale if not ties else X), y
    X = (rng.normal(size=(n, d)) + rng.normal(size=(k, d))[y] * 2.0) * scale + offset
    return (np.round(X, 1) if ties else X), y


def assert_same_model(a, b, X):
    np.testing.assert_array_equal(a.classes_, b.classes_)
    np.testing.assert_array_equal(a.class_count_, b.class_count_)
    if isinstance(a, GaussianNB):
        scale = 1.0 + np.abs(b.theta_).max()
        np.testing.assert_allclose(a.theta_, b.theta_, rtol=1e-9, atol=1e-12 * scale)
        np.testing.assert_allclose(a.var_, b.var_, rtol=1e-9)
        np.testing.assert_allclose(a.epsilon_, b.epsilon_, rtol=1e-9)
    else:
        np.testing.assert_allclose(a.feature_count_, b.feature_count_, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a.feature_log_prob_, b.feature_log_prob_, rtol=1e-9)
        np.testing.assert_array_equal(a.class_log_prior_, b.class_log_prior_)
    proba = b.predict_proba(X)
    np.testing.assert_allclose(a.predict_proba(X), proba, rtol=0, atol=1e-9)
    top2 = np.sort(np.column_stack([np.zeros(len(X)), proba]), axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-6  # argmax of a near tie may flip with rounding
    np.testing.assert_array_equal(a.predict(X)[clear], b.predict(X)[clear])


@st.composite
def problems(draw):
    n = draw(st.integers(4, 80))
    return {
        "kind": draw(st.sampled_from(MODELS)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "n": n,
        "d": draw(st.integers(1, 6)),
        "k": draw(st.integers(2, 4)),
        "offset": draw(st.sampled_from([0.0, 1e3])),
        "scale": draw(st.sampled_from([1e-2, 1.0, 1e2])),
        "ties": draw(st.booleans()),
        "n_del": draw(st.integers(1, n - 1)),
        "drop_class": draw(st.booleans()),
        "declare": draw(st.booleans()),
        "one_by_one": draw(st.booleans()),
    }


@settings(max_examples=25, deadline=None)
@given(problems())
def test_forget_equals_refit_on_remaining_rows(p):
    kind = p["kind"]
    X, y = make_data(kind, p["seed"], p["n"], p["d"], p["k"], p["offset"], p["scale"], p["ties"])
    ids = np.arange(p["n"]) * 3 + 11
    rng = np.random.default_rng(p["seed"] + 1)
    gone = rng.choice(ids, size=p["n_del"], replace=False)
    if p["drop_class"] and (y != 0).any():  # empty class 0 entirely
        gone = np.union1d(gone, ids[y == 0])
        if gone.size == ids.size:
            gone = gone[ids[y != 0][0] != gone]
    classes = np.arange(p["k"]) if p["declare"] else None
    m = kind(classes=classes).fit(X, y, row_ids=ids)
    if p["one_by_one"]:
        for i in rng.permutation(gone).tolist():
            m.forget([i])
    else:
        m.forget(gone)
    keep = ~np.isin(ids, gone)
    ref = kind(classes=classes).fit(X[keep], y[keep], row_ids=ids[keep])
    assert_same_model(m, ref, X)
    assert m.to_bytes() == ref.to_bytes()  # exact sums: the very same numbers
    np.testing.assert_array_equal(np.sort(m.row_ids_), ids[keep])
    if classes is None:  # a class no remaining row holds has left, as in the refit
        np.testing.assert_array_equal(m.classes_, np.unique(y[keep]))


@pytest.mark.parametrize("kind", MODELS)
def test_batch_equals_one_by_one_and_matches_sklearn(kind):
    X, y = make_data(kind, 0, 400, 5, 3, offset=20.0)
    a = kind().fit(X, y)
    ref = (sk.GaussianNB() if kind is GaussianNB else sk.MultinomialNB()).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), ref.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(a.predict(X), ref.predict(X))
    b = clone(a).fit(X, y)
    gone = np.arange(0, 300, 2)
    a.forget(gone)
    for i in gone:
        b.forget([int(i)])
    assert_same_model(a, b, X)


def test_a_class_shrinking_to_one_row_matches_a_refit_exactly():
    """Subtracting exact sums loses nothing however far a class's spread shrinks (the old
    shifted sums had to be recomputed from the rows on a slow path)."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 50)
    X = rng.normal(size=(100, 3)) * 10.0 ** rng.integers(-3, 4, size=(100, 1)) + 1e4 * y[:, None]
    m = GaussianNB().fit(X, y)
    results = [m.forget([i]) for i in range(49)]  # class 0 down to one row
    assert all(r.paths == (Path.FAST,) and r.guarantee is Guarantee.EXACT for r in results)
    ref = GaussianNB().fit(X[49:], y[49:], row_ids=np.arange(49, 100))
    assert_same_model(m, ref, X)
    assert m.to_bytes() == ref.to_bytes()
    assert (m.var_[0] == m.epsilon_).all()  # a single row has variance exactly 0
    np.testing.assert_array_equal(m.theta_[0], X[49])


def test_variances_are_exact_where_shifted_sums_lose_digits():
    """A large mean and a small spread: (Σx² - (Σx)²/n)/n from exact sums in double-double is
    as accurate as a two-pass variance."""
    rng = np.random.default_rng(2)
    X = 1e6 + rng.normal(size=(200, 2)) * np.array([1e-3, 1.0])
    y = np.repeat([0, 1], 100)
    m = GaussianNB(var_smoothing=0.0).fit(X, y)
    two_pass = np.array([X[y == k].var(axis=0) for k in (0, 1)])
    np.testing.assert_allclose(m.var_ - m.epsilon_, two_pass, rtol=1e-12)


@pytest.mark.parametrize("kind", MODELS)
def test_forgetting_a_whole_class_drops_it_unless_declared(kind):
    X, y = make_data(kind, 2, 60, 3, 3)
    keep = y != 2
    ids = np.arange(60)
    m = kind().fit(X, y)
    m.forget(np.flatnonzero(~keep))
    assert m.classes_.tolist() == [0, 1] and m.predict_proba(X).shape == (60, 2)
    assert m.to_bytes() == kind().fit(X[keep], y[keep], row_ids=ids[keep]).to_bytes()
    m = kind(classes=[0, 1, 2]).fit(X, y)  # declared: the class stays, with probability 0
    m.forget(np.flatnonzero(~keep))
    proba = m.predict_proba(X)
    assert (proba[:, 2] == 0).all() and not (m.predict(X) == 2).any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    ref = kind(classes=[0, 1, 2]).fit(X[keep], y[keep], row_ids=ids[keep])
    assert_same_model(m, ref, X)
    assert m.to_bytes() == ref.to_bytes()


def test_dropping_a_class_renumbers_the_rows_after_it():
    X, y = make_data(GaussianNB, 3, 40, 2, 3)
    labels = np.array(["a", "b", "c"])[y]
    m = GaussianNB().fit(X, labels)
    m.forget(np.flatnonzero(y == 0))  # "a" leaves: "b", "c" become classes 0, 1
    m.forget([int(np.flatnonzero(y == 2)[0])])
    keep = (y != 0) & (np.arange(40) != np.flatnonzero(y == 2)[0])
    ref = GaussianNB().fit(X[keep], labels[keep], row_ids=np.flatnonzero(keep))
    assert m.classes_.tolist() == ["b", "c"] and m.to_bytes() == ref.to_bytes()
    np.testing.assert_array_equal(m.predict(X), ref.predict(X))


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize(
    ("request_ids", "error"),
    [
        ([999], UnknownRowIdsError),
        ([3, 3], DuplicateRowIdsError),
        ([1], UnknownRowIdsError),  # forgotten: no longer known
        ([1, 2], UnknownRowIdsError),
        (np.delete(np.arange(20), 1), EmptyModelError),
    ],
)
def test_refused_requests_change_nothing(kind, request_ids, error):
    X, y = make_data(kind, 3, 20, 2, 2)
    m = kind().fit(X, y)
    m.forget([1])
    before, proba = m.to_bytes(), m.predict_proba(X)
    with pytest.raises(error):
        m.forget(request_ids)
    assert m.to_bytes() == before
    np.testing.assert_array_equal(m.predict_proba(X), proba)


@pytest.mark.parametrize("kind", MODELS)
def test_forget_result_and_forgotten_rows_are_not_kept(kind):
    X, y = make_data(kind, 4, 30, 3, 2, ties=True)
    m = kind().fit(X, y, row_ids=np.arange(30) * 10)
    r = m.forget([50, 70])
    assert r.row_ids == (50, 70) and r.paths == (Path.FAST, Path.FAST)
    assert r.guarantee is Guarantee.EXACT and r.bound is None and not r.needs_retrain
    assert not m._X[[5, 7]].any()  # in memory: zeroed
    _, _, state, arrays = _persist.load(m.to_bytes())  # the artifact: only the rows held
    keep = np.delete(np.arange(30), [5, 7])
    np.testing.assert_array_equal(arrays["X"], X[keep])
    np.testing.assert_array_equal(arrays["ids"], keep * 10)
    np.testing.assert_array_equal(m.classes_[arrays["yk"]], y[keep])
    assert "alive" not in arrays and state["n"] == 28
    assert m.to_bytes() == kind().fit(X[keep], y[keep], row_ids=keep * 10).to_bytes()


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.array([[1.0, np.nan], [2.0, 1.0], [0.0, 1.0]]), np.array([0, 1, 0]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 1.0], [0.0, 1.0]]), np.array([0, 1, 0]), "infinity"),
        (np.ones((3, 2)), np.array([0.0, np.nan, 1.0]), "NaN"),
        (np.ones((3, 2)), np.array([0, 1, 0, 1]), "inconsistent numbers of samples"),
        (np.ones(3), np.array([0, 1, 0]), "Expected 2D array"),
        (np.ones((3, 2)), np.array([0.5, 1.7, 2.2]), "Unknown label type"),
        (np.ones((3, 2)), np.array([0, 7, 1]), "not in classes"),
    ],
)
def test_fit_rejects_bad_input(kind, X, y, message):
    with pytest.raises(ValueError, match=message):
        kind(classes=[0, 1]).fit(X, y)


def test_bad_hyperparameters_and_inputs():
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="var_smoothing"):
        GaussianNB(var_smoothing=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        MultinomialNB(alpha=0.0).fit(X, y)
    with pytest.raises(ValueError, match="Negative values"):
        MultinomialNB().fit(-X, y)
    m = MultinomialNB().fit(X, y)
    with pytest.raises(ValueError, match="Negative values"):
        m.predict(-X)
    with pytest.raises(ValueError, match="features"):
        m.predict(np.ones((2, 3)))
    with pytest.raises(DuplicateRowIdsError):
        GaussianNB().fit(X, y, row_ids=[1, 1, 2, 3])


@pytest.mark.parametrize("kind", MODELS)
def test_round_trip_and_forget_after_loading(kind):
    X, y = make_data(kind, 5, 50, 4, 3)
    labels = np.array(["cat", "dog", "eel"])[y]
    m = kind(classes=["cat", "dog", "eel"]).fit(X, labels, row_ids=np.arange(50) + 100)
    m.forget([100, 101])
    loaded = kind.from_bytes(m.to_bytes())
    assert loaded.get_params() == m.get_params()
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))
    assert loaded.to_bytes() == m.to_bytes()
    with pytest.raises(UnknownRowIdsError):
        loaded.forget([100])
    loaded.forget([102, 130])
    m.forget([102, 130])
    np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))


def test_sklearn_protocol():
    m = MultinomialNB(alpha=0.5, fit_prior=False)
    assert m.get_params() == {"alpha": 0.5, "fit_prior": False, "classes": None}
    assert clone(GaussianNB(var_smoothing=1e-6)).get_params()["var_smoothing"] == 1e-6
    X, y = make_data(MultinomialNB, 6, 60, 3, 2)
    assert 0.0 <= m.fit(X, y).score(X, y) <= 1.0
    np.testing.assert_allclose(m.class_log_prior_, np.log(0.5))
