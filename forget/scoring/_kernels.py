"""Numba kernels for scoring compiled trees: parsing, padding, tree traversal, perfect traversal.

Node record of the tree-traversal (TT) pool: ``rec[v] = (feature, cut-off bits, left, right)``
as int32, with ``recf`` a float32 view of the same buffer (the cut-off is ``recf[v, 1]``), so a
visit reads one 16-byte record. Left and right are absolute node indices; a tree is stored in
preorder, so ``left == v + 1``, except at the root of a subtree spliced in
(``TreePool.splice``), whose descendants follow the rest of its tree. A leaf is
``(0, 0.0, v, v)``: it loops on itself, so a step from a leaf stays there and a row can
advance in lock step with others. ``vals[v]`` holds a leaf's class shares (counts / total)
followed by its vote (1.0, or 0.0 for an empty leaf, whose shares are 0.0): adding a
non-voting leaf adds +0.0, which leaves a non-negative sum bitwise unchanged. A forest
compiled from leaf values (scikit-learn's probabilities or regression targets) stores them as
they are, and every leaf votes: the sum over trees is divided by the number of trees, as
scikit-learn's forests do.

The traversal kernels take the pool's arrays as *flat unsigned* views (``rec`` as uint32 and
``recf`` as float32, both 1-d; ``roots`` as uint64). Numba wraps negative indices, so a
signed index costs a compare and a select on every load of the chain from one node to the
next; and it multiplies a 2-d index by the row stride it reads at run time, where a flat
index of the known record size is an address mode. Unsigned and flat, a visit is three loads
and a compare: adult, ns per visited node, ExtraTrees' own forest 5.8 -> 3.8 (unsigned) ->
3.3 (flat), HedgeCut's 4.9 -> 3.0 -> 2.5 (interleaved runs of bench-like kernels, one thread).

Perfect tree traversal (PTT) pads every tree to a perfect tree of depth ``D``: heap order per
tree (children of ``h`` are ``2h + 1`` and ``2h + 2``), ``pnode[t * (2**D - 1) + h]`` as
(feature, cut-off bits), ``pvals[t * 2**D + leaf]`` as in ``vals``. A leaf above depth ``D``
is padded with "always left" nodes (cut-off +inf) and stored at its leftmost descendant.

Every kernel adds the trees' leaf shares in tree order, starting from 0.0, then divides by the
number of voting trees, exactly as the forest's own kernel: the results are bitwise equal.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

OK = 0
BAD_SHAPE = 1  # nodes after the tree is complete, or a tree that ends with open splits

ROWS_AT_ONCE = 8  # rows (or trees) advanced in lock step: independent loads overlap
_REC, _CUT, _LEFT = np.uint64(4), np.uint64(1), np.uint64(2)  # a flat record: size, fields
_PREC, _ZERO, _ONE = np.uint64(2), np.uint64(0), np.uint64(1)  # a flat PTT node; unsigned 0, 1
BLOCK = 128  # PTT: rows scored tree by tree together, one tree's nodes stay in cache


# ---------------------------------------------------------------------------- rows


@njit(cache=True, nogil=True)
def all_finite(X):
    """Whether no value of float array ``X`` (any shape) is NaN or infinite: numpy's
    ``isfinite(X).all()`` without its ~3 us of ufunc calls on the one-row serving path."""
    flat = X.ravel()
    big = flat.dtype.type(np.inf)
    bad = np.int32(0)
    for k in range(flat.size):  # NaN compares false; no early exit, so the loop vectorises
        bad |= np.int32(not np.abs(flat[k]) < big)
    return bad == 0


@njit(cache=True, nogil=True)
def as_float32(X):
    """2-d ``X`` as a new C-ordered float32 array, and whether all of it is finite (a value
    beyond float32's range becomes inf, as numpy's cast, without its overflow warning)."""
    out = np.empty(X.shape, np.float32)
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            out[i, j] = X[i, j]
    return out, all_finite(out)


# ---------------------------------------------------------------------------- compiling


@njit(cache=True, inline="always")
def write_leaf(vals, q, counts, shares):
    """Leaf record ``q``'s values from its class ``counts``: the shares of their total (all
    zero, weight 0, for an empty leaf), or with ``shares`` false the values themselves; the
    last column is the leaf's weight."""
    nc = counts.shape[0]
    if not shares:
        for j in range(nc):
            vals[q, j] = counts[j]
        vals[q, nc] = 1.0
        return
    tot = 0.0
    for j in range(nc):
        tot += counts[j]
    for j in range(nc):
        vals[q, j] = counts[j] / tot if tot > 0 else 0.0
    vals[q, nc] = 1.0 if tot > 0 else 0.0


