"""Numba kernels for exact k-nearest-neighbour search over flat arrays.

The training points live in one ``(d, m)`` float64 array ``X``, feature-major and in *search
order* (leaf by leaf for the KD-tree), so that a leaf is one contiguous block and distances to a
block of rows vectorise across rows. Slot ``t`` (column ``X[:, t]``) holds the row at fit
position ``perm[t]``; ``alive[p]`` says whether position ``p`` is still part of the model and
``ids[p]`` is its external row id. Rows forgotten since the last build are tombstones the
searches skip.

Order of neighbours: ascending squared euclidean distance, ties broken by the smaller row id.
The k nearest are then a pure function of the live (id, point) pairs, whatever their positions,
so a model that forgot rows and one refitted on the rest return the same neighbours. Every
distance is summed the same way (``s = 0; s += (x_j - q_j)**2`` for ``j = 0, 1, ...``, no
fast-math), and the KD-tree prunes a box only when its lower bound is *strictly* above the
current k-th distance (a point at an equal distance may still win on its id); see
:func:`_box_lb` for why that bound is safe in floating point.

These kernels know nothing of estimators.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_NO_ID = np.iinfo(np.int64).max
_CHUNK = 256  # brute force: rows per chunk (256 x 14 features: 28 KiB, in L1/L2 cache)
_STACK = 256  # depth of a median-split tree is ~log2(n / leaf_size); 256 is far beyond any n


@njit(cache=True, inline="always")
def _box_lb(lo, hi, node, q):
    # Rounding is monotone: for lo <= x, fl(lo - q) <= fl(x - q) when q < lo, and so on for the
    # squares and every partial sum in the same order as _scan's. Hence lb <= the distance _scan
    # computes for any point in the box, in floating point too: strict pruning is exact.
    s = 0.0
    for j in range(q.shape[0]):
        if q[j] < lo[node, j]:
            t = lo[node, j] - q[j]
            s += t * t
        elif q[j] > hi[node, j]:
            t = q[j] - hi[node, j]
            s += t * t
    return s


@njit(cache=True)
def _insert(d2, p, rid, k, best_d, best_p, best_id):
    j = k - 1
    while j > 0 and (best_d[j - 1] > d2 or (best_d[j - 1] == d2 and best_id[j - 1] > rid)):
        best_d[j] = best_d[j - 1]
        best_p[j] = best_p[j - 1]
        best_id[j] = best_id[j - 1]
        j -= 1
    best_d[j] = d2
    best_p[j] = p
    best_id[j] = rid


@njit(cache=True)
def _scan(X, ids, alive, perm, t0, t1, q, k, best_d, best_p, best_id, acc):
    """Offer the live rows in slots ``t0:t1`` to the sorted top-k lists (of positions).

    Distances go to ``acc`` a chunk at a time, feature by feature: each row's sum still runs
    over j = 0, 1, ... (so every search gets the same bits), while the loop over rows vectorises.
    """
    last = k - 1
    for c0 in range(t0, t1, _CHUNK):
        m = min(t1 - c0, _CHUNK)
        acc[:m] = 0.0
        for j in range(X.shape[0]):
            qj = q[j]
            row = X[j, c0 : c0 + m]
            for t in range(m):
                u = row[t] - qj
                acc[t] += u * u
        for t in range(m):
            p = perm[c0 + t]
            d2 = acc[t]
            if alive[p] and (d2 < best_d[last] or (d2 == best_d[last] and ids[p] < best_id[last])):
                _insert(d2, p, ids[p], k, best_d, best_p, best_id)


@njit(cache=True)
def _reset(best_d, best_p, best_id):
    best_d[:] = np.inf
    best_p[:] = -1
    best_id[:] = _NO_ID


@njit(cache=True)
def _brute_block(X, ids, alive, perm, Q, k, out_d, out_p, best_id, acc, i0, i1):
    # queries i0:i1 against one chunk of rows at a time: the chunk stays in cache for all of them
    for i in range(i0, i1):
        _reset(out_d[i], out_p[i], best_id[i - i0])
    for c0 in range(0, perm.shape[0], _CHUNK):
        c1 = min(perm.shape[0], c0 + _CHUNK)
        for i in range(i0, i1):
            _scan(X, ids, alive, perm, c0, c1, Q[i], k, out_d[i], out_p[i], best_id[i - i0], acc)


@njit(cache=True)
def _tree_one(X, ids, alive, perm, tree, lo, hi, q, k, best_d, best_p, best_id, st_n, st_lb, acc):
    # tree[:, 0:4] = start, end, left, right (left = -1 at a leaf); visit nearer child first
    _reset(best_d, best_p, best_id)
    st_n[0] = 0
    st_lb[0] = _box_lb(lo, hi, 0, q)
    sp = 1
    while sp > 0:
        sp -= 1
        node = st_n[sp]
        if st_lb[sp] > best_d[k - 1]:
            continue
        left = tree[node, 2]
        if left < 0:
            t0, t1 = tree[node, 0], tree[node, 1]
            _scan(X, ids, alive, perm, t0, t1, q, k, best_d, best_p, best_id, acc)
            continue
        right = tree[node, 3]
        lb_l = _box_lb(lo, hi, left, q)
        lb_r = _box_lb(lo, hi, right, q)
        near, far, lb_near, lb_far = left, right, lb_l, lb_r
        if lb_r < lb_l:
            near, far, lb_near, lb_far = right, left, lb_r, lb_l
        if lb_far <= best_d[k - 1]:
            st_n[sp] = far
            st_lb[sp] = lb_far
            sp += 1
        if lb_near <= best_d[k - 1]:
            st_n[sp] = near
            st_lb[sp] = lb_near
            sp += 1


@njit(cache=True)
def _search_rows(X, perm, tree, lo, hi, ids, alive, Q, k, out_d, out_p, i0, i1):
    best_id = np.empty((i1 - i0, k), dtype=np.int64)
    acc = np.empty(_CHUNK, dtype=np.float64)
    if tree.shape[0] == 0:
        _brute_block(X, ids, alive, perm, Q, k, out_d, out_p, best_id, acc, i0, i1)
        return
    st_n = np.empty(_STACK, dtype=np.int64)
    st_lb = np.empty(_STACK, dtype=np.float64)
    for i in range(i0, i1):
        q, best_d, best_p = Q[i], out_d[i], out_p[i]
        _tree_one(
            X, ids, alive, perm, tree, lo, hi, q, k, best_d, best_p, best_id[0], st_n, st_lb, acc
        )


@njit(cache=True, nogil=True)
def kneighbors_serial(X, perm, tree, lo, hi, ids, alive, Q, k):
    """Squared distances and fit positions of the k nearest live rows, one query at a time.

    ``X, perm, tree, lo, hi`` is the search structure (``tree`` with no rows: brute force).
    """
    out_d = np.empty((Q.shape[0], k), dtype=np.float64)
    out_p = np.empty((Q.shape[0], k), dtype=np.int64)
    _search_rows(X, perm, tree, lo, hi, ids, alive, Q, k, out_d, out_p, 0, Q.shape[0])
    return out_d, out_p


@njit(cache=True, parallel=True, nogil=True)
def kneighbors_parallel(X, perm, tree, lo, hi, ids, alive, Q, k, block=64):
    """As :func:`kneighbors_serial`, blocks of ``block`` queries spread over threads."""
    n = Q.shape[0]
    out_d = np.empty((n, k), dtype=np.float64)
    out_p = np.empty((n, k), dtype=np.int64)
    n_blocks = (n + block - 1) // block
    for b in prange(n_blocks):
        i0 = b * block
        i1 = min(n, i0 + block)
        _search_rows(X, perm, tree, lo, hi, ids, alive, Q, k, out_d, out_p, i0, i1)
    return out_d, out_p


@njit(cache=True, nogil=True)
def build_kdtree(X, live, leaf_size):
    """A KD-tree over the columns ``live`` of ``X``: split on the widest side at the median.

    Returns ``order`` (those columns leaf by leaf: ``X[:, order]`` is the new search order),
    ``tree`` (``n_nodes x 5``: start, end, left, right, parent; slots in that new order), the
    nodes' bounding boxes ``lo``, ``hi`` (``n_nodes x d``) and ``leaf_of`` (slot -> its leaf).
    A node holding only identical points stays a leaf whatever its size.
    """
    n = live.shape[0]
    d = X.shape[0]
    order = live.copy()
    min_leaf = max(1, (leaf_size + 1) // 2)  # children of a split node are at least this big
    cap = 2 * (n // min_leaf) + 1
    tree = np.full((cap, 5), -1, dtype=np.int64)
    lo = np.empty((cap, d), dtype=np.float64)
    hi = np.empty((cap, d), dtype=np.float64)
    todo = np.empty(_STACK, dtype=np.int64)
    tree[0, 0] = 0
    tree[0, 1] = n
    n_nodes = 1
    todo[0] = 0
    top = 1
    while top > 0:
        top -= 1
        node = todo[top]
        s, e = tree[node, 0], tree[node, 1]
        for j in range(d):
            lo[node, j] = np.inf
            hi[node, j] = -np.inf
        for t in range(s, e):
            for j in range(d):
                v = X[j, order[t]]
                lo[node, j] = min(lo[node, j], v)
                hi[node, j] = max(hi[node, j], v)
        dim = 0
        for j in range(1, d):
            if hi[node, j] - lo[node, j] > hi[node, dim] - lo[node, dim]:
                dim = j
        if e - s <= leaf_size or hi[node, dim] == lo[node, dim]:
            continue
        seg = order[s:e].copy()
        vals = np.empty(e - s, dtype=np.float64)
        for t in range(e - s):
            vals[t] = X[dim, seg[t]]
        by_val = np.argsort(vals, kind="mergesort")
        for t in range(e - s):
            order[s + t] = seg[by_val[t]]
        mid = s + (e - s) // 2
        tree[n_nodes, 0], tree[n_nodes, 1] = s, mid
        tree[n_nodes + 1, 0], tree[n_nodes + 1, 1] = mid, e
        todo[top], todo[top + 1] = n_nodes + 1, n_nodes
        top += 2
        tree[node, 2] = n_nodes
        tree[node, 3] = n_nodes + 1
        tree[n_nodes, 4] = tree[n_nodes + 1, 4] = node
        n_nodes += 2
    leaf_of = np.empty(n, dtype=np.int64)
    for node in range(n_nodes):
        if tree[node, 2] < 0:
            leaf_of[tree[node, 0] : tree[node, 1]] = node
    return order, tree[:n_nodes].copy(), lo[:n_nodes].copy(), hi[:n_nodes].copy(), leaf_of


@njit(cache=True, nogil=True)
def shrink_boxes(X, perm, tree, lo, hi, alive, leaf_of, slot):
    """Refit the boxes from ``slot``'s leaf up to the root to the live rows, after a forget.

    A box is the min / max of its live rows' coordinates, so it would otherwise keep the very
    values of a forgotten row. Costs one pass over the leaf plus ``d`` per ancestor; a box left
    without live rows becomes empty (``lo = inf``), which every search prunes.
    """
    node = leaf_of[slot]
    lo[node, :] = np.inf
    hi[node, :] = -np.inf
    for t in range(tree[node, 0], tree[node, 1]):
        if alive[perm[t]]:
            for j in range(X.shape[0]):
                lo[node, j] = min(lo[node, j], X[j, t])
                hi[node, j] = max(hi[node, j], X[j, t])
    node = tree[node, 4]
    while node >= 0:
        left, right = tree[node, 2], tree[node, 3]
        for j in range(X.shape[0]):
            lo[node, j] = min(lo[left, j], lo[right, j])
            hi[node, j] = max(hi[left, j], hi[right, j])
        node = tree[node, 4]


@njit(cache=True, nogil=True)
def aggregate(nb_d2, nb_p, y, n_out, by_class, distance):
    """Per query: class weights (``by_class``, normalised to sum 1) or the weighted mean of ``y``.

    Distance weights are ``1 / distance``; when a query coincides with training points, those get
    weight 1 and the others 0 (scikit-learn's rule). Sums run in neighbour order.
    """
    nq, k = nb_d2.shape
    out = np.zeros((nq, n_out), dtype=np.float64)
    w = np.empty(k, dtype=np.float64)
    for i in range(nq):
        exact = distance and nb_d2[i, 0] == 0.0
        for j in range(k):
            if not distance:
                w[j] = 1.0
            elif exact:
                w[j] = 1.0 if nb_d2[i, j] == 0.0 else 0.0
            else:
                w[j] = 1.0 / np.sqrt(nb_d2[i, j])
        total = 0.0
        acc = 0.0
        for j in range(k):
            total += w[j]
            if by_class:
                out[i, int(y[nb_p[i, j]])] += w[j]
            else:
                acc += w[j] * y[nb_p[i, j]]
        if by_class:
            for c in range(n_out):
                out[i, c] /= total
        else:
            out[i, 0] = acc / total
    return out
