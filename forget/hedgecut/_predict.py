"""Scoring rows with the active trees, and the active structure of a tree."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from forget.hedgecut._common import grown


@njit(cache=True, inline="always")
def _leaf(X, i, root, active, feat, thr, child):
    v = root
    while active[v] >= 0:
        c = active[v]
        v = child[v, c, 0 if X[i, feat[v, c]] <= thr[v, c] else 1]
    return v


PREDICT_BLOCK = 128  # rows scored tree by tree together: one tree's nodes stay in cache


@njit(cache=True)
def _proba_block(X, i0, i1, roots, ncls, active, feat, thr, child, out, used):
    """Mean over trees of the leaf class shares for rows i0..i1 (trees summed in order)."""
    nc = ncls.shape[1]
    for t in range(roots.shape[0]):
        root = roots[t]
        for i in range(i0, i1):
            v = _leaf(X, i, root, active, feat, thr, child)
            tot = 0
            for j in range(nc):
                tot += ncls[v, j]
            if tot == 0:
                continue  # a subsampled tree that holds no rows at all: it abstains
            used[i] += 1
            for j in range(nc):
                out[i, j] += ncls[v, j] / tot
    for i in range(i0, i1):
        for j in range(nc):
            out[i, j] = out[i, j] / used[i] if used[i] else 1.0 / nc


@njit(cache=True)
def predict_proba_serial(X, roots, ncls, active, feat, thr, child):
    n = X.shape[0]
    out = np.zeros((n, ncls.shape[1]))
    used = np.zeros(n, dtype=np.int64)
    for i0 in range(0, n, PREDICT_BLOCK):
        _proba_block(
            X, i0, min(n, i0 + PREDICT_BLOCK), roots, ncls, active, feat, thr, child, out, used
        )
    return out


@njit(cache=True, parallel=True)
def predict_proba_parallel(X, roots, ncls, active, feat, thr, child):
    n = X.shape[0]
    out = np.zeros((n, ncls.shape[1]))
    used = np.zeros(n, dtype=np.int64)
    nb = (n + PREDICT_BLOCK - 1) // PREDICT_BLOCK
    for b in prange(nb):
        i0 = b * PREDICT_BLOCK
        _proba_block(
            X, i0, min(n, i0 + PREDICT_BLOCK), roots, ncls, active, feat, thr, child, out, used
        )
    return out


@njit(cache=True)
def active_structure(root, ncls, active, feat, thr, child):
    """Preorder encoding of the active tree: feature and cut-off per split, counts per leaf."""
    return active_structure_order(root, ncls, active, feat, thr, child)[0]


@njit(cache=True)
def active_structure_order(root, ncls, active, feat, thr, child):
    """:func:`active_structure`, and the node behind each of its rows."""
    nc = ncls.shape[1]
    n_out = 0
    stack = np.empty(256, dtype=np.int64)
    stack[0] = root
    sp = 1
    order = np.empty(64, dtype=np.int64)
    while sp > 0:
        sp -= 1
        v = stack[sp]
        if n_out >= order.shape[0]:
            order = grown(order, n_out)
        order[n_out] = v
        n_out += 1
        if active[v] >= 0:
            if sp + 2 >= stack.shape[0]:
                stack = grown(stack, sp)
            c = active[v]
            stack[sp] = child[v, c, 1]
            stack[sp + 1] = child[v, c, 0]
            sp += 2
    enc = np.empty((n_out, 2 + nc))
    for q in range(n_out):
        v = order[q]
        if active[v] >= 0:
            enc[q, 0] = feat[v, active[v]]
            enc[q, 1] = thr[v, active[v]]
            enc[q, 2:] = 0.0
        else:
            enc[q, 0] = -1.0
            enc[q, 1] = 0.0
            for j in range(nc):
                enc[q, 2 + j] = ncls[v, j]
    return enc, order[:n_out]


@njit(cache=True)
def _on_active(v, t, parent, active, child, roots):
    """Whether node v is on tree t's active structure (each parent's active split leads to it)."""
    u = v
    while parent[u] >= 0:
        p = parent[u]
        a = active[p]
        if a < 0 or (child[p, a, 0] != u and child[p, a, 1] != u):
            return False
        u = p
    return u == roots[t]


@njit(cache=True)
def on_active(log, parent, active, child, roots):
    """For each (tree, node) entry of ``log``: whether the node is on its tree's active
    structure (a logged node may have been freed since, and its record used again)."""
    out = np.zeros(log.shape[0], np.bool_)
    for i in range(log.shape[0]):
        out[i] = _on_active(log[i, 1], log[i, 0], parent, active, child, roots)
    return out


@njit(cache=True)
def splice_points(log, parent, active, child, roots):
    """The entries of ``log`` (tree, node: where ``forget`` changed a tree's active structure)
    whose subtrees a compiled form replaces: each node on its tree's active structure with
    no other such logged node above it, once (disjoint subtrees holding every change)."""
    n = log.shape[0]
    live = on_active(log, parent, active, child, roots)
    nodes = np.sort(log[live, 1])
    keep = np.zeros(n, np.bool_)
    for i in range(n):
        if not live[i]:
            continue
        v = log[i, 1]
        top = True
        u = parent[v]
        while u >= 0 and top:
            j = np.searchsorted(nodes, u)
            top = j == nodes.size or nodes[j] != u
            u = parent[u]
        keep[i] = top
    out = np.empty(n, np.int64)
    m = 0
    last = -1
    for i in np.argsort(log[:, 1], kind="mergesort"):  # a node logged twice: once
        if keep[i] and log[i, 1] != last:
            out[m] = i
            m += 1
            last = log[i, 1]
    return np.sort(out[:m])