BAD_FEATURE, NAN_CUTOFF, BAD_LEAF = 1, 2, 3


@njit(cache=True)
def check_structure(a, n_features, signed):
    """The first problem of a tree's structure rows ``a`` (feature, cut-off, leaf values...):
    (``OK``, -1), or (``BAD_FEATURE``, node) for a feature that is not -1 or an integer in
    ``0..n_features - 1``, else (``NAN_CUTOFF``, node) for a split's NaN cut-off, else
    (``BAD_LEAF``, node) for a leaf value that is not finite (or negative, unless
    ``signed``). One pass per kind, in that order (what ``parse_structure`` reports)."""
    m, width = a.shape
    for v in range(m):
        f = a[v, 0]
        if not (np.isfinite(f) and f == np.floor(f) and -1.0 <= f < n_features):
            return BAD_FEATURE, v
    for v in range(m):
        if a[v, 0] >= 0.0 and np.isnan(a[v, 1]):
            return NAN_CUTOFF, v
    for v in range(m):
        if a[v, 0] < 0.0:
            for j in range(2, width):
                x = a[v, j]
                if not np.isfinite(x) or (not signed and x < 0.0):
                    return BAD_LEAF, v
    return OK, -1


@njit(cache=True)
def parse_rows(a, n_features, signed, shares, rec, recf, vals):
    """:func:`check_structure`, then :func:`parse_tree` on the rows' columns, in one call:
    (problem, node, status, depth). Each split's cut-off becomes the largest float32 at or
    below it: rows are compared in float32 (as the forest does), and for a float32 ``x``,
    ``x <= t`` holds exactly when ``x <= round_down32(t)``, so any float64 cut-off keeps its
    meaning (HedgeCut's are float32 already and pass through unchanged)."""
    problem, node = check_structure(a, n_features, signed)
    if problem != OK:
        return problem, node, OK, 0
    m = a.shape[0]
    feat = np.empty(m, np.int32)
    thr32 = np.zeros(m, np.float32)
    for v in range(m):
        if a[v, 0] < 0.0:
            feat[v] = -1
        else:
            feat[v] = np.int32(a[v, 0])
            t = a[v, 1]
            x = np.float32(t)
            if np.float64(x) > t:
                x = np.nextafter(x, np.float32(-np.inf))
            thr32[v] = x
    status, depth = parse_tree(feat, thr32, a[:, 2:], rec, recf, vals, shares)
    return OK, -1, status, depth


@njit(cache=True)
def parse_tree(feat, thr32, counts, rec, recf, vals, shares):
    """Fill ``rec``/``vals`` (local indices) from one preorder tree; return (status, depth).

    ``feat < 0`` marks a leaf. Splits wait on a stack for their right child: the node after a
    leaf is the right child of the deepest split still waiting. With ``shares``, a leaf's row
    holds class counts (its values are counts / total, an empty leaf abstains); without, it
    holds the values themselves, and every leaf votes.
    """
    m = feat.shape[0]
    stack = np.empty(m + 1, np.int64)
    sdepth = np.empty(m + 1, np.int64)
    sp = 0
    depth = 0
    max_depth = 0
    for v in range(m):
        if v > 0:
            if feat[v - 1] >= 0:
                depth += 1  # the left child of the previous node
            elif sp == 0:
                return BAD_SHAPE, 0
            else:
                sp -= 1
                rec[stack[sp], 3] = v
                depth = sdepth[sp] + 1
        max_depth = max(max_depth, depth)
        if feat[v] >= 0:
            rec[v, 0] = feat[v]
            recf[v, 1] = thr32[v]
            rec[v, 2] = v + 1
            stack[sp] = v
            sdepth[sp] = depth
            sp += 1
        else:
            rec[v, 0] = 0
            rec[v, 1] = 0
            rec[v, 2] = v
            rec[v, 3] = v
            write_leaf(vals, v, counts[v], shares)
    if sp != 0 or feat[m - 1] >= 0:
        return BAD_SHAPE, 0
    return OK, max_depth


