"""Constants, parameter indices, keyed randomness and a cache hint shared by the forest kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

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
# meta indices: nodes used, free-list length, pool used, pending rebuilds, classes that lost
# their last live row (forget counts them so that the estimator can drop them from its labels)
M_TAIL, M_NFREE, M_POOL, M_NPENDING, M_EMPTIED = range(5)
N_META = 5

OK = 0
NEED_NODES = 1
NEED_POOL = 2
NEED_STACK = 3
NEED_DEFER = 4

# Set in a node's ``hedge`` field (a count of variant edges, far below it) while the rebuild of
# its subtree is deferred (``forget.hedgecut._forget``): clearing a freed node clears it too.
STALE = 1 << 30

# what forget did to a tree (``CompiledTrees.touched``): nothing, its leaves' counts only, its
# active structure below the nodes it logged (the compiled form replaces those subtrees), or
# so much that the tree is compiled again whole
LEAVES, SPLICED, RESHAPED = 1, 2, 3

BIG = 1 << 30
TOL = 1e-9  # a split must beat the parent by TOL * n (in purity units) to count as a gain
EPS = 1e-7  # float guard in robustness margins, times n
# Below this many rows a node keeps no slack: forget re-checks its decision at every visit. The
# robustness margin of such nodes rarely covers even one deletion (slack 0 for 90 % of nodes of
# 64-256 rows and 70-80 % of 256-1024 on adult and shopping), so computing it cost more than the
# re-checks it saved (deletion p50 -1.9 us on adult, -1.7 us on shopping against 64).
SLACK_MIN_N = 1024

# For helpers that run once per node and never allocate: compiled without numba's reference
# counting (its private ``_nrt`` switch, which numba's own sort and string helpers use), a call
# no longer increments and decrements (atomically) the count of every array it is handed: for
# the 15 node arrays that was a third of a deletion's time. Whatever such a helper calls must be
# ``noalloc`` or inlined too: a plain njit callee compiled from it inherits the switch.
_NO_REFCOUNT: dict[str, Any] = {"_nrt": False}
noalloc = njit(cache=True, **_NO_REFCOUNT)

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


def _prefetch_row(typingctx, arr, i):
    """Start loading every cache line of row ``i`` of ``arr`` (a hint: changes no result).

    For a view into the node records (``ncls``) the row stride is the record, so this fetches a
    child's whole record while its parent's counts are being updated: a deletion's walk down a
    tree is otherwise a chain of cache misses, one per level.
    """
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        aty, ity = signature.args
        ary = context.make_array(aty)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        row = builder.extract_value(ary.strides, 0)
        idx = context.cast(builder, args[1], ity, types.intp)
        first = builder.add(builder.ptrtoint(ary.data, intp), builder.mul(idx, row))
        i8p = ir.PointerType(ir.IntType(8))
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        line = builder.and_(first, intp(-64))
        with cgutils.for_range_slice(builder, line, builder.add(first, row), intp(64)) as (a, _):
            # (address, read, high temporal locality, data cache)
            builder.call(fn, [builder.inttoptr(a, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


prefetch_row: Any = intrinsic(_prefetch_row)  # called as prefetch_row(arr, i) in kernels
