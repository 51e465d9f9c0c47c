"""ONNX export (forget/exchange): onnxruntime answers as the models do, before and after
forgetting; the bytes are deterministic and hold nothing a refit would not; kNN is refused."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

import forget  # noqa: E402
from forget.errors import ForgetError  # noqa: E402
from forget.exchange import NotExportableError, exportable, to_onnx  # noqa: E402
from forget.exchange.onnx import LINEAR_RTOL, TREE_ATOL  # noqa: E402
from forget.hedgecut import HedgeCutClassifier  # noqa: E402
from forget.knn import KNNClassifier, KNNRegressor  # noqa: E402
from forget.linear import LinearRegression  # noqa: E402
from forget.logistic import LogisticRegression  # noqa: E402
from forget.naive_bayes import GaussianNB, MultinomialNB  # noqa: E402

Factory = Callable[[], Any]


def _forest(**kw: Any) -> Factory:
    return lambda: HedgeCutClassifier(**{"n_estimators": 7, "random_state": 3, **kw})


# name -> (factory, task, feature kind)
MODELS: dict[str, tuple[Factory, str, str]] = {
    "HedgeCut": (_forest(max_samples=0.6), "classify", "real"),
    # small shares of small data: trees with no rows (they abstain) and one-leaf trees
    "HedgeCut-sparse": (_forest(max_samples=0.05, min_samples_leaf=3), "classify", "real"),
    "HedgeCut-hedged": (
        _forest(max_samples=1.0, deletion_budget=0.2, hedge_min_samples=4, max_variants=2),
        "classify",
        "real",
    ),
    "LinearRegression": (lambda: LinearRegression(alpha=0.1), "regress", "real"),
    "LogisticRegression": (lambda: LogisticRegression(lam=1e-2), "classify", "real"),
    "GaussianNB": (lambda: GaussianNB(), "classify", "real"),
    "MultinomialNB": (lambda: MultinomialNB(), "classify", "counts"),
}


def session(data: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # the machine is shared; results do not depend on it
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def run(model: Any, X: np.ndarray) -> list[np.ndarray]:
    dtype = np.float32 if isinstance(model, HedgeCutClassifier) else np.float64
    return list(session(to_onnx(model)).run(None, {"X": X.astype(dtype)}))


def scale(model: Any, X: np.ndarray) -> np.ndarray:
    """Per row, the magnitude of what the model computes before its last rounding-free
    step: ``|x|·|w| + |b|`` (linear), the largest margin (logistic) or joint
    log-likelihood (naive Bayes), at least 1. Rounding in the graph is relative to it."""
    if isinstance(model, LinearRegression):
        s = np.abs(X) @ np.abs(model.coef_) + abs(model.intercept_)
    elif isinstance(model, LogisticRegression):
        s = np.abs(X) @ np.abs(model.coef_).T + np.abs(model.intercept_)
    else:
        s = np.abs(model._jll(X))
    return np.maximum(1.0, s.reshape(len(X), -1).max(axis=1))


def assert_answers_as_model(model: Any, X: np.ndarray) -> float:
    """onnxruntime's outputs equal the model's within the stated tolerance (``TREE_ATOL``
    for the forest, ``LINEAR_RTOL`` times :func:`scale` for the others); labels agree
    wherever the two best classes are further apart than it. Returns the max abs diff."""
    out = run(model, X)
    forest = isinstance(model, HedgeCutClassifier)
    tol = np.full(len(X), TREE_ATOL) if forest else LINEAR_RTOL * scale(model, X)
    if not hasattr(model, "predict_proba"):
        (pred,) = out
        err = np.abs(pred - model.predict(X))
        assert (err <= tol).all(), f"predictions differ by {err.max():.3g}"
        return float(err.max()) if err.size else 0.0
    label, proba = out
    ref = model.predict_proba(X)
    assert proba.shape == ref.shape and proba.dtype == np.float64
    err = np.abs(proba - ref).max(axis=1, initial=0.0)
    assert (err <= tol).all(), f"probabilities differ by {err.max():.3g} (row tolerance)"
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > tol
    expected = model.predict(X)
    assert label.shape == expected.shape
    assert (label[clear] == expected[clear]).all(), "labels differ away from near-ties"
    return float(err.max(initial=0.0))


@st.composite
def problems(draw: Any, task: str, kind: str) -> tuple[np.ndarray, ...]:
    """Small data on a coarse grid (ties in feature values), maybe a constant feature, a few
    classes, and deletion batches."""
    n = draw(st.integers(20, 50))
    d = draw(st.integers(1, 4))
    n_classes = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "counts":
        X = rng.poisson(2.0, size=(n, d)).astype(float)
    else:
        X = rng.integers(-4, 5, size=(n, d)) * draw(st.sampled_from([0.25, 1.0, 3.5]))
    if draw(st.booleans()):
        X[:, rng.integers(d)] = 2.0  # a constant feature
    w = rng.normal(size=d)
    score = X @ w + rng.normal(scale=0.5, size=n)
    if task == "classify":  # by quantiles: >= 5 rows a class, more than a forget removes
        y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    else:
        y = score
    ids = rng.permutation(4 * n)[:n] + 11
    order = rng.permutation(ids)[: draw(st.integers(1, n // 3))]
    cuts = sorted(set(draw(st.lists(st.integers(1, len(order)), max_size=2))) | {len(order)})
    batches = np.split(order, cuts[:-1])
    return X, y, ids, *batches  # type: ignore[return-value]


def probes(model: Any, X: np.ndarray) -> np.ndarray:
    """The training rows, shifted copies, and for a forest rows lying exactly on its
    cut-offs (the ``<=`` boundary)."""
    rows = [X, X + 0.5, np.abs(X - 1e-3)]  # non-negative: MultinomialNB takes counts
    if isinstance(model, HedgeCutClassifier):
        for enc in model.tree_structures():
            for f, cut in enc[enc[:, 0] >= 0][:, :2]:
                row = X[0].copy()
                row[int(f)] = cut
                rows.append(row[None])
    return np.concatenate(rows)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnxruntime_answers_as_the_model_before_and_after_forgetting(name: str) -> None:
    make, task, kind = MODELS[name]

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(problems(task, kind))
    def check(problem: tuple[np.ndarray, ...]) -> None:
        X, y, ids, *batches = problem
        model = make().fit(X, y, row_ids=ids)
        assert_answers_as_model(model, probes(model, X))
        for batch in batches:
            model.forget(batch.tolist())
            assert_answers_as_model(model, probes(model, X))

    check()


@pytest.mark.parametrize(
    "labels", [["no", "yes", "maybe"], [2.0, -1.0, 7.0], [10, 20, 30], [True, False, True]]
)
@pytest.mark.parametrize("name", ["HedgeCut", "GaussianNB", "LogisticRegression"])
def test_labels_keep_their_type(name: str, labels: list[Any]) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.array(labels)[np.digitize(X[:, 0], [-0.4, 0.4])]
    model = MODELS[name][0]().fit(X, y)
    label, _ = run(model, X)
    np.testing.assert_array_equal(label.astype(y.dtype), model.predict(X))
    assert_answers_as_model(model, X)


@pytest.mark.parametrize(("seed", "n_empty"), [(0, 4), (3, 5)])
def test_trees_without_rows_abstain(seed: int, n_empty: int) -> None:
    """A subsampled tree that holds no row abstains (the mean is over the others), and a
    row no tree votes for gets 1/C: the graph divides by the votes, not the trees."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 2))
    model = HedgeCutClassifier(n_estimators=5, max_samples=0.02, random_state=seed)
    model.fit(X, np.arange(20) % 3)
    empty = [enc.shape[0] == 1 and enc[0, 2:].sum() == 0 for enc in model.tree_structures()]
    assert sum(empty) == n_empty  # the premise: this forest has such trees
    assert_answers_as_model(model, probes(model, X))
    if n_empty == 5:
        np.testing.assert_array_equal(run(model, X)[1], np.full((20, 3), 1 / 3))


