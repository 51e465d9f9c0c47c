"""Quantized tree traversal (QTT): rows as bin indices of the forest's own cut-offs.

For each feature ``f`` the forest's distinct float32 cut-offs, sorted, are its bin edges
``e_0 < ... < e_{k-1}``. A row's value ``x`` becomes its bin ``b = #{e_j < x}``
(``np.searchsorted(edges, x, side="left")``), and a split on ``(f, e_j)`` sends ``x`` left,
``x <= e_j``, exactly when ``b <= j``: the bins lose nothing a tree can see, so every leaf,
and every vote and probability, is bitwise the float traversal's. Rows are binned once per
batch (``d`` binary searches per row), then the trees compare small integers.

A node is 8 bytes, two int32 aligned with the TT pool's records (``_tt``): ``q[v, 0]`` packs
``cut << fbits | feature`` where ``cut = j + 1`` (go right when ``b >= cut``) and ``fbits``
bits hold a feature index; ``q[v, 1]`` is the right child (the left is ``v + 1``). A leaf is
``(0, v)``: ``b >= 0`` always holds, so it steps to itself, as in the TT pool. Leaf values
are the pool's ``vals``, shared. The bins of a batch are one unsigned dtype for the whole
model: uint8 when no feature has more than 255 cut-offs, else uint16, else uint32.

After a refresh, a changed tree whose cut-offs are all edges already is re-encoded alone;
a new cut-off rebuilds the edges (dropping those no tree uses any more) and re-encodes
every node, a pass over the records, not a recompilation of the trees.
"""

from __future__ import annotations

from collections.abc import Iterable

import numba
import numpy as np
from numba import njit, prange

from forget.scoring import _kernels as K
from forget.scoring._tt import TreePool

# ---------------------------------------------------------------------------- kernels


@njit(cache=True, inline="always")
def _rank(edges, lo, hi, x):
    """How many of ``edges[lo:hi]`` (sorted) are below ``x``: ``searchsorted(side="left")``."""
    base, n = lo, hi - lo
    while n > 0:
        half = n >> 1
        if edges[base + half] < x:
            base += half + 1
            n -= half + 1
        else:
            n = half
    return base - lo


@njit(cache=True, nogil=True)
def binarize(X, edges, offs, B):
    """``B[i, f]``: the bin of ``X[i, f]`` among feature f's edges ``edges[offs[f]:offs[f+1]]``."""
    for i in range(X.shape[0]):
        for f in range(X.shape[1]):
            B[i, f] = _rank(edges, offs[f], offs[f + 1], X[i, f])


@njit(cache=True, nogil=True)
def encode(rec, recf, lo, hi, edges, offs, fbits, q):
    """Records ``lo..hi`` of the TT pool as QTT nodes; the number of cut-offs not in edges."""
    missing = 0
    for v in range(lo, hi):
        if rec[v, 2] == v:
            q[v, 0] = 0
            q[v, 1] = v
            continue
        f = rec[v, 0]
        t = recf[v, 1]
        j = _rank(edges, offs[f], offs[f + 1], t)
        if offs[f] + j == offs[f + 1] or edges[offs[f] + j] != t:
            missing += 1
            continue
        q[v, 0] = ((j + 1) << fbits) | f
        q[v, 1] = rec[v, 3]
    return missing


@njit(cache=True, inline="always")
def _step(B, i, v, q, fmask, fbits):
    w = q[v, 0]
    go = np.int64(B[i, w & fmask] >= (w >> fbits))
    return v + 1 + go * (np.int64(q[v, 1]) - v - 1)  # arithmetic, not a branch


@njit(cache=True, inline="always")
def _done(q, a0, a1, a2, a3, a4, a5, a6, a7):
    return (
        (q[a0, 1] == a0)
        & (q[a1, 1] == a1)
        & (q[a2, 1] == a2)
        & (q[a3, 1] == a3)
        & (q[a4, 1] == a4)
        & (q[a5, 1] == a5)
        & (q[a6, 1] == a6)
        & (q[a7, 1] == a7)
    )


@njit(cache=True, inline="always")
def _leaf(B, i, v, q, fmask, fbits):
    while q[v, 1] != v:
        v = _step(B, i, v, q, fmask, fbits)
    return v


