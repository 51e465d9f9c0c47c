"""Export of forget's fitted models to ONNX: :func:`to_onnx` and :func:`exportable`.

Every graph has one input ``X`` (rows × features) and, for classifiers, the outputs
``label`` (``classes_[argmax]``) and ``probabilities`` (double, columns in ``classes_``
order); for ``LinearRegression``, ``predictions`` (double). ``X`` is float32 for the forest
(which compares in float32) and float64 for the others.

How close onnxruntime (1.32, CPU) comes to the model's own answers; the tolerances are
asserted by ``tests/forget/test_onnx_export.py`` (the largest differences seen over 150
hypothesis-drawn datasets per model, forgets included, in brackets):

- ``HedgeCutClassifier``: probabilities within ``TREE_ATOL`` (1e-12) of ``predict_proba``
  [0: equal bit for bit, also on adult with 100 trees]. The leaf shares are the scorer's own
  doubles and the trees are summed in double; only the order of that sum may differ (threads).
  Labels equal wherever the two best classes are further apart than that.
  Graph: ``forget.exchange._trees``.
- ``LinearRegression``, ``LogisticRegression``, ``GaussianNB``, ``MultinomialNB``: double
  throughout; outputs within ``LINEAR_RTOL`` (1e-12) times the row's scale, the magnitude of
  what the graph sums before its last step (``|x|·|w| + |b|``, the largest margin or joint
  log-likelihood; at least 1) [4e-16 of it; in absolute terms up to 1.4e-14 for regression
  and 6e-8 for a Gaussian NB whose class has a near-zero variance, i.e. a log-likelihood of
  ~1e8]: a matrix product or a sum over features may add in another order. Labels equal
  wherever the decision is not a near-tie. Graphs: ``forget.exchange._linear``.
- ``KNNClassifier`` / ``KNNRegressor``: refused (:class:`NotExportableError`). A kNN model
  *is* its training rows: any graph that answers as it does (distances to every row, TopK,
  a vote) carries the rows, i.e. personal data, to every recipient, and exact kNN has no
  form without them.

The bytes hold the decision function only (cut-offs and leaf shares, weights, per-class
statistics): no row, no row id. They are deterministic (the same model state gives the same
bytes) and, for the models whose artifact is canonical (all but ``LogisticRegression``'s
Newton-updated weights, see the README's "What a model keeps"), after ``forget(S)`` they are
the bytes the model refit without ``S`` exports. ``metadata_props`` record the producer
(``forget.version``), the model class (``forget.estimator``), ``forget.artifact_sha256``
(sha256 of ``to_bytes()``: the digest the store records for the revision's artifact) and
the caller's ``metadata`` (e.g. model, version, revision), sorted by key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from forget.exchange._graph import IR_VERSION, ML_OPSET, OPSET, onnx
from forget.exchange._linear import (
    gaussian_nb_graph,
    linear_graph,
    logistic_graph,
    multinomial_nb_graph,
)
from forget.exchange._trees import forest_graph
from forget.exchange.errors import NotExportableError

TREE_ATOL = 1e-12
LINEAR_RTOL = 1e-12

_GRAPHS: dict[str, Callable[[Any, str], Any]] = {
    "HedgeCutClassifier": forest_graph,
    "LinearRegression": linear_graph,
    "LogisticRegression": logistic_graph,
    "GaussianNB": gaussian_nb_graph,
    "MultinomialNB": multinomial_nb_graph,
}
_HOLDS_ROWS = {
    "KNNClassifier": (
        "a kNN model answers from its training rows themselves: its ONNX graph would carry "
        "every training row (personal data) to the recipient, and exact kNN has no form "
        "without them; export a model that summarises the rows instead"
    ),
}
_HOLDS_ROWS["KNNRegressor"] = _HOLDS_ROWS["KNNClassifier"]
_RESERVED = "forget."


def exportable(estimator: Any) -> str | None:
    """``None`` when :func:`to_onnx` can export ``estimator``, else the reason it cannot.

    >>> from forget import KNNClassifier
    >>> exportable(KNNClassifier()).split(":")[0]
    'a kNN model answers from its training rows themselves'
    """
    kind = type(estimator).__name__
    if kind in _HOLDS_ROWS and type(estimator).__module__.startswith("forget."):
        return _HOLDS_ROWS[kind]
    if kind not in _GRAPHS or not type(estimator).__module__.startswith("forget."):
        known = ", ".join(sorted(_GRAPHS))
        return f"{kind} is not one of forget's exportable models ({known})"
    if not _fitted(estimator):
        return f"this {kind} is not fitted yet; call fit(X, y) first"
    return None


def to_onnx(
    estimator: Any, *, name: str | None = None, metadata: Mapping[str, str] | None = None
) -> bytes:
    """The fitted ``estimator`` as a serialised ONNX ``ModelProto`` (see the module docstring).

    ``name`` names the graph (default: the class name); ``metadata`` (str to str, keys not
    starting with ``forget.``) is recorded in ``metadata_props`` beside forget's own entries.
    Raises :class:`NotExportableError` with the reason :func:`exportable` gives, and
    ``ValueError`` for bad metadata.

    >>> import numpy as np
    >>> from forget import LinearRegression
    >>> m = LinearRegression().fit(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]))
    >>> data = to_onnx(m, metadata={"model": "demo", "revision": "3"})
    >>> import onnx; sorted(p.key for p in onnx.load_from_string(data).metadata_props)
    ['forget.artifact_sha256', 'forget.estimator', 'forget.version', 'model', 'revision']
    """
    reason = exportable(estimator)
    if reason is not None:
        raise NotExportableError(f"cannot export {type(estimator).__name__} to ONNX: {reason}")
    props = _metadata(estimator, metadata or {})
    kind = type(estimator).__name__
    graph = _GRAPHS[kind](estimator, name or kind)
    helper = onnx().helper
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="forget",
        producer_version=props["forget.version"],
        doc_string=f"forget {kind}",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, props)
    return bytes(model.SerializeToString())


def _metadata(estimator: Any, extra: Mapping[str, str]) -> dict[str, str]:
    import forget

    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata must map str to str, got {key!r}: {value!r}")
        if key.startswith(_RESERVED):
            raise ValueError(f"metadata key {key!r}: keys starting with 'forget.' are forget's own")
    own = {
        "forget.version": forget.__version__,
        "forget.estimator": type(estimator).__name__,
        "forget.artifact_sha256": hashlib.sha256(estimator.to_bytes()).hexdigest(),
    }
    merged = {**own, **extra}
    return {k: merged[k] for k in sorted(merged)}


def _fitted(estimator: Any) -> bool:
    # the forest's node arrays, or the rows every other model keeps (``HoldsRows``)
    return hasattr(estimator, "_S") or hasattr(estimator, "_index")
