"""Drift monitoring of the served models (see :mod:`drift`), fed by the service.

One :class:`drift.Monitor` per model version, built on first use from the version's training
rows *as the store holds them now* (:func:`build_reference`). The reference profile is not
persisted: it is derived data, and a persisted sample of training values would be one more copy
that an erasure has to chase. After an erasure, :meth:`Monitoring.erased` takes the subject's
rows out of each touched version's reference (:meth:`Reference.remove`: the deleted rows' values,
no read of the training table), leaving what a rebuild from the remaining rows would hold; when
it cannot (a sample's reserve ran out, the categorical choice or the output range could change,
the deleted rows were not given) the profile is marked stale and rebuilt before its next use.
The monitor's output detectors restart at the new revision, so a revision does not read as
drift by itself; and the windows drop the rows that were served under the subject's pseudonym.

Predictions get ids; labels fed back for them (``POST /v1/models/{model}/feedback``) drive
DDM on the error rate of classifiers.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from api.accuracy import Accuracy
from api.metrics import Metrics
from drift import DriftInputError, Monitor, MonitorConfig, ReferenceProfile
from drift.profile import counted
from store import ModelStore
from store.erasure import ModelAction
from store.errors import StoreError
from store.registry import ModelVersion

CATEGORY_MAX = 64  # integer-valued features with at most this many values are categories
DISTINCT_MAX = 4096  # a column's distinct values are counted exactly up to this many
EXTREMES = 64  # distinct smallest and largest labels kept with their counts (output range)


class UnknownPredictionError(StoreError, LookupError):
    """Feedback for a prediction id this server does not remember (or for another model)."""


class FeedbackError(StoreError, ValueError):
    """Feedback that cannot be used: wrong number of labels, or a model without classes."""


class DeletedRowsLike(Protocol):
    """What :meth:`Monitoring.erased` reads of a ``store.data.DeletedRows``: the deleted rows'
    ids (int64, sorted) and every column of them, by name, in that order."""

    @property
    def row_ids(self) -> np.ndarray: ...

    @property
    def columns(self) -> dict[str, np.ndarray]: ...


def _take(
    values: np.ndarray, counts: np.ndarray, gone: np.ndarray, times: np.ndarray
) -> np.ndarray | None:
    """``counts`` less ``times`` at the (distinct, sorted) values ``gone``; None when one of
    them is not among ``values`` or would go below zero (rows this column never held)."""
    if not gone.size:
        return counts
    if not values.size:
        return None
    pos = np.minimum(np.searchsorted(values, gone), values.size - 1)
    if not np.array_equal(values[pos], gone):
        return None
    left = counts.copy()
    left[pos] -= times
    return None if (left < 0).any() else left


@dataclass(frozen=True, eq=False)
class Column:
    """What :func:`build_profile`'s choices need of one column, kept so that they can be
    remade after rows leave without reading the column again.

    A feature is categorical when it is integer-valued with no missing value and at most
    ``CATEGORY_MAX`` distinct values; a regressor's output range is the labels' min and max
    when they have more than ``CATEGORY_MAX`` distinct values. So: ``values`` and ``counts``
    are the distinct finite values (sorted) and their rows while there are at most
    ``DISTINCT_MAX``; past that they are None and ``floor`` is a lower bound on the distinct
    values left (a row takes at most one away). ``low`` and ``high`` are the ``EXTREMES``
    smallest and largest distinct values with their counts (zero once their rows left): the
    min and max while any of them remains.
    """

    n: int
    missing: int
    values: np.ndarray | None
    counts: np.ndarray | None
    floor: int
    low: tuple[np.ndarray, np.ndarray]
    high: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(cls, col: np.ndarray) -> Column:
        finite = col[np.isfinite(col)] if col.dtype.kind == "f" else col
        vals, counts = np.unique(finite, return_counts=True)
        counts = counts.astype(np.int64)
        low, high = (vals[:EXTREMES], counts[:EXTREMES]), (vals[-EXTREMES:], counts[-EXTREMES:])
        exact = vals.size <= DISTINCT_MAX
        return cls(
            int(col.size),
            int(col.size - finite.size),
            vals if exact else None,
            counts if exact else None,
            int(vals.size),
            low,
            high,
        )

    def remove(self, col: np.ndarray) -> Column | None:
        """The column without the values ``col``; None when that cannot be told without the
        remaining rows (the distinct values may have fallen to ``CATEGORY_MAX``) or when
        ``col`` holds values this column does not."""
        finite = col[np.isfinite(col)] if col.dtype.kind == "f" else col
        missing = self.missing - (col.size - finite.size)
        gone, times = counted(finite)
        if missing < 0:
            return None
        if self.values is not None and self.counts is not None:
            left = _take(self.values, self.counts, gone, times)
            if left is None:
                return None
            keep = left > 0
            vals, counts = (self.values, left) if keep.all() else (self.values[keep], left[keep])
            return Column(
                self.n - col.size,
                missing,
                vals,
                counts,
                int(vals.size),
                (vals[:EXTREMES], counts[:EXTREMES]),
                (vals[-EXTREMES:], counts[-EXTREMES:]),
            )
        floor = self.floor - finite.size
        if floor <= CATEGORY_MAX:
            return None
        (lv, lc), (hv, hc) = self.low, self.high
        below, above = gone <= lv[-1], gone >= hv[0]
        low = _take(lv, lc, gone[below], times[below])
        high = _take(hv, hc, gone[above], times[above])
        if low is None or high is None:
            return None
        return Column(self.n - col.size, missing, None, None, floor, (lv, low), (hv, high))

    def same(self, other: Column | None) -> bool:
        """Whether ``other`` holds what this column holds (then removing the same values
        from either gives equal columns)."""
        if other is None or (self.n, self.missing, self.floor) != (
            other.n,
            other.missing,
            other.floor,
        ):
            return False
        pairs: list[tuple[Any, Any]] = [
            *zip(self.low, other.low, strict=True),
            *zip(self.high, other.high, strict=True),
        ]
        if self.values is None or other.values is None:
            if self.values is not other.values:
                return False
        else:
            pairs += [(self.values, other.values), (self.counts, other.counts)]
        return all(np.array_equal(a, b) for a, b in pairs)

    @property
    def categorical(self) -> bool:
        """Integer-valued, nothing missing, at most ``CATEGORY_MAX`` distinct values."""
        v = self.values
        return bool(
            self.n
            and not self.missing
            and v is not None
            and v.size <= CATEGORY_MAX
            and np.all(v == np.round(v))
        )

    def extremes(self) -> tuple[float, float] | None:
        """The smallest and largest finite value, or None when the kept ones have all left."""
        (lv, lc), (hv, hc) = self.low, self.high
        lo, hi = lv[lc > 0], hv[hc > 0]
        if not lo.size or not hi.size:
            return None
        return float(lo[0]), float(hi[-1])


def _out_range(y: np.ndarray) -> tuple[float, float] | None:
    """The output range ADWIN scales a regressor's predictions by (None: not a regressor)."""
    if y.dtype.kind in "fiu" and y.size and np.unique(y).size > CATEGORY_MAX:
        lo, hi = float(np.min(y)), float(np.max(y))
        return (lo, hi if hi > lo else lo + 1.0)
    return None


