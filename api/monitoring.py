"""Drift monitoring of the served models (see :mod:`drift`), fed by the service.

One :class:`drift.Monitor` per model version, built on first use from the version's training
rows *as the store holds them now*. The reference profile is not persisted: it is derived
data, and a persisted sample of training values would be one more copy that an erasure has to
chase. After an erasure that touched a version its profile is marked stale and rebuilt (from
rows that no longer include the subject's) before the next report; the monitor's output
detectors restart at the new revision, so a revision does not read as drift by itself; and
the windows drop the rows that were served under the subject's pseudonym.

Predictions get ids; labels fed back for them (``POST /v1/models/{model}/feedback``) drive
DDM on the error rate of classifiers.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from api.metrics import Metrics
from drift import Monitor, MonitorConfig, ReferenceProfile
from store import ModelStore
from store.errors import StoreError
from store.registry import ModelVersion

CATEGORY_MAX = 64  # integer-valued features with at most this many values are categories


class UnknownPredictionError(StoreError, LookupError):
    """Feedback for a prediction id this server does not remember (or for another model)."""


class FeedbackError(StoreError, ValueError):
    """Feedback that cannot be used: wrong number of labels, or a model without classes."""


def build_profile(store: ModelStore, mv: ModelVersion) -> tuple[ReferenceProfile, Any]:
    """The version's reference profile and its output range (for regressors' ADWIN)."""
    _, X, y = store.training_data(mv.name, mv.version)
    categorical = [
        f
        for j, f in enumerate(mv.features)
        if X.shape[0]
        and np.all(np.isfinite(X[:, j]))
        and np.all(X[:, j] == np.round(X[:, j]))
        and np.unique(X[:, j]).size <= CATEGORY_MAX
    ]
    profile = ReferenceProfile.fit(
        X, mv.features, categorical=categorical, meta={"model": mv.name, "version": mv.version}
    )
    out_range = None
    if y.dtype.kind in "fiu" and y.size and np.unique(y).size > CATEGORY_MAX:
        lo, hi = float(np.min(y)), float(np.max(y))
        out_range = (lo, hi if hi > lo else lo + 1.0)
    return profile, out_range


class Feed:
    """A version's monitor and the served rows not yet handed to it.

    Serving appends under a short lock; the rows reach the monitor in batches of
    ``FLUSH`` rows (or before a report, a discard or a revision change), so the serving path
    pays for a list append, not for the monitor's validation and bookkeeping.
    """

    FLUSH = 256

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._pending: list[tuple[np.ndarray, np.ndarray | None, list[str | None] | None]] = []
        self._rows = 0
        self._lock = threading.Lock()

    def add(self, X: np.ndarray, outputs: np.ndarray | None, keys: list[str | None] | None) -> None:
        with self._lock:
            self._pending.append((X, outputs, keys))
            self._rows += X.shape[0]
            full = self._rows >= self.FLUSH
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            items, self._pending, self._rows = self._pending, [], 0
        if not items:
            return
        X = np.concatenate([x for x, _, _ in items])
        outputs = None
        if all(o is not None for _, o, _ in items):
            outputs = np.concatenate([np.asarray(o).reshape(x.shape[0], -1) for x, o, _ in items])
        keys: list[str | None] | None = None
        if any(k is not None for _, _, k in items):
            keys = [key for x, _, k in items for key in (k if k is not None else [None] * len(x))]
        self.monitor.observe(X, outputs=outputs, keys=keys)


class PredictionIds:
    """Prediction ids of one process: ``pr_``, a random prefix, then a hexadecimal counter.

    >>> ids = PredictionIds()
    >>> a, b = ids(), ids()
    >>> a.startswith("pr_") and a[:11] == b[:11] and a != b
    True
    """

    def __init__(self) -> None:
        self._prefix = "pr_" + secrets.token_hex(4)
        self._count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


class Monitoring:
    """Monitors per (model, version), prediction ids for feedback, alerts in /metrics."""

    def __init__(self, metrics: Metrics, *, remember: int = 100_000) -> None:
        self.metrics = metrics
        self.remember = remember
        self._monitors: dict[tuple[str, int], Feed] = {}
        self._stale: set[tuple[str, int]] = set()
        # prediction id -> (model, version, predicted labels; None for a regressor)
        self._predictions: OrderedDict[str, tuple[str, int, list[Any] | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = PredictionIds()

    # ------------------------------------------------------------------ with the store lock held
    def monitor(self, store: ModelStore, mv: ModelVersion) -> Feed:
        key = (mv.name, mv.version)
        feed = self._monitors.get(key)
        if feed is None or key in self._stale:
            profile, out_range = build_profile(store, mv)
            if feed is None:
                config = MonitorConfig(output_range=out_range or (0.0, 1.0))
                feed = Feed(Monitor(profile, config, revision=mv.revision))
                self._monitors[key] = feed
            else:
                feed.monitor.replace_profile(profile)
            self._stale.discard(key)
        if feed.monitor.revision != mv.revision:
            feed.flush()  # the old revision's outputs go to the old revision's detectors
            feed.monitor.set_revision(mv.revision)
        return feed

    def current(self, model: str, version: int, revision: int) -> Feed | None:
        """The version's feed if it is built, fresh and at ``revision`` (no store needed)."""
        feed = self._monitors.get((model, version))
        if feed is None or (model, version) in self._stale or feed.monitor.revision != revision:
            return None
        return feed

    def stale_all(self) -> None:
        self._stale.update(self._monitors)

    def erased(self, subject_key: str, models: Sequence[tuple[str, int]]) -> None:
        """An erasure: the subject's served rows leave every window; touched versions'
        profiles are rebuilt before their next use."""
        for feed in self._monitors.values():
            feed.flush()
            feed.monitor.discard([subject_key])
        self._stale.update(models)

    def report(self, store: ModelStore, mv: ModelVersion) -> dict[str, Any]:
        feed = self.monitor(store, mv)
        feed.flush()
        doc = feed.monitor.report()
        self._publish(mv, doc)
        return {"model": mv.name, "version": mv.version} | doc

    def publish_all(
        self, store: ModelStore, serving: Sequence[ModelVersion]
    ) -> list[tuple[ModelVersion, dict[str, Any]]]:
        """Refresh the drift gauges of the serving versions that have a monitor."""
        return [
            (mv, self.report(store, mv))
            for mv in serving
            if (mv.name, mv.version) in self._monitors
        ]

    def _publish(self, mv: ModelVersion, doc: dict[str, Any]) -> None:
        labels = {"model": mv.name, "version": str(mv.version)}
        self.metrics.set("forget_drift", labels, float(doc["drift"]))
        self.metrics.set("forget_drift_alerts", labels, float(len(doc["alerts"])))
        for f in doc["features"]:
            self.metrics.set(
                "forget_feature_drift", labels | {"feature": f["name"]}, float(f["drift"])
            )

    # ------------------------------------------------------------------ feedback
    def remember_prediction(
        self,
        model: str,
        version: int,
        labels: list[Any],
        *,
        classifier: bool,
        prediction_id: str | None = None,
    ) -> str:
        """Keep a prediction's labels for feedback under ``prediction_id`` (one given by the
        router of a cluster) or a new id; the last ``remember`` are kept."""
        with self._lock:
            pid = prediction_id or self._ids()
            self._predictions[pid] = (model, version, labels if classifier else None)
            while len(self._predictions) > self.remember:
                self._predictions.popitem(last=False)
        return pid

    def feedback(self, model: str, prediction_id: str, labels: Sequence[Any]) -> tuple[int, int]:
        """Feed true labels for a prediction's rows; returns (model version, rows)."""
        with self._lock:
            hit = self._predictions.get(prediction_id)
        if hit is None or hit[0] != model:
            raise UnknownPredictionError(
                f"no prediction {prediction_id!r} of model {model!r} is remembered "
                f"(the last {self.remember:,} are)"
            )
        _, version, predicted = hit
        if predicted is None:
            raise FeedbackError(
                f"model {model!r} is a regressor: feedback drives DDM on a classifier's error rate"
            )
        if len(labels) != len(predicted):
            raise FeedbackError(
                f"prediction {prediction_id} has {len(predicted)} rows, got {len(labels)} labels"
            )
        feed = self._monitors.get((model, version))
        if feed is None:  # pragma: no cover - a remembered prediction always has its monitor
            raise UnknownPredictionError(f"model {model!r} v{version} is not monitored")
        feed.monitor.feedback(np.asarray(labels, dtype=object), np.asarray(predicted, dtype=object))
        return version, len(labels)
