"""What a compiled forest's tree-traversal pool holds, read by its links (for the tests)."""

from __future__ import annotations

import numpy as np


def reached(pool) -> np.ndarray:
    """Which of the pool's records some tree reaches from its root."""
    seen = np.zeros(pool.rec.shape[0], bool)
    stack = [int(pool.roots[t]) for t in range(pool.n_trees) if pool.sizes[t]]
    while stack:
        v = stack.pop()
        seen[v] = True
        if pool.rec[v, 2] != v:
            stack += [int(pool.rec[v, 2]), int(pool.rec[v, 3])]
    return seen


def held_outside_trees(pool) -> int:
    """Records of the pool no tree reaches that hold anything (a superseded tree's or
    subtree's records: a leaf's counts from before a deletion would be there)."""
    out = ~reached(pool)
    return int((pool.rec[out].any(axis=1) | pool.vals[out].any(axis=1)).sum())


def trees_held(pool) -> list[np.ndarray]:
    """Each tree as the pool holds it, in preorder by its links, wherever its records lie:
    one row per node, (feature, cut-off bits, is a leaf, values...)."""
    out = []
    for t in range(pool.n_trees):
        rows, stack = [], [int(pool.roots[t])]
        while stack:
            v = stack.pop()
            leaf = pool.rec[v, 2] == v
            rows.append([*pool.rec[v, :2].tolist(), int(leaf), *pool.vals[v].tolist()])
            if not leaf:
                stack += [int(pool.rec[v, 3]), int(pool.rec[v, 2])]
        out.append(np.array(rows))
    return out
