"""The canonical form of a forest: what ``to_bytes`` writes, the same for forget and refit.

After ``forget`` the forest's trees are those a refit builds, but its arrays still say how it
got there: nodes are numbered in the order they were allocated (a rebuilt subtree reuses freed
slots), each node's row range still holds forgotten rows, slacks are bounds decremented along
the forgotten rows' paths, and the hedged variants are those the fit chose from the counts it
had (rebuilt subtrees have none; superseded ones may be kept beside their successors). Each
of these tells something about the forgotten rows.

The canonical form holds only what a fit on the remaining rows determines:

- nodes of each tree in preorder (a node, then its children by candidate index, left side
  first), trees one after the other;
- each node's rows are its live rows as positions into the compacted rows (forgotten rows
  removed, order kept); a split node's range is its active children's ranges, left then
  right, a node without an active split lists its rows ascending, and each variant gets a
  range of its own at the pool's end when the walk over the active splits reaches its node;
- the slack is what a fit computes from the node's counts, final leaves keep no candidates,
  and the hedge level counts the variant edges on the node's path;
- every node hedges exactly the runners-up a fit would hedge there with the remaining rows'
  deletion budget: variants a fit would not build are dropped, missing ones are built.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from forget.hedgecut._build import _build, _split, more_stack, region_of, scratch
from forget.hedgecut._common import (
    BIG,
    M_POOL,
    NEED_NODES,
    NEED_POOL,
    NEED_STACK,
    OK,
    P_BUDGET,
    P_HEDGE_MIN,
    P_K,
    P_MAX_HEDGE,
    P_MAX_VARIANTS,
    P_MIN_LEAF,
    P_N,
    P_RANDOM_DEPTH,
    SLACK_MIN_N,
    grown,
)
from forget.hedgecut._decide import _alternatives, _node_n, slack_of
from forget.hedgecut._forget import _free_children


@njit(cache=True, nogil=True)  # a purge canonicalises beside predictions
def preorder(S, roots):
    """Nodes of every tree in preorder (children by candidate, left first) and the size of the
    canonical row pool (each tree's rows, plus a copy of a node's rows per variant)."""
    ncls, child, active = S[0], S[5], S[6]
    k = child.shape[1]
    order = np.empty(64, dtype=np.int64)
    stack = np.empty(64, dtype=np.int64)
    n_out = 0
    pool = 0
    for t in range(roots.shape[0]):
        stack[0] = roots[t]
        sp = 1
        n_root, _ = _node_n(ncls, roots[t])
        pool += n_root
        while sp > 0:
            sp -= 1
            v = stack[sp]
            if n_out >= order.shape[0]:
                order = grown(order, n_out)
            order[n_out] = v
            n_out += 1
            if sp + 2 * k >= stack.shape[0]:
                stack = grown(stack, sp)
            n_v, _ = _node_n(ncls, v)
            for c in range(k - 1, -1, -1):
                if child[v, c, 0] >= 0:
                    if c != active[v]:
                        pool += n_v
                    stack[sp] = child[v, c, 1]
                    stack[sp + 1] = child[v, c, 0]
                    sp += 2
    return order[:n_out], pool


@njit(cache=True, nogil=True)  # a purge canonicalises beside predictions
def layout(S, roots, rows, alive, newpos, prm, order, T, pool, new_roots):
    """Write the nodes ``order`` (from :func:`preorder`) into ``T`` and their live rows into
    ``pool`` in the canonical form; ``new_roots`` gets each tree's root."""
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
    t_ncls, t_ncand, t_feat, t_thr, t_left, t_child, t_active, t_slack = T[:8]
    t_parent, t_link, t_depth, t_hedge, t_path, t_start, t_stop = T[8:]
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    nc = ncls.shape[1]
    renum = np.full(ncls.shape[0], -1, dtype=np.int64)
    for j in range(order.shape[0]):
        renum[order[j]] = j
    for j in range(order.shape[0]):
        v = order[j]
        for g in range(nc):
            t_ncls[j, g] = ncls[v, g]
        t_ncand[j] = ncand[v]
        t_active[j] = active[v]
        t_parent[j] = renum[parent[v]] if parent[v] >= 0 else -1
        t_link[j] = link[v] if parent[v] >= 0 else -1
        t_depth[j] = depth[v]
        t_path[j] = path[v]
        if parent[v] < 0:
            t_hedge[j] = 0
        for c in range(k):
            for side in range(2):
                u = child[v, c, side]
                t_child[j, c, side] = renum[u] if u >= 0 else -1
                if u >= 0:  # parents come first in preorder: their level is set
                    t_hedge[renum[u]] = t_hedge[j] + (1 if c != active[v] else 0)
        if ncand[v] > 0:
            for c in range(k):
                t_feat[j, c] = feat[v, c]
                t_thr[j, c] = thr[v, c]
                for g in range(nc):
                    t_left[j, c, g] = left[v, c, g]
            n, _ = _node_n(t_ncls, j)
            rnd = depth[v] < prm[P_RANDOM_DEPTH]
            a = t_active[j]
            t_slack[j] = slack_of(t_ncls, t_left, j, k, m, a, rnd) if n >= SLACK_MIN_N else 0
        else:
            t_slack[j] = BIG
    # rows: a work stack of (node, first slot of its range)
    todo = np.empty((64, 2), dtype=np.int64)
    tail = 0
    for t in range(roots.shape[0]):
        r = renum[roots[t]]
        new_roots[t] = r
        todo[0, 0] = r
        todo[0, 1] = tail
        n_r, _ = _node_n(t_ncls, r)
        tail += n_r
        sp = 1
        while sp > 0:
            sp -= 1
            j = todo[sp, 0]
            base = todo[sp, 1]
            n_j, _ = _node_n(t_ncls, j)
            t_start[j] = base
            t_stop[j] = base + n_j
            if sp + 2 * k + 2 >= todo.shape[0]:
                todo = grown(todo, sp)
            a = t_active[j]
            if a >= 0:
                lo = t_child[j, a, 0]
                n_lo, _ = _node_n(t_ncls, lo)
                todo[sp, 0] = t_child[j, a, 1]
                todo[sp, 1] = base + n_lo
                todo[sp + 1, 0] = lo
                todo[sp + 1, 1] = base
                sp += 2
            else:
                v = order[j]
                w = base
                for i in range(start[v], stop[v]):
                    if alive[rows[i]]:
                        pool[w] = newpos[rows[i]]
                        w += 1
                pool[base:w].sort()
            for c in range(k - 1, -1, -1):
                if c != a and t_child[j, c, 0] >= 0:
                    lo = t_child[j, c, 0]
                    n_lo, _ = _node_n(t_ncls, lo)
                    todo[sp, 0] = t_child[j, c, 1]
                    todo[sp, 1] = tail + n_lo
                    todo[sp + 1, 0] = lo
                    todo[sp + 1, 1] = tail
                    sp += 2
                    tail += n_j
    return tail


