"""HedgeCut-style extremely randomized trees with exact unlearning."""

from forget.hedgecut.forest import (
    ForestInputs,
    HedgeCutClassifier,
    Tree,
    TreeFitter,
    fit_tree,
    fit_trees,
    tree_fitter,
)

__all__ = [
    "ForestInputs",
    "HedgeCutClassifier",
    "Tree",
    "TreeFitter",
    "fit_tree",
    "fit_trees",
    "tree_fitter",
]