@njit(cache=True)
def set_leaves(rec, vals, roots, sizes, trees, pos, counts, shares, bad):
    """Write leaf ``pos[i]`` (its index in tree ``trees[i]``'s preorder) from ``counts[i]``
    (class counts with ``shares``, else the values themselves), as :func:`parse_tree` writes
    a leaf. An entry that names no leaf of its tree is left out and ``bad[i]`` set to 1."""
    for i in range(trees.shape[0]):
        t = trees[i]
        p = pos[i]
        q = roots[t] + p
        if p < 0 or p >= sizes[t] or rec[q, 2] != q:
            bad[i] = 1
            continue
        write_leaf(vals, q, counts[i], shares)


@njit(cache=True, nogil=True)
def clear_below(rec, vals, a):
    """Zero the records under record ``a`` (the subtree's below it, by its links) and their
    values; ``a`` itself is left as it is. Returns how many were zeroed."""
    if rec[a, 2] == a:
        return 0
    stack = np.empty(64, np.int64)
    stack[0] = rec[a, 2]
    stack[1] = rec[a, 3]
    sp = 2
    n = 0
    while sp > 0:
        sp -= 1
        v = stack[sp]
        if rec[v, 2] != v:
            if sp + 2 > stack.shape[0]:
                more = np.empty(2 * stack.shape[0], np.int64)
                more[:sp] = stack[:sp]
                stack = more
            stack[sp] = rec[v, 2]
            stack[sp + 1] = rec[v, 3]
            sp += 2
        rec[v, :] = 0
        vals[v, :] = 0.0
        n += 1
    return n


@njit(cache=True)
def preorder(left, right, order):
    """Write the node ids of the tree ``left``/``right`` (children, -1 at a leaf) into
    ``order`` in preorder from node 0; return how many, or -1 when the arrays are not one
    binary tree (a node reached twice, a child out of range, a split with one child)."""
    m = left.shape[0]
    seen = np.zeros(m, np.uint8)
    stack = np.empty(2 * m + 2, np.int64)
    stack[0] = 0
    sp = 1
    k = 0
    while sp > 0:
        sp -= 1
        v = stack[sp]
        if v < 0 or v >= m or seen[v]:
            return -1
        seen[v] = 1
        order[k] = v
        k += 1
        if (left[v] < 0) != (right[v] < 0):
            return -1
        if left[v] >= 0:
            stack[sp] = right[v]  # the left subtree comes out first
            stack[sp + 1] = left[v]
            sp += 2
    return k


@njit(cache=True)
def fill_perfect(rec, recf, vals, root, D, pnode, pnodef, pvals):
    """Pad the tree at ``root`` of the TT pool into one perfect-tree block (already reset)."""
    L = 1 << D
    stack_v = np.empty(2 * D + 2, np.int64)
    stack_h = np.empty(2 * D + 2, np.int64)
    stack_d = np.empty(2 * D + 2, np.int64)
    stack_v[0], stack_h[0], stack_d[0] = root, 0, 0
    sp = 1
    while sp > 0:
        sp -= 1
        v, h, d = stack_v[sp], stack_h[sp], stack_d[sp]
        if rec[v, 2] != v:
            pnode[h, 0] = rec[v, 0]
            pnodef[h, 1] = recf[v, 1]
            stack_v[sp], stack_h[sp], stack_d[sp] = rec[v, 3], 2 * h + 2, d + 1
            stack_v[sp + 1], stack_h[sp + 1], stack_d[sp + 1] = v + 1, 2 * h + 1, d + 1
            sp += 2
        else:
            leaf = (h + 1) * (1 << (D - d)) - 1 - (L - 1)  # leftmost descendant at depth D
            pvals[leaf, :] = vals[v, :]


