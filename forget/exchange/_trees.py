"""HedgeCut forests as ONNX-ML graphs whose probabilities are ``predict_proba``'s.

The forest's ``predict_proba`` is the mean over trees of the reached leaf's class shares
(``counts / total``, in double), where a leaf holding no rows (possible in a subsampled tree)
abstains: the mean is over the trees that vote, and a row no tree votes for gets ``1/C``.
ONNX-ML's ``TreeEnsemble`` (ML opset 5) gives each leaf one weight for one target, and
``TreeEnsembleClassifier`` answers in float32 and has no abstaining leaf, so neither can
give the forest's numbers by itself.
The graph therefore splits the work:

1. one ``TreeEnsemble`` finds the reached leaf of every tree: tree ``t`` is target ``t``, and
   each leaf's weight is its index among its tree's leaves (an integer, exact in float32);
2. plus the tree's first row in a leaf table, that index finds the leaf's row, which
   ``Gather`` reads: its class shares and its vote (1, or 0 where it abstains), in double,
   computed exactly as the compiled scorer does (``forget.scoring._parse``);
3. ``ReduceSum`` over the trees, then ``shares / votes`` (``1/C`` without a vote).

Splits are ``BRANCH_LEQ`` on the float32 cut-offs (the forest routes left when
``x <= cut-off`` in float32; cut-offs are float32 already). The input is float32, as the
forest compares: a float64 row must be cast first, which is what ``predict_proba`` does.
A NaN is routed right (the forest refuses NaN instead). Step 2 holds ``rows × trees ×
(classes + 1)`` doubles at once: score large batches in chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forget.exchange._graph import (
    DOUBLE,
    FLOAT,
    INT64,
    Graph,
    elem_type,
    label_of,
    label_values,
    tensor,
    value_info,
)
from forget.exchange.errors import NotExportableError
from forget.scoring._parse import parse_structure

_FLOAT32_EXACT = 2**24  # a tree's leaf indices below this are exact float32 weights


def forest_graph(model: Any, name: str) -> Any:
    """The graph of a fitted ``HedgeCutClassifier`` (see the module docstring)."""
    structures = model.tree_structures()
    nc, d = int(model.classes_.size), int(model.n_features_in_)
    feats, splits, true_ids, true_leaf, false_ids, false_leaf, roots = ([] for _ in range(7))
    tables, leaf_tree, leaf_local = [], [], []
    n_nodes = n_leaves = 0
    for t, enc in enumerate(structures):
        p = parse_structure(enc, nc, d, t)
        leaf = np.asarray(enc)[:, 0] < 0
        split = ~leaf
        # positions of each preorder row among the tree's splits, and among its leaves
        at_split = n_nodes + np.cumsum(split) - 1
        at_leaf = n_leaves + np.cumsum(leaf) - 1
        roots.append(n_nodes)
        if split.any():
            left, right = p.rec[split, 2], p.rec[split, 3]
            feats.append(p.rec[split, 0].astype(np.int64))
            splits.append(p.rec.view(np.float32)[split, 1])
            true_leaf.append(leaf[left].astype(np.int64))
            true_ids.append(np.where(leaf[left], at_leaf[left], at_split[left]))
            false_leaf.append(leaf[right].astype(np.int64))
            false_ids.append(np.where(leaf[right], at_leaf[right], at_split[right]))
            n_nodes += int(split.sum())
        else:  # a tree that is one leaf: one split whose both branches reach it
            feats.append(np.zeros(1, np.int64))
            splits.append(np.zeros(1, np.float32))
            for ids, flags in ((true_ids, true_leaf), (false_ids, false_leaf)):
                ids.append(np.array([n_leaves]))
                flags.append(np.ones(1, np.int64))
            n_nodes += 1
        m = int(leaf.sum())
        if m >= _FLOAT32_EXACT:
            raise NotExportableError(f"tree {t} has {m} leaves; the ONNX graph holds < 2**24")
        tables.append(p.vals[leaf])
        leaf_tree.append(np.full(m, t, np.int64))
        leaf_local.append(np.arange(m, dtype=np.float32))
        n_leaves += m
    table = np.concatenate(tables)  # (leaves, C + 1): shares, then the vote
    first = np.cumsum([0] + [len(a) for a in tables[:-1]]).astype(np.int64)

    g = Graph()
    cat = np.concatenate
    local = g.op(
        "TreeEnsemble",
        "X",
        domain="ai.onnx.ml",
        n_targets=len(structures),
        aggregate_function=1,  # SUM: each target (tree) receives exactly one leaf
        post_transform=0,
        tree_roots=roots,
        nodes_featureids=cat(feats).tolist(),
        nodes_splits=tensor(cat(splits), "nodes_splits"),
        nodes_modes=tensor(np.zeros(n_nodes, np.uint8), "nodes_modes"),  # BRANCH_LEQ
        nodes_truenodeids=cat(true_ids).tolist(),
        nodes_trueleafs=cat(true_leaf).tolist(),
        nodes_falsenodeids=cat(false_ids).tolist(),
        nodes_falseleafs=cat(false_leaf).tolist(),
        leaf_targetids=cat(leaf_tree).tolist(),
        leaf_weights=tensor(cat(leaf_local), "leaf_weights"),
    )
    index = g.op("Add", g.op("Cast", local, to=INT64), g.const(first, "first"))
    reached = g.op("Gather", g.const(table, "leaves"), index, axis=0)  # (N, trees, C + 1)
    sums = g.op("ReduceSum", reached, g.const(np.array([1], np.int64), "axes"), keepdims=0)
    shares = g.op(
        "Slice",
        sums,
        g.const(np.array([0], np.int64)),
        g.const(np.array([nc], np.int64)),
        g.const(np.array([1], np.int64)),
    )
    votes = g.op(
        "Slice",
        sums,
        g.const(np.array([nc], np.int64)),
        g.const(np.array([nc + 1], np.int64)),
        g.const(np.array([1], np.int64)),
    )
    mean = g.op("Div", shares, g.op("Max", votes, g.const(np.ones(1))))
    voted = g.op("Greater", votes, g.const(np.zeros(1)))
    proba = g.op("Where", voted, mean, g.const(np.full(1, 1.0 / nc)), out="probabilities")
    label_of(g, g.op("ArgMax", proba, axis=1, keepdims=0), model.classes_)
    return g.build(
        name,
        [value_info("X", FLOAT, [None, d])],
        [
            value_info("label", elem_type(label_values(model.classes_)), [None]),
            value_info("probabilities", DOUBLE, [None, nc]),
        ],
    )
