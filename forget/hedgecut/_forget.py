"""Forgetting rows: decrement counts along each path, re-check decisions, rebuild subtrees.

When a decision moves to a candidate that has no subtree, the candidate's subtree is built
from the node's live rows. If the node is big (``hedge_min_samples`` rows or more) the subtree
it had is kept beside the new one, as a variant, and maintained like one: near-tie decisions
flip back and forth as rows leave, and each flip back is then a switch, not a rebuild of
thousands of rows. A kept subtree is what a build on the remaining rows gives there (each
deletion re-checks its decisions as it does the active ones'); the canonical form (``_canon``)
drops the variants a fit would not build, so artifacts and compacted models still equal a
refit's. At most one such subtree is kept per node (older ones are freed).

Deferred rebuilds (``defer`` > 0): a rebuild of a subtree holding ``defer`` live rows or more
is not done by the deletion that calls for it. Its node is marked ``STALE`` (in its ``hedge``
field) and listed in ``deferred``; later deletions decrement the node's class counts and go no
further down (its subtree is to be rebuilt from its rows, whatever they are by then), and
:func:`rebuild_deferred` rebuilds it later, as the deletion would have, from the rows it holds
then: the same subtree a fit on them builds. A tree holding a stale node is *pending*
(:func:`pending_trees`); every other tree is, already, the tree a fit on the remaining rows
builds. A stale node freed meanwhile (an ancestor rebuilt or made a leaf) loses the mark with
the rest of its record, and its entry is skipped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from forget.hedgecut._build import build_beside, clear_candidates, rebuild, scratch
from forget.hedgecut._common import (
    LEAVES,
    M_EMPTIED,
    M_NFREE,
    M_NPENDING,
    M_POOL,
    M_TAIL,
    NEED_DEFER,
    NEED_NODES,
    NEED_POOL,
    OK,
    P_HEDGE_MIN,
    P_K,
    P_MIN_LEAF,
    P_RANDOM_DEPTH,
    P_SAMPLE,
    P_SEED,
    RESHAPED,
    SLACK_MIN_N,
    SPLICED,
    STALE,
    grown,
    in_tree,
    noalloc,
    prefetch_row,
)
from forget.hedgecut._decide import _node_n, decide, slack_of


@noalloc
def _free_children(S, v, meta, free, only=-1):
    """Release every subtree hanging under v (active and variants; candidate ``only`` alone
    when it is >= 0) to the free list.

    A freed node's record is cleared to what a never-used one holds (``ncand`` -1 marks it
    free): its counts are from before the deletion that freed it, and the difference to its
    parent's would give the forgotten row's label back. The free list is its own work queue:
    each node appended to it is scanned for children later.
    """
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
    k = child.shape[1]
    q0 = meta[M_NFREE]
    q = q0
    for c in range(k):
        if only >= 0 and c != only:
            continue
        for side in range(2):
            u = child[v, c, side]
            if u >= 0:
                child[v, c, side] = -1
                free[q] = u
                q += 1
    i = q0
    while i < q:
        u = free[i]
        i += 1
        if ncand[u] > 0:
            for c in range(k):
                for side in range(2):
                    w = child[u, c, side]
                    if w >= 0:
                        child[u, c, side] = -1
                        free[q] = w
                        q += 1
        for j in range(ncls.shape[1]):
            ncls[u, j] = 0
        for c in range(k):
            feat[u, c] = 0
            thr[u, c] = 0.0
            for j in range(left.shape[2]):
                left[u, c, j] = 0
        ncand[u] = -1
        active[u] = -1
        slack[u] = 0
        parent[u] = -1
        link[u] = -1
        depth[u] = 0
        hedge[u] = 0
        path[u] = 0
        start[u] = 0
        stop[u] = 0
    meta[M_NFREE] = q
    return q - q0


@noalloc
def _clear_subtree(S, v, alive, rows, meta, free):
    """Slow path, first half: free v's subtree and gather the live rows it held.

    Returns their number, or -need when the node arrays lack room for the rebuild.
    """
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
    return n


@noalloc
def _keep_beside(S, v, alive, rows, meta, free, k, b):
    """Slow path that keeps the superseded subtree, first half: v's decision moved from
    candidate a (whose subtree stays, as a variant) to b, which has none. Frees v's other
    variants and copies v's live rows to a range of their own at the pool's end, for b's
    subtree. Returns (status, base, n): OK, or NEED_NODES / NEED_POOL with the room wanted in
    ``n`` (nothing changed)."""
    ncls, child, active, start, stop = S[0], S[5], S[6], S[13], S[14]
    n, _ = _node_n(ncls, v)
    spare = meta[M_NFREE] + (ncls.shape[0] - meta[M_TAIL])
    if spare < 2 * n:
        return NEED_NODES, 0, 2 * n
    base = meta[M_POOL]
    if base + n > rows.shape[0]:
        return NEED_POOL, 0, n
    for c in range(k):
        if c != active[v] and c != b and child[v, c, 0] >= 0:
            _free_children(S, v, meta, free, c)
    w = base
    for i in range(start[v], stop[v]):
        if alive[rows[i]]:
            rows[w] = rows[i]
            w += 1
    meta[M_POOL] = w
    return OK, base, n


@njit(cache=True, inline="always")
def _reshaped(touched, shape_log, shape_n, t, v):
    """Tree t's active structure changed at node v: log it for the compiled form, which
    replaces that subtree (``SPLICED``), or when the log is full mark the tree to be compiled
    again whole (``RESHAPED``)."""
    if touched[t] == RESHAPED:
        return
    q = shape_n[0]
    if q < shape_log.shape[0]:
        shape_log[q, 0] = t
        shape_log[q, 1] = v
        shape_n[0] = q + 1
        touched[t] = SPLICED
    else:
        touched[t] = RESHAPED


@njit(cache=True)
def forget_rows(
    S, X, y, ids, alive, rows, meta, free, pending, prm, bounds, roots, todo, i0, counts, ccount,
    touched, leaf_log, leaf_n, shape_log, shape_n, defer, deferred, dn,
):  # fmt: skip
    """Remove rows ``todo[i0:]`` (positions into X) from every tree, in order.

    Returns (status, next_i, need): status OK, or NEED_NODES with ``need`` nodes wanted and
    ``pending`` rebuilds kept in ``pending`` for the call that resumes at ``next_i``. Per row,
    ``counts`` gets (subtrees rebuilt, rows they held, variant switches). ``ccount`` holds the
    live rows per class; a class losing its last one is counted in ``meta[M_EMPTIED]``. A
    forgotten row's features and label are overwritten in X and y: the model no longer holds
    them. Only the ids of rows in ``todo[i0:]`` are read (a forgotten row's id may be scrubbed).
    ``touched[t]`` is set for every tree a removed row trained (only those trees change): to
    ``LEAVES`` when only its counts changed, to ``SPLICED`` when its active structure did (a
    split switched, a subtree became a leaf or was rebuilt) and each node where it did is
    appended to ``shape_log`` as (tree, node), ``shape_n[0]`` entries in all. For a tree not
    ``RESHAPED`` the active leaf each row reached is appended to ``leaf_log`` likewise: a
    compiled form rewrites those leaves and replaces those subtrees alone. A full log, or a
    node whose rebuild is deferred, marks the tree ``RESHAPED`` instead (compiled whole).
    Status NEED_POOL asks for ``need`` more pool entries (a subtree built beside a kept one
    takes a range of its own).

    With ``defer`` > 0, a rebuild of ``defer`` live rows or more is deferred instead (see the
    module docstring): its node is appended to ``deferred`` (``dn[0]`` entries), and counted
    in ``counts[3]``; status NEED_DEFER asks for a longer ``deferred``.
    """
    rebuilds = counts[0]
    rebuilt_rows = counts[1]
    switches = counts[2]
    deferrals = counts[3]
    ncls, ncand, feat, thr, left, child, active, slack = S[:8]
    parent, link, depth, hedge, path, start, stop = S[8:]
    k = prm[P_K]
    m = prm[P_MIN_LEAF]
    stack = np.empty(512, dtype=np.int64)
    work = scratch(prm, bounds)
    i = i0
    while True:
        # finish the rebuilds of the previous row (also when resuming after growth)
        while meta[M_NPENDING] > 0:
            e = pending[meta[M_NPENDING] - 1]
            v = -e - 1 if e < 0 else e
            if defer > 0 and _node_n(ncls, v)[0] >= defer:
                if dn[0] >= deferred.shape[0]:
                    return NEED_DEFER, i, dn[0] + 1
                hedge[v] += STALE  # rebuilt whole later (a subtree kept beside goes too)
                slack[v] = 0
                deferred[dn[0]] = v
                dn[0] += 1
                meta[M_NPENDING] -= 1
                deferrals[i - 1] += 1
                continue
            if e < 0:  # a switch to a candidate without a subtree, the old one kept beside
                v = -e - 1
                rnd = depth[v] < prm[P_RANDOM_DEPTH]
                b = decide(ncls, left, v, k, m, rnd)
                status, base, got = _keep_beside(S, v, alive, rows, meta, free, k, b)
                if status != OK:
                    return status, i, got
                work = build_beside(S, v, b, base, got, X, y, rows, meta, free, prm, bounds, work)
                active[v] = b
                slack[v] = slack_of(ncls, left, v, k, m, b, rnd) if got >= SLACK_MIN_N else 0
            else:
                v = e
                got = _clear_subtree(S, v, alive, rows, meta, free)
                if got < 0:
                    return NEED_NODES, i, -got
                # second half: grow v's subtree again (room was checked; no variants: a refit
                # must match the active structure only, and rebuilds should stay cheap)
                work = rebuild(S, v, X, y, rows, meta, free, prm, bounds, work)
            meta[M_NPENDING] -= 1
            rebuilds[i - 1] += 1
            rebuilt_rows[i - 1] += got
        if i >= todo.shape[0]:
            return OK, i, 0
        r = todo[i]
        ru = np.uint64(r)
        alive[r] = False
        cls = y[r]
        ccount[cls] -= 1
        if ccount[cls] == 0:
            meta[M_EMPTIED] += 1
        for t in range(roots.shape[0]):
            if not in_tree(prm[P_SEED], t, ids[r], prm[P_SAMPLE]):
                continue
            if touched[t] == 0:
                touched[t] = LEAVES
            stack[0] = roots[t]
            sp = 1
            while sp > 0:
                sp -= 1
                v = stack[sp]
                ncls[v, cls] -= 1
                if ncand[v] <= 0:
                    continue
                if hedge[v] >= STALE:  # its rebuild, deferred, reads the rows it holds then
                    touched[t] = RESHAPED
                    continue
                a = active[v]
                if a >= 0:  # the child this row goes to next: its record loads meanwhile
                    prefetch_row(ncls, child[v, a, 0 if X[r, feat[v, a]] <= thr[v, a] else 1])
                u = np.uint64(v)  # unsigned: no wraparound on the loads below (as in _build)
                for c in range(k):
                    if X[ru, np.uint64(feat[u, c])] <= thr[u, c]:
                        left[u, c, cls] -= 1
                s = slack[v] - 1
                kept = False
                n_v, mx_v = _node_n(ncls, v)
                if n_v < 2 * m or mx_v == n_v:
                    # too small or pure: a leaf for good (deletions only shrink and purify)
                    if active[v] >= 0:
                        switches[i] += 1
                        _reshaped(touched, shape_log, shape_n, t, v)
                    _free_children(S, v, meta, free)
                    active[v] = -1
                    clear_candidates(S, v)
                    continue
                if s < 0:
                    rnd = depth[v] < prm[P_RANDOM_DEPTH]
                    b = decide(ncls, left, v, k, m, rnd)
                    if b != active[v]:
                        _reshaped(touched, shape_log, shape_n, t, v)
                        if b < 0:
                            _free_children(S, v, meta, free)
                            active[v] = -1
                            switches[i] += 1
                        elif child[v, b, 0] >= 0:
                            active[v] = b
                            switches[i] += 1
                        elif active[v] >= 0 and n_v >= prm[P_HEDGE_MIN]:
                            # b's subtree is built once this row is gone; a's stays beside it
                            # (near-ties flip back and forth), so the row leaves it too
                            pending[meta[M_NPENDING]] = -v - 1
                            meta[M_NPENDING] += 1
                            kept = True
                        else:
                            pending[meta[M_NPENDING]] = v
                            meta[M_NPENDING] += 1
                            slack[v] = 0
                            continue
                    # small nodes rarely have slack to gain: re-checking them is cheaper (a
                    # kept node's slack is set with b's subtree)
                    s = 0
                    if n_v >= SLACK_MIN_N and not kept:
                        s = slack_of(ncls, left, v, k, m, active[v], rnd)
                slack[v] = s
                if sp + 2 * k >= stack.shape[0]:
                    stack = grown(stack, sp)
                for c in range(k):
                    if child[u, c, 0] >= 0:
                        side = 0 if X[ru, np.uint64(feat[u, c])] <= thr[u, c] else 1
                        stack[sp] = child[u, c, side]
                        sp += 1
            if touched[t] != RESHAPED:  # the leaf whose counts changed, for the compiled form
                v = roots[t]
                while active[v] >= 0:
                    c = active[v]
                    v = child[v, c, 0 if X[r, feat[v, c]] <= thr[v, c] else 1]
                q = leaf_n[0]
                if q < leaf_log.shape[0]:
                    leaf_log[q, 0] = t
                    leaf_log[q, 1] = v
                    leaf_n[0] = q + 1
                else:
                    touched[t] = RESHAPED
        X[r, :] = 0.0
        y[r] = 0
        i += 1


@njit(cache=True, nogil=True)
def rebuild_deferred(S, X, y, alive, rows, meta, free, prm, bounds, deferred, i0, counts):
    """Rebuild the subtrees of the stale nodes ``deferred[i0:]`` (ancestors first: a node an
    ancestor's rebuild freed is no longer stale and is skipped), each from the live rows it
    holds, as ``forget_rows`` would have. Returns (status, next_i, need): OK, or NEED_NODES
    with ``need`` nodes wanted for the call that resumes at ``next_i``. ``counts`` gets
    (subtrees rebuilt, rows they held).

    Touches no node of a tree without a stale node (they are neither read nor written; new
    nodes come from the free list, whose nodes no tree holds, or from the unused tail), so
    predictions over the other trees may run meanwhile.
    """
    hedge = S[11]
    work = scratch(prm, bounds)
    for i in range(i0, deferred.shape[0]):
        v = deferred[i]
        if hedge[v] < STALE:
            continue
        hedge[v] -= STALE
        got = _clear_subtree(S, v, alive, rows, meta, free)
        if got < 0:
            hedge[v] += STALE
            return NEED_NODES, i, -got
        work = rebuild(S, v, X, y, rows, meta, free, prm, bounds, work)
        counts[0] += 1
        counts[1] += got
    return OK, deferred.shape[0], 0


@njit(cache=True)
def pending_trees(deferred, hedge, parent, depth, roots, pending):
    """Set ``pending[t]`` for each tree holding a stale node of ``deferred``; returns those
    entries still stale (freed ones dropped), ancestors first."""
    keep = np.empty(deferred.shape[0], dtype=np.int64)
    n = 0
    for i in range(deferred.shape[0]):
        v = deferred[i]
        if hedge[v] < STALE:
            continue
        keep[n] = v
        n += 1
        u = v
        while parent[u] >= 0:
            u = parent[u]
        for t in range(roots.shape[0]):
            if roots[t] == u:
                pending[t] = True
                break
    out = keep[:n]
    return out[np.argsort(depth[out], kind="mergesort")]
