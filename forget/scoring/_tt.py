"""Tree traversal (TT): every tree's compact preorder records in one pool, one slot per tree.

The pool is also the compiled forest's source of truth: the perfect-tree and GEMM layouts are
derived from it tree by tree. Every slot has room for its tree to grow by a quarter (memory no
one touches until used). Replacing a tree writes its slot in place when it fits, else
appends a slot with room at the pool's tail (doubling the arrays when full); the old slot
becomes garbage, and the pool is compacted when garbage passes half of it. Either way the
other trees' records are not recompiled (compaction only moves them).

Splicing replaces one subtree of a tree and leaves the rest of its records where they are: the
new subtree's root is written over the old one's record and its descendants after the tree's
last record, in the slot's room; a tree whose room is used up is replaced whole. Superseded
records (a replaced tree's old slot or tail, a spliced-out subtree) are zeroed at once: the
pool holds the counts of no leaf its trees no longer have.
"""

from __future__ import annotations

import numba
import numpy as np

from forget.scoring import _kernels as K
from forget.scoring._parse import ParsedTree


class TreePool:
    """Node records of all trees: ``rec``/``recf``/``vals`` rows, tree t at ``roots[t]``."""

    def __init__(self, trees: list[ParsedTree], n_classes: int) -> None:
        self.n_classes = n_classes
        total = sum(_with_room(tr.size) for tr in trees)
        self._alloc(total)
        T = len(trees)
        self.roots = np.zeros(T, np.int64)
        self.uroots = self.roots.view(np.uint64)
        self.sizes = np.zeros(T, np.int64)
        self.caps = np.zeros(T, np.int64)
        self.depths = np.zeros(T, np.int64)
        self.tail = 0
        self.garbage = 0
        self.generation = 0  # bumped whenever the arrays are reallocated or trees moved
        for t, tr in enumerate(trees):
            self._place(t, tr, self.tail, _with_room(tr.size))
            self.tail += int(self.caps[t])

    def _alloc(self, capacity: int) -> None:
        self.rec = np.zeros((capacity, 4), np.int32)
        self.recf = self.rec.view(np.float32)
        self.flat = self.rec.view(np.uint32).reshape(-1)  # the kernels' views (see _kernels)
        self.flatf = self.recf.reshape(-1)
        self.vals = np.zeros((capacity, self.n_classes + 1))

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.depths.max()) if self.depths.size else 0

    def span(self, t: int) -> slice:
        """Tree t's records."""
        r = int(self.roots[t])
        return slice(r, r + int(self.sizes[t]))

    def _place(self, t: int, tr: ParsedTree, base: int, cap: int) -> None:
        m = tr.size
        self.rec[base : base + m] = tr.rec
        self.rec[base : base + m, 2:] += base  # local child indices to absolute
        self.vals[base : base + m] = tr.vals
        self.roots[t], self.sizes[t], self.caps[t], self.depths[t] = base, m, cap, tr.depth

    def _clear(self, start: int, stop: int) -> None:
        self.rec[start:stop] = 0
        self.vals[start:stop] = 0.0

    def replace(self, t: int, tr: ParsedTree) -> None:
        """Put tree t's new records in place, or in a new slot when they no longer fit."""
        old = self.span(t)
        if tr.size <= self.caps[t]:
            self._place(t, tr, int(self.roots[t]), int(self.caps[t]))
            self._clear(old.start + tr.size, old.stop)
            return
        self._clear(old.start, old.stop)
        cap = _with_room(tr.size)
        self.garbage += int(self.caps[t])
        self.sizes[t] = self.caps[t] = 0  # the old slot is garbage now
        if self.garbage > self.tail // 2:
            self.compact()
        if self.tail + cap > self.rec.shape[0]:
            self._grow(self.tail + cap)
        self._place(t, tr, self.tail, cap)
        self.tail += cap

    def splice(self, t: int, at: int, tr: ParsedTree, depth: int) -> np.ndarray | None:
        """Replace the subtree under tree t's record ``at`` (its index in the slot) by ``tr``,
        whose root lies at ``depth`` in the tree; return the index in the slot of each of
        ``tr``'s records, or None (nothing changed) when the slot has no room for them."""
        r, size, m = int(self.roots[t]), int(self.sizes[t]), tr.size
        if size + m - 1 > self.caps[t]:
            return None
        K.clear_below(self.rec, self.vals, r + at)
        where = np.empty(m, np.int64)  # the root over the old one, the rest after the tree
        where[0] = r + at
        where[1:] = np.arange(r + size, r + size + m - 1)
        rec = tr.rec.copy()
        rec[:, 2:] = where[tr.rec[:, 2:]]  # local child indices to absolute
        self.rec[where] = rec
        self.vals[where] = tr.vals
        self.sizes[t] = size + m - 1
        self.depths[t] = max(int(self.depths[t]), depth + tr.depth)  # at most: never lowered
        return where - r

    def _grow(self, need: int) -> None:
        rec, vals = self.rec, self.vals
        self._alloc(max(need, 2 * rec.shape[0]))
        self.rec[: self.tail] = rec[: self.tail]
        self.vals[: self.tail] = vals[: self.tail]
        self.generation += 1

    def compact(self) -> None:
        """Move every slot to the front, in tree order, dropping garbage."""
        rec, vals = self.rec, self.vals
        self._alloc(max(int(self.caps.sum()), 1))
        base = 0
        for t in range(self.n_trees):
            r, m, cap = int(self.roots[t]), int(self.sizes[t]), int(self.caps[t])
            self.rec[base : base + m] = rec[r : r + m]
            self.rec[base : base + m, 2:] += base - r
            self.vals[base : base + m] = vals[r : r + m]
            self.roots[t] = base
            base += cap
        self.tail = base
        self.garbage = 0
        self.generation += 1

    def proba(self, X: np.ndarray, parallel: bool) -> np.ndarray:
        args = (X, self.uroots, self.flat, self.flatf, self.vals, self.n_classes)
        if parallel:  # one block of rows per thread (see the kernels)
            return K.tt_proba_parallel(*args, numba.get_num_threads())
        return K.tt_proba(*args)


def _with_room(size: int) -> int:
    """A slot's records: the tree's, a quarter more and 16, for it to grow into."""
    return size + size // 4 + 16