@njit(cache=True)
def fill_gemm(rec, recf, vals, root, size, A, B, C, Dv, E):
    """One tree of ``size`` nodes as Hummingbird's GEMM matrices (block already reset).

    Internal nodes and leaves are numbered in preorder. ``A[i]`` is node i's feature (the
    one-hot column of X·A), ``B[i]`` its cut-off; ``C[i, l]`` is +1 when leaf l lies left of
    node i, -1 when right; ``Dv[l]`` counts the left turns on leaf l's path, so a row reaches
    leaf l exactly when ``(X·A <= B) @ C == Dv`` at l; ``E[l]`` is the leaf's shares and vote.
    """
    anc = np.empty(size + 1, np.int64)
    turn = np.empty(size + 1, np.int64)
    stack_v = np.empty(size + 1, np.int64)
    stack_d = np.empty(size + 1, np.int64)
    stack_t = np.empty(size + 1, np.int64)
    stack_v[0], stack_d[0], stack_t[0] = root, 0, 0
    sp = 1
    ni = 0
    nl = 0
    while sp > 0:
        sp -= 1
        v, d = stack_v[sp], stack_d[sp]
        if d > 0:
            turn[d - 1] = stack_t[sp]
        if rec[v, 2] != v:
            A[ni] = rec[v, 0]
            B[ni] = recf[v, 1]
            anc[d] = ni
            ni += 1
            stack_v[sp], stack_d[sp], stack_t[sp] = rec[v, 3], d + 1, 1
            stack_v[sp + 1], stack_d[sp + 1], stack_t[sp + 1] = v + 1, d + 1, 0
            sp += 2
        else:
            lefts = 0
            for k in range(d):
                if turn[k] == 0:
                    C[anc[k], nl] = 1.0
                    lefts += 1
                else:
                    C[anc[k], nl] = -1.0
            Dv[nl] = lefts
            E[nl, :] = vals[v, :]
            nl += 1


# ---------------------------------------------------------------------------- tree traversal


@njit(cache=True, inline="always")
def _step(X, i, v, rec, recf):
    """Node v's child for row i; ``rec``/``recf`` flat and unsigned (see the module doc)."""
    b = v * _REC
    return np.uint64(rec[b + _LEFT + np.uint64(X[i, rec[b]] > recf[b + _CUT])])


@njit(cache=True, inline="always")
def _is_leaf(rec, v):
    return rec[v * _REC + _LEFT] == v


@njit(cache=True, inline="always")
def _leaf(X, i, v, rec, recf):
    while not _is_leaf(rec, v):
        v = _step(X, i, v, rec, recf)
    return v


@njit(cache=True, inline="always")
def _add(out, used, vals, i, v):
    nc = out.shape[1]
    for j in range(nc):
        out[i, j] += vals[v, j]
    used[i] += vals[v, nc]


@njit(cache=True, inline="always")
def _done(rec, a0, a1, a2, a3, a4, a5, a6, a7):
    return (
        _is_leaf(rec, a0)
        & _is_leaf(rec, a1)
        & _is_leaf(rec, a2)
        & _is_leaf(rec, a3)
        & _is_leaf(rec, a4)
        & _is_leaf(rec, a5)
        & _is_leaf(rec, a6)
        & _is_leaf(rec, a7)
    )


@njit(cache=True)
def _tt_rows(X, i0, i1, roots, rec, recf, vals, out, used):
    """Rows i0..i1, tree by tree; eight rows descend together (branch-free steps)."""
    for t in range(roots.shape[0]):
        r = roots[t]
        i = i0
        while i + 8 <= i1:
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = r
            while True:
                a0 = _step(X, i, a0, rec, recf)
                a1 = _step(X, i + 1, a1, rec, recf)
                a2 = _step(X, i + 2, a2, rec, recf)
                a3 = _step(X, i + 3, a3, rec, recf)
                a4 = _step(X, i + 4, a4, rec, recf)
                a5 = _step(X, i + 5, a5, rec, recf)
                a6 = _step(X, i + 6, a6, rec, recf)
                a7 = _step(X, i + 7, a7, rec, recf)
                if _done(rec, a0, a1, a2, a3, a4, a5, a6, a7):
                    break
            _add(out, used, vals, i, a0)
            _add(out, used, vals, i + 1, a1)
            _add(out, used, vals, i + 2, a2)
            _add(out, used, vals, i + 3, a3)
            _add(out, used, vals, i + 4, a4)
            _add(out, used, vals, i + 5, a5)
            _add(out, used, vals, i + 6, a6)
            _add(out, used, vals, i + 7, a7)
            i += 8
        while i < i1:
            _add(out, used, vals, i, _leaf(X, i, r, rec, recf))
            i += 1


