"""GEMM: Hummingbird's matrix form of a tree, for shallow trees.

Per tree (internal nodes and leaves padded to ``I`` and ``L`` across trees)::

    S = X·A            the feature each internal node tests (A one-hot, kept as indices)
    T = S <= B         the decision at every internal node (1: left)
    P = T @ C          C[i, l] = +1 / -1 when leaf l lies left / right of node i
    H = P == D         D[l] = left turns on the way to l: the reached leaf, one-hot
    V = H @ E          E[l] = leaf l's shares and vote

then the trees' ``V`` are added in tree order. X·A is a column gather: the same product
without its multiplications, so a row with an overflowed (infinite) feature cannot spread
0·inf = NaN to the other columns. Every product is exact: C and D hold small integers, and
``H @ E`` adds one value to zeros, so the result is bitwise the forest's.
Padding: an unused internal node has C's row zero; an unused leaf has C's column zero and
``D = -1``, which no row reaches.
"""

from __future__ import annotations

import numpy as np

from forget.scoring import _kernels as K
from forget.scoring._tt import TreePool

MAX_CELLS = 1 << 25  # trees × internal nodes × leaves: C's size; deep trees use traversal
_CHUNK_CELLS = 1 << 22  # trees × rows × leaves per step: bounds the temporaries


def cells(n_trees: int, n_splits: int) -> int:
    return n_trees * max(n_splits, 1) * (n_splits + 1)


class GemmMatrices:
    """A (T, I) features, B (T, I) cut-offs, C (T, I, L), D (T, L), E (T, L, n_classes + 1)."""

    def __init__(self, pool: TreePool, n_splits: int) -> None:
        self.n_classes = pool.n_classes
        T = pool.n_trees
        self.generation = 0  # bumped when I and L grow (new arrays)
        self._check(T, n_splits)
        self._alloc(T, n_splits)
        for t in range(T):
            self.fill(pool, t)

    @staticmethod
    def _check(T: int, n_splits: int) -> None:
        if cells(T, n_splits) > MAX_CELLS:
            raise ValueError(
                f"GEMM needs {T} trees × {n_splits} internal nodes × {n_splits + 1} leaves = "
                f"{cells(T, n_splits):,} matrix cells, more than {MAX_CELLS:,}; use tree "
                "traversal ('tt' or 'ptt') for trees this large"
            )

    def _alloc(self, T: int, I: int) -> None:  # noqa: E741
        L = I + 1
        self.A = np.zeros((T, I), np.int64)
        self.B = np.full((T, I), np.inf, np.float32)
        self.C = np.zeros((T, I, L), np.float32)
        self.D = np.full((T, L), -1.0, np.float32)
        self.E = np.zeros((T, L, self.n_classes + 1))

    @property
    def n_splits(self) -> int:
        return int(self.A.shape[1])

    def fill(self, pool: TreePool, t: int) -> None:
        """(Re)write tree t's matrices from the pool; grow I and L first when it needs more."""
        need = (int(pool.sizes[t]) - 1) // 2
        if need > self.n_splits:
            self._widen(pool.n_trees, max(need, self.n_splits + self.n_splits // 4))
        self.A[t] = 0
        self.B[t] = np.inf
        self.C[t] = 0.0
        self.D[t] = -1.0
        self.E[t] = 0.0
        K.fill_gemm(
            pool.rec, pool.recf, pool.vals, pool.roots[t], pool.sizes[t],
            self.A[t], self.B[t], self.C[t], self.D[t], self.E[t],
        )  # fmt: skip

    def _widen(self, T: int, I: int) -> None:  # noqa: E741
        """Pad every tree's block to ``I`` internal nodes (a copy: nothing is recompiled)."""
        self._check(T, I)
        old = (self.A, self.B, self.C, self.D, self.E)
        i0 = old[0].shape[1]
        self._alloc(T, I)
        self.generation += 1
        self.A[:, :i0] = old[0]
        self.B[:, :i0] = old[1]
        self.C[:, :i0, : i0 + 1] = old[2]
        self.D[:, : i0 + 1] = old[3]
        self.E[:, : i0 + 1] = old[4]

    def values(self, X: np.ndarray) -> np.ndarray:
        """V: (T, n, n_classes + 1), every tree's leaf shares and vote for every row."""
        T, I = self.A.shape  # noqa: E741
        n = X.shape[0]
        V = np.empty((T, n, self.n_classes + 1))
        step = max(1, _CHUNK_CELLS // (T * (I + 1)))
        cols = self.A.reshape(-1)
        cutoffs, lefts = self.B[:, None, :], self.D[:, None, :]
        for i0 in range(0, n, step):
            Xc = X[i0 : i0 + step]
            xa = Xc[:, cols].reshape(Xc.shape[0], T, I).transpose(1, 0, 2)
            left = xa <= cutoffs
            p = np.matmul(left.astype(np.float32), self.C)
            V[:, i0 : i0 + step] = np.matmul((p == lefts).astype(np.float64), self.E)
        return V

    def proba(self, X: np.ndarray) -> np.ndarray:
        return K.sum_in_order(self.values(X), self.n_classes)
