"""Every unlearnable model through the one conformance suite (forget/checks.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forget import ForgetResult, Path, _persist, checks
from forget.hedgecut import HedgeCutClassifier
from forget.linear import LinearRegression
from forget.logistic import LogisticRegression
from forget.naive_bayes import GaussianNB, MultinomialNB

# name -> (factory, task, feature kind)
MODELS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "HedgeCutClassifier": (
        lambda: HedgeCutClassifier(n_estimators=5, max_samples=0.6, random_state=0),
        "classify",
        "real",
    ),
    "HedgeCutClassifier-hedged": (
        lambda: HedgeCutClassifier(
            n_estimators=3,
            max_samples=1.0,
            deletion_budget=0.2,
            hedge_min_samples=4,
            max_variants=2,
            random_state=1,
        ),  # fmt: skip
        "classify",
        "real",
    ),
    "LinearRegression": (lambda: LinearRegression(alpha=0.1), "regress", "real"),
    "GaussianNB": (lambda: GaussianNB(), "classify", "real"),
    "MultinomialNB": (lambda: MultinomialNB(), "classify", "counts"),
    "LogisticRegression": (lambda: LogisticRegression(lam=1e-2), "classify", "real"),
}
try:
    from forget.knn import KNNClassifier, KNNRegressor

    MODELS["KNNClassifier"] = (lambda: KNNClassifier(n_neighbors=3), "classify", "real")
    MODELS["KNNRegressor"] = (
        lambda: KNNRegressor(n_neighbors=3, weights="distance"),
        "regress",
        "real",
    )
except ImportError:  # pragma: no cover
    pass


def make_data(seed: int, n: int, d: int, task: str, kind: str, n_classes: int = 2):
    rng = np.random.default_rng(seed)
    counts = kind == "counts"
    X = rng.poisson(2.0, size=(n, d)).astype(float) if counts else rng.normal(size=(n, d))
    # row 0 carries distinctive values: the forgotten-values check looks for them
    X[0] = 1000.0 + np.arange(d) + (0.123 if kind == "real" else 0.0)
    w = rng.normal(size=d)
    score = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9) @ w + rng.normal(scale=0.5, size=n)
    if task == "classify":
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    else:
        y = score
    ids = rng.permutation(5 * n)[:n] + 7
    return X, y, ids


@st.composite
def problems(draw, task: str, kind: str):
    n = draw(st.integers(24, 60))
    d = draw(st.integers(2, 4))
    n_classes = draw(st.integers(2, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    X, y, ids = make_data(seed, n, d, task, kind, n_classes)
    order = np.random.default_rng(seed + 1).permutation(n)
    n_del = draw(st.integers(1, n // 3))
    cut = draw(st.integers(0, n_del))
    batches = [b for b in (order[:cut], order[cut:n_del]) if len(b)]
    return X, y, ids, [ids[b].tolist() for b in batches]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forget_equals_refit(name):
    make, task, kind = MODELS[name]

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(problems(task, kind))
    def run(problem):
        X, y, ids, batches = problem
        checks.check_forget_equals_refit(make, X, y, ids, batches)
        checks.check_state_equals_refit(make, X, y, ids, batches)
        checks.check_batch_equals_one_by_one(make, X, y, ids, [i for b in batches for i in b])

    run()


@pytest.mark.parametrize("check", sorted(checks.CHECKS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_check(name, check):
    make, task, kind = MODELS[name]
    X, y, ids = make_data(5, 48, 3, task, kind)
    checks.CHECKS[check](make, X, y, ids)


def test_a_model_that_keeps_a_trace_fails_the_suite():
    """The state checks can fail: a model that predicts like a refit but keeps the forgotten
    row's statistics (its sums before the deletion, beside the remaining rows) is caught."""

    class Hoarder(LinearRegression):
        def forget(self, row_ids):
            self._hoard = self.coef_.copy(), int(row_ids[0])  # what an old artifact kept
            return super().forget(row_ids)

    X, y, ids = make_data(1, 40, 3, "regress", "real")
    with pytest.raises(AssertionError, match="forgotten row's id is in the model's memory"):
        checks.check_no_trace_in_memory(Hoarder, X, y, ids)

    class Stale(GaussianNB):
        def fit(self, X, y, row_ids=None):
            self._n_fit = len(X)
            return super().fit(X, y, row_ids=row_ids)

        def to_bytes(self):  # also writes how many rows it was ever trained on
            kind, params, state, arrays = _persist.load(super().to_bytes())
            return _persist.dump(kind, params, state, {**arrays, "n": np.array([self._n_fit])})

    X, y, ids = make_data(1, 40, 3, "classify", "real")
    with pytest.raises(AssertionError, match="'n': differs from a refit's"):
        checks.check_state_equals_refit(Stale, X, y, ids, [[int(ids[0])]])


def test_a_broken_model_fails_the_suite():
    """The suite can fail: a model that ignores forget() is caught."""

    class Stubborn(GaussianNB):
        def forget(self, row_ids):  # claims success, keeps the rows
            ids = tuple(int(i) for i in row_ids)
            return ForgetResult(ids, self.guarantee, (Path.FAST,) * len(ids), 0.0)

    X, y, ids = make_data(1, 40, 3, "classify", "real")
    with pytest.raises(AssertionError, match="differs from a refit"):
        checks.check_forget_equals_refit(Stubborn, X, y, ids, [ids[:5].tolist()])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_artifacts_hold_np_saves_bytes_deflated_as_writestr_does(name, monkeypatch):
    """The artifact is streamed from the arrays' memory (the compressor releases the GIL),
    and is the very archive that writing each entry's ``np.save`` bytes whole gave: hashes
    of artifacts stay what they were, and ``np.load`` reads them."""
    import io
    import zipfile

    factory, task, kind = MODELS[name]
    X, y, ids = make_data(0, 120, 3, task, kind)
    model = factory().fit(X, y, row_ids=ids)
    model.forget(ids[:5].tolist())
    monkeypatch.setattr(_persist, "_CHUNK", 64)  # many chunks, even for small arrays
    data = model.to_bytes()
    whole = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as got, zipfile.ZipFile(whole, "w") as want:
        for info in got.infolist():
            array = np.load(io.BytesIO(got.read(info)), allow_pickle=False)
            npy = io.BytesIO()
            np.lib.format.write_array(npy, array, allow_pickle=False)
            assert got.read(info) == npy.getvalue(), info.filename
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            want.writestr(entry, npy.getvalue(), zipfile.ZIP_DEFLATED, compresslevel=1)
    assert data == whole.getvalue()


def test_object_arrays_are_refused_by_the_artifact():
    with pytest.raises(ValueError, match="object arrays"):
        _persist.dump("X", {}, {}, {"a": np.array(["x", None], dtype=object)})
