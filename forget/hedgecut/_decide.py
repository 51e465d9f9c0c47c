"""A node's decision and its robustness (slack): the one rule, used at fit and forget."""

from __future__ import annotations

from numba import njit

from forget.hedgecut._common import BIG, EPS, TOL, _beta, noalloc


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


@noalloc
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


@noalloc
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


@noalloc
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
            if rc <= 0:
                return 0  # most nodes end here: no need to score the other candidates
            r = min(r, rc)
        return r
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
    if r <= 0:
        return 0
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
        if r <= 0:
            return 0
    return r


@noalloc
def _alternatives(ncls, left, v, k, m, b, budget, max_variants, out, scores):
    """Runners-up that ``budget`` deletions could make win: the candidates worth hedging.

    They go to ``out``; ``scores`` is scratch of the same size.
    """
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
