"""Estimated accuracy of served classifiers on unlabeled traffic (``forget serve
--estimate-accuracy``), with :class:`drift.performance.PerformancePredictor`.

Drift says the inputs moved; this says whether the accuracy moved, before labels arrive. Per
served classifier version, built in the background (never on a request's path):

- **Held-out split.** The served model is trained on all of its rows, so none of them is
  unseen. A *twin* — the same estimator class and parameters — is fitted on the version's
  training rows minus a held-out split: the rows whose keyed hash of ``(seed, row id)`` falls
  in the lowest ``HOLDOUT`` fraction, at most ``MAX_HOLDOUT`` of them (the lowest hashes). A
  row's membership depends on its id alone, so a build after an erasure holds exactly what a
  build on the remaining rows would.
- **Predictor.** The performance predictor learns from corrupted copies of the held-out rows,
  scored by the twin, and reads the served model's probabilities on the drift window (the
  monitor keeps every class's probability for it). The twin saw 1 − ``HOLDOUT`` of the rows,
  so the estimate can run slightly low for the served model.
- **Report.** ``performance`` in the drift report: the estimate, the twin's clean held-out
  accuracy (``validation_accuracy``), the regressor the predictor kept (``ridge`` or ``knn``,
  the one of lower leave-one-out error), the window's rows, and an alert when the estimate falls
  more than ``margin`` below it; the gauge ``forget_estimated_accuracy``; and the accuracy of
  the predictions whose true labels came back (``POST .../feedback``) since the build, to
  check the estimate against.
- **Erasure: retrain, not forget.** Each meta-example of the predictor is a function of many
  held-out rows and of the twin, which a row also shaped; no aggregate sheds one. An erasure
  (or an objection or restriction) touching the version drops the twin, the predictor and the
  held-out copy at once — before the erasure is answered — and a rebuild from the rows the
  store holds then follows in the background: equal to a build that never saw the subject.
  Until it is done the report says ``status: "refitting"``. A build already running when the
  erasure arrives finishes on the rows it read and is thrown away (its generation is stale),
  so its copies live only until then. Nothing of it is written to disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.metrics import Metrics
from drift.performance import PerformancePredictor
from store.registry import ModelVersion

log = logging.getLogger("forget.api")

HOLDOUT = 0.2  # the fraction of a version's rows held out from its twin
MAX_HOLDOUT = 4000  # at most this many held-out rows (those of the lowest hashes)
MIN_HOLDOUT = 100  # fewer held-out rows: no estimate (too few to learn from)
MIN_WINDOW = 100  # rows in the drift window before an estimate is given
MARGIN = 0.05  # alert when the estimate is this far below the validation accuracy
N_CORRUPTIONS = 200
WINDOW = 1000  # rows in each corrupted copy: the drift window's order of size

Key = tuple[str, int]  # (model, version)
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]  # row ids, features, labels
READY, REFITTING, UNAVAILABLE = "ready", "refitting", "unavailable"


def held_out(row_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """A boolean mask of the held-out rows among ``row_ids``: a keyed hash of ``(seed, id)``
    below ``HOLDOUT``, at most ``MAX_HOLDOUT`` rows (the lowest hashes).

    >>> ids = np.arange(10_000)
    >>> m = held_out(ids)
    >>> 1900 < int(m.sum()) < 2100
    True
    >>> bool((held_out(ids[1:]) == m[1:]).all())  # removing a row moves no other row
    True
    """
    h = _mix(np.asarray(row_ids, dtype=np.int64).astype(np.uint64) ^ np.uint64(seed))
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    mask = u < HOLDOUT
    if int(mask.sum()) > MAX_HOLDOUT:
        cut = np.sort(u[mask])[MAX_HOLDOUT - 1]
        mask &= u <= cut
    return mask


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective mix of 64-bit keys (numpy wraps on overflow)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class _State:
    """One version's estimator: what was built (for which revision), or why not."""

    status: str = REFITTING
    revision: int | None = None
    predictor: PerformancePredictor | None = None
    classes: np.ndarray | None = None
    held_out_rows: int = 0
    reason: str | None = None
    built_at: float | None = None
    seconds: float | None = None
    labelled: list[int] = field(default_factory=lambda: [0, 0])  # correct, total since build
    generation: int = 0  # bumped by every invalidation: a build started before it is dropped