def test_single_row_and_empty_batches() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    model = HedgeCutClassifier(n_estimators=5, random_state=0).fit(X, X[:, 1] > 0)
    assert_answers_as_model(model, X[:1])
    label, proba = run(model, X[:0])
    assert label.shape == (0,) and proba.shape == (0, 2)


# ---------------------------------------------------------------------- the bytes


def refit_models(name: str, X: np.ndarray, y: np.ndarray, ids: np.ndarray, gone: np.ndarray):
    """The model after ``forget(gone)``, and one fitted on the remaining rows alone."""
    make = MODELS[name][0]
    if name.startswith("HedgeCut"):  # declared bounds: the refit gets the very same params
        bounds = make().fit(X, y).feature_bounds_
        make = _forest(**{**make().get_params(), "feature_bounds": bounds})
    if name == "LogisticRegression":  # weights are a refit's only when every forget refits
        make = lambda: LogisticRegression(lam=1e-2, removal_budget=0.0)  # noqa: E731
    model = make().fit(X, y, row_ids=ids)
    model.forget(gone.tolist())
    keep = ~np.isin(ids, gone)
    return model, make().fit(X[keep], y[keep], row_ids=ids[keep])


@pytest.mark.parametrize("name", sorted(MODELS))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_export_after_forget_is_the_refit_s_export(name: str, data: st.DataObject) -> None:
    _, task, kind = MODELS[name]
    X, y, ids, *batches = data.draw(problems(task, kind))
    gone = np.concatenate(batches)
    model, refit = refit_models(name, X, y, ids, gone)
    assert model.to_bytes() == refit.to_bytes()  # the premise: the artifact is canonical
    assert to_onnx(model, metadata={"revision": "2"}) == to_onnx(refit, metadata={"revision": "2"})


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_is_deterministic_and_survives_a_reload(name: str) -> None:
    make, task, kind = MODELS[name]
    rng = np.random.default_rng(5)
    X = (
        rng.poisson(2.0, size=(50, 3)).astype(float)
        if kind == "counts"
        else rng.normal(size=(50, 3))
    )
    y = X[:, 0] if task == "regress" else (X[:, 0] > X[:, 1]).astype(int)
    model = make().fit(X, y)
    first = to_onnx(model, name="m")
    assert first == to_onnx(model, name="m")
    assert first == to_onnx(type(model).from_bytes(model.to_bytes()), name="m")
    model.forget([0, 1])
    assert to_onnx(model, name="m") != first  # the export follows the model