@dataclass(frozen=True, eq=False)
class Reference:
    """A version's drift reference: its profile and output range, and what taking rows out of
    them needs (:meth:`remove`). ``columns`` follow the features; ``label`` is None for
    labels that are not numbers (they give no output range)."""

    profile: ReferenceProfile
    out_range: tuple[float, float] | None
    columns: tuple[Column, ...]
    label: Column | None

    @classmethod
    def fit(cls, mv: ModelVersion, row_ids: np.ndarray, X: np.ndarray, y: np.ndarray) -> Reference:
        """The reference of ``mv`` over its training rows ``row_ids, X, y``."""
        columns = tuple(Column.of(X[:, j]) for j in range(X.shape[1]))
        categorical = [f for f, c in zip(mv.features, columns, strict=True) if c.categorical]
        profile = ReferenceProfile.fit(
            X,
            mv.features,
            categorical=categorical,
            meta={"model": mv.name, "version": mv.version},
            row_ids=row_ids,
        )
        label = Column.of(y) if y.dtype.kind in "fiu" else None
        return cls(profile, _out_range(y), columns, label)

    def shared_with(self, other: Reference, *, same_label: bool) -> Reference:
        """This reference, with the columns and profile features that equal ``other``'s
        (a version trained on the same rows of the same dataset: by name, and for the
        profile by position too) replaced by ``other``'s objects, so that an erasure
        (:meth:`remove` with a common ``memo``) works on each of them once. ``same_label``:
        both versions have one label column."""
        theirs = dict(zip(other.profile.names, other.columns, strict=True))
        columns = tuple(
            theirs[name] if c.same(theirs.get(name)) else c
            for name, c in zip(self.profile.names, self.columns, strict=True)
        )
        label = self.label
        if same_label and label is not None and label.same(other.label):
            label = other.label
        profile = self.profile.shared_with(other.profile)
        return Reference(profile, self.out_range, columns, label)

    def remove(
        self,
        row_ids: np.ndarray,
        X: np.ndarray,
        y: np.ndarray,
        *,
        memo: dict[Any, Any] | None = None,
    ) -> Reference | None:
        """The reference without the training rows ``row_ids`` (features ``X``, labels ``y``):
        equal to :meth:`fit` on the rows left, or None when that needs the rows left (then
        rebuild). Raises :class:`drift.DriftInputError` on rows this reference never held.
        ``memo``: a dict common to the removals of these rows (of one dataset) from several
        references; what they share (:meth:`shared_with`) is worked on once."""
        rows = np.ascontiguousarray(row_ids, dtype=np.int64).tobytes()

        def removed(c: Column, values: np.ndarray) -> Column | None:
            if memo is None:
                return c.remove(values)
            key = (id(c), rows)
            if key not in memo:
                memo[key] = (c, c.remove(values))  # c kept alive: its id names it
            return memo[key][1]

        columns = []
        for j, c in enumerate(self.columns):
            left = removed(c, X[:, j])
            if left is None or left.categorical != (self.profile.features[j].kind != "numeric"):
                return None  # the categorical choice may change: only a rebuild can say
            columns.append(left)
        label, out_range = None, None
        if self.label is not None:
            if y.dtype.kind not in "fiu" or self.label.missing:
                return None
            label = removed(self.label, y)
            if label is None:
                return None
            if label.n and label.floor > CATEGORY_MAX:
                ends = label.extremes()
                if ends is None:
                    return None
                lo, hi = ends
                out_range = (lo, hi if hi > lo else lo + 1.0)
        profile = self.profile.remove(row_ids, X, memo=memo)
        if profile is None:
            return None
        return Reference(profile, out_range, tuple(columns), label)


