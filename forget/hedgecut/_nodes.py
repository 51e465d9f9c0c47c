"""The forest's node arrays: their memory layout, growth, and the canonical form on write.

The kernels (``_kernels``) work on a tuple of arrays, one per node field; this module allocates
them and drives ``_canon``'s kernels that turn a forest into the form ``to_bytes`` writes.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from forget.hedgecut import _kernels as K

# The node arrays, in the order of the kernels' state tuple S.
NODE_FIELDS = (
    "ncls", "ncand", "feat", "thr", "left", "child", "active", "slack",
    "parent", "link", "depth", "hedge", "path", "start", "stop",
)  # fmt: skip


def alloc_nodes(m: int, k: int, c: int) -> tuple[np.ndarray, ...]:
    """The node arrays of the kernels' state tuple, room for ``m`` nodes.

    What a deletion reads and writes at a node (counts, candidates, children, decision, and the
    links up to the parent that a rebuild follows to find the node's region) lies side by side
    in one int32 record, padded to whole 64-byte lines and aligned to them, so a visit costs one
    or two cache lines instead of one per array; the arrays are strided views into it.

    The records are zeros the process has not touched: the system maps their memory when a
    record is first written, so room for nodes to come costs address space, not memory, and
    growing the arrays (on the deletion that needs the room, with predictions waiting) pays
    only for the nodes in use. A record is written whole before it is read: copied in by the
    caller, or handed out by the builder (``_build.split_n`` and ``_node_stats`` set every
    field, children and decision -1 included).
    """
    w = -(-(c + 6 + 4 * k + k * c) // 16) * 16
    buf = np.zeros(m * w + 16, np.int32)
    skip = (-buf.ctypes.data % 64) // 4  # records start on a line: a 128-byte one spans two
    hot = buf[skip : skip + m * w].reshape(m, w)
    o_feat = c + 6
    o_thr = o_feat + k
    o_left = o_thr + k
    o_child = o_left + k * c
    row = w * hot.itemsize
    left = as_strided(hot[:, o_left:], shape=(m, k, c), strides=(row, c * 4, 4))
    child = as_strided(hot[:, o_child:], shape=(m, k, 2), strides=(row, 8, 4))
    return (
        hot[:, :c],  # ncls
        hot[:, c],  # ncand
        hot[:, o_feat:o_thr],  # feat
        hot.view(np.float32)[:, o_thr:o_left],  # thr
        left,
        child,
        hot[:, c + 1],  # active
        hot[:, c + 2],  # slack
        hot[:, c + 3],  # parent
        hot[:, c + 4],  # link
        hot[:, c + 5],  # depth
        np.zeros(m, np.int32),  # hedge
        np.zeros(m, np.uint64),  # path
        np.zeros(m, np.int64),  # start
        np.zeros(m, np.int64),  # stop
    )


def grow_nodes(S: tuple[np.ndarray, ...], new_m: int) -> tuple[np.ndarray, ...]:
    fresh = alloc_nodes(new_m, S[2].shape[1], S[0].shape[1])
    m = S[0].shape[0]
    for old, new in zip(S, fresh, strict=True):
        new[:m] = old
    return fresh


def _lay_out(
    S: tuple[np.ndarray, ...],
    roots: np.ndarray,
    rows: np.ndarray,
    alive: np.ndarray,
    newpos: np.ndarray,
    prm: np.ndarray,
    spare: tuple[int, int] = (0, 0),
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray, int, int]:
    """The canonical layout of a forest, with ``spare`` (nodes, pool slots) of room after it."""
    order, n_pool = K.preorder(S, roots)
    T = alloc_nodes(order.size + spare[0], int(prm[K.P_K]), int(prm[K.P_C]))
    pool = np.empty(n_pool + spare[1], dtype=np.int32)
    new_roots = np.empty(roots.size, dtype=np.int64)
    K.layout(S, roots, rows, alive, newpos, prm, order, T, pool, new_roots)
    return T, new_roots, pool, order.size, n_pool


def canonical_forest(
    S: tuple[np.ndarray, ...],
    roots: np.ndarray,
    rows: np.ndarray,
    alive: np.ndarray,
    newpos: np.ndarray,
    prm: np.ndarray,
    bounds: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Node arrays, roots and row pool of the canonical form (see ``_canon``), compact.

    ``newpos`` maps positions of live rows to their rows in ``X, y`` (the compacted ones) and
    ``prm`` holds a fit's parameters for those rows.
    """
    if prm[K.P_MAX_VARIANTS] == 0:  # a fit's nodes have no variants
        T, r, pool, used, pool_used = _lay_out(S, roots, rows, alive, newpos, prm)
        if pool_used == int(T[0][r].sum()):  # nor have these: the pool holds each row once
            return T, r, pool
        # subtrees kept beside the ones that superseded them (see ``_forget``): dropped below
    spare = (S[0].shape[0] // 4 + 64, rows.size // 4 + 64)  # for the variants to build
    while True:
        T, r, pool, used, pool_used = _lay_out(S, roots, rows, alive, newpos, prm, spare)
        meta = np.array([used, 0, pool_used, 0, 0], dtype=np.int64)
        free = np.empty(T[0].shape[0], dtype=np.int32)
        status, changed = K.fix_hedges(T, r, X, y, pool, meta, free, prm, bounds)
        if status == K.OK:
            break
        spare = (2 * spare[0], spare[1]) if status == K.NEED_NODES else (spare[0], 2 * spare[1])
    if changed:  # freed and new nodes: lay the result out again
        n = X.shape[0]
        ident = np.arange(n, dtype=np.int64)
        T, r, pool, used, pool_used = _lay_out(T, r, pool, np.ones(n, dtype=np.bool_), ident, prm)
    return tuple(a[:used] for a in T), r, pool[:pool_used]