class Accuracy:
    """The accuracy estimators of the served classifier versions, and their builder thread.

    ``read(mv)``: the version's training rows as the store holds them now (ids, X, y; the
    caller takes the store's lock); ``make(mv)``: a fresh unfitted estimator of the version's
    class and parameters, or None when the class is not known here.
    """

    def __init__(
        self,
        metrics: Metrics,
        read: Callable[[ModelVersion], Rows],
        make: Callable[[ModelVersion], Any],
        *,
        seed: int = 0,
        n_corruptions: int = N_CORRUPTIONS,
        margin: float = MARGIN,
    ) -> None:
        self.metrics = metrics
        self._read, self._make = read, make
        self.seed, self.n_corruptions, self.margin = seed, n_corruptions, margin
        self._states: dict[Key, _State] = {}
        self._versions: dict[Key, tuple[ModelVersion, list[str]]] = {}
        self._todo: list[Key] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the builder thread (idempotent; the first :meth:`follow` does)."""
        with self._cond:
            if self._thread is not None or self._stopped:
                return
            self._thread = threading.Thread(target=self._loop, name="accuracy", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # ------------------------------------------------------------------ what the monitor calls
    def follow(self, mv: ModelVersion, kinds: list[str]) -> None:
        """Serve an estimate for ``mv`` (a classifier version; ``kinds``: each feature's,
        ``numeric`` or ``categorical``, as its drift profile has them): built now if it has
        none, or was built for another revision (a retrain)."""
        key = (mv.name, mv.version)
        self.start()
        with self._cond:
            self._versions[key] = (mv, list(kinds))
            state = self._states.get(key)
            if state is None or (state.status == READY and state.revision != mv.revision):
                self._invalidate(key)

    def invalidate(self, key: Key) -> None:
        """The version's rows changed (an erasure, an objection, a restriction or its lift):
        drop what was built from them at once, and rebuild in the background."""
        with self._cond:
            if key in self._states:
                self._invalidate(key)

    def _invalidate(self, key: Key) -> None:
        old = self._states.get(key)
        self._states[key] = _State(generation=0 if old is None else old.generation + 1)
        if key not in self._todo:
            self._todo.append(key)
        self._cond.notify_all()

    def drop(self, key: Key) -> None:
        """A deleted version: its estimator goes."""
        with self._cond:
            self._states.pop(key, None)
            self._versions.pop(key, None)
            if key in self._todo:
                self._todo.remove(key)

    def labelled(self, key: Key, correct: int, total: int) -> None:
        """True labels came back for ``total`` predictions of the version, ``correct`` right."""
        with self._cond:
            state = self._states.get(key)
            if state is not None and state.status == READY:
                state.labelled[0] += correct
                state.labelled[1] += total

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no build is queued or running (tests, benches); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._todo or any(s.status == REFITTING for s in self._states.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ------------------------------------------------------------------ report
    def report(self, mv: ModelVersion, proba: np.ndarray) -> dict[str, Any]:
        """The ``performance`` section of the version's drift report, from the window's
        probabilities ``proba`` (rows × classes), and the alert to add, if any."""
        key = (mv.name, mv.version)
        with self._cond:
            state = self._states.get(key)
            if state is None:
                return {"status": UNAVAILABLE, "reason": "not a monitored classifier"}
            if state.status == READY and state.revision != mv.revision:
                self._invalidate(key)
                state = self._states[key]
            pp, labelled = state.predictor, list(state.labelled)
            doc: dict[str, Any] = {"status": state.status}
        if state.status == REFITTING:
            doc["reason"] = "being built from the version's rows (after start or a change)"
            return doc
        if state.status == UNAVAILABLE or pp is None:
            doc["reason"] = state.reason
            return doc
        doc |= {
            "validation_accuracy": round(pp.validation_accuracy_, 4),
            "held_out_rows": state.held_out_rows,
            "regressor": pp.chosen_,
            "window_rows": int(proba.shape[0]),
            "margin": self.margin,
            "built_in_s": None if state.seconds is None else round(state.seconds, 3),
            "observed_accuracy": round(labelled[0] / labelled[1], 4) if labelled[1] else None,
            "observed_labels": labelled[1],
        }
        labels = {"model": mv.name, "version": str(mv.version)}
        if proba.ndim != 2 or proba.shape[1] != pp.n_classes_:
            doc |= {"estimated_accuracy": None, "alert": False}
            doc["reason"] = "the held-out rows lack a class the model predicts"
            return doc
        if proba.shape[0] < MIN_WINDOW:
            doc |= {"estimated_accuracy": None, "alert": False}
            doc["reason"] = f"an estimate needs {MIN_WINDOW} served rows in the window"
            return doc
        est = pp.estimate(proba)
        alert = est < pp.validation_accuracy_ - self.margin
        doc |= {"estimated_accuracy": round(est, 4), "alert": bool(alert)}
        self.metrics.set("forget_estimated_accuracy", labels, est)
        return doc

    # ------------------------------------------------------------------ building
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._todo and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                key = self._todo.pop(0)
                known = self._versions.get(key)
                state = self._states.get(key)
                if known is None or state is None:
                    continue
                mv, kinds = known
                generation = state.generation
            try:
                built = self._build(mv, kinds)
            except Exception as exc:  # a build never takes the server down: it is reported
                log.exception("accuracy estimator of %s v%d failed", mv.name, mv.version)
                built = _State(UNAVAILABLE, mv.revision, reason=f"build failed: {exc}")
            with self._cond:
                now = self._states.get(key)
                if now is not None and now.generation == generation:  # nothing changed since
                    built.generation = generation
                    self._states[key] = built
                self._cond.notify_all()

    def _build(self, mv: ModelVersion, kinds: list[str]) -> _State:
        t0 = time.perf_counter()
        est = self._make(mv)
        if est is None or not hasattr(est, "predict_proba"):
            return _State(UNAVAILABLE, mv.revision, reason="not a classifier of this library")
        ids, X, y = self._read(mv)
        mask = held_out(ids, self.seed)
        n_out = int(mask.sum())
        if n_out < MIN_HOLDOUT:
            return _State(
                UNAVAILABLE,
                mv.revision,
                reason=f"{n_out} held-out rows; an estimate needs {MIN_HOLDOUT}",
            )
        twin = est.fit(X[~mask], y[~mask], row_ids=ids[~mask])
        classes = np.asarray(twin.classes_)
        cols = np.searchsorted(classes, y[mask])
        cols = np.minimum(cols, classes.size - 1)
        seen = classes[cols] == y[mask]
        pp = PerformancePredictor(
            n_corruptions=self.n_corruptions, window=min(WINDOW, n_out), seed=self.seed
        )
        pp.fit(twin.predict_proba, X[mask][seen], cols[seen], kinds, row_ids=ids[mask][seen])
        return _State(
            READY,
            mv.revision,
            pp,
            classes,
            int(seen.sum()),
            built_at=time.time(),
            seconds=time.perf_counter() - t0,
        )
