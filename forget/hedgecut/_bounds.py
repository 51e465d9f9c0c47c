"""The cut-off domain a fit takes from its data when none is declared: robust, not extreme."""

from __future__ import annotations

import math

import numpy as np

N_KNOTS = 65  # quantile knots per feature of the cut-off distribution
TAIL_ROWS = 10  # rows at or beyond each end bound (a quarter of the rows below 40 rows)
TAIL_SHARE = 0.001  # ... or this share of the rows, when more


def _round3(q: np.ndarray) -> np.ndarray:
    """``q`` rounded to 3 significant digits."""
    mag = np.abs(q)
    unit = np.where(mag > 0, 10.0 ** (np.floor(np.log10(np.where(mag > 0, mag, 1.0))) - 2), 1.0)
    return np.round(q / unit) * unit


def robust_knots(X: np.ndarray) -> np.ndarray:
    """The cut-off distribution a fit takes from the data: no single row determines it.

    Per feature, the end bounds are the ``r``-th smallest and largest values (``r`` = 10 rows,
    or 0.1 % of them when more; a quarter of the rows below 40 rows), rounded outward to a grid
    of 2 significant digits of the span between them; the 63 inner knots are the quantiles at
    ``j / 64``, clipped to those ``r``-th values and rounded to 3 significant digits. So no knot
    depends on the values of the ``r - 1`` most extreme rows at either end, and every knot is
    on a grid or a rounded quantile with at least ``r`` rows beyond it. A feature whose
    ``r``-th smallest and largest values are equal (constant, or a rare spike) gets that value
    as every knot: no cut-off separates its rows.

    >>> import numpy as np
    >>> ages = np.concatenate([np.arange(18.0, 90.0), [97.0]])[:, None]  # one 97-year-old
    >>> knots = robust_knots(ages)
    >>> float(knots[0, 0]), float(knots[0, -1])
    (27.0, 81.0)
    >>> ages[-1] = 130.0  # any other extreme age: the same knots
    >>> bool((robust_knots(ages) == knots).all())
    True
    """
    n = X.shape[0]
    srt = np.sort(X.astype(np.float64), axis=0)
    r = max(1, min(max(TAIL_ROWS, math.ceil(n * TAIL_SHARE)), n // 4))
    lo_q, hi_q = srt[r - 1], srt[n - r]
    span = hi_q - lo_q
    flat = span <= 0
    grid = 10.0 ** (np.floor(np.log10(np.where(flat, 1.0, span))) - 1)
    lo = np.where(flat, lo_q, np.floor(lo_q / grid) * grid)
    hi = np.where(flat, hi_q, np.ceil(hi_q / grid) * grid)
    inner = _round3(
        np.clip(np.quantile(srt, np.linspace(0.0, 1.0, N_KNOTS)[1:-1], axis=0), lo_q, hi_q)
    )
    knots = np.column_stack([lo, np.clip(inner.T, lo[:, None], hi[:, None]), hi])
    return np.ascontiguousarray(np.maximum.accumulate(knots, axis=1))
