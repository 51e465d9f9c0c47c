"""Evidence that an unlearned model equals a retrain from scratch on the remaining rows.

After a forget, the store refits a fresh model (same parameters and seed; fitted choices such
as the label set and the forest's cut-off distribution pinned, see
:func:`forget.checks.refit_on_remaining`) on the version's rows still in its dataset, and
compares the outputs of both on a probe set of up to ``PROBE_ROWS`` of those rows.

The check costs a refit, so it runs for a *sample* of requests: :class:`Policy` draws each
request in with probability ``rate`` (the store's ``evidence_rate``, or ``erase(verify=...)``),
keyed by the store's secret and the request id, so the sample is reproducible by the store yet
neither predictable nor steerable by whoever files the request. ``rate`` 1 checks every
request (the default), 0 none.

>>> [Policy.of(rate, draw).sampled for rate, draw in [(0.25, 0.1), (0.25, 0.3), (1.0, 0.99)]]
[True, False, True]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from forget.base import Guarantee
from forget.checks import APPROX_ATOL, RTOL, outputs, refit_on_remaining
from store.errors import InvalidEvidenceRateError
from store.registry import ModelVersion, Registry

PROBE_ROWS = 256
METHOD = "retrain_from_scratch"


def check_rate(rate: object) -> float:
    """``rate`` as a float in [0, 1]; ``True``/``False`` mean 1 and 0."""
    if isinstance(rate, bool):
        return 1.0 if rate else 0.0
    if not isinstance(rate, int | float) or not math.isfinite(rate) or not 0 <= rate <= 1:
        raise InvalidEvidenceRateError(
            f"an evidence rate is a number in [0, 1] (or True/False), got {rate!r}"
        )
    return float(rate)


@dataclass(frozen=True)
class Policy:
    """Whether one request gets retrain checks: ``rate`` and the keyed ``draw`` in [0, 1)."""

    rate: float
    sampled: bool

    @classmethod
    def of(cls, rate: float, draw: float) -> Policy:
        return cls(rate, rate >= 1.0 or draw < rate)

    def reason(self) -> str:
        """Why a request was not checked (for its report)."""
        if self.rate <= 0:
            return "verification skipped (evidence rate 0)"
        return f"not sampled: evidence rate {self.rate:g} (keyed random sample of requests)"

    def describe(self) -> str:
        if self.rate >= 1:
            return "every request is checked"
        if self.rate <= 0:
            return "no request is checked"
        return f"a keyed random {self.rate:.0%} of requests is checked"


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
