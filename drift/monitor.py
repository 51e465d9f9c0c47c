"""The drift monitor of one model version: windows, feature tests, detectors and a report.

``observe`` only appends to a ring buffer and queues the outputs (O(batch), no statistics);
the feature tests run in :meth:`Monitor.report`, at most once per ``recheck_rows`` new rows
(cached in between), on a copy of the window taken under the lock, so serving threads wait
for a memory copy, never for a test. The output detector (ADWIN) and the error detector (DDM)
consume their queues in batches, through numba.

A model revision change (an unlearning step) is a new model: :meth:`Monitor.set_revision`
restarts both detectors, so the change of model is not read as drift. The input window is
kept: inputs do not depend on the model.

What a monitor holds about people: the last ``capacity`` served rows as they came (remove a
subject's with :meth:`Monitor.discard`, given the keys they were observed under), the training
profile's marginal summaries (see :mod:`drift.profile`), and the detectors' aggregates (bucket
sums of outputs; counts of errors) — no keys, no rows.

>>> import numpy as np
>>> from drift import Monitor, ReferenceProfile
>>> rng = np.random.default_rng(0)
>>> train = np.c_[rng.normal(40, 10, 8000), rng.integers(0, 3, 8000)]
>>> mon = Monitor(ReferenceProfile.fit(train, ["age", "kind"], categorical=["kind"]))
>>> serve = np.c_[rng.normal(50, 10, 2000), rng.integers(0, 3, 2000)]
>>> mon.observe(serve, outputs=rng.random(2000))
>>> r = mon.report()
>>> r["drift"], [f["name"] for f in r["features"] if f["drift"]]
(True, ['age'])
>>> r["alerts"][0][:40]
"feature 'age' shifted by +0.99 std (mean"
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.detectors import ADWIN, DDM, Change
from drift.errors import DriftInputError
from drift.evaluate import FeatureResult, Thresholds, evaluate_features, feature_alerts
from drift.profile import ReferenceProfile
from drift.window import Window

__all__ = ["Monitor", "MonitorConfig"]

FEED_EVERY = 1024  # queued outputs / errors handed to the detectors in one kernel call


@dataclass(frozen=True)
class MonitorConfig:
    """Window size, drift thresholds and detector settings; the defaults meet the bench.

    Parameters
    ----------
    capacity : rows in the window (and the horizon within which a detector change counts as
        current drift).
    thresholds : when a feature drifts (:class:`drift.evaluate.Thresholds`).
    recheck_rows : ``report()`` reuses the cached feature tests until this many new rows
        arrived (or rows were discarded): a fresh evaluation costs ~1 ms for 14 features
        and 5,000 rows, so ~1 µs a row at most at 1,000.
    adwin_delta : ADWIN's confidence on outputs.
    output_range : outputs are mapped from this range to [0, 1] for ADWIN's bound
        (probabilities: the default; regressors: the training target's range).
    n_outputs : outputs the window keeps per row: 1, the score the detectors read; ``k``, a
        classifier's ``k`` probabilities (:meth:`Monitor.window_outputs`, which performance
        prediction reads).
    ddm_warning, ddm_drift, ddm_min_instances : DDM on errors. Stricter than the paper's
        (2, 3, 30): with those, a stationary stream of 10,000 labels at a 15 % error rate raises
        a false change in about a third of runs; with (2, 3.5, 1,000) in about 2 %.
    """

    capacity: int = 5000
    thresholds: Thresholds = field(default_factory=Thresholds)
    recheck_rows: int = 1000
    adwin_delta: float = 0.002
    output_range: tuple[float, float] = (0.0, 1.0)
    ddm_warning: float = 2.0
    ddm_drift: float = 3.5
    ddm_min_instances: int = 1000
    n_outputs: int = 1

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.recheck_rows < 1 or self.n_outputs < 1:
            raise ValueError("capacity, recheck_rows and n_outputs must be positive")
        lo, hi = self.output_range
        if not hi > lo:
            raise ValueError(f"output_range must be (low, high) with high > low, got {lo, hi}")


def _outputs(outputs: Any, n: int) -> np.ndarray | None:
    if outputs is None:
        return None
    try:
        o = np.array(outputs, dtype=np.float64)  # a copy: it waits in a queue
    except (TypeError, ValueError) as e:
        raise DriftInputError(f"outputs must be numbers: {e}") from None
    if o.ndim == 2 and o.shape[1] == 2:
        o = o[:, 1]  # probabilities of (negative, positive): the positive class's
    elif o.ndim == 2 and o.shape[1] > 2:
        o = o.max(axis=1)  # several classes: the model's confidence
    elif o.ndim == 2 and o.shape[1] == 1:
        o = o[:, 0]
    if o.ndim != 1 or o.shape[0] != n:
        raise DriftInputError(f"outputs have shape {o.shape}; expected one per row ({n} rows)")
    return o


def _change(c: Change | None) -> dict[str, Any] | None:
    return None if c is None else {"at": c.at, "before": c.before, "after": c.after}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x < 0.1 else f"{100 * x:.0f}%"


class Monitor:
    """Drift monitoring of one model version against its training data's profile.

    Thread-safe: every method may be called from several threads.

    Parameters
    ----------
    profile : the training data's :class:`~drift.profile.ReferenceProfile`.
    config : :class:`MonitorConfig`.
    revision : the model's revision now (see :meth:`set_revision`).
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        config: MonitorConfig | None = None,
        *,
        revision: Hashable | None = None,
    ) -> None:
        self.profile = profile
        self.config = config or MonitorConfig()
        self.revision = revision
        self._lock = threading.Lock()
        self._window = Window(profile.n_features, self.config.capacity, self.config.n_outputs)
        self._adwin = ADWIN(self.config.adwin_delta)
        self._ddm = DDM(
            warning=self.config.ddm_warning,
            drift=self.config.ddm_drift,
            min_instances=self.config.ddm_min_instances,
        )
        self._outputs: list[np.ndarray] = []
        self._errors: list[np.ndarray] = []
        self._queued = [0, 0]  # outputs, errors
        self._changed = 0  # bumped whenever rows leave the window other than by ageing
        self._cache: tuple[int, int, list[FeatureResult]] | None = None  # (seen, changed, ..)

    # ------------------------------------------------------------------ intake
    def observe(self, X: Any, outputs: Any = None, keys: Any = None) -> None:
        """Record a batch of served rows, the model's outputs for them and optional keys.

        Parameters
        ----------
        X : rows × features in the profile's order (numbers; NaN, ``None``, ±inf are missing
            values and counted as such), or a sequence of ``{feature: number}`` mappings.
        outputs : one score per row — the positive class's probability, or a regressor's
            prediction (see ``MonitorConfig.output_range``); an ``(n, 2)`` probability array
            is read as its second column, ``(n, k > 2)`` as the top probability. Optional.
        keys : ``None``, one hashable key for the whole batch, or one key per row; rows can
            later be removed with :meth:`discard` (an erased subject's inputs).

        Raises :class:`~drift.errors.DriftInputError` and records nothing on a bad batch.
        """
        M = self.profile.as_matrix(X)
        n = M.shape[0]
        out = _outputs(outputs, n)
        kept = out
        k = self.config.n_outputs
        if k > 1 and outputs is not None:
            kept = np.asarray(outputs, dtype=np.float64)
            if kept.shape != (n, k):
                raise DriftInputError(f"outputs have shape {kept.shape}; expected ({n}, {k})")
        with self._lock:
            self._window.append(M, outputs=kept, keys=keys)
            if out is not None:
                self._outputs.append(out)
                self._queued[0] += n
                if self._queued[0] >= FEED_EVERY:
                    self._feed()

    def feedback(self, y_true: Any = None, y_pred: Any = None, *, errors: Any = None) -> None:
        """Feed labels that came back: ``y_true`` against the predicted labels ``y_pred``
        (an error where they differ), or ``errors`` directly (truthy = wrong; e.g. a
        regressor's "absolute error above tolerance"). Feeds DDM."""
        if errors is None:
            if y_pred is None:
                raise DriftInputError("give y_true and y_pred, or errors")
            t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
            if t.shape != p.shape:
                raise DriftInputError(f"{t.size} labels for {p.size} predictions")
            e = (t != p).astype(np.float64)
        else:
            if y_true is not None or y_pred is not None:
                raise DriftInputError("give either y_true and y_pred, or errors")
            try:
                e = (np.asarray(errors, dtype=np.float64).ravel() != 0).astype(np.float64)
            except (TypeError, ValueError) as err:
                raise DriftInputError(f"errors must be booleans or numbers: {err}") from None
        with self._lock:
            self._errors.append(e)
            self._queued[1] += e.size
            if self._queued[1] >= FEED_EVERY:
                self._feed()

    def discard(self, keys: Iterable[Hashable]) -> int:
        """Remove the window's rows observed under ``keys`` (erased subjects); returns how
        many. The detectors keep only aggregates and are not changed."""
        with self._lock:
            removed = self._window.discard(keys)
            if removed:
                self._changed += 1
            return removed

    def set_revision(self, revision: Hashable) -> bool:
        """Tell the monitor which model revision serves now; restarts the detectors (and
        returns True) when it differs from the last one."""
        with self._lock:
            if revision == self.revision:
                return False
            self._restart(revision)
            return True

    def restart(self, revision: Hashable | None = None) -> None:
        """Restart the output and error detectors (queued values are dropped)."""
        with self._lock:
            self._restart(revision)

    def _restart(self, revision: Hashable | None) -> None:
        self.revision = revision
        self._outputs.clear()
        self._errors.clear()
        self._queued = [0, 0]
        self._adwin.reset()
        self._ddm.reset()

    def replace_profile(self, profile: ReferenceProfile) -> None:
        """Test against a new reference (the training rows changed: an erasure, a retrain);
        the window and the detectors are kept. The features must be the same."""
        if profile.names != self.profile.names:
            raise DriftInputError(
                f"the new profile has features {list(profile.names)}, "
                f"the monitor {list(self.profile.names)}"
            )
        with self._lock:
            self.profile = profile
            self._changed += 1
            self._cache = None

    def clear(self) -> None:
        """Empty the window and restart the detectors."""
        with self._lock:
            self._window.clear()
            self._restart(self.revision)
            self._changed += 1
            self._cache = None

    def _feed(self) -> None:
        if self._outputs:
            lo, hi = self.config.output_range
            self._adwin.update((np.concatenate(self._outputs) - lo) / (hi - lo))
            self._outputs.clear()
        if self._errors:
            self._ddm.update(np.concatenate(self._errors))
            self._errors.clear()
        self._queued = [0, 0]

    # ------------------------------------------------------------------ report
    def features(self, *, fresh: bool = False) -> list[FeatureResult]:
        """The per-feature verdicts (cached for ``recheck_rows`` rows unless ``fresh``)."""
        with self._lock:
            seen, changed = self._window.seen, self._changed
            c = self._cache
            if (
                not fresh
                and c is not None
                and c[1] == changed
                and seen - c[0] < self.config.recheck_rows
            ):
                return c[2]
            X, _ = self._window.snapshot()
        results = evaluate_features(self.profile, X, self.config.thresholds)
        with self._lock:
            if self._cache is None or self._cache[0] <= seen:
                self._cache = (seen, changed, results)
        return results

    def window_outputs(self) -> np.ndarray:
        """The outputs of the rows in the window now, oldest first, without rows whose
        outputs were not given: ``(rows,)``, or ``(rows, n_outputs)``."""
        with self._lock:
            _, out = self._window.snapshot()
        finite = np.isfinite(out) if out.ndim == 1 else np.isfinite(out).all(axis=1)
        return out[finite]

    def _detectors(self) -> tuple[list[dict[str, Any]], list[str]]:
        cap = self.config.capacity
        lo, hi = self.config.output_range
        a, d = self._adwin, self._ddm
        since = "" if self.revision is None else f" of revision {self.revision}"
        alerts = []
        last_a = a.changes[-1] if a.changes else None
        a_drift = last_a is not None and a.seen - last_a.at < cap
        if last_a is not None:
            span = hi - lo
            last_a = Change(last_a.at, lo + last_a.before * span, lo + last_a.after * span)
        if a_drift and last_a is not None:
            alerts.append(
                f"model output distribution changed (ADWIN) at row {last_a.at:,}{since}: "
                f"mean output {last_a.before:.3g} → {last_a.after:.3g}"
            )
        last_d = d.changes[-1] if d.changes else None
        d_drift = last_d is not None and d.seen - last_d.at < cap
        if d_drift and last_d is not None:
            after = f"; {_pct(d.error_rate)} over the {d.seen - last_d.at:,} labels since"
            alerts.append(
                f"error rate rose from {_pct(last_d.before)} to {_pct(last_d.after)} (DDM) at "
                f"labelled row {last_d.at:,}{since}" + (after if d.seen - last_d.at >= 100 else "")
            )
        mean = a.mean
        dets = [
            {
                "name": "outputs",
                "detector": "ADWIN",
                "drift": a_drift,
                "rows": a.seen,
                "changes": a.n_changes,
                "last_change": _change(last_a),
                "width": a.width,
                "mean": None if np.isnan(mean) else lo + mean * (hi - lo),
            },
            {
                "name": "errors",
                "detector": "DDM",
                "drift": d_drift,
                "warning": d.in_warning,
                "rows": d.seen,
                "changes": d.n_changes,
                "last_change": _change(last_d),
                "error_rate": None if np.isnan(d.error_rate) else d.error_rate,
                "min_error_rate": None if np.isnan(d.min_error_rate) else d.min_error_rate,
            },
        ]
        return dets, alerts

    def report(self, *, fresh: bool = False) -> dict[str, Any]:
        """Everything at once, as a JSON-able dict::

            {"drift": bool, "revision": ..., "features": [{"name", "kind", "test",
             "statistic", "p_value", "p_adjusted", "effect", "effect_name", "drift",
             "reasons", ...}], "detectors": [{"name", "detector", "drift", ...}],
             "window": {"rows", "capacity", "seen", "discarded", "tested_rows",
             "tested_at_row"}, "alerts": [str, ...]}

        ``tested_rows`` is how many rows the feature tests saw, ``tested_at_row`` the value
        of ``seen`` when they ran (they are re-run once ``recheck_rows`` more arrived).

        ``fresh`` re-runs the feature tests even if the cached ones are recent.
        """
        feats = self.features(fresh=fresh)
        with self._lock:
            self._feed()
            dets, det_alerts = self._detectors()
            w = self._window
            window = {
                "rows": w.rows,
                "capacity": w.capacity,
                "seen": w.seen,
                "discarded": w.discarded,
                "tested_rows": feats[0].rows if feats else 0,
                "tested_at_row": self._cache[0] if self._cache else 0,
            }
            revision = self.revision
        alerts = feature_alerts(self.profile, feats) + det_alerts
        return {
            "drift": any(f.drift for f in feats) or any(d["drift"] for d in dets),
            "revision": revision,
            "features": [f.to_dict() for f in feats],
            "detectors": dets,
            "window": window,
            "alerts": alerts,
        }

    def __repr__(self) -> str:
        return f"Monitor({self.profile.n_features} features, {self._window!r})"
