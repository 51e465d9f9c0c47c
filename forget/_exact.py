"""Exact sums of doubles and of their products: what the sufficient-statistics models keep.

A sum is 70 int64 digits of 32 bits each (``LIMBS``, lowest weight ``2**LOW_BIT``): every double,
and every product of two doubles as the two doubles of its error-free split, is placed into the
digits exactly, so adding a row and subtracting it again leaves the very same digits, and after
``normalise`` the digits are the same whatever order rows came and went in. That is how
``forget(S)`` keeps what ``fit(D \\ S)`` keeps, bit for bit, with no fit-time shift or reference
value (either would be a trace of the rows it was taken from). Values are read back in
double-double (``read_sums``) and rounded once. Inputs must be below ``MAX_ABS`` in magnitude
(``check_range``).

>>> import numpy as np
>>> check_range("X", np.array([1.0, -2.0]), "model")
"""

from __future__ import annotations

import numpy as np
from numba import njit

DIGIT_BITS = 32
LIMBS = 70
LOW_BIT = -1120  # weight of the lowest digit: below the smallest subnormal (2**-1074)
MAX_ABS = 2.0**480  # products stay below 2**960, their sums over 2**40 rows below 2**1000
_MASK = (1 << DIGIT_BITS) - 1
_EXPONENTS = LOW_BIT + DIGIT_BITS * np.arange(LIMBS + 1)
# What each digit weighs as a double (digits past the top of the range are never set)
_WEIGHT = np.where(_EXPONENTS <= 1023, np.ldexp(1.0, np.minimum(_EXPONENTS, 1023)), np.inf)
_SPLIT = 134217729.0  # 2**27 + 1: Dekker's splitter for doubles


def check_range(name: str, values: np.ndarray, model: str) -> None:
    """Refuse values whose products would not fit the exact sums (|v| >= ``MAX_ABS``)."""
    if values.size and float(np.abs(values).max()) >= MAX_ABS:
        raise ValueError(
            f"{model} keeps exact sums of products of its inputs: {name} must be below "
            f"2**480 (~3e144) in magnitude, got {float(np.abs(values).max()):.3g}"
        )


# ---------------------------------------------------------------------- exact-sum kernels
# Kernels that take arrays are called once per batch, never per term: a call with array
# arguments costs numba tens of nanoseconds (reference counting), more than placing a term.
@njit(cache=True)
def split(a):  # pragma: no cover - jitted
    """Dekker's split of ``a`` into two halves of 26 bits (exact)."""
    c = _SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


@njit(cache=True)
def two_sum(a, b):  # pragma: no cover - jitted
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(cache=True)
def fast_two_sum(a, b):  # pragma: no cover - jitted
    s = a + b
    return s, b - (s - a)


@njit(cache=True)
def two_prod(a, ah, al, b, bh, bl):  # pragma: no cover - jitted
    """``a·b`` as ``p + e`` exactly (no FMA needed), given the splits of ``a`` and ``b``."""
    p = a * b
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(cache=True)
def dd_add(ah, al, bh, bl):  # pragma: no cover - jitted
    s, e = two_sum(ah, bh)
    t, f = two_sum(al, bl)
    s, e = fast_two_sum(s, e + t)
    return fast_two_sum(s, e + f)


@njit(cache=True)
def dd_mul(ah, al, bh, bl):  # pragma: no cover - jitted
    a1, a2 = split(ah)
    b1, b2 = split(bh)
    p, e = two_prod(ah, a1, a2, bh, b1, b2)
    return fast_two_sum(p, e + (ah * bl + al * bh))


@njit(cache=True)
def dd_div(ah, al, b):  # pragma: no cover - jitted
    """``(ah + al) / b`` for a double ``b``, in double-double."""
    q = ah / b
    q1, q2 = split(q)
    b1, b2 = split(b)
    p, e = two_prod(q, q1, q2, b, b1, b2)
    return fast_two_sum(q, (((ah - p) - e) + al) / b)