@njit(cache=True)
def _tt_few(X, i0, i1, roots, rec, recf, vals, out, used):
    """Rows i0..i1 one at a time (a batch too small to walk rows together): eight trees
    descend at once, and a tree that reaches its leaf hands its slot to the next tree, so
    eight loads are always in flight (trees of unequal depths in lock step would leave
    slots idle at their leaves). The leaves are added in tree order: the sum is the
    forest's. Against eight trees in lock step (adult, 100 trees, one row, median): with the
    caches emptied before each row, ExtraTrees' deep trees 288 -> 180 us and HedgeCut's
    274 -> 138 us; warm, 11.2 -> 9.7 us and 3.8 -> 4.3 us (shallow trees gain nothing
    warm: the loads are cheap and the slots' bookkeeping is not). The eight slots are written
    out: one slot's step as an inlined helper returning its state measured 10x slower warm
    (ExtraTrees, 112 against 11.5 us)."""
    T = roots.shape[0]
    leaves = np.empty(T, np.uint64)
    for i in range(i0, i1):
        if T < 8:
            for t in range(T):
                leaves[t] = _leaf(X, i, roots[t], rec, recf)
        else:
            a0, a1, a2, a3 = roots[0], roots[1], roots[2], roots[3]
            a4, a5, a6, a7 = roots[4], roots[5], roots[6], roots[7]
            t0, t1, t2, t3, t4, t5, t6, t7 = 0, 1, 2, 3, 4, 5, 6, 7
            nxt, walking = 8, 8
            while walking:  # each slot: a step; at a leaf, note it and take the next tree
                if t0 >= 0:
                    a0 = _step(X, i, a0, rec, recf)
                    if _is_leaf(rec, a0):
                        leaves[t0] = a0
                        if nxt < T:
                            t0, a0, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t0, walking = -1, walking - 1
                if t1 >= 0:
                    a1 = _step(X, i, a1, rec, recf)
                    if _is_leaf(rec, a1):
                        leaves[t1] = a1
                        if nxt < T:
                            t1, a1, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t1, walking = -1, walking - 1
                if t2 >= 0:
                    a2 = _step(X, i, a2, rec, recf)
                    if _is_leaf(rec, a2):
                        leaves[t2] = a2
                        if nxt < T:
                            t2, a2, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t2, walking = -1, walking - 1
                if t3 >= 0:
                    a3 = _step(X, i, a3, rec, recf)
                    if _is_leaf(rec, a3):
                        leaves[t3] = a3
                        if nxt < T:
                            t3, a3, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t3, walking = -1, walking - 1
                if t4 >= 0:
                    a4 = _step(X, i, a4, rec, recf)
                    if _is_leaf(rec, a4):
                        leaves[t4] = a4
                        if nxt < T:
                            t4, a4, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t4, walking = -1, walking - 1
                if t5 >= 0:
                    a5 = _step(X, i, a5, rec, recf)
                    if _is_leaf(rec, a5):
                        leaves[t5] = a5
                        if nxt < T:
                            t5, a5, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t5, walking = -1, walking - 1
                if t6 >= 0:
                    a6 = _step(X, i, a6, rec, recf)
                    if _is_leaf(rec, a6):
                        leaves[t6] = a6
                        if nxt < T:
                            t6, a6, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t6, walking = -1, walking - 1
                if t7 >= 0:
                    a7 = _step(X, i, a7, rec, recf)
                    if _is_leaf(rec, a7):
                        leaves[t7] = a7
                        if nxt < T:
                            t7, a7, nxt = nxt, roots[nxt], nxt + 1
                        else:
                            t7, walking = -1, walking - 1
        for t in range(T):
            _add(out, used, vals, i, leaves[t])


