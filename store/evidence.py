"""Evidence that an unlearned model equals a retrain from scratch on the remaining rows.

After a forget, the store refits a fresh model (same parameters and seed; fitted choices such
as the label set and the forest's cut-off distribution pinned, see
:func:`forget.checks.refit_on_remaining`) on the version's rows still in its dataset, and
compares the outputs of both on a probe set of up to ``PROBE_ROWS`` of those rows. In this
slice the check runs for every request and every model that took the forget.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forget.base import Guarantee
from forget.checks import APPROX_ATOL, RTOL, outputs, refit_on_remaining
from store.registry import ModelVersion, Registry

PROBE_ROWS = 256
METHOD = "retrain_from_scratch"


def retrain_check(registry: Registry, mv: ModelVersion, estimator: Any) -> dict[str, Any]:
    """Compare ``estimator`` with a refit on the version's remaining rows; JSON-able result."""
    ids, X, y = registry.training_data(mv)
    ref = refit_on_remaining(estimator, X, y, ids, [])
    probe = np.unique(np.linspace(0, ids.size - 1, min(PROBE_ROWS, ids.size)).astype(np.int64))
    a, b = outputs(estimator, X[probe]), outputs(ref, X[probe])
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    identical = bool(np.array_equal(a, b))
    if estimator.guarantee is Guarantee.APPROXIMATE:
        passed, tolerance = diff <= APPROX_ATOL, APPROX_ATOL
    else:
        passed = identical or bool(np.allclose(a, b, rtol=RTOL, atol=RTOL))
        tolerance = RTOL
    return {
        "method": METHOD,
        "training_rows": int(ids.size),
        "probe_rows": int(probe.size),
        "identical": identical,
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": bool(passed),
    }