@njit(cache=True)
def _rows(B, o, roots, q, fbits, vals, out, used):
    """Rows of ``B`` (rows ``o..`` of ``out``), tree by tree; eight rows descend together."""
    n, fmask = B.shape[0], (1 << fbits) - 1
    for t in range(roots.shape[0]):
        r = roots[t]
        i = 0
        while i + 8 <= n:
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = r
            while True:
                a0 = _step(B, i, a0, q, fmask, fbits)
                a1 = _step(B, i + 1, a1, q, fmask, fbits)
                a2 = _step(B, i + 2, a2, q, fmask, fbits)
                a3 = _step(B, i + 3, a3, q, fmask, fbits)
                a4 = _step(B, i + 4, a4, q, fmask, fbits)
                a5 = _step(B, i + 5, a5, q, fmask, fbits)
                a6 = _step(B, i + 6, a6, q, fmask, fbits)
                a7 = _step(B, i + 7, a7, q, fmask, fbits)
                if _done(q, a0, a1, a2, a3, a4, a5, a6, a7):
                    break
            K._add(out, used, vals, o + i, a0)
            K._add(out, used, vals, o + i + 1, a1)
            K._add(out, used, vals, o + i + 2, a2)
            K._add(out, used, vals, o + i + 3, a3)
            K._add(out, used, vals, o + i + 4, a4)
            K._add(out, used, vals, o + i + 5, a5)
            K._add(out, used, vals, o + i + 6, a6)
            K._add(out, used, vals, o + i + 7, a7)
            i += 8
        while i < n:
            K._add(out, used, vals, o + i, _leaf(B, i, r, q, fmask, fbits))
            i += 1


@njit(cache=True)
def _few(B, o, roots, q, fbits, vals, out, used):
    """Rows one at a time; eight trees descend together (a batch too small for rows)."""
    T, fmask = roots.shape[0], (1 << fbits) - 1
    for i in range(B.shape[0]):
        t = 0
        while t + 8 <= T:
            a0, a1, a2, a3 = roots[t], roots[t + 1], roots[t + 2], roots[t + 3]
            a4, a5, a6, a7 = roots[t + 4], roots[t + 5], roots[t + 6], roots[t + 7]
            while True:
                a0 = _step(B, i, a0, q, fmask, fbits)
                a1 = _step(B, i, a1, q, fmask, fbits)
                a2 = _step(B, i, a2, q, fmask, fbits)
                a3 = _step(B, i, a3, q, fmask, fbits)
                a4 = _step(B, i, a4, q, fmask, fbits)
                a5 = _step(B, i, a5, q, fmask, fbits)
                a6 = _step(B, i, a6, q, fmask, fbits)
                a7 = _step(B, i, a7, q, fmask, fbits)
                if _done(q, a0, a1, a2, a3, a4, a5, a6, a7):
                    break
            K._add(out, used, vals, o + i, a0)  # in tree order: the sum is the forest's
            K._add(out, used, vals, o + i, a1)
            K._add(out, used, vals, o + i, a2)
            K._add(out, used, vals, o + i, a3)
            K._add(out, used, vals, o + i, a4)
            K._add(out, used, vals, o + i, a5)
            K._add(out, used, vals, o + i, a6)
            K._add(out, used, vals, o + i, a7)
            t += 8
        while t < T:
            K._add(out, used, vals, o + i, _leaf(B, i, roots[t], q, fmask, fbits))
            t += 1


@njit(cache=True)
def _block(X, i0, i1, edges, offs, B, roots, q, fbits, vals, out, used):
    """Bin rows ``i0..i1`` into ``B`` (their bins), score them, finish their means."""
    binarize(X[i0:i1], edges, offs, B)
    if i1 - i0 >= K.ROWS_AT_ONCE:
        _rows(B, i0, roots, q, fbits, vals, out, used)
    else:
        _few(B, i0, roots, q, fbits, vals, out, used)
    K._finish(out, used, i0, i1)


# As the float traversal, the whole batch (one block per thread) meets each tree before the
# next: blocks of 1,024 rows fetched ExtraTrees' 18 MB of nodes ten times from L3 and scored
# 10,000 adult rows 1.5x slower than one block (bench/scoring_quantized.py).


