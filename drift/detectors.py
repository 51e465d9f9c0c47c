"""Streaming change detectors: ADWIN on model outputs, DDM on prediction errors.

Both consume batches (a numba kernel per call, tens of nanoseconds a value), keep a bounded
state, report each change as a :class:`Change` (when, and the level before and after), and
:meth:`reset` to a fresh state — the monitor resets them when the model's revision changes, so
that an unlearning step (a new model) is not read as drift by itself.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> adwin = ADWIN()
>>> adwin.update(rng.normal(0.2, 0.1, 2000)), adwin.update(rng.normal(0.5, 0.1, 500))[0].at < 2100
([], True)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift import _kernels as K

__all__ = ["ADWIN", "DDM", "Change"]

KEEP_CHANGES = 32  # the most recent changes remembered


@dataclass(frozen=True)
class Change:
    """A detected change: ``at`` counts values since the last reset (1-based, inclusive).

    ADWIN: ``before`` / ``after`` are the means of the values it dropped / kept. DDM: the
    lowest error rate seen before the change and the error rate when it was detected.
    """

    at: int
    before: float
    after: float


def _as_values(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


class ADWIN:
    """ADaptive WINdowing (ADWIN2) of Bifet & Gavaldà, "Learning from time-changing data with
    adaptive windowing", SIAM SDM 2007.

    Keeps a window of recent values in an exponential histogram (at most ``max_buckets``
    buckets of each size 2^i, so O(log W) memory) and drops its oldest part whenever two
    sub-windows W0 (older) · W1 (newer) have means further apart than

        ε_cut = sqrt(2/m · σ²_W · ln(2/δ')) + 2/(3m) · ln(2/δ'),
        1/m = 1/n0 + 1/n1,  δ' = δ / ln n

    (the paper's Bernstein-type bound, with δ' as in its practical version and in river),
    checked at bucket boundaries every ``clock`` values. The constant term assumes values in
    [0, 1] (probabilities); scale others first. Only bucket sums and squared deviations are
    kept; the newest few buckets hold single values.

    Parameters
    ----------
    delta : confidence; smaller means fewer false alarms and slower detection.
    clock : values between two checks.
    min_window : the fewest values on either side of a cut.
    max_buckets : buckets kept per size (M in the paper).
    """

    def __init__(
        self, delta: float = 0.002, *, clock: int = 32, min_window: int = 5, max_buckets: int = 5
    ) -> None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if clock < 1 or min_window < 1 or max_buckets < 2:
            raise ValueError("clock and min_window must be >= 1, max_buckets >= 2")
        self.delta = delta
        self.clock = clock
        self.min_window = min_window
        self.max_buckets = max_buckets
        self.reset()

    def reset(self) -> None:
        """Forget every value and change (a fresh detector)."""
        cap = self.max_buckets * 64 + 2
        self._bn = np.zeros(cap, dtype=np.int64)
        self._bs = np.zeros(cap)
        self._bm = np.zeros(cap)
        self._state = np.zeros(4, dtype=np.int64)
        self.changes: deque[Change] = deque(maxlen=KEEP_CHANGES)
        self.n_changes = 0

    def update(self, values: Any) -> list[Change]:
        """Feed values (non-finite ones are skipped); returns the changes they revealed."""
        v = _as_values(values)
        if v.size == 0:
            return []
        cap = min(v.size, 1024)
        at, before, after = np.zeros(cap, dtype=np.int64), np.zeros(cap), np.zeros(cap)
        n = K.adwin_feed(
            v,
            self._bn,
            self._bs,
            self._bm,
            self._state,
            self.delta,
            self.clock,
            self.min_window,
            self.max_buckets,
            at,
            before,
            after,
        )
        new = [Change(int(at[i]), float(before[i]), float(after[i])) for i in range(n)]
        self.changes.extend(new)
        self.n_changes += len(new)
        return new

    @property
    def seen(self) -> int:
        """Values fed since the last reset."""
        return int(self._state[K.A_SEEN])

    @property
    def width(self) -> int:
        """Values in the current window."""
        return int(self._state[K.A_WIDTH])

    @property
    def mean(self) -> float:
        """The current window's mean (NaN while empty)."""
        c = int(self._state[K.A_COUNT])
        return float(self._bs[:c].sum() / self.width) if self.width else float("nan")

    def __repr__(self) -> str:
        return f"ADWIN(delta={self.delta}, width={self.width}, changes={self.n_changes})"


class DDM:
    """Drift Detection Method of Gama, Medas, Castillo & Rodrigues, "Learning with drift
    detection", SBIA 2004.

    Models errors as Bernoulli trials: after ``min_instances`` values it tracks the error rate
    ``p`` and ``s = sqrt(p(1 - p)/n)``, remembers the (p_min, s_min) at which ``p + s`` was
    lowest, warns when ``p + s > p_min + warning·s_min`` and signals a change when
    ``p + s > p_min + drift·s_min``, after which it starts over (the new concept). One
    departure from the paper: no minimum is taken before the first error (with s = 0 the first
    error would read as a change).

    Parameters
    ----------
    warning, drift : the multiples of s_min (2 and 3 in the paper).
    min_instances : values before any decision (30 in the paper).
    """

    def __init__(
        self, *, warning: float = 2.0, drift: float = 3.0, min_instances: int = 30
    ) -> None:
        if not 0 < warning <= drift:
            raise ValueError("need 0 < warning <= drift")
        if min_instances < 1:
            raise ValueError("min_instances must be >= 1")
        self.warning_level = warning
        self.drift_level = drift
        self.min_instances = min_instances
        self.reset()

    def reset(self) -> None:
        """Forget every value and change (a fresh detector)."""
        self._i = np.zeros(3, dtype=np.int64)
        self._f = np.array([np.inf, np.inf, 0.0])
        self.changes: deque[Change] = deque(maxlen=KEEP_CHANGES)
        self.n_changes = 0

    def update(self, errors: Any) -> list[Change]:
        """Feed errors (truthy = the prediction was wrong); returns the changes they revealed."""
        e = _as_values(errors)
        if e.size == 0:
            return []
        e = (e != 0).astype(np.float64)
        cap = min(e.size, 1024)
        at, before, after = np.zeros(cap, dtype=np.int64), np.zeros(cap), np.zeros(cap)
        n = K.ddm_feed(
            e,
            self._i,
            self._f,
            self.min_instances,
            self.warning_level,
            self.drift_level,
            at,
            before,
            after,
        )
        new = [Change(int(at[i]), float(before[i]), float(after[i])) for i in range(n)]
        self.changes.extend(new)
        self.n_changes += len(new)
        return new

    @property
    def seen(self) -> int:
        """Values fed since the last reset."""
        return int(self._i[K.D_SEEN])

    @property
    def error_rate(self) -> float:
        """The error rate since the last change (NaN before any value)."""
        n = int(self._i[K.D_N])
        return float(self._i[K.D_ERRORS] / n) if n else float("nan")

    @property
    def min_error_rate(self) -> float:
        """p_min: the error rate at the lowest ``p + s`` since the last change (NaN if none)."""
        p = float(self._f[K.D_PMIN])
        return p if np.isfinite(p) else float("nan")

    @property
    def in_warning(self) -> bool:
        return bool(self._f[K.D_WARN])

    def __repr__(self) -> str:
        return f"DDM(seen={self.seen}, error_rate={self.error_rate:.3f}, changes={self.n_changes})"
