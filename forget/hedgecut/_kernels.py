"""Numba kernels for the HedgeCut forest, over flat node arrays.

Training is a pure function of (rows, seed, feature bounds): at every node the candidate
splits (features and cut-offs) come from a hash of (seed, tree, path) and the node's *region*
(the box its ancestors' cuts leave), never from the node's data. Only the choice among the
candidates depends on data, through integer class counts. Every decision node keeps those
counts, so ``forget`` can decrement them and re-check the decision with the very function that
took it at fit time; the forest after ``forget(S)`` is the forest ``fit(D \\ S)`` would build.

Node state (``S``, one tuple of arrays; index ``v`` is a node):

======  ============  ===========================================================
ncls    int32[M, C]   class counts of the node's live rows
ncand   int8[M]       K for decision nodes, 0 for final leaves (pure, too small,
                      max depth: deletions can never change them), -1 when freed
feat    int32[M, K]   candidate features
thr     float32[M,K]  candidate cut-offs (``x <= thr`` goes left)
left    int32[M,K,C]  class counts on the left of each candidate
child   int32[M,K,2]  subtree of each candidate: the active one, plus hedged
                      *variants* of runners-up; -1 where none is built
active  int32[M]      winning candidate, -1 when the node is a leaf
slack   int32[M]      deletions through the node that provably cannot change its
                      decision (robustness); re-checked exactly when it runs out
parent  int32[M]      parent node (-1 for a root)
link    int32[M]      2 * candidate index at the parent + side (0 left, 1 right)
depth   int32[M]      depth (root 0)
hedge   int32[M]      number of variant edges on the path from the root
path    uint64[M]     hash of (seed, tree, left/right turns): keys the randomness
start   int64[M]      the node's rows are ``rows[start:stop]`` (dead rows included;
stop    int64[M]      ``alive`` filters them)
======  ============  ===========================================================

``meta`` holds counters: nodes used, free-list length, pool used, pending rebuilds.
``prm`` holds the integer parameters (see the ``P_*`` indices below).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# prm indices
(
    P_K,
    P_C,
    P_MIN_LEAF,
    P_MAX_DEPTH,
    P_SEED,
    P_BUDGET,
    P_HEDGE_MIN,
    P_MAX_VARIANTS,
    P_MAX_HEDGE,
    P_N,
    P_RANDOM_DEPTH,
    P_SAMPLE,
) = range(12)
N_PRM = 12
# meta indices
M_TAIL, M_NFREE, M_POOL, M_NPENDING = range(4)

OK = 0
NEED_NODES = 1
NEED_POOL = 2

BIG = 1 << 30
TOL = 1e-9  # a split must beat the parent by TOL * n (in purity units) to count as a gain
EPS = 1e-7  # float guard in robustness margins, times n
SLACK_MIN_N = 64  # below this many rows, forget re-checks the decision at every deletion

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_U53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always")
def _mix(z):
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def root_path(seed, tree):
    return _mix(np.uint64(seed) ^ _mix(np.uint64(tree) + np.uint64(1)))


@njit(cache=True, inline="always")
def in_tree(seed, tree, row_id, sample):
    """Whether the row named ``row_id`` trains ``tree``: keyed by the id, so a refit agrees."""
    h = _mix(root_path(seed, tree) ^ _mix(np.uint64(row_id)))
    return (h >> np.uint64(32)) < np.uint64(sample)


@njit(cache=True)
def tree_rows(seed, tree, ids, sample):
    """Positions of the rows that train ``tree``."""
    out = np.empty(ids.shape[0], dtype=np.int32)
    n = 0
    for i in range(ids.shape[0]):
        if in_tree(seed, tree, ids[i], sample):
            out[n] = i
            n += 1
    return out[:n]


@njit(cache=True, inline="always")
def _child_path(p, side):
    return _mix(p + np.uint64(side + 1))


@njit(cache=True, inline="always")
def _beta(s):
    # Largest change of sum_j c_j^2 / s when one row leaves a set of s rows: (s+1)/(s-1).
    if s < 2:
        return 3.0
    return (s + 1.0) / (s - 1.0)


# ----------------------------------------------------------------------------- decisions


@njit(cache=True, inline="always")
def _node_n(ncls, v):
    n = 0
    mx = 0
    for j in range(ncls.shape[1]):
        c = ncls[v, j]
        n += c
        if c > mx:
            mx = c
    return n, mx


@njit(cache=True, inline="always")
def _parent_score(ncls, v, n):
    s = 0.0
    for j in range(ncls.shape[1]):
        c = float(ncls[v, j])
        s += c * c
    return s / n


@njit(cache=True, inline="always")
def _cand_score(ncls, left, v, c, n):
    """(purity score, left size, right size); higher score = larger Gini gain."""
    nl = 0
    sl = 0.0
    sr = 0.0
    for j in range(ncls.shape[1]):
        a = left[v, c, j]
        b = ncls[v, j] - a
        nl += a
        sl += float(a) * a
        sr += float(b) * b
    nr = n - nl
    if nl == 0 or nr == 0:
        return 0.0, nl, nr
    return sl / nl + sr / nr, nl, nr


@njit(cache=True)
def decide(ncls, left, v, k, m, rnd):
    """The winning candidate of node ``v``, or -1 for a leaf. The one rule, at fit and forget.

    Greedy nodes take the candidate of largest Gini gain (ties: lowest index). Random nodes
    (``rnd``, the top levels) take the first *balanced* candidate (each side at least an eighth
    of the rows), which few deletions can change, and fall back to greedy when none is.
    """
    n, mx = _node_n(ncls, v)
    if n < 2 * m or mx == n:
        return -1
    if rnd:
        for c in range(k):
            nl = 0
            for j in range(ncls.shape[1]):
                nl += left[v, c, j]
            lo = min(nl, n - nl)
            if lo >= m and 8 * lo >= n:
                return c
    best = -1
    best_s = _parent_score(ncls, v, n) + TOL * n
    for c in range(k):
        s, nl, nr = _cand_score(ncls, left, v, c, n)
        if nl >= m and nr >= m and s > best_s:
            best = c
            best_s = s
    return best


@njit(cache=True)
def slack_of(ncls, left, v, k, m, b, rnd):
    """How many deletions through ``v`` provably leave its decision ``b`` unchanged.

    Each deletion moves a candidate's score by at most ``beta`` of the side it leaves and the
    parent score by ``beta(n)``; the decision holds while every margin stays positive. A node
    becoming too small or pure is not counted here: ``forget_rows`` checks that at every visit
    (it is cheap, and the only change it allows is to a leaf). At a
    random node, balance (8 * smaller side >= n) must also hold for the chosen candidate and
    stay out of reach for the ones before it.
    """
    n, mx = _node_n(ncls, v)
    if rnd and n >= 2 * m and mx < n:
        r = BIG
        for c in range(k):
            nl = 0
            for j in range(ncls.shape[1]):
                nl += left[v, c, j]
            lo = min(nl, n - nl)
            if lo < m:
                continue  # invalid stays invalid
            if 8 * lo >= n:  # the first balanced candidate: the one chosen
                return max(0, min(r, (8 * lo - n) // 7, lo - m))
            r = min(r, n - 8 * lo - 1)  # deletions on its larger side could balance it
        return max(0, min(r, _greedy_slack(ncls, left, v, k, m, b, n, mx)))
    return _greedy_slack(ncls, left, v, k, m, b, n, mx)


@njit(cache=True)
def _greedy_slack(ncls, left, v, k, m, b, n, mx):
    p = _parent_score(ncls, v, n) + TOL * n
    eps = EPS * (n + 1)
    if b < 0:
        r = BIG
        bp = _beta(n // 2)
        for c in range(k):
            s, nl, nr = _cand_score(ncls, left, v, c, n)
            if nl < m or nr < m:
                continue  # invalid candidates stay invalid: sides only shrink
            margin = p - s - eps
            if margin <= 0.0:
                return 0
            bc = max(_beta(nl // 2), _beta(nr // 2))
            rc = int(margin / (bc + bp + TOL))
            # beta taken at half the side sizes: valid only while r <= size / 2
            rc = min(rc, nl // 2, nr // 2, n // 2)
            r = min(r, rc)
        return max(r, 0)
    sb, nlb, nrb = _cand_score(ncls, left, v, b, n)
    r = min(nlb - m, nrb - m)
    if r <= 0:
        return 0
    bb = max(_beta(nlb - r), _beta(nrb - r))
    bp = _beta(n - r)
    margin = sb - p - eps
    if margin <= 0.0:
        return 0
    r = min(r, int(margin / (bb + bp + TOL)))
    r0 = r
    for c in range(k):
        if c == b:
            continue
        s, nl, nr = _cand_score(ncls, left, v, c, n)
        if nl < m or nr < m:
            continue
        bc = max(_beta(nl - r0), _beta(nr - r0))
        margin = sb - s - eps
        if margin <= 0.0:
            return 0
        r = min(r, int(margin / (bb + bc)))
    return max(r, 0)


@njit(cache=True)
def _alternatives(ncls, left, v, k, m, b, budget, max_variants, out):
    """Runners-up that ``budget`` deletions could make win: the candidates worth hedging."""
    n, _ = _node_n(ncls, v)
    p = _parent_score(ncls, v, n) + TOL * n
    eps = EPS * (n + 1)
    if b >= 0:
        sb, nlb, nrb = _cand_score(ncls, left, v, b, n)
        bb = max(_beta(nlb - budget), _beta(nrb - budget))
        ref = sb
    else:
        bb = _beta(n - budget)
        ref = p
    cnt = 0
    scores = np.empty(k)
    for c in range(k):
        if c == b:
            continue
        s, nl, nr = _cand_score(ncls, left, v, c, n)
        if nl < m or nr < m:
            continue
        bc = max(_beta(nl - budget), _beta(nr - budget))
        if ref - s <= budget * (bb + bc + TOL) + eps:
            out[cnt] = c
            scores[cnt] = s
            cnt += 1
    # keep the strongest max_variants (insertion sort by score, descending)
    for i in range(1, cnt):
        j = i
        while j > 0 and scores[j] > scores[j - 1]:
            scores[j], scores[j - 1] = scores[j - 1], scores[j]
            out[j], out[j - 1] = out[j - 1], out[j]
            j -= 1
    return min(cnt, max_variants)


# ----------------------------------------------------------------------------- building


@njit(cache=True)
def _alloc_node(meta, free, cap):
    if meta[M_NFREE] > 0:
        meta[M_NFREE] -= 1
        return free[meta[M_NFREE]]
    if meta[M_TAIL] < cap:
        v = meta[M_TAIL]
        meta[M_TAIL] += 1
        return v
    return -1


@njit(cache=True, inline="always")
def _knot_u(knots, f, x, upper):
    """Position in [0, 1] of value x on feature f's knot scale.

    The cut-off distribution of a feature is piecewise linear between its knots (quantiles of
    the training data, or just (low, high)). ``upper`` picks the last position whose value is
    <= x (else the first whose value is >= x), so draws between the two stay inside [lo, hi].
    """
    q = knots.shape[1]
    a = 0
    b = q
    while a < b:  # first knot > x (upper) or >= x (lower)
        mid = (a + b) >> 1
        if knots[f, mid] > x or (not upper and knots[f, mid] == x):
            b = mid
        else:
            a = mid + 1
    j = a
    if j == 0:
        return 0.0
    if j == q:
        return 1.0
    k0 = knots[f, j - 1]
    k1 = knots[f, j]
    return (j - 1 + (x - k0) / (k1 - k0)) / (q - 1)


@njit(cache=True, inline="always")
def _knot_value(knots, f, u):
    q = knots.shape[1]
    p = u * (q - 1)
    i = min(int(p), q - 2)
    return knots[f, i] + (p - i) * (knots[f, i + 1] - knots[f, i])


@njit(cache=True)
def region_of(S, v, knots, reg):
    """Fill reg[f] = (low, high), the box that v's ancestors' cuts leave inside the knots."""
    parent, link, feat, thr = S[8], S[9], S[2], S[3]
    for f in range(knots.shape[0]):
        reg[f, 0] = knots[f, 0]
        reg[f, 1] = knots[f, knots.shape[1] - 1]
    u = v
    while parent[u] >= 0:
        q = parent[u]
        c = link[u] >> 1
        f = feat[q, c]
        t = float(thr[q, c])
        if link[u] & 1 == 0:
            reg[f, 1] = min(reg[f, 1], t)
        else:
            reg[f, 0] = max(reg[f, 0], t)
        u = q


@njit(cache=True)
def _draw_candidates(S, v, prm, knots, perm, reg):
    """Candidates of node v from (seed, tree, path) and the node's region only.

    ``reg[f]`` is the node's region (low, high) on feature f. A cut-off is uniform either in
    that range or on the knot scale between its bounds (dense where the training data was
    dense): never dependent on the rows the node holds now.
    """
    (
        ncls,
        ncand,
        feat,
        thr,
        left,
        child,
        active,
        slack,
        parent,
        link,
        depth,
        hedge,
        path,
        start,
        stop,
    ) = S
    k = prm[P_K]
    d = knots.shape[0]
    for i in range(d):
        perm[i] = i
    state = path[v]
    for i in range(k):
        state = _mix(state)
        j = i + int(state % np.uint64(d - i))
        perm[i], perm[j] = perm[j], perm[i]
    for i in range(k):
        f = perm[i]
        lo = reg[f, 0]
        hi = reg[f, 1]
        state = _mix(state)
        x = float(state >> _S11) * _U53
        feat[v, i] = f
        if state & np.uint64(1):
            # uniform in the value range: finds cuts in sparse tails (capital gains)
            thr[v, i] = np.float32(lo + x * (hi - lo))
        else:
            # uniform on the knot scale: finds cuts where the data is dense
            ulo = _knot_u(knots, f, lo, False)
            uhi = _knot_u(knots, f, hi, True)
            thr[v, i] = np.float32(_knot_value(knots, f, ulo + x * max(uhi - ulo, 0.0)))


@njit(cache=True)
def _node_stats(S, v, X, y, rows, prm, bounds, fl, tl, lc, reg):
    """Fill node v from its rows rows[start:stop] (all alive): counts, candidates, decision.

    ``fl``, ``tl``, ``lc`` are scratch (candidate features, cut-offs, left counts) so the hot
    loop over rows touches only local memory besides X.
    """
    (
        ncls,
        ncand,
        feat,
        thr,
        left,
        child,
        active,
        slack,
        parent,
        link,
        depth,
        hedge,
        path,
        start,
        stop,
    ) = S
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    nc = ncls.shape[1]
    s0 = start[v]
    s1 = stop[v]
    child[v, :, :] = -1
    active[v] = -1
    ncls[v, :] = 0
    if s1 - s0 < 2 * m or depth[v] >= prm[P_MAX_DEPTH]:
        for i in range(s0, s1):
            ncls[v, y[rows[i]]] += 1
        ncand[v] = 0
        slack[v] = BIG
        return
    _draw_candidates(S, v, prm, bounds, fl, reg)
    for c in range(k):
        fl[c] = feat[v, c]
        tl[c] = thr[v, c]
    lc[:, :] = 0
    for i in range(s0, s1):
        r = rows[i]
        cls = y[r]
        ncls[v, cls] += 1
        for c in range(k):
            lc[c, cls] += X[r, fl[c]] <= tl[c]  # branch-free: the outcome is a coin flip
    n, mx = _node_n(ncls, v)
    if mx == n:
        ncand[v] = 0
        slack[v] = BIG
        return
    ncand[v] = k
    for c in range(k):
        for j in range(nc):
            left[v, c, j] = lc[c, j]
    rnd = depth[v] < prm[P_RANDOM_DEPTH]
    b = decide(ncls, left, v, k, m, rnd)
    active[v] = b
    n = s1 - s0
    slack[v] = slack_of(ncls, left, v, k, m, b, rnd) if n >= SLACK_MIN_N else 0


@njit(cache=True)
def _split(S, v, c, base, h, X, rows, meta, free, stack, sp, regs, cur):
    """Partition rows[base:base+n] by candidate c of v and hang two new children under it."""
    (
        ncls,
        ncand,
        feat,
        thr,
        left,
        child,
        active,
        slack,
        parent,
        link,
        depth,
        hedge,
        path,
        start,
        stop,
    ) = S
    n = stop[v] - start[v]
    f = feat[v, c]
    t = thr[v, c]
    i = base
    j = base + n - 1
    while i <= j:
        if X[rows[i], f] <= t:
            i += 1
        else:
            rows[i], rows[j] = rows[j], rows[i]
            j -= 1
    cap = ncls.shape[0]
    bounds_ = (base, i, i, base + n)
    for side in range(2):
        u = _alloc_node(meta, free, cap)
        if u < 0:
            return -1, sp
        parent[u] = v
        link[u] = 2 * c + side
        depth[u] = depth[v] + 1
        hedge[u] = h
        path[u] = _child_path(path[v], side)
        start[u] = bounds_[2 * side]
        stop[u] = bounds_[2 * side + 1]
        ncand[u] = 0
        child[v, c, side] = u
        stack[sp] = u
        regs[sp, :, :] = cur
        if side == 0:
            regs[sp, f, 1] = min(cur[f, 1], float(t))
        else:
            regs[sp, f, 0] = max(cur[f, 0], float(t))
        sp += 1
    return 0, sp


@njit(cache=True, nogil=True)
def build(S, v0, X, y, rows, meta, free, prm, bounds, allow_hedge):
    """Grow the subtree at v0 over rows[start[v0]:stop[v0]] (all alive).

    Returns OK, or NEED_NODES / NEED_POOL when the arrays are too small (the caller grows them
    and builds again: the result does not depend on what a failed attempt left behind).
    """
    return _build(S, v0, X, y, rows, meta, free, prm, bounds, allow_hedge, scratch(prm, bounds))


@njit(cache=True)
def scratch(prm, bounds):
    """Work arrays for builds (allocated once per fit or forget call, not per subtree)."""
    k = prm[P_K]
    d = bounds.shape[0]
    return (
        np.empty(k, dtype=np.int64),  # alternatives
        np.empty(max(k, d), dtype=np.int64),  # candidate features, also the feature permutation
        np.empty(k, dtype=np.float32),  # candidate cut-offs
        np.empty((k, prm[P_C]), dtype=np.int64),  # left counts
        np.empty(64, dtype=np.int64),  # node stack (grows)
        np.empty((64, d, 2)),  # the region of each node on the stack (grows with it)
        np.empty((d, 2)),  # the current node's region
    )


@njit(cache=True, nogil=True)
def _build(S, v0, X, y, rows, meta, free, prm, bounds, allow_hedge, work):
    (
        ncls,
        ncand,
        feat,
        thr,
        left,
        child,
        active,
        slack,
        parent,
        link,
        depth,
        hedge,
        path,
        start,
        stop,
    ) = S
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    alts, fl, tl, lc, stack, regs, cur = work
    d = bounds.shape[0]
    stack[0] = v0
    region_of(S, v0, bounds, regs[0])
    sp = 1
    while sp > 0:
        sp -= 1
        v = stack[sp]
        cur[:, :] = regs[sp]
        _node_stats(S, v, X, y, rows, prm, bounds, fl, tl, lc, cur)
        if ncand[v] == 0:
            continue
        b = active[v]
        n = stop[v] - start[v]
        na = 0
        # deletions expected to pass through v while the budget lasts (a uniform share, plus one)
        budget = min(n, 1 + (prm[P_BUDGET] * n) // prm[P_N])
        if (
            allow_hedge
            and depth[v] >= prm[P_RANDOM_DEPTH]  # random nodes rarely change: no hedge
            and hedge[v] < prm[P_MAX_HEDGE]
            and n >= prm[P_HEDGE_MIN]
            and slack[v] < budget
        ):
            na = _alternatives(ncls, left, v, k, m, b, budget, prm[P_MAX_VARIANTS], alts)
        if sp + 2 * (na + 1) >= stack.shape[0]:
            bigger = np.empty(stack.shape[0] * 2, dtype=np.int64)
            bigger[:sp] = stack[:sp]
            stack = bigger
            bigger_regs = np.empty((stack.shape[0], d, 2))
            bigger_regs[:sp] = regs[:sp]
            regs = bigger_regs
        if b >= 0:
            st, sp = _split(S, v, b, start[v], hedge[v], X, rows, meta, free, stack, sp, regs, cur)
            if st < 0:
                return NEED_NODES
        for a in range(na):
            c = alts[a]
            base = meta[M_POOL]
            if base + n > rows.shape[0]:
                return NEED_POOL
            rows[base : base + n] = rows[start[v] : stop[v]]
            meta[M_POOL] += n
            st, sp = _split(S, v, c, base, hedge[v] + 1, X, rows, meta, free, stack, sp, regs, cur)
            if st < 0:
                return NEED_NODES
    return OK


# ----------------------------------------------------------------------------- forgetting


@njit(cache=True)
def _free_children(S, v, meta, free):
    """Release every subtree hanging under v (active and variants) to the free list."""
    ncand, child = S[1], S[5]
    k = child.shape[1]
    stack = np.empty(64, dtype=np.int64)
    sp = 0
    for c in range(k):
        for side in range(2):
            u = child[v, c, side]
            if u >= 0:
                child[v, c, side] = -1
                if sp >= stack.shape[0]:
                    bigger = np.empty(stack.shape[0] * 2, dtype=np.int64)
                    bigger[:sp] = stack[:sp]
                    stack = bigger
                stack[sp] = u
                sp += 1
    freed = 0
    while sp > 0:
        sp -= 1
        u = stack[sp]
        if ncand[u] > 0:
            for c in range(k):
                for side in range(2):
                    w = child[u, c, side]
                    if w >= 0:
                        child[u, c, side] = -1
                        if sp >= stack.shape[0]:
                            bigger = np.empty(stack.shape[0] * 2, dtype=np.int64)
                            bigger[:sp] = stack[:sp]
                            stack = bigger
                        stack[sp] = w
                        sp += 1
        ncand[u] = -1
        free[meta[M_NFREE]] = u
        meta[M_NFREE] += 1
        freed += 1
    return freed


@njit(cache=True)
def _rebuild(S, v, X, y, alive, rows, meta, free, prm, bounds, work):
    """Slow path: rebuild v's subtree from the live rows it holds. Returns rows used or -need."""
    ncls, start, stop = S[0], S[13], S[14]
    n, _ = _node_n(ncls, v)
    spare = meta[M_NFREE] + (ncls.shape[0] - meta[M_TAIL])
    # a subtree over n rows has at most 2n - 1 nodes; freeing v's old children comes first
    if spare < 2 * n:
        return -(2 * n)
    _free_children(S, v, meta, free)
    # swap (not copy) the live rows to the front: ancestors' ranges must stay a permutation
    w = start[v]
    for i in range(start[v], stop[v]):
        if alive[rows[i]]:
            rows[w], rows[i] = rows[i], rows[w]
            w += 1
    stop[v] = w
    _build(S, v, X, y, rows, meta, free, prm, bounds, False, work)
    return n


