"""Tensor scoring of tree ensembles (Hummingbird's strategies), refreshed tree by tree.

``compile_forest(model)`` turns a ``HedgeCutClassifier``'s active trees into flat arrays and
scores them with one of three strategies, on numba (CPU) or torch (CUDA when available):

- ``"gemm"``: Hummingbird's matrices (shallow trees; torch);
- ``"ptt"``: perfect tree traversal, trees padded to one depth, branch-free levels;
- ``"tt"``: tree traversal over compact preorder arrays (deep trees; HedgeCut's default).
- ``"qtt"``: tree traversal over rows quantized to the forest's own cut-offs (bin indices,
  8-byte nodes; numba, opt-in; ``_quantized``).

Results equal the forest's own ``predict_proba`` bit for bit. After ``model.forget(...)``,
``CompiledForest.refresh({tree: structure})`` recompiles only the trees that changed.

``from_sklearn(estimator)`` compiles scikit-learn's tree ensembles (ExtraTrees, RandomForest,
decision trees; classifiers and regressors) the same way, scoring bitwise as they do.
"""

from forget.scoring._sklearn import from_sklearn, sklearn_structures
from forget.scoring.compiled import (
    BACKENDS,
    STRATEGIES,
    CompiledForest,
    Plan,
    changed_trees,
    compile_forest,
)

__all__ = [
    "BACKENDS",
    "STRATEGIES",
    "CompiledForest",
    "Plan",
    "changed_trees",
    "compile_forest",
    "from_sklearn",
    "sklearn_structures",
]
