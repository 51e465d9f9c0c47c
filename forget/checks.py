"""One conformance suite for every unlearnable model.

Each check takes a factory (``() -> unfitted model``) and data, and raises ``AssertionError``
with a message saying what broke. ``CHECKS`` lists them; ``tests/forget/test_conformance.py``
runs every model through every check with hypothesis-generated data and deletion sets.

>>> import numpy as np
>>> from forget import HedgeCutClassifier
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(60, 3)); y = (X[:, 0] > 0).astype(int); ids = np.arange(60)
>>> make = lambda: HedgeCutClassifier(n_estimators=5, random_state=0)
>>> check_forget_equals_refit(make, X, y, ids, [[1, 2], [30]])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from forget.base import ForgetResult, Guarantee, Path, Unlearnable
from forget.errors import AlreadyForgottenError, DuplicateRowIdsError, UnknownRowIdsError

Factory = Callable[[], Any]

__all__ = [
    "CHECKS",
    "check_batch_equals_one_by_one",
    "check_bad_fit_input_is_refused",
    "check_bad_ids_change_nothing",
    "check_clone_and_params",
    "check_forget_equals_refit",
    "check_forgotten_values_leave_the_artifact",
    "check_persistence_round_trip",
    "outputs",
    "refit_on_remaining",
]

# Float models (sufficient statistics) match a refit to rounding; trees and kNN match exactly.
RTOL = 1e-8
# Approximate models: predicted probabilities within this of a refit (their bound is reported).
APPROX_ATOL = 5e-2


def outputs(model: Any, X: np.ndarray) -> np.ndarray:
    """What a model answers on X: class probabilities when it has them, else predictions."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X), dtype=float)
    return np.asarray(model.predict(X), dtype=float)


def refit_on_remaining(
    model: Any, X: np.ndarray, y: np.ndarray, ids: np.ndarray, gone: Sequence[int]
) -> Any:
    """A fresh model with the same parameters fitted on the rows not in ``gone``.

    Fitted choices that a refit would otherwise re-derive from less data are pinned: the label
    set (``classes``) and the forest's cut-off distribution (``feature_bounds``).
    """
    params = model.get_params()
    if "classes" in params and hasattr(model, "classes_"):
        params["classes"] = model.classes_
    if "feature_bounds" in params and hasattr(model, "feature_bounds_"):
        params["feature_bounds"] = model.feature_bounds_
    keep = ~np.isin(ids, np.asarray(gone))
    return type(model)(**params).fit(X[keep], y[keep], row_ids=ids[keep])


def _assert_same(model: Any, ref: Any, X: np.ndarray, what: str) -> None:
    a, b = outputs(model, X), outputs(ref, X)
    assert a.shape == b.shape, f"{what}: output shape {a.shape} != refit's {b.shape}"
    if model.guarantee is Guarantee.APPROXIMATE:
        err = float(np.abs(a - b).max()) if a.size else 0.0
        assert err <= APPROX_ATOL, f"{what}: outputs differ from a refit by {err:.3g}"
    elif isinstance(model, _EXACT_BITWISE):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: outputs differ from a refit")
    else:
        np.testing.assert_allclose(
            a, b, rtol=RTOL, atol=RTOL, err_msg=f"{what}: differs from a refit"
        )


def check_forget_equals_refit(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray, batches: Sequence[Sequence[int]]
) -> None:
    """After each ``forget`` batch the model answers as a refit on the remaining rows does."""
    model = make().fit(X, y, row_ids=ids)
    assert isinstance(model, Unlearnable), f"{type(model).__name__} does not follow Unlearnable"
    gone: list[int] = []
    for batch in batches:
        result = model.forget(list(batch))
        assert isinstance(result, ForgetResult)
        assert result.row_ids == tuple(int(i) for i in batch), "result names other rows"
        assert len(result.paths) == len(batch) and all(isinstance(p, Path) for p in result.paths)
        assert result.guarantee is model.guarantee
        if model.guarantee is Guarantee.APPROXIMATE:
            assert result.bound is not None and np.isfinite(result.bound), "no finite bound"
        gone += [int(i) for i in batch]
        _assert_same(
            model, refit_on_remaining(model, X, y, ids, gone), X, f"after forgetting {gone}"
        )


