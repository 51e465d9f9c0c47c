"""numba kernels of the streaming detectors: a batch of values in, state arrays updated in place.

Kept apart from the classes in :mod:`drift.detectors` (which own the state and the words) so
that one call consumes a whole batch at ~tens of nanoseconds a value.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

import forget._jit_cache  # noqa: F401  (numba's cache out of the package: before njit)

# ADWIN integer state: [buckets held, width (values in the window), clock tick, values seen]
A_COUNT, A_WIDTH, A_TICK, A_SEEN = 0, 1, 2, 3
# DDM integer state: [values since the last change, errors among them, values seen]
D_N, D_ERRORS, D_SEEN = 0, 1, 2
# DDM float state: [p_min, s_min, warning (0/1)]
D_PMIN, D_SMIN, D_WARN = 0, 1, 2


@njit(cache=True)
def _drop_first(bn: np.ndarray, bs: np.ndarray, bm: np.ndarray, at: int, count: int) -> None:
    for i in range(at, count - 1):
        bn[i] = bn[i + 1]
        bs[i] = bs[i + 1]
        bm[i] = bm[i + 1]


@njit(cache=True)
def adwin_feed(
    values: np.ndarray,
    bn: np.ndarray,
    bs: np.ndarray,
    bm: np.ndarray,
    state: np.ndarray,
    delta: float,
    clock: int,
    min_window: int,
    max_buckets: int,
    out_at: np.ndarray,
    out_before: np.ndarray,
    out_after: np.ndarray,
) -> int:
    """Feed ``values`` to ADWIN2's exponential histogram; returns the number of changes.

    Buckets are held oldest first in ``bn`` (sizes, powers of two, non-increasing), ``bs``
    (sums) and ``bm`` (sums of squared deviations from the bucket mean). Change ``c`` is written
    to ``out_at[c]`` (the value count at detection), ``out_before[c]`` (mean of the dropped
    values) and ``out_after[c]`` (mean of the window kept).
    """
    changes = 0
    cap = bn.size
    for x in values:
        count = state[A_COUNT]
        if count >= cap:  # needs ~2**(cap / max_buckets) values; drop the oldest to be safe
            state[A_WIDTH] -= bn[0]
            _drop_first(bn, bs, bm, 0, count)
            count -= 1
        bn[count] = 1
        bs[count] = x
        bm[count] = 0.0
        count += 1
        # merge the two oldest buckets of a size while more than max_buckets have it
        j = count - 1
        while True:
            size = bn[j]
            k = j
            while k > 0 and bn[k - 1] == size:
                k -= 1
            if j - k + 1 <= max_buckets:
                break
            n1, n2 = bn[k], bn[k + 1]
            d = bs[k] / n1 - bs[k + 1] / n2
            bm[k] = bm[k] + bm[k + 1] + n1 * n2 / (n1 + n2) * d * d
            bn[k] = n1 + n2
            bs[k] = bs[k] + bs[k + 1]
            _drop_first(bn, bs, bm, k + 1, count)
            count -= 1
            j = k
        state[A_COUNT] = count
        state[A_WIDTH] += 1
        state[A_TICK] += 1
        state[A_SEEN] += 1
        if state[A_TICK] % clock != 0 or state[A_WIDTH] < 2 * min_window:
            continue
        dropped_n = 0
        dropped_s = 0.0
        total_n = 0
        total_s = 0.0
        while True:
            count = state[A_COUNT]
            total_n = 0
            total_s = 0.0
            total_m = 0.0
            for i in range(count):
                if total_n == 0:
                    total_n, total_s, total_m = bn[i], bs[i], bm[i]
                else:
                    d = total_s / total_n - bs[i] / bn[i]
                    total_m += bm[i] + total_n * bn[i] / (total_n + bn[i]) * d * d
                    total_n += bn[i]
                    total_s += bs[i]
            if total_n < 2 * min_window:
                break
            var = total_m / total_n
            dd = math.log(2.0 * math.log(total_n) / delta)
            n0 = 0
            s0 = 0.0
            cut = False
            for i in range(count - 1):
                n0 += bn[i]
                s0 += bs[i]
                n1 = total_n - n0
                if n0 < min_window:
                    continue
                if n1 < min_window:
                    break
                m_recip = 1.0 / n0 + 1.0 / n1
                eps = math.sqrt(2.0 * m_recip * var * dd) + 2.0 / 3.0 * dd * m_recip
                if abs(s0 / n0 - (total_s - s0) / n1) > eps:
                    cut = True
                    break
            if not cut:
                break
            dropped_n += bn[0]
            dropped_s += bs[0]
            state[A_WIDTH] -= bn[0]
            _drop_first(bn, bs, bm, 0, count)
            state[A_COUNT] = count - 1
        if dropped_n > 0 and changes < out_at.size:
            out_at[changes] = state[A_SEEN]
            out_before[changes] = dropped_s / dropped_n
            out_after[changes] = total_s / total_n
            changes += 1
    return changes


@njit(cache=True)
def ddm_feed(
    errors: np.ndarray,
    istate: np.ndarray,
    fstate: np.ndarray,
    min_instances: int,
    warning: float,
    drift: float,
    out_at: np.ndarray,
    out_before: np.ndarray,
    out_after: np.ndarray,
) -> int:
    """Feed 0/1 ``errors`` to DDM; returns the number of changes (written as in ADWIN's)."""
    changes = 0
    for e in errors:
        istate[D_N] += 1
        istate[D_SEEN] += 1
        if e:
            istate[D_ERRORS] += 1
        n = istate[D_N]
        p = istate[D_ERRORS] / n
        s = math.sqrt(p * (1.0 - p) / n)
        if n < min_instances:
            continue
        # no minimum while no error was seen: s = 0 would make the first error a "drift"
        if istate[D_ERRORS] > 0 and p + s <= fstate[D_PMIN] + fstate[D_SMIN]:
            fstate[D_PMIN] = p
            fstate[D_SMIN] = s
        if p + s > fstate[D_PMIN] + drift * fstate[D_SMIN]:
            if changes < out_at.size:
                out_at[changes] = istate[D_SEEN]
                out_before[changes] = fstate[D_PMIN]
                out_after[changes] = p
                changes += 1
            istate[D_N] = 0
            istate[D_ERRORS] = 0
            fstate[D_PMIN] = np.inf
            fstate[D_SMIN] = np.inf
            fstate[D_WARN] = 0.0
        elif p + s > fstate[D_PMIN] + warning * fstate[D_SMIN]:
            fstate[D_WARN] = 1.0
        else:
            fstate[D_WARN] = 0.0
    return changes


@njit(cache=True)
def ks_w1_sorted(xs: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and Wasserstein-1 distance of two sorted samples, in one merge.

    At every distinct value v of the union, the empirical CDFs count the values <= v (ties
    counted on both sides, as ``searchsorted(..., side="right")`` does); W1 integrates their
    absolute difference between consecutive values.
    """
    n, m = xs.size, ref.size
    i = 0
    j = 0
    d = 0.0
    w = 0.0
    while i < n or j < m:
        v = xs[i] if j >= m or (i < n and xs[i] <= ref[j]) else ref[j]
        while i < n and xs[i] == v:
            i += 1
        while j < m and ref[j] == v:
            j += 1
        diff = abs(i / n - j / m)
        if diff > d:
            d = diff
        if i < n or j < m:
            nxt = xs[i] if j >= m or (i < n and xs[i] <= ref[j]) else ref[j]
            w += diff * (nxt - v)
    return d, w


@njit(cache=True)
def category_index(x: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """For each value, its index in the sorted ``cats``, or ``cats.size`` when absent."""
    k = cats.size
    out = np.empty(x.size, dtype=np.int64)
    for t in range(x.size):
        v = x[t]
        lo = 0
        hi = k
        while lo < hi:
            mid = (lo + hi) // 2
            if cats[mid] < v:
                lo = mid + 1
            else:
                hi = mid
        out[t] = lo if lo < k and cats[lo] == v else k
    return out


@njit(cache=True)
def category_counts(x: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Counts of each of the sorted ``cats`` in ``x``, then of the values not among them.

    Category codes (small non-negative integers, the usual case) go through a lookup table;
    anything else through a binary search.
    """
    k = cats.size
    counts = np.zeros(k + 1, dtype=np.int64)
    codes = cats[0] >= 0 and cats[k - 1] <= 65536
    for c in cats:
        if c != math.floor(c):
            codes = False
    if not codes:
        for i in category_index(x, cats):
            counts[i] += 1
        return counts
    top = int(cats[k - 1])
    lut = np.full(top + 1, k, dtype=np.int64)
    for i in range(k):
        lut[int(cats[i])] = i
    for v in x:
        if 0 <= v <= top and v == math.floor(v):
            counts[lut[int(v)]] += 1
        else:
            counts[k] += 1
    return counts


@njit(cache=True)
def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (two passes, for accuracy)."""
    n = x.size
    s = 0.0
    for v in x:
        s += v
    mean = s / n
    q = 0.0
    for v in x:
        q += (v - mean) * (v - mean)
    return mean, math.sqrt(q / n)


@njit(cache=True)
def pooled_chi2_psi(
    ref: np.ndarray, win: np.ndarray, min_expected: float
) -> tuple[float, int, float]:
    """χ² homogeneity statistic, degrees of freedom and PSI of window counts against reference
    counts, after pooling (see ``drift.stats.compare_categorical``).

    ``ref`` has k counts, ``win`` k + 1 (the last: values the reference never had). Seen
    categories with ``ref_i / R · n < min_expected`` are pooled into one column; the unseen
    column is kept apart. χ² runs over the columns with a non-zero total; PSI over every
    column, each count smoothed by half a count.
    """
    k = ref.size
    n = 0.0
    R = 0.0
    for i in range(k + 1):
        n += win[i]
    for i in range(k):
        R += ref[i]
    cr = np.zeros(k + 2)
    cw = np.zeros(k + 2)
    c = 0
    rare_r = 0.0
    rare_w = 0.0
    any_rare = False
    for i in range(k):
        if ref[i] / R * n < min_expected:
            any_rare = True
            rare_r += ref[i]
            rare_w += win[i]
        else:
            cr[c] = ref[i]
            cw[c] = win[i]
            c += 1
    if any_rare:
        cr[c] = rare_r
        cw[c] = rare_w
        c += 1
    cr[c] = 0.0
    cw[c] = win[k]
    c += 1
    total = R + n
    stat = 0.0
    cols = 0
    for i in range(c):
        t = cr[i] + cw[i]
        if t <= 0:
            continue
        cols += 1
        er = R * t / total
        ew = n * t / total
        stat += (cr[i] - er) ** 2 / er + (cw[i] - ew) ** 2 / ew
    sr = R + 0.5 * c
    sw = n + 0.5 * c
    psi = 0.0
    for i in range(c):
        p = (cr[i] + 0.5) / sr
        q = (cw[i] + 0.5) / sw
        psi += (q - p) * math.log(q / p)
    if cols < 2:
        return 0.0, 0, psi
    return stat, cols - 1, psi