@njit(cache=True)
def digits(raw):  # pragma: no cover - jitted
    """Where the double with bits ``raw`` (non-zero) lands in a sum: the index ``k`` of its
    lowest digit and its three digits ``k, k+1, k+2`` (of its magnitude; each < 2**33).

    A double ``m · 2**q`` (53-bit ``m``) is ``m`` shifted to bit ``q - LOW_BIT`` of the sum.
    """
    expo = (raw >> 52) & 0x7FF
    mant = raw & ((1 << 52) - 1)
    if expo == 0:  # subnormal: the smallest normal's scale, no hidden bit
        expo = 1
    else:
        mant |= 1 << 52
    off = expo - 1075 - LOW_BIT  # where the mantissa's last bit lands
    sh = off & 31
    lo = (mant & _MASK) << sh  # < 2**63
    hi = (mant >> 32) << sh  # < 2**52
    return off >> 5, lo & _MASK, (lo >> 32) + (hi & _MASK), hi >> 32


@njit(cache=True)
def place_terms(sums, target, terms, n_terms, sign, touched):  # pragma: no cover - jitted
    """Add ``sign · terms[t]`` exactly to sum ``target[t]`` for ``t < n_terms``, carry-save.

    Each term changes three digits by less than 2**33, so a digit absorbs 2**30 terms before
    :func:`normalise` must run. ``touched`` (lowest, highest digit changed) is widened.
    """
    raw_terms = terms.view(np.int64)
    low, high = touched[0], touched[1]
    for t in range(n_terms):
        raw = raw_terms[t]
        if (raw << 1) == 0:  # +0.0 or -0.0
            continue
        k, d0, d1, d2 = digits(raw)
        e = target[t]
        low = min(low, k)
        high = max(high, k + 2)
        s = ((raw >> 63) | 1) * sign  # the term's sign, without a branch to mispredict
        sums[e, k] += s * d0
        sums[e, k + 1] += s * d1
        sums[e, k + 2] += s * d2
    touched[0], touched[1] = low, high


@njit(cache=True)
def normalise(sums, start, stop, touched, lead):  # pragma: no cover - jitted
    """Propagate the carries of sums ``start:stop``, whose digits outside the ``touched``
    range are canonical: the digits become the sums' canonical form (each in
    ``[0, 2**32)``, the top one signed), and ``lead`` their leading digits (see
    :func:`leading`)."""
    if touched[1] < touched[0]:
        return
    for e in range(start, stop):
        carry = 0
        k = touched[0]
        while k < LIMBS - 1 and (k <= touched[1] or carry != 0):
            v = sums[e, k] + carry
            carry = v >> DIGIT_BITS
            sums[e, k] = v & _MASK
            k += 1
        if k == LIMBS - 1:
            sums[e, k] += carry
        # digits above k - 1 kept their values: the leading digit moved only if it was below
        if lead[e] < k or k == LIMBS - 1:
            lead[e] = _scan(sums, e, k)


@njit(cache=True, inline="always")
def _scan(sums, e, k):  # pragma: no cover - jitted
    """The leading digit of sum ``e``, searching down from digit ``k``."""
    if sums[e, LIMBS - 1] >= 0:
        t = k
        while t >= 0 and sums[e, t] == 0:
            t -= 1
    else:
        t = min(k, LIMBS - 2)
        while t >= 0 and sums[e, t] == _MASK:
            t -= 1
    return t


@njit(cache=True)
def leading(sums, lead):  # pragma: no cover - jitted
    """``lead[e]``: the highest digit of (normalised) sum ``e`` that is not its sign's
    extension (0 above a non-negative sum, all ones above a negative one); -1 if none.
    A function of the sum's value, kept beside it so that reading needs no search."""
    for e in range(sums.shape[0]):
        lead[e] = _scan(sums, e, LIMBS - 1)


@njit(cache=True)
def read_sums(sums, start, stop, lead, hi, lo):  # pragma: no cover - jitted
    """The values of the (normalised) sums ``start:stop`` as double-doubles ``hi + lo``."""
    for e in range(start, stop):
        t = lead[e]
        if sums[e, LIMBS - 1] >= 0:
            h, low = 0.0, 0.0
        else:  # negative: -2**(32(t+1)) plus the digits from the leading one down
            h, low = -_WEIGHT[t + 1], 0.0
        for k in range(t, max(t - 4, -1), -1):  # 4 digits: >= 97 bits below the leading one
            s, r = two_sum(h, float(sums[e, k]) * _WEIGHT[k])
            h, low = fast_two_sum(s, r + low)
        hi[e] = h
        lo[e] = low
