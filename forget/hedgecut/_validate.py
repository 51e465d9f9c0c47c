"""What the forest accepts: its parameters, its seed, and features it can compare as float32.

Inputs go through scikit-learn's own validation (its checks and messages: sparse, complex,
object or 1-d ``X``, empty data, ``y`` missing or continuous), except on the serving path: a
dense float ndarray of the fitted width skips it (its fixed cost is some 50 us a call).
Either way the features are then cast to float32, the type the kernels compare, once; a value
that is NaN, infinite or beyond the float32 range (about ±3.4e38, where the cast gives ±inf)
is refused, naming its column and row. Such a value would make the cut-off domain
(``feature_bounds_``) infinite at fit, and the refit recipe refuse it; at predict, refusing
it too keeps one rule for both (as scikit-learn's own trees do).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from forget.hedgecut._bounds import robust_knots
from forget.scoring._kernels import all_finite, as_float32

F32_MAX = float(np.finfo(np.float32).max)
SEED_LIMIT = 2**63  # seeds are int64 in the kernels and BIGINT where models are stored
_SHOWN = 5  # positions named in a message
_WIDTH = ("n_features_in_", "feature_names_in_")


def check_seed(random_state: Any) -> int:
    """The forest's seed: ``random_state`` itself, or a fresh one for ``None``.

    >>> check_seed(7)
    7
    >>> check_seed(2**63)
    Traceback (most recent call last):
    ...
    ValueError: random_state must be None or an int in [0, 2**63), got 9223372036854775808
    """
    if random_state is None:
        return int(np.random.default_rng().integers(0, SEED_LIMIT - 1))
    if (
        isinstance(random_state, int | np.integer)
        and not isinstance(random_state, bool)
        and 0 <= int(random_state) < SEED_LIMIT
    ):
        return int(random_state)
    raise ValueError(f"random_state must be None or an int in [0, 2**63), got {random_state!r}")


def check_params(est: Any, d: int) -> int:
    """Validate the forest's hyperparameters; the candidate features per node for ``d``."""
    if not isinstance(est.n_estimators, int | np.integer) or est.n_estimators < 1:
        raise ValueError(f"n_estimators must be a positive int, got {est.n_estimators!r}")
    if est.max_depth is not None and (
        not isinstance(est.max_depth, int | np.integer) or est.max_depth < 1
    ):
        raise ValueError(f"max_depth must be None or a positive int, got {est.max_depth!r}")
    if not isinstance(est.min_samples_leaf, int | np.integer) or est.min_samples_leaf < 1:
        raise ValueError(f"min_samples_leaf must be a positive int, got {est.min_samples_leaf!r}")
    if not 0.0 <= float(est.deletion_budget) < 1.0:
        raise ValueError(f"deletion_budget must be in [0, 1), got {est.deletion_budget!r}")
    if not 0.0 < float(est.max_samples) <= 1.0:
        raise ValueError(f"max_samples must be in (0, 1], got {est.max_samples!r}")
    for name in ("hedge_min_samples", "max_variants", "max_hedge_depth", "random_depth"):
        value = getattr(est, name)
        if not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    defer = est.defer_rows
    if defer is not None and (
        isinstance(defer, bool) or not isinstance(defer, int | np.integer) or defer < 1
    ):
        raise ValueError(f"defer_rows must be None or a positive int, got {defer!r}")
    mf = est.max_features
    if mf == "sqrt":
        k = round(math.sqrt(d))
    elif mf == "log2":
        k = round(math.log2(d)) if d > 1 else 1
    elif isinstance(mf, int | np.integer) and not isinstance(mf, bool):
        k = int(mf)
    elif isinstance(mf, float) and 0.0 < mf <= 1.0:
        k = round(mf * d)
    else:
        raise ValueError(f"max_features must be 'sqrt', 'log2', an int or a fraction, got {mf!r}")
    if not 1 <= k <= d:
        raise ValueError(f"max_features gives {k} candidate features; it must be in 1..{d}")
    return max(1, min(k, d, 127))


