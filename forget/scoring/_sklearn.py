"""scikit-learn's tree ensembles compiled into ``CompiledForest``, scoring as they do.

What scikit-learn computes, and so what the compiled form reproduces bit for bit:

- rows are cast to float32 and a split sends ``x`` left when ``x <= threshold``, the float32
  ``x`` compared with the float64 threshold (in C, as doubles). For a float32 ``x`` that is
  ``x <= round_down32(threshold)``, the cut-off ``CompiledForest`` stores;
- a tree predicts its leaf's ``tree_.value`` as it is: class fractions for a classifier
  (scikit-learn >= 1.4 stores them normalised), the mean target for a regressor;
- a forest sums the trees' predictions into zeros, tree after tree in ``estimators_`` order,
  then divides by the number of trees (``n_jobs=None``; with several jobs the order of the
  additions, and so the last bit, depends on thread timing). ``CompiledForest`` adds the
  leaves in tree order from 0.0 and divides by the count of voting trees, all of them.

A tree is compiled from its node arrays in preorder (``BestFirstTreeBuilder``, used with
``max_leaf_nodes``, numbers nodes in another order). Rows with missing values are refused:
the compiled form keeps no ``missing_go_to_left``.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from forget.scoring import _kernels as K
from forget.scoring.compiled import CompiledForest

SUPPORTED = (
    "DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor, "
    "RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor"
)


def _kinds() -> tuple[tuple[type, ...], tuple[type, ...]]:
    # scikit-learn is imported here, not with the package: serving a HedgeCut forest never
    # loads it
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    forests = (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    return forests, (DecisionTreeClassifier, DecisionTreeRegressor)


def sklearn_structures(estimator: Any) -> tuple[list[np.ndarray], int, str]:
    """A fitted scikit-learn tree ensemble as ``CompiledForest`` structures.

    Returns ``(structures, columns, leaves)``: one preorder array per tree (see
    ``CompiledForest``), the number of classes (a regressor: of outputs), and ``"proba"``
    for a classifier or ``"values"`` for a regressor. Raises TypeError for another kind of
    estimator, ValueError for one that is not fitted or is a multi-output classifier.
    """
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    forests, trees = _kinds()
    name = type(estimator).__name__
    if not isinstance(estimator, forests + trees):
        raise TypeError(f"{name} is not a scikit-learn tree ensemble this compiles ({SUPPORTED})")
    is_forest = isinstance(estimator, forests)
    estimator = cast(Any, estimator)  # a fitted estimator's attributes are not typed
    check_is_fitted(estimator)
    classifier = is_classifier(estimator)
    if classifier and estimator.n_outputs_ != 1:
        raise ValueError(
            f"{name} predicts {estimator.n_outputs_} outputs; only single-output classifiers "
            "compile (multi-output regressors do)"
        )
    members = estimator.estimators_ if is_forest else [estimator]
    columns = int(estimator.n_classes_) if classifier else int(estimator.n_outputs_)
    structures = []
    for t, tree in enumerate(members):
        if classifier and int(tree.n_classes_) != columns:  # a forest's trees share its classes
            raise ValueError(f"{name}: tree {t} has {tree.n_classes_} classes, not {columns}")
        structures.append(_structure(tree.tree_, classifier, columns, t))
    return structures, columns, "proba" if classifier else "values"


def _structure(tree: Any, classifier: bool, columns: int, t: int) -> np.ndarray:
    left = np.ascontiguousarray(tree.children_left, dtype=np.int64)
    right = np.ascontiguousarray(tree.children_right, dtype=np.int64)
    m = left.shape[0]
    order = np.empty(m, np.int64)
    if K.preorder(left, right, order) != m:
        raise ValueError(f"tree {t}: its {m} nodes are not one binary tree rooted at node 0")
    leaf = left[order] < 0
    enc = np.zeros((m, 2 + columns))
    enc[:, 0] = np.where(leaf, -1, tree.feature[order])
    enc[:, 1] = np.where(leaf, 0.0, tree.threshold[order])
    # the value a tree's predict_proba / predict returns at the leaf, as it is stored
    value = tree.value[:, 0, :columns] if classifier else tree.value[:, :columns, 0]
    enc[leaf, 2:] = value[order[leaf]]
    return enc


def from_sklearn(
    estimator: Any,
    strategy: str = "auto",
    backend: str = "auto",
    *,
    n_jobs: int | None = None,
    device: str | None = None,
) -> CompiledForest:
    """Compile a fitted scikit-learn tree ensemble into a :class:`CompiledForest`.

    ``ExtraTrees`` and ``RandomForest`` classifiers and regressors and single decision
    (or extra) trees. A classifier's ``predict_proba`` and ``predict``, and a regressor's
    ``predict``, equal the estimator's bit for bit (the estimator's with ``n_jobs=None``),
    whatever the strategy, backend or ``n_jobs``; rows with missing values are refused.

    Parameters
    ----------
    estimator : the fitted estimator.
    strategy, backend, n_jobs, device : as for :class:`CompiledForest` (``n_jobs=None``: one
        thread).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor
    >>> from forget.scoring import from_sklearn
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
    >>> et = ExtraTreesClassifier(n_estimators=10, random_state=0).fit(X, y)
    >>> bool((from_sklearn(et).predict_proba(X) == et.predict_proba(X)).all())
    True
    >>> rf = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 1])
    >>> bool((from_sklearn(rf).predict(X) == rf.predict(X)).all())
    True
    """
    structures, columns, leaves = sklearn_structures(estimator)
    return CompiledForest(
        structures,
        columns,
        int(estimator.n_features_in_),
        strategy=strategy,
        backend=backend,
        n_jobs=n_jobs,
        classes=estimator.classes_ if leaves == "proba" else None,
        device=device,
        leaves=leaves,
    )