@njit(cache=True, nogil=True)  # a purge canonicalises beside predictions
def fix_hedges(S, roots, X, y, rows, meta, free, prm, bounds):
    """Give every node of a laid-out forest the variants a fit would build there, and no others.

    Returns (status, changed): OK, or NEED_NODES / NEED_POOL when the arrays are too small (the
    caller lays the forest out into larger ones and calls again).
    """
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    work = scratch(prm, bounds)
    alts, scores, cur = work[0], work[1], work[5]
    want = np.zeros(k, dtype=np.bool_)
    fresh = np.empty(k, dtype=np.int64)
    visit = np.empty(64, dtype=np.int64)
    changed = False
    for t in range(roots.shape[0]):
        visit[0] = roots[t]
        vp = 1
        while vp > 0:
            vp -= 1
            v = visit[vp]
            if ncand[v] <= 0:
                continue
            b = active[v]
            n, _ = _node_n(ncls, v)
            na = 0
            budget = min(n, 1 + (prm[P_BUDGET] * n) // prm[P_N])
            if (
                prm[P_MAX_VARIANTS] > 0
                and depth[v] >= prm[P_RANDOM_DEPTH]
                and hedge[v] < prm[P_MAX_HEDGE]
                and n >= prm[P_HEDGE_MIN]
                and slack_of(ncls, left, v, k, m, b, False) < budget
            ):
                most = prm[P_MAX_VARIANTS]
                na = _alternatives(ncls, left, v, k, m, b, budget, most, alts, scores)
            want[:] = False
            n_fresh = 0
            for a in range(na):
                want[alts[a]] = True
                if child[v, alts[a], 0] < 0:
                    fresh[n_fresh] = alts[a]
                    n_fresh += 1
            if vp + 2 * k >= visit.shape[0]:
                visit = grown(visit, vp)
            for c in range(k):
                if child[v, c, 0] < 0:
                    continue
                if c != b and not want[c]:
                    _free_children(S, v, meta, free, c)
                    changed = True
                else:  # kept: its subtree is checked in turn (fresh ones are built right)
                    visit[vp] = child[v, c, 0]
                    visit[vp + 1] = child[v, c, 1]
                    vp += 2
            if n_fresh == 0:
                continue
            changed = True
            stack, regs = work[-2:]
            region_of(S, v, bounds, cur)
            sp = 0
            for a in range(n_fresh):
                base = meta[M_POOL]
                if base + n > rows.shape[0]:
                    return NEED_POOL, changed
                for i in range(n):
                    rows[base + i] = rows[start[v] + i]
                meta[M_POOL] += n
                if sp + 2 >= stack.shape[0]:
                    work = more_stack(work, sp)
                    stack, regs = work[-2:]
                st, sp = _split(
                    S, v, fresh[a], base, hedge[v] + 1, X, rows, meta, free, stack, sp, regs, cur
                )
                if st < 0:
                    return NEED_NODES, changed
            while True:
                status, sp = _build(S, X, y, rows, meta, free, prm, bounds, True, work, sp)
                if status != NEED_STACK:
                    break
                work = more_stack(work, sp)
            if status != OK:
                return status, changed
    return OK, changed