def test_metadata_records_producer_model_and_caller_fields() -> None:
    import hashlib

    X = np.arange(20.0).reshape(10, 2)
    model = GaussianNB().fit(X, np.arange(10) % 2)
    proto = onnx.load_from_string(
        to_onnx(model, name="income", metadata={"revision": "7", "model": "income", "version": "2"})
    )
    onnx.checker.check_model(proto)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {
        "forget.artifact_sha256": hashlib.sha256(model.to_bytes()).hexdigest(),
        "forget.estimator": "GaussianNB",
        "forget.version": forget.__version__,
        "model": "income",
        "revision": "7",
        "version": "2",
    }
    assert [p.key for p in proto.metadata_props] == sorted(props)
    assert proto.graph.name == "income" and proto.producer_name == "forget"
    with pytest.raises(ValueError, match="forget's own"):
        to_onnx(model, metadata={"forget.version": "9"})
    with pytest.raises(ValueError, match="str to str"):
        to_onnx(model, metadata={"revision": 7})  # type: ignore[dict-item]


def test_export_carries_no_training_row() -> None:
    """Distinctive training values (and ids) appear nowhere in the bytes."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 2))
    X[0] = [123456.789, -98765.4321]
    y = (X[:, 1] > 0).astype(int)
    ids = np.arange(40) + 900_000_017
    for make in (lambda: GaussianNB(), lambda: LinearRegression(), _forest()):
        data = to_onnx(make().fit(X, y, row_ids=ids))
        for value in (*X[0], *X[0].astype(np.float32)):
            assert np.asarray(value).tobytes() not in data
        assert np.int64(ids[3]).tobytes() not in data


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize("cls", [KNNClassifier, KNNRegressor])
def test_knn_is_refused_because_the_export_would_carry_the_rows(cls: type) -> None:
    X = np.arange(20.0).reshape(10, 2)
    model = cls(n_neighbors=2).fit(X, np.arange(10) % 2)
    reason = exportable(model)
    assert reason is not None and "training row" in reason
    with pytest.raises(NotExportableError, match="would carry every training row") as info:
        to_onnx(model)
    assert isinstance(info.value, ForgetError) and isinstance(info.value, ValueError)


def test_unfitted_and_foreign_models_are_refused() -> None:
    from sklearn.linear_model import LinearRegression as SkLinear

    assert exportable(GaussianNB()) is not None
    with pytest.raises(NotExportableError, match="not fitted"):
        to_onnx(HedgeCutClassifier())
    with pytest.raises(NotExportableError, match="not one of forget's exportable models"):
        to_onnx(SkLinear().fit([[0.0], [1.0]], [0.0, 1.0]))
    for make, _, _ in MODELS.values():
        assert exportable(make()) is not None


# ---------------------------------------------------------------------- adult


def test_adult_forest_exports_and_scores_as_predict_proba() -> None:
    from forget.datasets import load_adult

    ds = load_adult()
    model = HedgeCutClassifier(n_estimators=100, random_state=0).fit(ds.X, ds.y)
    t0 = time.perf_counter()
    data = to_onnx(model, metadata={"model": "adult"})
    seconds = time.perf_counter() - t0
    X = ds.X[:2000]
    err = assert_answers_as_model(model, X)
    label, proba = session(data).run(None, {"X": X.astype(np.float32)})
    np.testing.assert_array_equal(label, model.predict(X))
    print(
        f"adult 100 trees: export {seconds:.3f} s, {len(data) / 1e6:.2f} MB, max |diff| {err:.3g}"
    )
    model.forget(list(range(50)))
    assert_answers_as_model(model, X)
