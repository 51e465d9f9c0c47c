"""Perfect tree traversal (PTT): every tree padded to a perfect tree of one depth ``D``.

Rows go down level by level, ``h = 2h + 1 + (x[feature[h]] > cut-off[h])``, with no test for
leaves: ``D`` steps for every row and tree, branch-free. Each tree owns a fixed block of
``2**D - 1`` nodes and ``2**D`` leaves, so replacing a tree refills its block only; a tree
deeper than ``D`` makes the layout regrow to the new depth (every block re-padded from the TT
pool, which holds the compiled trees).
"""

from __future__ import annotations

import numpy as np

from forget.scoring import _kernels as K
from forget.scoring._tt import TreePool

MAX_DEPTH = 16  # 2**16 leaves per tree; deeper trees are for tree traversal


def nbytes(n_trees: int, depth: int, n_classes: int) -> int:
    """Bytes of a PTT layout."""
    return n_trees * ((2**depth - 1) * 8 + 2**depth * (n_classes + 1) * 8)


class PerfectTrees:
    """``pnode``/``pnodef``: (feature, cut-off) per heap node; ``pvals``: leaf shares, vote."""

    def __init__(self, pool: TreePool, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise ValueError(
                f"perfect tree traversal pads trees to depth {depth}, more than {MAX_DEPTH} "
                "(2**depth leaves per tree); use tree traversal ('tt') for deep trees"
            )
        self.depth = depth
        self.generation = 0  # a deeper tree makes a new layout, never new arrays in this one
        self.n_classes = pool.n_classes
        T, L = pool.n_trees, 1 << depth
        self.pnode = np.empty((T * (L - 1), 2), np.int32)
        self.pnodef = self.pnode.view(np.float32)
        self.flat = self.pnode.view(np.uint32).reshape(-1)  # the kernels' views (see _kernels)
        self.flatf = self.pnodef.reshape(-1)
        self.pvals = np.empty((T * L, self.n_classes + 1))
        for t in range(T):
            self.fill(pool, t)

    def node_span(self, t: int) -> slice:
        n1 = (1 << self.depth) - 1
        return slice(t * n1, (t + 1) * n1)

    def leaf_span(self, t: int) -> slice:
        L = 1 << self.depth
        return slice(t * L, (t + 1) * L)

    def fill(self, pool: TreePool, t: int) -> None:
        """(Re)pad tree t from the pool into its block."""
        ns, ls = self.node_span(t), self.leaf_span(t)
        self.pnode[ns, 0] = 0
        self.pnodef[ns, 1] = np.inf  # padding always goes left
        self.pvals[ls] = 0.0
        K.fill_perfect(
            pool.rec, pool.recf, pool.vals, pool.roots[t], self.depth,
            self.pnode[ns], self.pnodef[ns], self.pvals[ls],
        )  # fmt: skip

    def proba(self, X: np.ndarray, parallel: bool) -> np.ndarray:
        kernel = K.ptt_proba_parallel if parallel else K.ptt_proba
        T = self.pvals.shape[0] >> self.depth
        return kernel(X, T, self.depth, self.flat, self.flatf, self.pvals, self.n_classes)