@njit(cache=True, inline="always")
def _finish(out, used, i0, i1):
    nc = out.shape[1]
    for i in range(i0, i1):
        for j in range(nc):
            out[i, j] = out[i, j] / used[i] if used[i] else 1.0 / nc


@njit(cache=True)
def _tt_block(X, i0, i1, roots, rec, recf, vals, out, used):
    if i1 - i0 >= ROWS_AT_ONCE:
        _tt_rows(X, i0, i1, roots, rec, recf, vals, out, used)
    else:
        _tt_few(X, i0, i1, roots, rec, recf, vals, out, used)
    _finish(out, used, i0, i1)


@njit(cache=True, nogil=True)
def visited_nodes(X, roots, rec, recf):
    """Nodes a traversal of every row through every tree visits, its leaf included."""
    total = 0
    for t in range(roots.shape[0]):
        for i in range(X.shape[0]):
            v = roots[t]
            total += 1
            while not _is_leaf(rec, v):
                v = _step(X, i, v, rec, recf)
                total += 1
    return total


# TT scores the whole batch (one block per thread) with each tree before the next: a tree's
# nodes, pulled into L2 by the first rows, serve all the others. Deep forests outgrow L2 (adult's
# ExtraTrees: 28 MB of records; each tree 0.3 MB), so blocks of 128 rows fetched every tree
# again from L3 for each block: 7.7 ns per visited node at 10,000 rows, 3.9 with one block
# (bench/scoring.py). The rows themselves stream in order and cost little.


@njit(cache=True, nogil=True)  # threads of a server score side by side
def tt_proba(X, roots, rec, recf, vals, nc):
    n = X.shape[0]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    _tt_block(X, 0, n, roots, rec, recf, vals, out, used)
    return out


