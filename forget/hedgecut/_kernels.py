"""Numba kernels for the HedgeCut forest, over flat node arrays.

Training is a pure function of (rows, seed, feature bounds): at every node the candidate
splits (features and cut-offs) come from a hash of (seed, tree, path) and the node's *region*
(the box its ancestors' cuts leave), never from the node's data. Only the choice among the
candidates depends on data, through integer class counts. Every decision node keeps those
counts, so ``forget`` can decrement them and re-check the decision with the very function that
took it at fit time; the forest after ``forget(S)`` is the forest ``fit(D \\ S)`` would build.

Node state (``S``, one tuple of arrays; index ``v`` is a node). The fields from ``ncls`` to
``depth`` are strided views into one int32 record per node (see ``forest._alloc_nodes``):

======  ============  ===========================================================
ncls    int32[M, C]   class counts of the node's live rows
ncand   int32[M]      K for decision nodes, 0 for final leaves (pure, too small,
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

A freed node (``ncand`` -1) is cleared to what a never-used one holds. ``meta`` holds
counters: nodes used, free-list length, pool used, pending rebuilds, classes emptied by forget.
A node whose rebuild ``forget`` deferred carries ``STALE`` in its ``hedge`` field (``_forget``).
``_canon`` turns the arrays into the canonical form that ``to_bytes`` writes.
``prm`` holds the integer parameters (see the ``P_*`` indices below).

Helpers that run per node are compiled without reference counting (``noalloc``), so they must
not allocate; the entry points (``build``, ``forget_rows``) own the scratch arrays they use.
"""

from __future__ import annotations

from forget.hedgecut._build import build
from forget.hedgecut._canon import fix_hedges, layout, preorder
from forget.hedgecut._common import (
    M_EMPTIED,
    M_NFREE,
    M_POOL,
    M_TAIL,
    N_META,
    NEED_DEFER,
    NEED_NODES,
    NEED_POOL,
    OK,
    P_BUDGET,
    P_C,
    P_K,
    P_MAX_VARIANTS,
    P_N,
    P_SAMPLE,
    RESHAPED,
    SPLICED,
    root_path,
    tree_rows,
)
from forget.hedgecut._forget import forget_rows, pending_trees, rebuild_deferred
from forget.hedgecut._predict import (
    active_structure,
    active_structure_order,
    on_active,
    predict_proba_parallel,
    predict_proba_serial,
    splice_points,
)

__all__ = [
    "M_EMPTIED",
    "M_NFREE",
    "M_POOL",
    "M_TAIL",
    "NEED_NODES",
    "NEED_POOL",
    "NEED_DEFER",
    "N_META",
    "OK",
    "P_BUDGET",
    "P_C",
    "P_K",
    "P_MAX_VARIANTS",
    "P_N",
    "P_SAMPLE",
    "RESHAPED",
    "SPLICED",
    "active_structure",
    "active_structure_order",
    "build",
    "fix_hedges",
    "forget_rows",
    "layout",
    "on_active",
    "pending_trees",
    "preorder",
    "predict_proba_parallel",
    "predict_proba_serial",
    "rebuild_deferred",
    "root_path",
    "splice_points",
    "tree_rows",
]