def build_reference(store: ModelStore, mv: ModelVersion) -> Reference:
    """The version's reference, from its training rows as the store holds them now."""
    ids, X, y = store.training_data(mv.name, mv.version)
    return Reference.fit(mv, ids, X, y)


def build_profile(store: ModelStore, mv: ModelVersion) -> tuple[ReferenceProfile, Any]:
    """The version's reference profile and its output range (for regressors' ADWIN)."""
    ref = build_reference(store, mv)
    return ref.profile, ref.out_range


def _without(
    feed: Feed,
    action: ModelAction,
    removed: Mapping[str, DeletedRowsLike],
    memo: dict[Any, Any],
) -> Reference | None:
    """The feed's reference without the rows ``action`` forgot, or None (then rebuild).
    ``memo``: common to the references of one dataset in one erasure."""
    if feed.mv is None or feed.reference is None:
        return None
    rows = _rows(feed.mv, action, removed)
    if rows is None:
        return None
    try:
        return feed.reference.remove(*rows, memo=memo)
    except DriftInputError:  # rows the reference does not hold as given: trust the store
        return None


def _rows(
    mv: ModelVersion, action: ModelAction, removed: Mapping[str, DeletedRowsLike]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The version's rows among the deleted ones: (ids, X in feature order, y), or None when
    the deleted rows do not say (no rows named, a column missing)."""
    taken = removed.get(mv.dataset)
    if taken is None or not action.row_ids:
        return None
    have = np.asarray(taken.row_ids, dtype=np.int64)
    ids = np.intersect1d(np.asarray(action.row_ids, dtype=np.int64), have)
    if not ids.size or any(c not in taken.columns for c in (*mv.features, mv.label)):
        return None
    pos = np.searchsorted(have, ids)
    X = np.column_stack([np.asarray(taken.columns[f], dtype=np.float64)[pos] for f in mv.features])
    y = np.asarray(taken.columns[mv.label])[pos]
    if y.dtype == object:  # as the registry reads labels
        y = y.astype(str)
    return ids, X.reshape(ids.size, len(mv.features)), y


class Feed:
    """A version's monitor and the served rows not yet handed to it.

    Serving appends under a short lock; the rows reach the monitor in batches of
    ``FLUSH`` rows (or before a report, a discard or a revision change), so the serving path
    pays for a list append, not for the monitor's validation and bookkeeping. ``mv`` (its
    dataset, features and label) and ``reference`` are what an erasure needs to take the
    subject's rows out of the monitor's profile.
    """

    FLUSH = 256

    def __init__(
        self, monitor: Monitor, mv: ModelVersion | None = None, reference: Reference | None = None
    ) -> None:
        self.monitor = monitor
        self.mv = mv
        self.reference = reference
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

    def __init__(
        self, metrics: Metrics, *, remember: int = 100_000, accuracy: Accuracy | None = None
    ) -> None:
        self.metrics = metrics
        self.remember = remember
        self.accuracy = accuracy  # estimated accuracy of classifiers (api.accuracy), if on
        self._monitors: dict[tuple[str, int], Feed] = {}
        self._stale: set[tuple[str, int]] = set()
        # prediction id -> (model, version, predicted labels; None for a regressor). Tuples
        # of str and numbers: the cycle collector stops tracking them after its first pass
        # (lists it would track for ever), so a full collection — which stops the server —
        # does not walk the ``remember`` predictions kept (100k: ~20 ms more a collection)
        self._predictions: OrderedDict[str, tuple[str, int, tuple[Any, ...] | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._ids = PredictionIds()

    # ------------------------------------------------------------------ with the store lock held
    def monitor(self, store: ModelStore, mv: ModelVersion) -> Feed:
        key = (mv.name, mv.version)
        feed = self._monitors.get(key)
        if feed is None or key in self._stale:
            ref = self._shared(build_reference(store, mv), mv)
            if feed is None:
                k = self._classes(store, mv)
                config = MonitorConfig(output_range=ref.out_range or (0.0, 1.0), n_outputs=k or 1)
                feed = Feed(Monitor(ref.profile, config, revision=mv.revision), mv, ref)
                self._monitors[key] = feed
            else:
                feed.monitor.replace_profile(ref.profile)
                feed.reference = ref
            self._stale.discard(key)
        if feed.monitor.revision != mv.revision:
            feed.flush()  # the old revision's outputs go to the old revision's detectors
            feed.monitor.set_revision(mv.revision)
        if self.accuracy is not None and feed.monitor.config.n_outputs > 1:
            self.accuracy.follow(mv, [f.kind for f in feed.monitor.profile.features])
        return feed

    def _shared(self, ref: Reference, mv: ModelVersion) -> Reference:
        """``ref`` sharing what it can with the references of other versions of the same
        dataset (the same rows give equal columns): an erasure then takes the subject's rows
        out of each shared part once."""
        for key, other in self._monitors.items():
            theirs, mine = other.mv, (mv.name, mv.version)
            if (
                theirs is not None
                and other.reference is not None
                and theirs.dataset == mv.dataset
                and key != mine
                and key not in self._stale
            ):
                same_label = theirs.label == mv.label
                ref = ref.shared_with(other.reference, same_label=same_label)
        return ref

    def _classes(self, store: ModelStore, mv: ModelVersion) -> int | None:
        """The number of classes of a classifier whose accuracy is estimated: its window
        keeps every class's probability; None otherwise."""
        if self.accuracy is None:
            return None
        est = store.estimator(mv.name, mv.version)
        classes = getattr(est, "classes_", None)
        if classes is None or not hasattr(est, "predict_proba") or len(classes) < 2:
            return None
        return len(classes)

    @staticmethod
    def rehearse() -> None:
        """Run what an erasure runs on a reference, on a made-up one (no monitor sees it), so
        that the first erasure does not compile or load its kernels."""
        rng = np.random.default_rng(0)
        X = np.column_stack([rng.normal(size=512), rng.integers(0, 4, 512).astype(float)])
        ids = np.arange(512, dtype=np.int64)
        profile = ReferenceProfile.fit(X, ["x", "c"], categorical=["c"], row_ids=ids)
        profile.remove(ids[:3], X[:3])
        for j in range(2):
            Column.of(X[:, j]).remove(X[:3, j])

    def follow(self, store: ModelStore, mv: ModelVersion) -> None:
        """Bring the version's feed, if one is built, to ``mv``'s revision (rebuilt if stale):
        what a server does when a revision is published, so that predictions find the feed
        current (:meth:`current`) without the store."""
        if (mv.name, mv.version) in self._monitors:
            self.monitor(store, mv)

    def fresh(self, model: str, version: int) -> bool:
        """Whether the version's feed is built and its reference needs no rebuild (following
        it then reads nothing from the store)."""
        key = (model, version)
        return key in self._monitors and key not in self._stale

    def current(self, model: str, version: int, revision: int) -> Feed | None:
        """The version's feed if it is built, fresh and at ``revision`` (no store needed)."""
        feed = self._monitors.get((model, version))
        if feed is None or (model, version) in self._stale or feed.monitor.revision != revision:
            return None
        return feed

    def stale_all(self) -> None:
        self._stale.update(self._monitors)

    def forget_version(self, model: str, version: int) -> None:
        """A deleted version: its feed (window, reference, detectors) and the predictions
        remembered for its feedback go; feedback on them is then refused as unknown."""
        self._monitors.pop((model, version), None)
        self._stale.discard((model, version))
        if self.accuracy is not None:
            self.accuracy.drop((model, version))
        with self._lock:
            gone = [p for p, (m, v, _) in self._predictions.items() if (m, v) == (model, version)]
            for pid in gone:
                del self._predictions[pid]

    def erased(
        self,
        subject_key: str | Sequence[str],
        actions: Sequence[ModelAction | tuple[str, int]],
        removed: Mapping[str, DeletedRowsLike] | None = None,
    ) -> None:
        """An erasure: the subject's served rows leave every window, and its training rows
        leave the reference of every version that forgot them. ``subject_key`` may list the
        subjects of a group of erasures, with their actions and rows together (at most one
        action per version, holding every row it forgot).

        ``actions`` are the receipt's (``ModelAction.row_ids``: the rows each version forgot);
        ``removed`` the deleted rows by dataset (``store.data.DeletedRows``: ids and every
        column). A version's profile takes those rows out (:meth:`Reference.remove`) and the
        monitor tests against it from now on (``Monitor.replace_profile``: window and
        detectors kept). Where that cannot be done — ``removed`` not given, a ``(model,
        version)`` pair instead of an action, a reference that needs its remaining rows —
        the profile is marked stale and rebuilt from the store before its next use.
        """
        keys = [subject_key] if isinstance(subject_key, str) else list(subject_key)
        for every in self._monitors.values():
            every.flush()
            every.monitor.discard(keys)
        memos: dict[str, dict[Any, Any]] = {}  # by dataset: shared parts are worked on once
        for action in actions:
            key = (action.model, action.version) if isinstance(action, ModelAction) else action
            if self.accuracy is not None:  # built from the rows: dropped now, rebuilt later
                self.accuracy.invalidate(key)
            feed = self._monitors.get(key)
            if feed is None or key in self._stale:
                continue  # built from the store on first use
            ref = None
            if isinstance(action, ModelAction) and removed is not None and feed.mv is not None:
                ref = _without(feed, action, removed, memos.setdefault(feed.mv.dataset, {}))
            if ref is None:
                self._stale.add(key)
            else:
                feed.reference = ref
                feed.monitor.replace_profile(ref.profile)

    def report(self, store: ModelStore, mv: ModelVersion) -> dict[str, Any]:
        feed = self.monitor(store, mv)
        feed.flush()
        doc = feed.monitor.report()
        if self.accuracy is not None and feed.monitor.config.n_outputs > 1:
            perf = self.accuracy.report(mv, feed.monitor.window_outputs())
            doc["performance"] = perf
            if perf.get("alert"):
                doc["alerts"] = [
                    *doc["alerts"],
                    f"estimated accuracy {perf['estimated_accuracy']:.1%} on the last "
                    f"{perf['window_rows']:,} served rows is more than {self.accuracy.margin:.0%} "
                    f"below the validation accuracy {perf['validation_accuracy']:.1%}",
                ]
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
        labels: Sequence[Any],
        *,
        classifier: bool,
        prediction_id: str | None = None,
    ) -> str:
        """Keep a prediction's labels for feedback under ``prediction_id`` (one given by the
        router of a cluster) or a new id; the last ``remember`` are kept."""
        with self._lock:
            pid = prediction_id or self._ids()
            self._predictions[pid] = (model, version, tuple(labels) if classifier else None)
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
        truth, said = np.asarray(labels, dtype=object), np.asarray(predicted, dtype=object)
        feed.monitor.feedback(truth, said)
        if self.accuracy is not None:
            self.accuracy.labelled((model, version), int((truth == said).sum()), len(labels))
        return version, len(labels)