@njit(cache=True, parallel=True, nogil=True)
def tt_proba_parallel(X, roots, rec, recf, vals, nc, blocks):
    """As ``tt_proba``, the rows cut in ``blocks`` (one per thread) scored side by side."""
    n = X.shape[0]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    k = max(1, min(blocks, n // ROWS_AT_ONCE))
    for b in prange(k):
        _tt_block(X, b * n // k, (b + 1) * n // k, roots, rec, recf, vals, out, used)
    return out


# ---------------------------------------------------------------------------- perfect trees


@njit(cache=True, inline="always")
def _pstep(X, i, h, base, pnode, pnodef):
    """Heap node h's child for row i, in the block at ``base``: h and base uint64, pnode and
    pnodef flat (as the TT pool's views, see the module doc)."""
    g = (base + h) * _PREC
    return h + h + _ONE + np.uint64(X[i, pnode[g]] > pnodef[g + _ONE])


@njit(cache=True, inline="always")
def _padd(out, used, pvals, i, t, h, L):
    _add(out, used, pvals, i, np.uint64(t * L) + h - np.uint64(L - 1))


@njit(cache=True)
def _ptt_rows(X, i0, i1, T, D, pnode, pnodef, pvals, out, used):
    L = 1 << D
    for t in range(T):
        b = np.uint64(t * (L - 1))
        i = i0
        while i + 8 <= i1:
            h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = _ZERO
            for _ in range(D):
                h0 = _pstep(X, i, h0, b, pnode, pnodef)
                h1 = _pstep(X, i + 1, h1, b, pnode, pnodef)
                h2 = _pstep(X, i + 2, h2, b, pnode, pnodef)
                h3 = _pstep(X, i + 3, h3, b, pnode, pnodef)
                h4 = _pstep(X, i + 4, h4, b, pnode, pnodef)
                h5 = _pstep(X, i + 5, h5, b, pnode, pnodef)
                h6 = _pstep(X, i + 6, h6, b, pnode, pnodef)
                h7 = _pstep(X, i + 7, h7, b, pnode, pnodef)
            _padd(out, used, pvals, i, t, h0, L)
            _padd(out, used, pvals, i + 1, t, h1, L)
            _padd(out, used, pvals, i + 2, t, h2, L)
            _padd(out, used, pvals, i + 3, t, h3, L)
            _padd(out, used, pvals, i + 4, t, h4, L)
            _padd(out, used, pvals, i + 5, t, h5, L)
            _padd(out, used, pvals, i + 6, t, h6, L)
            _padd(out, used, pvals, i + 7, t, h7, L)
            i += 8
        while i < i1:
            h = _ZERO
            for _ in range(D):
                h = _pstep(X, i, h, b, pnode, pnodef)
            _padd(out, used, pvals, i, t, h, L)
            i += 1


@njit(cache=True)
def _ptt_few(X, i0, i1, T, D, pnode, pnodef, pvals, out, used):
    L = 1 << D
    n1 = L - 1
    for i in range(i0, i1):
        t = 0
        while t + 8 <= T:
            h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = _ZERO
            for _ in range(D):
                h0 = _pstep(X, i, h0, np.uint64(t * n1), pnode, pnodef)
                h1 = _pstep(X, i, h1, np.uint64((t + 1) * n1), pnode, pnodef)
                h2 = _pstep(X, i, h2, np.uint64((t + 2) * n1), pnode, pnodef)
                h3 = _pstep(X, i, h3, np.uint64((t + 3) * n1), pnode, pnodef)
                h4 = _pstep(X, i, h4, np.uint64((t + 4) * n1), pnode, pnodef)
                h5 = _pstep(X, i, h5, np.uint64((t + 5) * n1), pnode, pnodef)
                h6 = _pstep(X, i, h6, np.uint64((t + 6) * n1), pnode, pnodef)
                h7 = _pstep(X, i, h7, np.uint64((t + 7) * n1), pnode, pnodef)
            _padd(out, used, pvals, i, t, h0, L)
            _padd(out, used, pvals, i, t + 1, h1, L)
            _padd(out, used, pvals, i, t + 2, h2, L)
            _padd(out, used, pvals, i, t + 3, h3, L)
            _padd(out, used, pvals, i, t + 4, h4, L)
            _padd(out, used, pvals, i, t + 5, h5, L)
            _padd(out, used, pvals, i, t + 6, h6, L)
            _padd(out, used, pvals, i, t + 7, h7, L)
            t += 8
        while t < T:
            h = _ZERO
            for _ in range(D):
                h = _pstep(X, i, h, np.uint64(t * n1), pnode, pnodef)
            _padd(out, used, pvals, i, t, h, L)
            t += 1


@njit(cache=True)
def _ptt_block(X, i0, i1, T, D, pnode, pnodef, pvals, out, used):
    if i1 - i0 >= ROWS_AT_ONCE:
        _ptt_rows(X, i0, i1, T, D, pnode, pnodef, pvals, out, used)
    else:
        _ptt_few(X, i0, i1, T, D, pnode, pnodef, pvals, out, used)
    _finish(out, used, i0, i1)


@njit(cache=True, nogil=True)
def ptt_proba(X, T, D, pnode, pnodef, pvals, nc):
    n = X.shape[0]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    for i0 in range(0, n, BLOCK):
        _ptt_block(X, i0, min(n, i0 + BLOCK), T, D, pnode, pnodef, pvals, out, used)
    return out


@njit(cache=True, parallel=True, nogil=True)
def ptt_proba_parallel(X, T, D, pnode, pnodef, pvals, nc):
    n = X.shape[0]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    for b in prange((n + BLOCK - 1) // BLOCK):
        i0 = b * BLOCK
        _ptt_block(X, i0, min(n, i0 + BLOCK), T, D, pnode, pnodef, pvals, out, used)
    return out


@njit(cache=True, nogil=True)
def sum_in_order(V, nc):
    """``V[t, i]`` (shares and vote of tree t for row i) summed over t in order, then averaged."""
    T, n = V.shape[0], V.shape[1]
    out = np.zeros((n, nc))
    used = np.zeros(n)
    for t in range(T):
        for i in range(n):
            for j in range(nc):
                out[i, j] += V[t, i, j]
            used[i] += V[t, i, nc]
    _finish(out, used, 0, n)
    return out
