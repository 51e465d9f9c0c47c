"""Growing (sub)trees from rows: candidates from (seed, tree, path) and the node region."""

from __future__ import annotations

import numpy as np
from numba import njit

from forget.hedgecut._common import (
    _S11,
    _U53,
    BIG,
    M_NFREE,
    M_POOL,
    M_TAIL,
    NEED_NODES,
    NEED_POOL,
    NEED_STACK,
    OK,
    P_BUDGET,
    P_C,
    P_HEDGE_MIN,
    P_K,
    P_MAX_DEPTH,
    P_MAX_HEDGE,
    P_MAX_VARIANTS,
    P_MIN_LEAF,
    P_N,
    P_RANDOM_DEPTH,
    SLACK_MIN_N,
    _child_path,
    _mix,
    grown,
    noalloc,
)
from forget.hedgecut._decide import _alternatives, decide, slack_of


@noalloc
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


@noalloc
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


@noalloc
def _draw_candidates(S, v, prm, knots, perm, reg):
    """Candidates of node v from (seed, tree, path) and the node's region only.

    ``reg[f]`` is the node's region (low, high) on feature f. A cut-off is uniform either in
    that range or on the knot scale between its bounds (dense where the training data was
    dense): never dependent on the rows the node holds now.
    """
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
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


@noalloc
def clear_candidates(S, v):
    """Make v a final leaf: no candidates, and none of their left counts kept.

    A final leaf is never re-decided, so stale left counts would stop following deletions and
    their difference to the node's counts would tell the labels of later forgotten rows.
    """
    ncand, feat, thr, left, slack = S[1], S[2], S[3], S[4], S[7]
    for c in range(feat.shape[1]):
        feat[v, c] = 0
        thr[v, c] = 0.0
        for j in range(left.shape[2]):
            left[v, c, j] = 0
    ncand[v] = 0
    slack[v] = BIG


@noalloc
def _node_stats(S, v, X, y, rows, prm, bounds, fl, tl, lc, reg):
    """Fill node v from its rows rows[start:stop] (all alive): counts, candidates, decision.

    ``fl``, ``tl``, ``lc`` are scratch (candidate features, cut-offs, left counts) so the hot
    loop over rows touches only local memory besides X.
    """
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
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
            ncls[v, y[np.uint32(rows[i])]] += 1
        clear_candidates(S, v)
        return
    # a pure node is a leaf: found before its candidates are drawn (most leaves are pure, and
    # the draw is the costliest part of a small node); an impure one differs within a few rows
    first = y[np.uint32(rows[s0])]
    i = s0 + 1
    while i < s1 and y[np.uint32(rows[i])] == first:
        i += 1
    if i == s1:
        ncls[v, first] = s1 - s0
        clear_candidates(S, v)
        return
    _draw_candidates(S, v, prm, bounds, fl, reg)
    for c in range(k):
        fl[c] = feat[v, c]
        tl[c] = thr[v, c]
    lc[:, :] = 0
    for i in range(s0, s1):
        r = np.uint32(rows[i])  # indices unsigned: numba wraps signed ones, on every load
        cls = np.uint32(y[r])
        ncls[v, cls] += 1
        for c in range(k):
            lc[c, cls] += X[r, np.uint64(fl[c])] <= tl[c]  # branch-free: a coin flip
    ncand[v] = k
    for c in range(k):
        for j in range(nc):
            left[v, c, j] = lc[c, j]
    rnd = depth[v] < prm[P_RANDOM_DEPTH]
    b = decide(ncls, left, v, k, m, rnd)
    active[v] = b
    n = s1 - s0
    slack[v] = slack_of(ncls, left, v, k, m, b, rnd) if n >= SLACK_MIN_N else 0


@noalloc
def _split(S, v, c, base, h, X, rows, meta, free, stack, sp, regs, cur):
    """Partition rows[base:base+n] (n: the size of v's range) by candidate c of v and hang two
    new children under it."""
    return split_n(S, v, c, base, S[14][v] - S[13][v], h, X, rows, meta, free, stack, sp, regs, cur)


@noalloc
def split_n(S, v, c, base, n, h, X, rows, meta, free, stack, sp, regs, cur):
    """Partition rows[base:base+n] by candidate c of v and hang two new children under it."""
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
    f = feat[v, c]
    t = thr[v, c]
    i = base
    j = base + n - 1
    while i <= j:
        if X[np.uint32(rows[i]), f] <= t:
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
        for g in range(cur.shape[0]):  # (a slice copy would allocate)
            regs[sp, g, 0] = cur[g, 0]
            regs[sp, g, 1] = cur[g, 1]
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
    status, _ = _grow(S, v0, X, y, rows, meta, free, prm, bounds, allow_hedge, scratch(prm, bounds))
    return status


@njit(cache=True)
def _grow(S, v0, X, y, rows, meta, free, prm, bounds, allow_hedge, work):
    """Grow v0's subtree with ``work``, its stack grown as needed: (status, work)."""
    sp = start_subtree(S, v0, bounds, work)
    while True:
        status, sp = _build(S, X, y, rows, meta, free, prm, bounds, allow_hedge, work, sp)
        if status != NEED_STACK:
            return status, work
        work = more_stack(work, sp)


LOCAL_MIN_N = 512  # rebuilds of fewer rows read X in place (a gather would cost more)