@contextmanager
def width_kept_if_refused(est: Any) -> Iterator[None]:
    """A fit refused in this block leaves the width the fitted model's kernels index by.

    scikit-learn's validation records the new data's ``n_features_in_`` (and feature names)
    before the fit can refuse it; a fitted model would then let rows of that width reach
    kernels built for another.
    """
    kept = {name: value for name, value in vars(est).items() if name in _WIDTH}
    try:
        yield
    except BaseException:
        for name in _WIDTH:
            vars(est).pop(name, None)
        vars(est).update(kept)
        raise


def training_data(est: Any, X: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a float32 copy the model owns (``forget`` overwrites rows) and ``y`` as labels.

    Sets ``n_features_in_`` (and ``feature_names_in_`` for a data frame), as scikit-learn does.
    """
    arr, labels = validate_data(est, X, y, dtype=(np.float64, np.float32), ensure_all_finite=False)
    check_classification_targets(labels)
    return to_float32(arr, copy=True), labels


def label_codes(declared: ArrayLike | None, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The label set (``declared``, or those of ``y``) and each row's code in it."""
    if declared is None:
        return np.unique(y, return_inverse=True)
    classes = np.unique(np.asarray(declared))
    codes = np.minimum(np.searchsorted(classes, y), classes.size - 1)
    if not (classes[codes] == y).all():
        raise ValueError("y holds labels that are not in `classes`")
    return classes, codes


def cutoff_domain(declared: ArrayLike | None, X: np.ndarray) -> np.ndarray:
    """The cut-off distribution per feature: ``declared``, checked, or robust knots of ``X``."""
    d = X.shape[1]
    if declared is None:
        return robust_knots(X)
    bounds = np.ascontiguousarray(declared, dtype=np.float64)
    if (
        bounds.ndim != 2
        or bounds.shape[0] != d
        or bounds.shape[1] < 2
        or not np.isfinite(bounds).all()
        or (np.diff(bounds, axis=1) < 0).any()
    ):
        raise ValueError(
            f"feature_bounds must be finite, non-decreasing rows, shape ({d}, 2) for "
            f"(low, high) or ({d}, q) for q knots; got shape {bounds.shape}"
        )
    return bounds


def features(est: Any, X: ArrayLike) -> np.ndarray:
    """``X`` to predict on: float32 rows of the fitted width, C-ordered (a copy only if cast)."""
    if (  # the serving path: scikit-learn's validation would only confirm what this does
        type(X) is np.ndarray
        and (X.dtype == np.float64 or X.dtype == np.float32)
        and X.ndim == 2
        and X.shape[0]
        and X.shape[1] == est.n_features_in_
        and not hasattr(est, "feature_names_in_")  # else scikit-learn warns of a missing name
    ):
        return to_float32(X, copy=False)
    arr = validate_data(
        est, X, reset=False, dtype=(np.float64, np.float32), ensure_all_finite=False
    )
    return to_float32(arr, copy=False)


def to_float32(arr: np.ndarray, *, copy: bool) -> np.ndarray:
    """``arr`` (float64 or float32) as C-ordered float32; refuse what float32 cannot hold."""
    if arr.dtype == np.float32 and not copy and arr.flags.c_contiguous:
        out, finite = arr, all_finite(arr)
    else:  # beyond float32's range the cast gives inf: refused below
        out, finite = as_float32(arr)
    if not finite:
        raise ValueError(_not_finite(arr, out))
    return out


def _not_finite(arr: np.ndarray, out: np.ndarray) -> str:
    """What is wrong with the first column that holds a value float32 cannot hold, and where."""
    bad = ~np.isfinite(out)
    col = int(np.flatnonzero(bad.any(axis=0))[0])
    rows = np.flatnonzero(bad[:, col])
    values = arr[rows, col]
    where = f"column {col}, rows {rows[:_SHOWN].tolist()}" + (
        f" (+{rows.size - _SHOWN} more)" if rows.size > _SHOWN else ""
    )
    if np.isnan(values).any():
        return f"Input X contains NaN: {where}"
    if np.isinf(values).any():
        return f"Input X contains infinity: {where}"
    return (
        f"Input X column {col} holds values beyond the float32 range the forest compares "
        f"features in (|x| > {F32_MAX:.7g}): {float(values[0])!r} at row {int(rows[0])}"
        + (f" and {rows.size - 1} more rows" if rows.size > 1 else "")
        + "; rescale the column"
    )