def check_batch_equals_one_by_one(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray, batch: Sequence[int]
) -> None:
    """Forgetting rows in one request equals forgetting them one request at a time."""
    a = make().fit(X, y, row_ids=ids)
    b = make().fit(X, y, row_ids=ids)
    a.forget(list(batch))
    for i in batch:
        b.forget([int(i)])
    if a.guarantee is Guarantee.APPROXIMATE:
        _assert_same(a, b, X, "batch vs one by one")
    elif isinstance(a, _EXACT_BITWISE):
        np.testing.assert_array_equal(outputs(a, X), outputs(b, X))
    else:
        np.testing.assert_allclose(outputs(a, X), outputs(b, X), rtol=RTOL, atol=RTOL)


def check_bad_ids_change_nothing(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray
) -> None:
    """Unknown, repeated and already-forgotten ids raise, and the model is left as it was."""
    model = make().fit(X, y, row_ids=ids)
    model.forget([int(ids[0])])
    before = model.to_bytes()
    unknown = int(ids.max()) + 1
    for request, error in (
        ([int(ids[1]), unknown], UnknownRowIdsError),
        ([int(ids[1]), int(ids[1])], DuplicateRowIdsError),
        ([int(ids[1]), int(ids[0])], AlreadyForgottenError),
    ):
        try:
            model.forget(request)
        except error:
            pass
        else:
            raise AssertionError(f"forget({request}) did not raise {error.__name__}")
        assert model.to_bytes() == before, f"forget({request}) changed the model although it failed"


def check_persistence_round_trip(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray
) -> None:
    """``from_bytes(to_bytes())`` answers the same, and forgets the same afterwards."""
    model = make().fit(X, y, row_ids=ids)
    model.forget([int(ids[0])])
    loaded = type(model).from_bytes(model.to_bytes())
    np.testing.assert_array_equal(outputs(loaded, X), outputs(model, X))
    model.forget([int(ids[1])])
    loaded.forget([int(ids[1])])
    np.testing.assert_array_equal(outputs(loaded, X), outputs(model, X))
    assert b"\x80\x04\x95" not in model.to_bytes()[:64], "artifact looks like a pickle"


def check_forgotten_values_leave_the_artifact(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray
) -> None:
    """A forgotten row's feature values are no longer stored in the model's artifact."""
    import io

    model = make().fit(X, y, row_ids=ids)
    victim = int(np.argmax(np.abs(X).sum(axis=1)))  # a row with distinctive values
    values = {float(v) for v in X[victim] if v != 0.0}
    others = np.delete(X, victim, axis=0)
    values = {v for v in values if not np.isclose(others, v, rtol=0, atol=0).any()}
    model.forget([int(ids[victim])])
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as z:
        for name in z.files:
            arr = z[name]
            if arr.dtype.kind == "f":
                for v in values:
                    assert not np.isin(arr.astype(np.float64), [v, float(np.float32(v))]).any(), (
                        f"value {v} of the forgotten row is still in artifact entry {name!r}"
                    )


def check_clone_and_params(make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
    model = make()
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    twin.fit(X, y, row_ids=ids)
    assert not hasattr(model, "n_features_in_"), "clone shares state with the original"


def check_bad_fit_input_is_refused(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray
) -> None:
    """NaN features and mismatched shapes raise ValueError with a message."""
    bad = X.astype(float).copy()
    bad[0, 0] = np.nan
    for args in ((bad, y), (X, y[:-1]), (X[:, 0], y)):
        try:
            make().fit(*args)
        except ValueError as exc:
            assert str(exc), "empty error message"
        else:
            raise AssertionError(f"fit accepted bad input of shapes {[np.shape(a) for a in args]}")


def _exact_bitwise() -> tuple[type, ...]:
    from forget.hedgecut import HedgeCutClassifier

    types: list[type] = [HedgeCutClassifier]
    try:
        from forget.knn import KNNClassifier, KNNRegressor

        types += [KNNClassifier, KNNRegressor]
    except ImportError:  # pragma: no cover - kNN ships with the package
        pass
    return tuple(types)


_EXACT_BITWISE = _exact_bitwise()

CHECKS: dict[str, Callable[..., None]] = {
    "bad_ids_change_nothing": check_bad_ids_change_nothing,
    "persistence_round_trip": check_persistence_round_trip,
    "forgotten_values_leave_the_artifact": check_forgotten_values_leave_the_artifact,
    "clone_and_params": check_clone_and_params,
    "bad_fit_input_is_refused": check_bad_fit_input_is_refused,
}
