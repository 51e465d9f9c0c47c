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

from forget import _persist
from forget.base import ForgetResult, Guarantee, Path, Unlearnable
from forget.errors import DuplicateRowIdsError, UnknownRowIdsError

Factory = Callable[[], Any]

__all__ = [
    "CHECKS",
    "check_batch_equals_one_by_one",
    "check_bad_fit_input_is_refused",
    "check_bad_ids_change_nothing",
    "check_clone_and_params",
    "check_forget_equals_refit",
    "check_forgotten_values_leave_the_artifact",
    "check_no_trace_in_memory",
    "check_persistence_round_trip",
    "check_state_equals_refit",
    "outputs",
    "refit_on_remaining",
    "unfitted_twin",
]

# Float models (sufficient statistics) match a refit to rounding; trees and kNN match exactly.
RTOL = 1e-8
# What a model keeps after forget vs a refit: exact for trees and kNN, this close for float sums.
STATE_RTOL = 1e-9
# Approximate models: predicted probabilities within this of a refit (their bound is reported).
APPROX_ATOL = 5e-2


def outputs(model: Any, X: np.ndarray) -> np.ndarray:
    """What a model answers on X: class probabilities when it has them, else predictions."""
    if hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(X), dtype=float)
    return np.asarray(model.predict(X), dtype=float)


def pinned_params(model: Any) -> dict[str, Any]:
    """The fitted choices a refit must be given to be comparable: the forest's cut-off domain.

    ``feature_bounds_`` is fixed at fit time and documented as robust (no single row determines
    it). Nothing else is pinned: a class that no remaining row holds leaves a refit's
    ``classes_``, and must leave the forgetting model's too, unless the user declared
    ``classes`` (a parameter, kept as it is).
    """
    pinned = {}
    if "feature_bounds" in model.get_params() and hasattr(model, "feature_bounds_"):
        pinned["feature_bounds"] = np.array(model.feature_bounds_)  # the model's stays its own
    return pinned


def refit_on_remaining(
    model: Any, X: np.ndarray, y: np.ndarray, ids: np.ndarray, gone: Sequence[int]
) -> Any:
    """:func:`unfitted_twin` fitted on the rows not in ``gone``."""
    keep = ~np.isin(ids, np.asarray(gone))
    return unfitted_twin(model).fit(X[keep], y[keep], row_ids=ids[keep])


def unfitted_twin(model: Any) -> Any:
    """A fresh, unfitted model with the same parameters as ``model`` and its
    :func:`pinned_params`: what a refit starts from (no fitted state of ``model``)."""
    return type(model)(**{**model.get_params(), **pinned_params(model)})


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
        ([int(ids[1]), int(ids[0])], UnknownRowIdsError),  # forgotten: no longer known
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


def _artifact(model: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    _, params, state, arrays = _persist.load(model.to_bytes())
    return params, state, arrays


def _same_numbers(a: Any, b: Any, exact: bool, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != refit's {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != refit's {b.shape}"
    if exact or a.dtype.kind not in "fc":
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: differs from a refit's")
    else:
        scale = float(np.abs(b).max()) if b.size else 0.0
        np.testing.assert_allclose(
            a,
            b,
            rtol=STATE_RTOL,
            atol=STATE_RTOL * scale,
            err_msg=f"{what}: differs from a refit's",
        )


def check_state_equals_refit(
    make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray, batches: Sequence[Sequence[int]]
) -> None:
    """After each ``forget`` batch the model *keeps* what a refit on the remaining rows keeps.

    The artifact is the model's whole state: every entry of the forgetting model's artifact
    equals the refit's (same names, dtypes and shapes; integers exactly; floats exactly for
    trees and kNN, to ``STATE_RTOL`` for sufficient statistics). A model with an approximate
    guarantee names the entries its approximation lives in (``_approximate_state``); those are
    compared only in shape. So an attacker holding the artifact and the remaining rows learns
    nothing that a model never trained on the erased rows would not tell.
    """
    model = make().fit(X, y, row_ids=ids)
    exact = isinstance(model, _EXACT_BITWISE)
    loose = set(getattr(model, "_approximate_state", ()))
    gone: list[int] = []
    for batch in batches:
        model.forget(list(batch))
        gone += [int(i) for i in batch]
        ref = refit_on_remaining(model, X, y, ids, gone)
        what = f"after forgetting {len(gone)} rows"
        (p, s, a), (rp, rs, ra) = _artifact(model), _artifact(ref)
        pins = pinned_params(model)
        assert {k: v for k, v in rp.items() if k not in pins} == {
            k: v for k, v in p.items() if k not in pins
        }, f"{what}: artifact parameters differ from a refit's"
        assert sorted(s) == sorted(rs), f"{what}: state keys {sorted(s)} != {sorted(rs)}"
        for key in s:
            if key not in loose:
                _same_numbers(s[key], rs[key], exact, f"{what}: state {key!r}")
        assert sorted(a) == sorted(ra), f"{what}: artifact entries {sorted(a)} != {sorted(ra)}"
        for name in a:
            if name in loose:
                assert a[name].shape == ra[name].shape, f"{what}: {name!r} shape differs"
            else:
                _same_numbers(a[name], ra[name], exact, f"{what}: artifact entry {name!r}")


def _reachable(obj: Any, depth: int = 4, seen: set[int] | None = None):
    """Every array, number and dict key reachable from ``obj``'s attributes (not modules,
    functions or classes)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (int, float, np.number)):  # noqa: UP038
        yield np.asarray(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _reachable(k, depth - 1, seen)
            yield from _reachable(v, depth - 1, seen)
    elif isinstance(obj, (list, tuple, set, frozenset)):  # noqa: UP038
        for v in obj:
            yield from _reachable(v, depth - 1, seen)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(obj):
        for v in vars(obj).values():
            yield from _reachable(v, depth - 1, seen)
    elif hasattr(obj, "__slots__"):
        for name in obj.__slots__:
            yield from _reachable(getattr(obj, name, None), depth - 1, seen)


def check_no_trace_in_memory(make: Factory, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
    """After forgetting a row, neither the model's memory nor its artifact holds its id or any
    of its feature values that no other row has.

    The rows get large distinctive ids, so an id found anywhere (an id array, a lookup table's
    keys, a number in the artifact's metadata) is that row's and nothing else.
    """
    ids = np.int64(10**12) + ids.astype(np.int64) * 7919 + 13
    model = make().fit(X, y, row_ids=ids)
    victim = int(np.argmax(np.abs(X).sum(axis=1)))
    others = np.delete(X, victim, axis=0)
    values = [float(v) for v in X[victim] if v != 0.0 and not np.isin(others, v).any()]
    gone = int(ids[victim])
    model.forget([gone])
    params, state, arrays = _artifact(model)
    text = repr((params, state))
    assert str(gone) not in text, "the forgotten row's id is in the artifact's metadata"
    for where, found in [("memory", list(_reachable(model))), ("artifact", list(arrays.values()))]:
        for arr in found:
            if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
                assert not (arr == gone).any(), f"the forgotten row's id is in the model's {where}"
            if arr.dtype.kind == "f":
                wide = arr.astype(np.float64)
                for v in values:
                    assert not np.isin(wide, [v, float(np.float32(v))]).any(), (
                        f"value {v} of the forgotten row is in the model's {where}"
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
    "no_trace_in_memory": check_no_trace_in_memory,
    "clone_and_params": check_clone_and_params,
    "bad_fit_input_is_refused": check_bad_fit_input_is_refused,
}