@njit(cache=True, nogil=True)
def qtt_proba(X, edges, offs, B, roots, q, fbits, vals, nc):
    """The forest's mean over trees for rows ``X`` (float32); ``B`` holds their bins."""
    n = X.shape[0]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    _block(X, 0, n, edges, offs, B, roots, q, fbits, vals, out, used)
    return out


@njit(cache=True, parallel=True, nogil=True)
def qtt_proba_parallel(X, edges, offs, B, roots, q, fbits, vals, nc, blocks):
    """As ``qtt_proba``, the rows cut in ``blocks`` (one per thread) scored side by side."""
    n = X.shape[0]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    k = max(1, min(blocks, n // K.ROWS_AT_ONCE))
    for b in prange(k):
        i0, i1 = b * n // k, (b + 1) * n // k
        _block(X, i0, i1, edges, offs, B[i0:i1], roots, q, fbits, vals, out, used)
    return out


# ---------------------------------------------------------------------------- the layout


def bin_dtype(most_edges: int) -> type[np.unsignedinteger]:
    """The smallest unsigned dtype that holds bins ``0..most_edges``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if most_edges <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"{most_edges:,} cut-offs on one feature: too many to quantize")


class QuantizedTrees:
    """Bin edges per feature (``edges``, feature f's at ``offs[f]:offs[f+1]``) and the
    8-byte nodes ``q`` aligned with the TT pool's records."""

    def __init__(self, pool: TreePool, n_features: int) -> None:
        self.pool = pool
        self.n_features = n_features
        self.fbits = max(0, (n_features - 1).bit_length())
        self.n_classes = pool.n_classes
        self.rebuild()

    def rebuild(self) -> None:
        """Edges from every tree's cut-offs, then every tree encoded."""
        pool = self.pool
        feats, cuts = [], []
        for t in range(pool.n_trees):
            s = pool.span(t)
            split = pool.rec[s, 2] != np.arange(s.start, s.stop)
            feats.append(pool.rec[s, 0][split])
            cuts.append(pool.recf[s, 1][split])
        f = np.concatenate(feats).astype(np.int64)
        c = np.concatenate(cuts).astype(np.float32)
        order = np.lexsort((c, f))
        f, c = f[order], c[order]
        keep = np.ones(f.size, bool)
        keep[1:] = (f[1:] != f[:-1]) | (c[1:] != c[:-1])  # -0.0 == 0.0: one edge
        f, c = f[keep], c[keep]
        counts = np.bincount(f, minlength=self.n_features)
        most = int(counts.max()) if counts.size else 0
        if (most + 1) << self.fbits >= 2**31:
            raise ValueError(
                f"{most:,} cut-offs on one feature of {self.n_features}: too many to quantize"
            )
        self.dtype = bin_dtype(most)
        self.edges = np.ascontiguousarray(c)
        self.offs = np.zeros(self.n_features + 1, np.int64)
        np.cumsum(counts, out=self.offs[1:])
        self.q = np.zeros((pool.rec.shape[0], 2), np.int32)
        self.generation = pool.generation
        for t in range(pool.n_trees):
            self._encode(t)

    def _encode(self, t: int) -> int:
        pool = self.pool
        s = pool.span(t)
        return int(
            encode(pool.rec, pool.recf, s.start, s.stop, self.edges, self.offs, self.fbits, self.q)
        )

    def refresh(self, trees: Iterable[int]) -> None:
        """Re-encode the trees replaced in the pool; rebuild when a cut-off is new, or when
        the pool moved its records."""
        if self.pool.generation != self.generation:
            self.rebuild()
            return
        for t in trees:
            if self._encode(t):
                self.rebuild()
                return

    @property
    def nbytes(self) -> int:
        """Bytes of the nodes (allocated, as the pool's) and edges; leaf values are shared."""
        return int(self.q.nbytes + self.edges.nbytes + self.offs.nbytes)

    def proba(self, X: np.ndarray, parallel: bool) -> np.ndarray:
        pool = self.pool
        B = np.empty(X.shape, self.dtype)
        args = (X, self.edges, self.offs, B, pool.roots, self.q, self.fbits, pool.vals)
        if parallel:  # one block of rows per thread
            return qtt_proba_parallel(*args, self.n_classes, numba.get_num_threads())
        return qtt_proba(*args, self.n_classes)
