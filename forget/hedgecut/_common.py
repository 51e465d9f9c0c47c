"""Constants, parameter indices and keyed randomness shared by the forest kernels."""

from __future__ import annotations

import numpy as np
from numba import njit

# prm indices
(
    P_K,
    P_C,
    P_MIN_LEAF,
    P_MAX_DEPTH,
    P_SEED,
    P_BUDGET,
    P_HEDGE_MIN,
    P_MAX_VARIANTS,
    P_MAX_HEDGE,
    P_N,
    P_RANDOM_DEPTH,
    P_SAMPLE,
) = range(12)
N_PRM = 12
# meta indices
M_TAIL, M_NFREE, M_POOL, M_NPENDING = range(4)

OK = 0
NEED_NODES = 1
NEED_POOL = 2

BIG = 1 << 30
TOL = 1e-9  # a split must beat the parent by TOL * n (in purity units) to count as a gain
EPS = 1e-7  # float guard in robustness margins, times n
SLACK_MIN_N = 64  # below this many rows, forget re-checks the decision at every deletion

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_U53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always")
def _mix(z):
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def root_path(seed, tree):
    return _mix(np.uint64(seed) ^ _mix(np.uint64(tree) + np.uint64(1)))


@njit(cache=True, inline="always")
def in_tree(seed, tree, row_id, sample):
    """Whether the row named ``row_id`` trains ``tree``: keyed by the id, so a refit agrees."""
    h = _mix(root_path(seed, tree) ^ _mix(np.uint64(row_id)))
    return (h >> np.uint64(32)) < np.uint64(sample)


@njit(cache=True)
def tree_rows(seed, tree, ids, sample):
    """Positions of the rows that train ``tree``."""
    out = np.empty(ids.shape[0], dtype=np.int32)
    n = 0
    for i in range(ids.shape[0]):
        if in_tree(seed, tree, ids[i], sample):
            out[n] = i
            n += 1
    return out[:n]


@njit(cache=True, inline="always")
def _child_path(p, side):
    return _mix(p + np.uint64(side + 1))


@njit(cache=True, inline="always")
def _beta(s):
    # Largest change of sum_j c_j^2 / s when one row leaves a set of s rows: (s+1)/(s-1).
    if s < 2:
        return 3.0
    return (s + 1.0) / (s - 1.0)


@njit(cache=True)
def grown(a, n):
    """``a`` with twice the room along its first axis, its first ``n`` entries kept (stacks)."""
    bigger = np.empty((a.shape[0] * 2,) + a.shape[1:], dtype=a.dtype)
    bigger[:n] = a[:n]
    return bigger