@njit(cache=True)
def rebuild(S, v, X, y, rows, meta, free, prm, bounds, work):
    """Grow v's subtree again over rows[start[v]:stop[v]] (all alive; room checked, no
    variants). Returns the (maybe grown) work arrays.

    A subtree's rows lie scattered over X, and a build reads each of them once per level: on
    big data every read is a cache miss. Above ``LOCAL_MIN_N`` rows they are first gathered
    into a local copy, built on there (pool entries are local positions meanwhile), and the
    pool entries mapped back. The tree is the same: the build sees the same values in the
    same order.
    """
    return _gathered(S, v, -1, S[13][v], S[14][v] - S[13][v], X, y, rows, meta, free, prm,
                     bounds, work)  # fmt: skip


@njit(cache=True)
def build_beside(S, v, c, base, n, X, y, rows, meta, free, prm, bounds, work):
    """Hang a new subtree under candidate ``c`` of v over rows[base:base+n] (all alive, v's
    live rows; room checked, no variants), v's own record and its other subtrees left as they
    are. Returns the (maybe grown) work arrays. Built as :func:`rebuild` builds."""
    return _gathered(S, v, c, base, n, X, y, rows, meta, free, prm, bounds, work)


@njit(cache=True)
def _gathered(S, v, c, s0, n, X, y, rows, meta, free, prm, bounds, work):
    """v's subtree (``c`` < 0: v itself again; else candidate c's children) over
    rows[s0:s0+n], on a local copy of those rows above ``LOCAL_MIN_N``."""
    local = n >= LOCAL_MIN_N
    if local:
        orig = rows[s0 : s0 + n].copy()
        Xl = np.empty((n, X.shape[1]), dtype=X.dtype)
        yl = np.empty(n, dtype=y.dtype)
        for i in range(n):
            r = orig[i]
            Xl[i, :] = X[r, :]
            yl[i] = y[r]
            rows[s0 + i] = i
    else:
        Xl, yl = X, y
    if c < 0:
        _, work = _grow(S, v, Xl, yl, rows, meta, free, prm, bounds, False, work)
    else:
        stack, regs = work[-2:]
        cur = work[5]
        region_of(S, v, bounds, cur)
        _, sp = split_n(S, v, c, s0, n, S[11][v], Xl, rows, meta, free, stack, 0, regs, cur)
        while True:
            status, sp = _build(S, Xl, yl, rows, meta, free, prm, bounds, False, work, sp)
            if status != NEED_STACK:
                break
            work = more_stack(work, sp)
    if local:
        for i in range(s0, s0 + n):
            rows[i] = orig[rows[i]]
    return work


@njit(cache=True)
def scratch(prm, bounds):
    """Work arrays for builds (allocated once per fit or forget call, not per subtree)."""
    k = prm[P_K]
    d = bounds.shape[0]
    return (
        np.empty(k, dtype=np.int64),  # alternatives
        np.empty(k),  # their scores
        np.empty(max(k, d), dtype=np.int64),  # candidate features, also the feature permutation
        np.empty(k, dtype=np.float32),  # candidate cut-offs
        np.empty((k, prm[P_C]), dtype=np.int64),  # left counts
        np.empty((d, 2)),  # the current node's region
        np.empty(64, dtype=np.int64),  # node stack (more_stack grows it)
        np.empty((64, d, 2)),  # the region of each node on the stack
    )


@njit(cache=True)
def more_stack(work, sp):
    """``work`` with twice the stack, its first ``sp`` entries kept."""
    alts, scores, fl, tl, lc, cur, stack, regs = work
    return alts, scores, fl, tl, lc, cur, grown(stack, sp), grown(regs, sp)


@noalloc
def start_subtree(S, v0, bounds, work):
    """Put v0 and its region alone on the stack of ``work``; returns the stack size, 1."""
    stack, regs = work[-2:]
    stack[0] = v0
    region_of(S, v0, bounds, regs[0])
    return 1


@noalloc
def _build(S, X, y, rows, meta, free, prm, bounds, allow_hedge, work, sp):
    """Grow the subtrees of the ``sp`` nodes on the stack. Returns (status, sp).

    NEED_STACK leaves the stack as it was, for a call with a larger one (``more_stack``) to
    resume: this function does not allocate (see ``noalloc``).
    """
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    alts, scores, fl, tl, lc, cur, stack, regs = work
    most = 2 * (prm[P_MAX_VARIANTS] + 1)  # children one node can push
    while sp > 0:
        if sp + most > stack.shape[0]:
            return NEED_STACK, sp
        sp -= 1
        v = stack[sp]
        for g in range(cur.shape[0]):
            cur[g, 0] = regs[sp, g, 0]
            cur[g, 1] = regs[sp, g, 1]
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
            and prm[P_MAX_VARIANTS] > 0
            and depth[v] >= prm[P_RANDOM_DEPTH]  # random nodes rarely change: no hedge
            and hedge[v] < prm[P_MAX_HEDGE]
            and n >= prm[P_HEDGE_MIN]
            # (small nodes keep no slack, but whether to hedge them asks for the real one)
            and (slack[v] if n >= SLACK_MIN_N else slack_of(ncls, left, v, k, m, b, False)) < budget
        ):
            na = _alternatives(ncls, left, v, k, m, b, budget, prm[P_MAX_VARIANTS], alts, scores)
        if b >= 0:
            st, sp = _split(S, v, b, start[v], hedge[v], X, rows, meta, free, stack, sp, regs, cur)
            if st < 0:
                return NEED_NODES, sp
        for a in range(na):
            c = alts[a]
            base = meta[M_POOL]
            if base + n > rows.shape[0]:
                return NEED_POOL, sp
            for i in range(n):  # (a slice copy would allocate)
                rows[base + i] = rows[start[v] + i]
            meta[M_POOL] += n
            st, sp = _split(S, v, c, base, hedge[v] + 1, X, rows, meta, free, stack, sp, regs, cur)
            if st < 0:
                return NEED_NODES, sp
    return OK, 0
