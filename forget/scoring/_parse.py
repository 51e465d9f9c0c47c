"""Checking one tree's preorder structure and turning it into TT node records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from forget.scoring import _kernels as K


@dataclass(frozen=True)
class ParsedTree:
    """One tree as TT node records with local indices (see ``_kernels``)."""

    rec: np.ndarray  # int32 (m, 4): feature, cut-off bits, left, right
    vals: np.ndarray  # float64 (m, n_classes + 1): leaf shares and vote
    depth: int

    @property
    def size(self) -> int:
        return int(self.rec.shape[0])

    @property
    def n_splits(self) -> int:
        return (self.size - 1) // 2


LEAVES = ("counts", "proba", "values")


def parse_structure(
    enc: ArrayLike, n_classes: int, n_features: int, t: int, leaves: str = "counts"
) -> ParsedTree:
    """Check tree ``t``'s structure (one row per node, preorder) and build its records.

    A split row is ``(feature, cut-off, ...)`` (go left when ``x[feature] <= cut-off``), a
    leaf row ``(-1, ..., tail)``: class counts (``leaves="counts"``), the class
    probabilities the tree predicts there (``"proba"``) or its regression values
    (``"values"``). Raises ValueError, naming the tree and the node.
    """
    try:
        a = np.asarray(enc, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tree {t}: structure must be an array of numbers: {exc}") from exc
    if a.ndim != 2 or a.shape[1] != 2 + n_classes or a.shape[0] == 0:
        raise ValueError(
            f"tree {t}: structure must have shape (nodes, {2 + n_classes}) for {n_classes} "
            f"classes, got {a.shape}"
        )
    a = np.ascontiguousarray(a)
    m = a.shape[0]
    rec = np.zeros((m, 4), np.int32)
    vals = np.zeros((m, n_classes + 1))
    shares = leaves == "counts"
    # checked and parsed in one kernel call (~10 us for 700 nodes; numpy's passes took ~70)
    problem, v, status, depth = K.parse_rows(
        a, n_features, leaves == "values", shares, rec, rec.view(np.float32), vals
    )
    if problem == K.BAD_FEATURE:
        raise ValueError(
            f"tree {t}, node {v}: feature {a[v, 0]!r} is not -1 (a leaf) or in 0..{n_features - 1}"
        )
    if problem == K.NAN_CUTOFF:
        raise ValueError(f"tree {t}, node {v}: the cut-off is NaN")
    if problem == K.BAD_LEAF:
        what = {"counts": "class counts", "proba": "class probabilities"}.get(leaves)
        rule = "finite" if what is None else "finite and >= 0"
        raise ValueError(f"tree {t}, leaf {v}: {what or 'values'} must be {rule}")
    if status != K.OK:
        raise ValueError(
            f"tree {t}: {m} rows are not one binary tree in preorder (every split needs a left "
            "and a right subtree, and nothing may follow the last leaf)"
        )
    return ParsedTree(rec, vals, int(depth))
