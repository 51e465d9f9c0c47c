"""Model exchange: forget's fitted models as ONNX graphs that other systems can score.

An exported copy is a recipient's copy of the model: after an erasure it is stale and must be
replaced (GDPR Art. 19; the store records who holds which copy). What the bytes carry is the
model's decision function and nothing more: no training row, no row id. :func:`to_onnx`
needs the ``exchange`` extra (``onnx``; ``onnxruntime`` to score).

>>> import numpy as np
>>> from forget import GaussianNB
>>> from forget.exchange import exportable, to_onnx
>>> m = GaussianNB().fit(np.array([[0.0], [0.2], [1.0], [1.2]]), np.array([0, 0, 1, 1]))
>>> exportable(m) is None, to_onnx(m) == to_onnx(m)
(True, True)
"""

from __future__ import annotations

from forget.exchange.errors import NotExportableError
from forget.exchange.onnx import exportable, to_onnx

__all__ = ["NotExportableError", "exportable", "to_onnx"]