@njit(cache=True)
def forget_rows(
    S, X, y, ids, alive, rows, meta, free, pending, prm, bounds, roots, todo, i0, counts
):
    """Remove rows ``todo[i0:]`` (positions into X) from every tree, in order.

    Returns (status, next_i, need): status OK, or NEED_NODES with ``need`` nodes wanted and
    ``pending`` rebuilds kept in ``pending`` for the call that resumes at ``next_i``. Per row,
    ``counts`` gets (subtrees rebuilt, rows they held, variant switches). A forgotten row's
    features and label are overwritten in X and y: the model no longer holds them.
    """
    rebuilds = counts[0]
    rebuilt_rows = counts[1]
    switches = counts[2]
    (
        ncls,
        ncand,
        feat,
        thr,
        left,
        child,
        active,
        slack,
        parent,
        link,
        depth,
        hedge,
        path,
        start,
        stop,
    ) = S
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    stack = np.empty(512, dtype=np.int64)
    work = scratch(prm, bounds)
    i = i0
    while True:
        # finish the rebuilds of the previous row (also when resuming after growth)
        while meta[M_NPENDING] > 0:
            v = pending[meta[M_NPENDING] - 1]
            got = _rebuild(S, v, X, y, alive, rows, meta, free, prm, bounds, work)
            if got < 0:
                return NEED_NODES, i, -got
            meta[M_NPENDING] -= 1
            rebuilds[i - 1] += 1
            rebuilt_rows[i - 1] += got
        if i >= todo.shape[0]:
            return OK, i, 0
        r = todo[i]
        alive[r] = False
        cls = y[r]
        for t in range(roots.shape[0]):
            if not in_tree(prm[P_SEED], t, ids[r], prm[P_SAMPLE]):
                continue
            stack[0] = roots[t]
            sp = 1
            while sp > 0:
                sp -= 1
                v = stack[sp]
                ncls[v, cls] -= 1
                if ncand[v] <= 0:
                    continue
                for c in range(k):
                    if X[r, feat[v, c]] <= thr[v, c]:
                        left[v, c, cls] -= 1
                s = slack[v] - 1
                n_v, mx_v = _node_n(ncls, v)
                if n_v < 2 * m or mx_v == n_v:
                    # too small or pure: a leaf for good (deletions only shrink and purify)
                    if active[v] >= 0:
                        switches[i] += 1
                    _free_children(S, v, meta, free)
                    active[v] = -1
                    ncand[v] = 0
                    slack[v] = BIG
                    continue
                if s < 0:
                    rnd = depth[v] < prm[P_RANDOM_DEPTH]
                    b = decide(ncls, left, v, k, m, rnd)
                    if b != active[v]:
                        if b < 0:
                            _free_children(S, v, meta, free)
                            active[v] = -1
                            switches[i] += 1
                        elif child[v, b, 0] >= 0:
                            active[v] = b
                            switches[i] += 1
                        else:
                            pending[meta[M_NPENDING]] = v
                            meta[M_NPENDING] += 1
                            slack[v] = 0
                            continue
                    # small nodes rarely have slack to gain: re-checking them is cheaper
                    s = slack_of(ncls, left, v, k, m, active[v], rnd) if n_v >= SLACK_MIN_N else 0
                slack[v] = s
                if sp + 2 * k >= stack.shape[0]:
                    bigger = np.empty(stack.shape[0] * 2, dtype=np.int64)
                    bigger[:sp] = stack[:sp]
                    stack = bigger
                for c in range(k):
                    if child[v, c, 0] >= 0:
                        side = 0 if X[r, feat[v, c]] <= thr[v, c] else 1
                        stack[sp] = child[v, c, side]
                        sp += 1
        X[r, :] = 0.0
        y[r] = 0
        i += 1


# ----------------------------------------------------------------------------- predicting


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
            bigger = np.empty(order.shape[0] * 2, dtype=np.int64)
            bigger[:n_out] = order[:n_out]
            order = bigger
        order[n_out] = v
        n_out += 1
        if active[v] >= 0:
            if sp + 2 >= stack.shape[0]:
                bigger = np.empty(stack.shape[0] * 2, dtype=np.int64)
                bigger[:sp] = stack[:sp]
                stack = bigger
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
    return enc
