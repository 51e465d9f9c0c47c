"""``learn(X, y, row_ids)``: the incremental models add rows exactly.

The property: ``fit(A)``, then ``forget(F)`` (some of A), then ``learn(B)`` keeps what
``fit((A \\ F) ++ B)`` keeps, byte for byte (the artifact is the model's whole state), and
predicts the same. This is what lifting a restriction (Art. 18) relies on in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forget.errors import DuplicateRowIdsError, HeldRowIdsError
from forget.knn import KNNClassifier, KNNRegressor
from forget.linear import LinearRegression
from forget.naive_bayes import GaussianNB, MultinomialNB

# name -> (factory, task, feature kind)
MODELS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "LinearRegression": (lambda: LinearRegression(alpha=0.1), "regress", "real"),
    "LinearRegression-ols": (lambda: LinearRegression(), "regress", "real"),
    "GaussianNB": (lambda: GaussianNB(), "classify", "real"),
    "GaussianNB-declared": (lambda: GaussianNB(classes=[0, 1, 2]), "classify", "real"),
    "MultinomialNB": (lambda: MultinomialNB(), "classify", "counts"),
    "KNNClassifier": (lambda: KNNClassifier(n_neighbors=3), "classify", "real"),
    "KNNRegressor": (lambda: KNNRegressor(n_neighbors=3, weights="distance"), "regress", "real"),
}


def _data(seed: int, n: int, d: int, task: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.poisson(2.0, size=(n, d)).astype(float) if kind == "counts" else rng.normal(size=(n, d))
    if task == "classify":
        y = rng.integers(0, 3, size=n)
    else:
        y = X @ rng.normal(size=d) + rng.normal(scale=0.1, size=n)
    return X, y


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(12, 40),
    d=st.integers(1, 4),
    cut=st.floats(0.3, 0.8),
    n_forget=st.integers(0, 4),
)
def test_learn_equals_fit_on_the_union(
    name: str, seed: int, n: int, d: int, cut: float, n_forget: int
) -> None:
    make, task, kind = MODELS[name]
    X, y = _data(seed, n, d, task, kind)
    ids = np.random.default_rng(seed + 1).permutation(10 * n)[:n].astype(np.int64) + 100
    a = int(n * cut)
    model = make().fit(X[:a], y[:a], row_ids=ids[:a])
    gone = ids[: max(0, min(n_forget, a - 4))]  # kNN keeps at least n_neighbors rows
    if gone.size:
        model.forget(gone.tolist())
    model.learn(X[a:], y[a:], row_ids=ids[a:])
    keep = ~np.isin(ids, gone)
    ref = make().fit(X[keep], y[keep], row_ids=ids[keep])
    assert model.to_bytes() == ref.to_bytes()
    probe = np.random.default_rng(seed + 2).normal(size=(7, d))
    if kind == "counts":
        probe = np.abs(probe)
    np.testing.assert_array_equal(model.predict(probe), ref.predict(probe))
    # and it keeps forgetting exactly: a learnt row goes as a fitted one does
    model.forget([int(ids[-1])])
    keep[-1] = False
    ref = make().fit(X[keep], y[keep], row_ids=ids[keep])
    assert model.to_bytes() == ref.to_bytes()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_learn_refuses_bad_rows_and_changes_nothing(name: str) -> None:
    make, task, kind = MODELS[name]
    X, y = _data(3, 20, 2, task, kind)
    model = make().fit(X[:15], y[:15], row_ids=np.arange(15))
    before = model.to_bytes()
    with pytest.raises(HeldRowIdsError, match=r"already held .*\[3\]"):
        model.learn(X[15:17], y[15:17], row_ids=[3, 99])
    with pytest.raises(DuplicateRowIdsError):
        model.learn(X[15:17], y[15:17], row_ids=[99, 99])
    with pytest.raises(ValueError, match="features"):
        model.learn(X[15:17, :1], y[15:17], row_ids=[98, 99])
    with pytest.raises(ValueError):
        model.learn(X[15:17], y[15:16], row_ids=[98, 99])
    with pytest.raises(ValueError, match="row_ids"):
        model.learn(X[15:17], y[15:17], row_ids=None)
    assert model.to_bytes() == before


def test_learn_brings_back_a_class_the_model_had_dropped() -> None:
    X = np.array([[0.0], [0.2], [1.0], [1.2], [5.0]])
    y = np.array([0, 0, 1, 1, 2])
    m = GaussianNB().fit(X, y, row_ids=[1, 2, 3, 4, 5])
    m.forget([5])
    assert m.classes_.tolist() == [0, 1]
    m.learn(X[4:], y[4:], row_ids=[5])
    assert m.classes_.tolist() == [0, 1, 2]
    assert m.to_bytes() == GaussianNB().fit(X, y, row_ids=[1, 2, 3, 4, 5]).to_bytes()


def test_declared_classes_refuse_an_undeclared_label() -> None:
    X = np.array([[0.0], [0.2], [1.0], [1.2]])
    m = GaussianNB(classes=[0, 1]).fit(X, np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="not in classes"):
        m.learn([[3.0]], [7], row_ids=[10])
