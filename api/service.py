"""The one place the HTTP layer touches the store.

:class:`ModelStore` is used from one thread at a time, so every call that reaches it goes
through one lock (``Service.lock``: erasures, purges, trainings, reads of the registry).
Predictions do not: each is routed by its model's published routing table (its versions'
statuses and its aliases: a bare name, an alias and a routing key, or a pinned version pick
one version, and maybe a shadow) and scores with that version's published serving entry — the
(version and revision, model) pair in ``_serving``, replaced whole, never edited — under that
model's :class:`~api.gates.Gate` held shared. An erasure closes the gates of the models it
touches just before they forget, and opens them once they forgot and their compiled trees
caught up (:class:`_Fence`; ~1 ms): predictions then go on with the models that forgot while
the store writes the audit and commits. Its new revisions are published after the commit
(the answer cache emptied and made current), and only then is it answered. So a prediction
that starts after an erasure's answer never uses a revision that holds the erased rows; one
in flight when the gate closes finishes first, on the old revision, and says so (its
``revision``), and one between the gate's opening and the publication scores without the
rows but still says the old revision (the cache refuses to keep an answer of a revision that
no longer serves). Predictions of models the subject never trained, and predictions during
the rest of an erasure (the deletion, the audit, the commit) or a purge (artifact writes,
the database's compaction: the gate closes only while a model takes the compacted form
built beside it, microseconds), do not wait. Objections, restrictions and their lifts keep
the gates closed until publication.
Physical purges run on a background thread every ``purge_interval`` seconds while requests
await them, and when the service stops.

Retrain checks (evidence) never run inside the fence: an erasure sampled for them schedules
them, and :meth:`Service.collect_evidence` — run by the purger's thread, and by each purge —
reads each job under the lock, refits outside it while predictions go on, and records the
result under it again (see :mod:`store.evidence`).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

import numpy as np

import forget
from api.accuracy import Accuracy
from api.batching import Batcher
from api.cache import PredictionCache
from api.gates import Gate
from api.metrics import Metrics
from api.monitoring import Feed, Monitoring
from api.schemas import MAX_COLUMNS
from forget.warm import prepare, rehearse
from store import ModelStore, erasure, purposes, stages
from store.aliases import AliasTarget, Route, route
from store.data import DeletedRows
from store.errors import (
    DatasetError,
    InvalidSubjectError,
    ModelError,
    ModelNotServableError,
    PredictInputError,
    StoreError,
    TrainingError,
    kind,
)
from store.evidence import DEFERRED, SCHEDULED, check_mode
from store.journal import NotNow
from store.registry import PENDING, READY, ModelVersion, parts_of
from store.retention import SUBJECT_PREFIX as RETAINED

log = logging.getLogger("forget.api")
_T = TypeVar("_T")

Target = tuple[str, int]  # (model, version): what one request is scored by
ModelRef = tuple[str, str | None, int | None]  # (model, alias, version): a request's model
SHADOW_BACKLOG = 64  # shadow scorings waiting at most; past that they are dropped (counted)

ESTIMATORS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        forget.HedgeCutClassifier,
        forget.KNNClassifier,
        forget.KNNRegressor,
        forget.LinearRegression,
        forget.LogisticRegression,
        forget.GaussianNB,
        forget.MultinomialNB,
        forget.Sharded,
    )
}


def build_estimator(kind: str, params: Mapping[str, Any]) -> Any:
    """An estimator of ``kind`` (a name in ``ESTIMATORS``) with ``params``; ``Sharded``'s
    ``estimator`` is a spec, ``{"kind": "sklearn.<module>.<Class>", "params": {...}}``, refused
    unless it names a scikit-learn estimator class (see :func:`forget.sharded.learner`)."""
    cls = ESTIMATORS.get(kind)
    if cls is None:
        raise InvalidEstimatorError(
            f"unknown estimator {kind!r}; forget offers {sorted(ESTIMATORS)}"
        )
    if cls is forget.Sharded:
        from forget.sharded import learner

        try:
            learner(params.get("estimator"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise UnknownLearnerError(f"Sharded's estimator: {exc}") from exc
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidEstimatorError(f"{kind} does not take these parameters: {exc}") from exc


@dataclass
class _Request:
    """A predict call's rows, the features they were read with, the matrix and its digest."""

    rows: Sequence[Mapping[str, float]]
    features: tuple[str, ...]
    X: np.ndarray
    digest: bytes | None
    keys: list[str | None] | None = None  # the rows' subjects, as pseudonyms
    outputs: np.ndarray | None = None  # set when scored: probabilities or predictions


@dataclass(frozen=True)
class _Routes:
    """A model's routing table as published: its versions' statuses and its aliases."""

    statuses: Mapping[int, str]
    aliases: Mapping[str, AliasTarget]


@dataclass
class _Erasure:
    """A queued erasure request (see :meth:`Service.erase`): its call, then its outcome."""

    call: dict[str, Any]
    receipt: Any = None
    error: BaseException | None = None
    done: bool = False


class _Fence:
    """The gates of the models one store call changes (see :meth:`Service._gated`).

    ``close(pairs)`` (the store's ``before_forget``) closes the gates of the models about to
    change: their predictions wait, and those in flight finish first. ``open()`` (an
    erasure's ``after_forget``: the models forgot in memory, and nothing more of the call
    changes them) brings their compiled forms up to date (``defer``: an erasure answered
    from memory has that done right after its answer, :meth:`Service._refresh`) and
    lets their predictions go on
    while the store writes the audit and commits: such a prediction scores with the models
    that already forgot and is labelled with the revision before (the new one is published
    after the commit, before the answer; the cache keeps no answer of a revision that no
    longer serves). A version the deletion left out of memory (awaiting a retrain) leaves
    serving first, and is read again, under the lock, on its next use. Calls that never
    open the fence keep the gates closed until their revisions are published.
    """

    def __init__(self, service: Service, *, defer: bool = False) -> None:
        self._service = service
        self._defer = defer  # compiled forms caught up after the answer (on the loop)
        self.closed: list[Gate] = []  # every gate the call closed (a failure unpublishes)
        self._held: list[Gate] = []
        self._pairs: list[tuple[str, int]] = []

    def close(self, pairs: Sequence[tuple[str, int]]) -> None:
        svc = self._service
        for name in sorted({m for m, _ in pairs}):
            gate = svc._gates.get(name)
            if gate is not None:
                gate.acquire()
                self.closed.append(gate)
                self._held.append(gate)
        self._pairs += pairs

    def open(self) -> None:
        svc = self._service
        for target in self._pairs:
            hit = svc._serving.get(target)
            if hit is None:
                continue
            est = svc.store.estimator(*target)
            if est is not hit[1]:
                svc._drop(target)
            else:
                svc._refresh(target, est, later=self._defer)
        self._pairs = []
        self.release()

    def release(self) -> None:
        while self._held:
            self._held.pop().release()


@dataclass(frozen=True)
class Observation:
    """A prediction answered elsewhere (a cluster's replica), for :meth:`Service.observe`."""

    model: str
    rows: Sequence[Mapping[str, float]]
    answer: Mapping[str, Any]  # the predict answer: version, revision, ..., prediction_id
    subject_ids: Sequence[str | None] | None = None


class MonitoringOffError(StoreError):
    """Drift monitoring was switched off for this server."""


class InvalidEstimatorError(TrainingError, ValueError):
    """An estimator kind that forget does not offer, or parameters it does not take."""


class UnknownLearnerError(InvalidEstimatorError):
    """``Sharded``'s learner names no scikit-learn estimator class, or the class refuses the
    parameters given: what scikit-learn holds, which the schema cannot list."""


class InvalidUploadError(DatasetError, ValueError):
    """A dataset upload refused before the store reads it: both or neither of rows and csv,
    or more than ``MAX_COLUMNS`` columns."""


class ScoringError(ModelError):
    """The serving model failed on valid rows (e.g. a kNN model holding fewer rows than its
    ``n_neighbors``): a fault of the model, not of the request."""


class Service:
    """Store access for the API: one lock, a serving cache, a background purger, metrics."""

    def __init__(
        self,
        store: ModelStore,
        *,
        metrics: Metrics | None = None,
        purge_interval: float = 30.0,
        batching: bool = True,
        cache_bytes: int = 64 * 1024 * 1024,
        monitoring: bool = True,
        retrain_on_drift: bool = False,
        retrain_cooldown: float = 3600.0,
        compile_forests: bool = True,
        evidence: str = DEFERRED,
        estimate_accuracy: bool = False,
        journal: bool = True,
    ) -> None:
        self.store = store
        # "deferred": retrain checks run off the lock (collect_evidence); "inline": inside the
        # erasure, under the lock, as before deferral (ModelStore.erase offers both)
        self.evidence = check_mode(evidence)
        self.metrics = metrics or Metrics()
        self.purge_interval = purge_interval
        self.lock = threading.RLock()
        # published serving entries, by (model, version): replaced whole (under the model's
        # gate), never edited; an alias or a bare name routes to one of them per request
        self._serving: dict[Target, tuple[ModelVersion, Any]] = {}
        self._gates: dict[str, Gate] = {}  # one per model name, made when it is first served
        self._queue: list[_Erasure] = []  # erasure requests waiting for the lock
        self._queue_lock = threading.Lock()
        # signalled when a group is carried out: its callers return, one of the rest leads
        self._queue_done = threading.Condition(self._queue_lock)
        self._leading = False  # a caller is carrying out a group
        self._names = frozenset(mv.name for mv in store.list_models())  # for /healthz
        self._features: dict[Target, tuple[str, ...]] = {}
        self._routes: dict[str, _Routes] = {}  # published routing tables, by model
        # shadow scoring runs beside the answers, on its own thread, and is dropped (counted)
        # rather than queued without bound when it falls behind
        self._shadows = ThreadPoolExecutor(1, thread_name_prefix="forget-shadow")
        # forests' deferred rebuilds (``defer_rows``), beside predictions, off the loop
        self._rebuilds = ThreadPoolExecutor(1, thread_name_prefix="forget-rebuild")
        self._shadow_slots = threading.BoundedSemaphore(SHADOW_BACKLOG)
        self.cache = PredictionCache(cache_bytes)
        # estimated accuracy of served classifiers on unlabeled traffic (api.accuracy): a
        # background builder fits each one's twin and performance predictor
        self.accuracy = (
            Accuracy(self.metrics, self._training_rows, _fresh_estimator)
            if monitoring and estimate_accuracy
            else None
        )
        self.monitoring = Monitoring(self.metrics, accuracy=self.accuracy) if monitoring else None
        self.retrain_on_drift, self.retrain_cooldown = retrain_on_drift, retrain_cooldown
        self._drift_retrains: dict[str, float] = {}
        self.compile_forests = compile_forests  # refresh forests' compiled trees on erasure
        self.batcher: Batcher | None = None
        if batching:
            self.batcher = Batcher(self._score, on_batch=self._on_batch)
        self._awaiting_purge = False
        self._awaiting_evidence = False
        self._collecting = threading.Lock()  # one evidence collector at a time
        self._purging = threading.Lock()  # one purge at a time (its copies record the forgets)
        self._stop = threading.Event()
        self._purger: threading.Thread | None = None
        # erasures answered from memory on the event loop (erase_async; the store's journal)
        # are recorded by the settler, a thread of its own, woken by each one
        self.journal = journal and self.evidence == DEFERRED
        self._unsettled = threading.Event()
        # forests whose compiled forms catch up right after the erasures just answered
        self._due: dict[Target, Any] = {}
        self._settler: threading.Thread | None = None
        # erasure requests of the loop's current round: (call, its future)
        self._round: list[tuple[dict[str, Any], asyncio.Future[Any]]] = []
        store.on_settled = self._settled

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        evidence_rate: float = 0.1,
        create: bool = True,
        **kwargs: Any,
    ) -> Service:
        """Open the store (with ``create=False`` an existing one only); ``evidence_rate`` is the
        share of erasure requests whose models are compared with a retrain from scratch (a
        keyed random sample)."""
        store = ModelStore.open(directory, evidence_rate=evidence_rate, create=create)
        return cls(store, **kwargs)

    def start(self) -> None:
        """Start the background purger (idempotent; it also runs checks left scheduled) and
        the settler, which records the erasures answered from memory."""
        if self._settler is None and self.journal:
            self._settler = threading.Thread(target=self._settle_loop, name="forget-settler")
            self._settler.daemon = True
            self._settler.start()
        if self._purger is None and self.purge_interval > 0:
            with self.lock:
                self._awaiting_evidence = self.store.evidence_scheduled() > 0
            self._purger = threading.Thread(target=self._purge_loop, name="forget-purger")
            self._purger.daemon = True
            self._purger.start()
        self._publish_revisions()

    def warm(self) -> list[str]:
        """Load every serving model, compile its forest and score one row of zeros through it,
        and rehearse its forget path on a small twin (:func:`forget.warm.rehearse`: every
        kernel of fit, forget, predict and the purge's artifact writing compiled or loaded
        from numba's cache), so that neither the first prediction nor the first erasure pays
        for compilation; the cache, the drift monitors and the metrics see nothing of it.
        Then the store's dataset catalog and audit head are read into its caches (the first
        erasure's two extra statements otherwise).
        The models warmed."""
        with self.lock:
            targets = self._routed()
        warmed = []
        for target in targets:
            name = target[0]
            with self.lock:
                try:
                    mv, est = self._served(target)
                except StoreError:  # awaits a retrain: nothing to warm
                    continue
            row = dict.fromkeys(mv.features, 0.0)
            X = np.zeros((1, len(mv.features)))
            self._score(target, [_Request([row], mv.features, X, None)])
            rehearse(est)  # off the lock: a twin, not the served model
            with self.lock:  # (predictions never read them)
                prepare(est)  # the served model's own lookups, built before its first erasure
            warmed.append(name if name not in warmed else f"{name} v{mv.version}")
        if self.monitoring is not None:
            self.monitoring.rehearse()
        with self.lock:  # what the first erasure would otherwise read: the dataset catalog
            self.store.datasets()  # and the audit chain's head (cached from then on), and
            self.store.audit_head()  # what one answered from memory opens or reads first
            self.store.prepare_erasures()
        return warmed

    def _training_rows(self, mv: ModelVersion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self.lock:
            return self.store.training_data(mv.name, mv.version)

    def _routed(self) -> list[Target]:
        """Every version a request can reach now (lock held)."""
        return [t for name in sorted({mv.name for mv in self._ready()}) for t in self._reach(name)]

    def _reach(self, name: str) -> list[Target]:
        """The versions of ``name`` a request can reach now: its bare name's, and every one
        its aliases route to or shadow, that can serve (lock held)."""
        versions: set[int] = set()
        with suppress(StoreError):
            versions.add(self._route(name).version)
            for target in self._routes[name].aliases.values():
                versions.update(target.versions)
        return [(name, v) for v in sorted(versions) if self.store.estimator(name, v) is not None]

    def _serve_reachable(self, names: set[str] | None = None) -> None:
        """Publish the entries of every version of ``names`` (all routed models when None) a
        request can reach, so that no prediction needs the lock to load one (lock held)."""
        for name in sorted(self._routes if names is None else names & self._routes.keys()):
            for target in self._reach(name):
                with suppress(StoreError):
                    self._served(target)

    def _on_batch(self, target: Target, calls: int, rows: int, seconds: float) -> None:
        model = {"model": target[0]}
        self.metrics.inc("forget_batches_total", model)
        self.metrics.inc("forget_batched_rows_total", model, rows)
        if self.batcher is not None:
            self.metrics.set("forget_batch_limit_rows", model, self.batcher.limit[target])

    def close(self) -> None:
        """Stop the purger, purge what waits, close the store."""
        self._stop.set()
        self._unsettled.set()
        for thread in (self._settler, self._purger):
            if thread is not None:
                thread.join()
        self._shadows.shutdown(wait=True, cancel_futures=True)
        self._rebuilds.shutdown(wait=True)
        if self.accuracy is not None:
            self.accuracy.close()  # a build in progress ends first: it reads the store
        with self.lock:
            self.store.close()

    SETTLE_RETRY_S = 1.0  # after a failed settle (the journal keeps the groups)
    # the settler waits this long after an answer before recording, gathering the next
    # answers into the same transaction: each settle costs ~6 statements however many groups
    # it records, and its statements take the interpreter lock from the loop each time.
    # 0.1 s against 0.02: storms of 8 erasing connections 361 -> 430 erasures/s (adult,
    # medians of 3 alternating runs of bench.api_erasure, 2026-12-08); the cost is that long
    # of the rows in the drift references (memory only) and of the journal's lines
    SETTLE_GATHER_S = 0.1

    def _settle_loop(self) -> None:
        """Record the erasures answered from memory, a transaction for all those answered
        since the last one (a storm's group commit), until the service closes; close()
        records what is left."""
        while not self._stop.is_set():
            self._unsettled.wait()
            if self._stop.wait(self.SETTLE_GATHER_S):
                break
            self._unsettled.clear()
            try:
                self.store.settle()
            except Exception:  # the groups stay journaled; reads settle them, or the next try
                log.exception("recording the erasures answered from memory failed")
                self.metrics.inc("forget_settle_failures_total", {})
                if not self._stop.wait(self.SETTLE_RETRY_S):
                    self._unsettled.set()

    def _purge_loop(self) -> None:
        while not self._stop.wait(self.purge_interval):
            try:
                try:
                    self.expire()  # rows past their retention period: erased, purged below
                except StoreError as exc:  # unreadable times: said each round, purges go on
                    log.warning("retention: %s", exc)
                if self._awaiting_purge or self._shards_pending():
                    self.purge()  # collects evidence too; retrains dropped shards
                elif self._awaiting_evidence:
                    self.collect_evidence()
            except Exception:  # keep serving; the next round or close() finishes it
                log.exception("background purge or evidence collection failed")

    # ------------------------------------------------------------------ predict
    def _shards_pending(self) -> bool:
        """Whether a sharded model serves without shards an erasure (or an objection) dropped:
        the purge retrains them, off the answer path."""
        with self.lock:
            return bool(self.store.shards_pending())

    def _route(
        self,
        name: str,
        alias: str | None = None,
        version: int | None = None,
        key: str | None = None,
    ) -> Route:
        """Which version answers (and which shadows) a request, from the model's published
        routing table (its versions' statuses and its aliases): no statement, and the lock
        only to read a model not seen yet. Tables are published whole, under the lock, by
        whatever changes them (an alias move, a training, an erasure that leaves a version
        awaiting a retrain, a purge that retrains, a deletion)."""
        table = self._routes.get(name)
        if table is None:
            with self.lock:
                table = self._routes.get(name) or self._publish_routes(name)
        return route(name, table.statuses, table.aliases, alias=alias, key=key, version=version)

    def _publish_routes(self, name: str) -> _Routes:
        """Read the model's routing table from the store and publish it (lock held); the
        store's UnknownModelError for a model it does not know (nothing published)."""
        aliases = self.store.aliases(name)
        statuses = {mv.version: mv.status for mv in self.store.list_models() if mv.name == name}
        table = _Routes(statuses, aliases)
        self._routes[name] = table
        return table

    def _republish_routes(self, names: set[str] | None = None) -> None:
        """Publish again the tables of ``names`` (all published ones when None); a model the
        store no longer knows has its table dropped (lock held)."""
        for name in [n for n in list(self._routes) if names is None or n in names]:
            try:
                self._publish_routes(name)
            except StoreError:
                self._routes.pop(name, None)

    def _served(self, target: Target) -> tuple[ModelVersion, Any]:
        """A version's serving entry, read from the store when none is published (lock
        held); :class:`ModelNotServableError` when it awaits a retrain or is retired."""
        hit = self._serving.get(target)
        if hit is None:
            name, version = target
            mv = self.store.get_model(name, version)
            est = self.store.estimator(name, version) if mv.status == READY else None
            if est is None:
                raise ModelNotServableError(
                    f"model {name!r} v{version} cannot serve now: it is {mv.status}"
                )
            hit = (mv, est)
            self._gates.setdefault(name, Gate())
            self.cache.set_current(name, mv.version, mv.revision)
            self._features[target] = mv.features
            self._serving[target] = hit
            if self.monitoring is not None:  # its feed, ready before its first prediction
                self.monitoring.monitor(self.store, mv)
        return hit

    def _changed(self, models: set[str] | None = None) -> None:
        """Versions changed (a training, a retrain; lock held, before answering): the cached
        answers of ``models`` (all when None) go, and each served model among them has its
        entry published anew from the registry, under its gate — predictions go on with the
        old entry until then, and no prediction needs the lock to read the new one."""
        self.cache.invalidate(models)
        self._republish_routes(models)  # before the entries: new versions route at once
        for target in [t for t in self._serving if models is None or t[0] in models]:
            name, version = target
            try:
                mv: ModelVersion | None = self.store.get_model(name, version)
            except StoreError:  # deleted
                mv = None
            est = None if mv is None else self.store.estimator(name, version)
            with self._gates[name].exclusive():
                self.cache.invalidate({name})
                if mv is None or est is None or mv.status != READY:  # it serves no more
                    self._drop(target)
                    continue
                self._serving[target] = (mv, est)
                self._features[target] = mv.features
                self.cache.set_current(name, mv.version, mv.revision)
            if self.monitoring is not None:
                self.monitoring.monitor(self.store, mv)
        self._serve_reachable(models)  # a new version: published before the answer
        self._publish_revisions()

    def _publish_revisions(self) -> None:
        models = self.store.list_models()
        self._names = frozenset(mv.name for mv in models)
        for mv in models:
            if mv.status == READY:
                self.metrics.set(
                    "forget_model_revision",
                    {"model": mv.name, "version": str(mv.version)},
                    mv.revision,
                )

    def _features_of(self, target: Target) -> tuple[str, ...]:
        features = self._features.get(target)
        if features is None:
            with self.lock:
                features = self._served(target)[0].features
        return features

    def _score(
        self, target: Target, requests: Sequence[_Request], wait: bool = True
    ) -> list[dict[str, Any] | Exception] | None:
        """Score requests for one model as one matrix, with its published serving entry,
        under its gate held shared; the service lock only to read a model not yet served.

        With ``wait`` false, returns None at once when the gate is closed (the model is
        forgetting, or compacting) or the lock busy, instead of blocking the caller's thread.
        """
        while True:
            gate = self._gates.get(target[0])
            if gate is not None:
                if not gate.acquire_shared(blocking=wait):
                    return None
                try:
                    entry = self._serving.get(target)  # read inside: the latest published
                    if entry is not None:
                        return self._score_with(entry, requests)
                finally:
                    gate.release_shared()
            if not wait and self.store.unsettled:  # reading the model would record them
                return None
            if not self.lock.acquire(blocking=wait):
                return None
            try:
                self._served(target)
            except StoreError as exc:
                return [exc] * len(requests)
            finally:
                self.lock.release()

    def _score_with(
        self, entry: tuple[ModelVersion, Any], requests: Sequence[_Request]
    ) -> list[dict[str, Any] | Exception]:
        mv, est = entry
        if _trees_wait(est):  # answers are not kept (the same revision answers with all soon)
            for req in requests:
                req.digest = None
        out: list[dict[str, Any] | Exception] = []
        good: list[tuple[int, np.ndarray]] = []
        for i, req in enumerate(requests):
            try:
                X = req.X if req.features == mv.features else _matrix(req.rows, mv.features)
                check_inputs(est, X, mv.features)
            except PredictInputError as exc:
                out.append(exc)
                continue
            out.append({})
            good.append((i, X))
        if not good:
            return out
        X = good[0][1] if len(good) == 1 else np.vstack([x for _, x in good])
        classifier = hasattr(est, "predict_proba") and hasattr(est, "classes_")
        try:
            # an overflow shows as a non-finite output, refused per request by check_outputs
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if classifier:  # (a forest scores with its compiled trees)
                    proba = np.asarray(est.predict_proba(X))
                    classes = np.asarray(est.classes_)
                    labels = classes[np.argmax(proba, axis=1)]
                else:
                    labels = np.asarray(est.predict(X))
        except Exception as exc:  # the request was checked: the model is at fault
            log.exception("%s v%d failed to score %d rows", mv.name, mv.version, len(X))
            failed = ScoringError(
                f"model {mv.name!r} v{mv.version} cannot score now ({type(exc).__name__}: "
                f"{str(exc)[:200]}); it may need a retrain"
            )
            for i, _ in good:
                out[i] = failed
            return out
        at = 0
        for i, x in good:
            n = x.shape[0]
            try:
                outputs = proba[at : at + n] if classifier else labels[at : at + n]
                check_outputs(mv.name, mv.features, x, outputs)
            except PredictInputError as exc:
                out[i] = exc
                at += n
                continue
            res: dict[str, Any] = {
                "model": mv.name,
                "version": mv.version,
                "revision": mv.revision,
                "predictions": labels[at : at + n].tolist(),
            }
            if classifier:
                res["probabilities"] = proba[at : at + n].tolist()
                res["classes"] = classes.tolist()
            requests[i].outputs = proba[at : at + n] if classifier else labels[at : at + n]
            at += n
            out[i] = res
        return out

    # ------------------------------------------------------------------ after an erasure
    def _moved(self, actions: Sequence[Any], *, defer: bool = False) -> None:
        """An erasure moved versions to new revisions (the lock held, before it is answered):
        publish their entries.

        The serving entries follow from the receipt, without reading the registry again: a
        serving version that forgot serves its new revision (its features and version are
        unchanged; descriptions read the registry); one left awaiting a retrain (or whose model
        object the store replaced) leaves them, and is read again on its next use.
        Forests recompile the trees the erasure changed now (an erasure's fence did as it
        opened; restrictions' have not), so that no prediction started after the answer pays
        for it; with ``defer`` (an erasure answered from memory) right after the answer
        (:meth:`_refresh`). The answer cache was emptied by the caller: each
        serving entry is its current (version, revision) again.
        """
        final: dict[Target, Any] = {}  # each version's last action; awaiting a retrain sticks
        for a in actions:
            had = final.get((a.model, a.version))
            if had is None or had.action != PENDING:
                final[(a.model, a.version)] = a
        for a in final.values():
            target = (a.model, a.version)
            hit = self._serving.get(target)
            if hit is not None:
                if a.action == PENDING or self.store.estimator(a.model, a.version) is not hit[1]:
                    self._drop(target)
                    continue
                self._serving[target] = (replace(hit[0], revision=a.revision), hit[1])
                self.metrics.set(
                    "forget_model_revision",
                    {"model": a.model, "version": str(a.version)},
                    a.revision,
                )
            if a.action != PENDING:
                self._refresh(target, self.store.estimator(a.model, a.version), later=defer)
        for (name, _), (mv, _) in self._serving.items():
            self.cache.set_current(name, mv.version, mv.revision)
        waiting = {a.model for a in actions if a.action == PENDING}
        if waiting:  # versions that await a retrain route no request
            self._republish_routes(waiting)

    def _drop(self, target: Target) -> None:
        """A version's serving entry and feature list go: it is read again on its next use."""
        self._serving.pop(target, None)
        self._features.pop(target, None)

    def _refresh(self, target: Target, est: Any, *, later: bool = False) -> None:
        """Bring a forest's compiled form up to date now, so that no prediction pays for it;
        ``later`` (the caller on the loop), right after the erasure's answer is on its way
        (:meth:`_answer_round` schedules :meth:`_refresh_due`): not in its latency. Until
        then the model's predictions walk its node arrays, or bring the form up to date
        themselves (its rent-or-buy rule): the same numbers, the model already forgot.

        A forest that deferred rebuilds (``defer_rows``: trees pending, its predictions
        averaging the others) does them first: now, or ``later`` on a thread of their own
        (:meth:`_rebuild`), beside its predictions, so that the loop goes on meanwhile."""
        if est is None:
            return
        if _trees_wait(est):
            if later:
                self._rebuilds.submit(self._rebuild, target, est)
            else:
                self._catch_up(est)
            return
        if not (self.compile_forests and hasattr(est, "refresh_compiled")):
            return
        if later:
            self._due[target] = est
        else:
            est.refresh_compiled()

    def _rebuild(self, target: Target, est: Any) -> None:
        """A forest's deferred rebuilds and its compiled form's catch-up, with its gate held
        shared (beside its predictions, which score the trees that do not wait; never beside
        a forget or a compaction, which close the gate)."""
        gate = self._gates.get(target[0])
        if gate is not None:
            gate.acquire_shared()
        try:
            self._catch_up(est)
        except Exception:  # the trees wait for the purge, which rebuilds them (store.registry)
            log.exception("rebuilding the deferred subtrees of %s v%d failed", *target)
        finally:
            if gate is not None:
                gate.release_shared()

    def _catch_up(self, est: Any) -> None:
        """A forest's deferred rebuilds, then its compiled form's catch-up."""
        est.retrain_pending()
        if self.compile_forests:
            est.refresh_compiled()

    def _rebuilt(self) -> None:
        """Wait for the forests' deferred rebuilds submitted so far (the lock held: no erasure
        submits more meanwhile): before a purge copies or compacts models they read."""
        self._rebuilds.submit(int).result()

    def _refresh_due(self) -> None:
        """Refresh the forests :meth:`_refresh` left for later, each with its gate held shared
        (beside its predictions, never beside a forget or a compaction); a gate closed now
        is tried again a millisecond later."""
        for target, est in list(self._due.items()):
            gate = self._gates.get(target[0])
            if gate is not None and not gate.acquire_shared(blocking=False):
                continue
            try:
                est.refresh_compiled()
            except Exception:  # the form stays out of date: predictions walk or refresh it
                log.exception("refreshing the compiled trees of %s v%d failed", *target)
            finally:
                if gate is not None:
                    gate.release_shared()
            del self._due[target]
        if self._due:
            asyncio.get_running_loop().call_later(0.001, self._refresh_due)

    def _prepare(
        self,
        target: Target,
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None = None,
    ) -> _Request:
        features = self._features_of(target)
        X = _matrix(rows, features)
        digest = self.cache.digest(X.tobytes()) if self.cache.max_bytes else None
        return _Request(rows, features, X, digest, self._subject_keys(subject_ids, len(rows)))

    def _subject_keys(
        self, subject_ids: Sequence[str | None] | None, n: int
    ) -> list[str | None] | None:
        check_subject_ids(subject_ids, n)
        if subject_ids is None:
            return None
        return [None if s is None else self.store.subject_key(s) for s in subject_ids]

    def _deliver(
        self, route: Route, req: _Request, res: dict[str, Any], fresh: bool
    ) -> dict[str, Any]:
        """Cache a fresh answer, feed the drift monitor, give the answer its prediction id and
        the alias that routed it; its shadow, if any, is scored beside it."""
        name = route.model
        if fresh:
            self._keep(name, req, res)
        if route.shadow is not None:
            self._shadow((name, route.shadow), req)
        res = res | {"alias": route.alias}
        if self.monitoring is None:
            return res
        feed = self._feed(name, res["version"], res["revision"], wait=False)
        if feed is None:
            return res
        probabilities = res.get("probabilities")
        outputs = req.outputs
        if outputs is None:  # a cached answer
            outputs = np.asarray(probabilities if probabilities is not None else res["predictions"])
        feed.add(req.X, outputs, req.keys)
        pid = self.monitoring.remember_prediction(
            name, res["version"], res["predictions"], classifier=probabilities is not None
        )
        return res | {"prediction_id": pid}

    def _feed(self, name: str, version: int, revision: int, *, wait: bool = True) -> Feed | None:
        """The monitor feed of ``name`` v``version`` while ``revision`` serves; None once an
        erasure (or a new version) moved the model on: rows answered by an older revision are
        not the new one's, and an erased subject's rows must not come back.

        Predictions pass ``wait=False``: whoever publishes a revision brings its feed along
        (:meth:`Monitoring.follow`), so a feed missing here means the answer's revision no
        longer serves, or its monitor was dropped for a rebuild (after a purge that
        retrained): then the rows are not monitored rather than the answer kept waiting."""
        assert self.monitoring is not None
        feed = self.monitoring.current(name, version, revision)
        if feed is None and wait:
            with self.lock:
                mv, _ = self._served((name, version))
                if mv.revision != revision:
                    return None
                feed = self.monitoring.monitor(self.store, mv)
        return feed

    def _shadow(self, target: Target, answered: _Request) -> None:
        """Score ``answered``'s rows with the shadow version ``target`` on the shadow thread:
        counted and monitored (its drift, its metrics), never answered, never cached; dropped
        (``forget_shadow_dropped_total``) when that thread is ``SHADOW_BACKLOG`` behind."""
        name, version = target
        labels = {"model": name, "version": str(version)}
        if not self._shadow_slots.acquire(blocking=False):
            self.metrics.inc("forget_shadow_dropped_total", labels)
            return

        def run() -> None:
            try:
                req = self._prepare(target, answered.rows)
                req.keys = answered.keys
                got = self._score(target, [req])
                res = got[0] if got else None
                if not isinstance(res, dict):  # cannot score now (awaits a retrain, ...)
                    self.metrics.inc("forget_shadow_failed_total", labels)
                    return
                self.metrics.inc("forget_shadow_rows_total", labels, req.X.shape[0])
                if self.monitoring is not None:
                    feed = self._feed(name, version, res["revision"], wait=False)
                    if feed is not None and req.outputs is not None:
                        feed.add(req.X, req.outputs, req.keys)
            except Exception:  # a shadow never fails the answer it shadows
                log.exception("shadow scoring of %s v%d failed", name, version)
                self.metrics.inc("forget_shadow_failed_total", labels)
            finally:
                self._shadow_slots.release()

        try:
            self._shadows.submit(run)
        except RuntimeError:  # shutting down
            self._shadow_slots.release()

    def observe(self, batch: Sequence[Observation]) -> int:
        """Feed the drift monitors with predictions answered elsewhere (by the replicas of a
        cluster), in the order answered; feedback finds each under its answer's
        ``prediction_id`` (a shadow's scoring has none). Those of a revision that no longer
        serves are dropped, as :meth:`predict` drops them; returns how many were taken."""
        if self.monitoring is None:
            raise MonitoringOffError("this server runs without drift monitoring")
        taken = 0
        for (name, version, revision), run in itertools.groupby(batch, key=_answered_by):
            try:
                feed = self._feed(name, version, revision)
            except StoreError:  # the model retired meanwhile: nothing of it serves
                feed = None
            if feed is None:
                continue
            obs = list(run)  # one matrix, one feed.add for the run: the owner's cost is per row
            X = _matrix([row for ob in obs for row in ob.rows], feed.monitor.profile.names)
            keys: list[str | None] | None = None
            if any(ob.subject_ids is not None for ob in obs):
                keys = []
                for ob in obs:
                    n = len(ob.rows)
                    keys += self._subject_keys(ob.subject_ids, n) or [None] * n
            classifier = obs[0].answer.get("probabilities") is not None
            out = "probabilities" if classifier else "predictions"
            feed.add(X, np.asarray([o for ob in obs for o in ob.answer[out]]), keys)
            for ob in obs:
                if "prediction_id" not in ob.answer:  # a shadow's: nobody got it
                    continue
                self.monitoring.remember_prediction(
                    name,
                    version,
                    ob.answer["predictions"],
                    classifier=classifier,
                    prediction_id=ob.answer["prediction_id"],
                )
            taken += len(obs)
        return taken

    def _cached(self, target: Target, req: _Request) -> dict[str, Any] | None:
        if req.digest is None:
            return None
        name, version = target
        revision = self.cache.current(name, version)
        if revision is None:
            return None
        hit = self.cache.get((name, version, revision, req.digest))
        if hit is not None:
            self.metrics.inc("forget_cache_hits_total", {"model": name})
        return hit

    def _keep(self, name: str, req: _Request, res: dict[str, Any]) -> None:
        self.metrics.inc(
            "forget_predicted_rows_total",
            {"model": name, "version": str(res["version"])},
            req.X.shape[0],
        )
        if req.digest is not None:
            self.cache.put((name, res["version"], res["revision"], req.digest), res)

    def predict(
        self,
        name: str,
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None = None,
        *,
        alias: str | None = None,
        version: int | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Score rows with one version (cache, then the model; no batching): ``version`` when
        pinned, else the one ``alias`` (``default``: a bare name) routes ``key`` to."""
        route = self._route(name, alias, version, key)
        target = (name, route.version)
        req = self._prepare(target, rows, subject_ids)
        hit = self._cached(target, req)
        if hit is not None:
            return self._deliver(route, req, hit, fresh=False)
        results = self._score(target, [req])
        assert results is not None  # a waiting call always gets its answer
        res = results[0]
        if isinstance(res, Exception):
            raise res
        return self._deliver(route, req, res, fresh=True)

    async def predict_async(
        self,
        name: str,
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None = None,
        *,
        alias: str | None = None,
        version: int | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """The same through the micro-batcher (:class:`Overloaded` when its queue is full).

        Work that may wait for the lock (an erasure in progress) or take long (big inputs)
        leaves the event loop; a small request on a version already seen stays on it.
        """
        if self.batcher is None:
            return await asyncio.to_thread(
                lambda: self.predict(name, rows, subject_ids, alias=alias, version=version, key=key)
            )
        route = self._route(name, alias, version, key)
        target = (name, route.version)
        if target in self._features and len(rows) <= 256:
            req = self._prepare(target, rows, subject_ids)
        else:
            req = await asyncio.to_thread(self._prepare, target, rows, subject_ids)
        hit = self._cached(target, req)
        if hit is not None:
            return self._deliver(route, req, hit, fresh=False)
        res: dict[str, Any] = await self.batcher.submit(target, req, req.X.shape[0])
        return self._deliver(route, req, res, fresh=True)

    # ------------------------------------------------------------------ several models
    def predict_models(
        self,
        dataset: str,
        models: Sequence[ModelRef],
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None = None,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Score the same rows with several models trained on ``dataset``, each ref
        ``(model, alias, version)`` routed as :meth:`predict` routes it: the rows are read once,
        into one matrix per distinct feature list (:mod:`store.stages`), and every answer comes
        from revisions current at one moment — all the models' gates are held at once, so an
        erasure answered before the call is in every answer and one answered after in none.
        Not micro-batched: a batch holds one version's requests, and spreading this request
        over k batches would let an erasure land between its answers."""
        answered = self._predict_models(dataset, models, rows, subject_ids, key, wait=True)
        assert answered is not None  # a waiting call always gets its answer
        return answered

    async def predict_models_async(
        self,
        dataset: str,
        models: Sequence[ModelRef],
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None = None,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`predict_models` on the event loop when it need not wait (its versions seen,
        no gate closed, a small request), else on a thread."""
        if len(rows) <= 256:
            answered = self._predict_models(dataset, models, rows, subject_ids, key, wait=False)
            if answered is not None:
                return answered
        return await asyncio.to_thread(
            self.predict_models, dataset, models, rows, subject_ids, key=key
        )

    def _predict_models(
        self,
        dataset: str,
        models: Sequence[ModelRef],
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None,
        key: str | None,
        *,
        wait: bool,
    ) -> dict[str, Any] | None:
        if len(set(models)) != len(models):
            raise PredictInputError("a model is named twice in models: name each once")
        routes = [self._route(name, alias, version, key) for name, alias, version in models]
        targets = [(r.model, r.version) for r in routes]
        if not wait and any(t not in self._features for t in targets):
            return None  # a version not seen yet: read under the lock, off the event loop
        features = [self._features_of(t) for t in targets]
        for t in targets:
            self._check_dataset(t, dataset)
        check_subject_ids(subject_ids, len(rows))
        p = stages.plan(features)
        by_features = p.split(_matrix(rows, p.union))
        keys = self._subject_keys(subject_ids, len(rows))
        digests = {
            f: self.cache.digest(X.tobytes()) if self.cache.max_bytes else None
            for f, X in by_features.items()
        }
        reqs = [_Request(rows, f, by_features[f], digests[f], keys) for f in features]
        while True:
            scored = self._score_together(targets, reqs, wait)
            if scored is None:
                return None
            if all(r is not None for r in scored):
                break
            with self.lock:  # a version left serving meanwhile: read it again (or refuse)
                for t, r in zip(targets, scored, strict=True):
                    if r is None:
                        self._served(t)
        done = [r for r in scored if r is not None]  # all of them, checked above
        answers = [
            self._deliver(routed, req, res, fresh)
            for routed, req, (res, fresh) in zip(routes, reqs, done, strict=True)
        ]
        self.metrics.inc("forget_multi_model_requests_total", {"dataset": dataset})
        return {"dataset": dataset, "answers": answers}

    def _check_dataset(self, target: Target, dataset: str) -> None:
        hit = self._serving.get(target)
        if hit is None:
            with self.lock:
                hit = self._served(target)
        trained_on = hit[0].dataset
        if trained_on != dataset:
            with self.lock:
                self.store.dataset(dataset)  # UnknownDatasetError for a dataset it lacks
            name, version = target
            raise PredictInputError(
                f"model {name!r} v{version} was trained on dataset {trained_on!r}, not "
                f"{dataset!r}: a multi-model request scores models of one dataset"
            )

    def _score_together(
        self, targets: Sequence[Target], reqs: Sequence[_Request], wait: bool
    ) -> list[tuple[dict[str, Any], bool] | None] | None:
        """Each target's answer (cached, or scored) and whether it is fresh, all under the
        targets' gates held shared at once (taken in name order, as erasures take them); None
        for a target no longer published; None in all when ``wait`` is false and a gate is
        closed. A request error (bad rows for a model) propagates, after the gates open."""
        held: list[Gate] = []
        try:
            for name in sorted({t[0] for t in targets}):
                gate = self._gates[name]
                if not gate.acquire_shared(blocking=wait):
                    return None
                held.append(gate)
            out: list[tuple[dict[str, Any], bool] | None] = []
            for target, req in zip(targets, reqs, strict=True):
                entry = self._serving.get(target)
                if entry is None:
                    out.append(None)
                    continue
                hit = self._cached(target, req)
                if hit is not None:
                    out.append((hit, False))
                    continue
                (res,) = self._score_with(entry, [req])
                if isinstance(res, Exception):
                    raise res
                out.append((res, True))
            return out
        finally:
            for gate in held:
                gate.release_shared()

    # ------------------------------------------------------------------ drift
    def drift(
        self, name: str, *, alias: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """A version's drift report (features, detectors, window, alerts): ``version``, else
        the one ``alias`` (``default``: the bare name) answers keyless requests with."""
        if self.monitoring is None:
            raise MonitoringOffError("this server runs without drift monitoring")
        with self._after_purge() if self.retrain_on_drift else self.lock:  # (a training)
            self.store.settle()  # erasures answered from memory leave the windows first
            mv, _ = self._served((name, self._route(name, alias, version).version))
            doc = self.monitoring.report(self.store, mv)
            retrained = self._maybe_retrain(mv, doc)
        return doc | {"retrained": retrained}

    def _maybe_retrain(self, mv: ModelVersion, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """Event-based retraining (``retrain_on_drift``): a drifting version is refitted, with
        the same estimator and parameters, on its dataset's rows now (append fresh rows
        first), at most once per ``retrain_cooldown`` seconds per model. Lock held."""
        if not (self.retrain_on_drift and doc["drift"]):
            return None
        last = self._drift_retrains.get(mv.name)
        if last is not None and time.monotonic() - last < self.retrain_cooldown:
            return None
        cls = _class_of(mv)
        if cls is None:
            return None
        self._drift_retrains[mv.name] = time.monotonic()
        est = cls(**mv.params)
        new = self.store.train(
            mv.name, dataset=mv.dataset, estimator=est, label=mv.label, features=mv.features
        )
        self._changed({mv.name})
        self.metrics.inc("forget_drift_retrains_total", {"model": mv.name})
        log.info("drift on %s v%d: retrained as v%d", mv.name, mv.version, new.version)
        reason = "; ".join(doc["alerts"][:3])
        return {"version": new.version, "n_rows": new.n_rows, "because": reason}

    def feedback(self, name: str, prediction_id: str, labels: Sequence[Any]) -> dict[str, Any]:
        if self.monitoring is None:
            raise MonitoringOffError("this server runs without drift monitoring")
        version, rows = self.monitoring.feedback(name, prediction_id, labels)
        return {"model": name, "version": version, "rows": rows}

    def refresh_drift_metrics(self) -> None:
        """Publish the drift gauges (``/metrics``, a read anyone may call: it never trains;
        retraining on drift follows an authenticated drift report)."""
        if self.monitoring is None:
            return
        with self.lock:
            serving = [self._served(t)[0] for t in self._routed()]
            self.monitoring.publish_all(self.store, serving)

    def _ready(self) -> list[ModelVersion]:
        return [mv for mv in self.store.list_models() if mv.status == READY]

    def model(self, name: str) -> dict[str, Any]:
        with self.lock:
            versions = [mv for mv in self.store.list_models() if mv.name == name]
            if not versions:
                self.store.get_model(name)  # raises the store's UnknownModelError
            return self._describe(name, versions)

    def models(self) -> list[dict[str, Any]]:
        with self.lock:
            by_name: dict[str, list[ModelVersion]] = {}
            for mv in self.store.list_models():
                by_name.setdefault(mv.name, []).append(mv)
            return [self._describe(n, vs) for n, vs in sorted(by_name.items())]

    def _describe(self, name: str, versions: list[ModelVersion]) -> dict[str, Any]:
        try:
            serving: int | None = self._route(name).version
        except StoreError:  # the bare name routes nowhere now
            serving = None
        return {
            "name": name,
            "serving_version": serving,
            "aliases": {a: _alias(t) for a, t in sorted(self.store.aliases(name).items())},
            "versions": [self._version(mv, mv.version == serving) for mv in versions],
        }

    # ------------------------------------------------------------------ aliases
    def set_alias(
        self,
        name: str,
        alias: str,
        target: int | Mapping[Any, float],
        *,
        shadow: int | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        """Point ``alias`` at a version or a split (a promotion, a rollback, a canary).

        Atomic for predictions: each request resolves its alias once and is scored by the one
        version it resolved to (its answer names it), so none mixes versions; requests
        resolved before the move finish on the version they resolved to."""
        with self.lock:
            got = self.store.set_alias(name, alias, target, shadow=shadow, by=by)
            self._publish_routes(name)
            self._serve_reachable({name})
        self.metrics.inc("forget_alias_moves_total", {"model": name, "alias": alias})
        return {"model": name, "alias": alias} | _alias(got)

    def delete_alias(self, name: str, alias: str, *, by: str | None = None) -> None:
        with self.lock:
            self.store.delete_alias(name, alias, by=by)
            self._publish_routes(name)
        self.metrics.inc("forget_alias_moves_total", {"model": name, "alias": alias})

    # ------------------------------------------------------------------ exported copies
    def export(
        self,
        name: str,
        *,
        recipient: str,
        version: int | None = None,
        fmt: str = "onnx",
        by: str | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """A copy of a version (default: the bare name's) for ``recipient``, recorded so that
        erasures name the recipients to notify (:meth:`ModelStore.export`)."""
        with self.lock:
            blob, rec = self.store.export(name, version, recipient=recipient, format=fmt, by=by)
        self.metrics.inc("forget_exports_total", {"model": name})
        return blob, rec.as_dict()

    def exports(self, name: str | None = None, *, stale: bool = False) -> list[dict[str, Any]]:
        """The copies recipients hold (the latest per recipient and version); ``stale``: only
        those an erasure or a retrain made stale."""
        with self.lock:
            copies = self.store.exports(name)
        return [c for c in copies if c["stale"] or not stale]

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> dict[str, Any]:
        """Delete a version, its artifacts and its rows' link (audited; refused while an alias
        names it); its serving entry, cached answers and drift monitor go first."""
        with self._after_purge():
            self._unserve((name, version))
            mv = self.store.delete_version(name, version, by=by)
            self._deleted([mv])
        return {"model": name, "version": mv.version, "deleted": True}

    def version_retention(self) -> dict[str, Any]:
        """How many versions of each model the store keeps (None: all)."""
        with self.lock:
            return {"keep_last": self.store.retention}

    def set_version_retention(
        self, keep_last: int | None, *, by: str | None = None
    ) -> dict[str, Any]:
        """Keep the last ``keep_last`` versions of each model (None: all; audited), applied
        now and after each training (:meth:`ModelStore.set_retention`): older versions,
        except those an alias names and the newest ready one, are deleted and purged."""
        with self._after_purge():
            if keep_last is not None:  # no version about to go answers any more; those
                for target in list(self._serving):  # that stay are read again on next use
                    self._unserve(target)
            deleted = self.store.set_retention(keep_last, by=by)
            self._deleted(deleted)
        return {
            "keep_last": keep_last,
            "deleted": [{"model": mv.name, "version": mv.version} for mv in deleted],
        }

    def _unserve(self, target: Target) -> None:
        """Take a version out of serving before it is deleted (lock held): its entry and
        cached answers go under its model's gate."""
        gate = self._gates.get(target[0])
        with gate.exclusive() if gate is not None else nullcontext():
            self._drop(target)
            self.cache.invalidate({target[0]})

    def _deleted(self, versions: Sequence[ModelVersion]) -> None:
        """Versions deleted from the store (lock held): routes, monitors and gauges follow."""
        if not versions:
            return
        self._republish_routes({mv.name for mv in versions})
        if self.monitoring is not None:
            for mv in versions:
                self.monitoring.forget_version(mv.name, mv.version)
        self._publish_revisions()

    def _version(self, mv: ModelVersion, serving: bool) -> dict[str, Any]:
        est = self.store.estimator(mv.name, mv.version)
        guarantee = getattr(est if est is not None else _class_of(mv), "guarantee", None)
        budget = getattr(est, "budget_left_", None) if est is not None else None
        return asdict(mv) | {
            "serving": serving,
            "guarantee": None if guarantee is None else str(guarantee),
            "deletion_budget_left": budget if isinstance(budget, int) else None,
            "features": list(mv.features),
            "params": dict(mv.params),
            "rows_forgotten": sum(r.rows_forgotten for r in mv.lineage),
            "lineage": [asdict(r) for r in mv.lineage],
        }

    def train(
        self,
        name: str,
        *,
        dataset: str,
        kind: str,
        params: Mapping[str, Any],
        label: str,
        features: Sequence[str],
        purpose: str | None = None,
    ) -> dict[str, Any]:
        estimator = build_estimator(kind, params)
        with self._after_purge():  # its version retention may purge
            try:
                mv = self.store.train(
                    name,
                    dataset=dataset,
                    estimator=estimator,
                    label=label,
                    features=features,
                    purpose=purpose,
                )
            except StoreError:
                raise
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidEstimatorError(f"{kind}({dict(params)}) cannot fit: {exc}") from exc
            self._changed({name})
            return self._version(mv, serving=True)

    # ------------------------------------------------------------------ datasets
    def datasets(self) -> list[dict[str, Any]]:
        with self.lock:
            return [_dataset(d) for d in self.store.datasets()]

    def dataset(self, name: str) -> dict[str, Any]:
        with self.lock:
            return _dataset(self.store.dataset(name))

    def set_retention_policy(
        self, name: str, time_column: str, period: str, by: str | None
    ) -> dict[str, Any]:
        with self.lock:
            return self.store.set_retention_policy(name, time_column, period, set_by=by).as_dict()

    def remove_retention_policy(self, name: str, by: str | None) -> None:
        with self.lock:
            self.store.remove_retention_policy(name, removed_by=by)

    def retention(self, since: str | None, until: str | None) -> dict[str, Any]:
        """The retention policies and what expired in ``[since, until)``."""
        with self.lock:
            return {
                "policies": [p.as_dict() for p in self.store.retention_policies()],
                "expiries": self.store.expiries(since, until),
            }

    def create_dataset(
        self,
        name: str,
        subject_column: str,
        *,
        rows: list[dict[str, Any]] | None,
        csv: str | None,
    ) -> dict[str, Any]:
        check_upload(rows, csv)  # before the lock: a refused upload holds nothing up
        with self.lock:
            if rows is not None:
                info = self.store.ingest(name, rows, subject_column=subject_column)
            else:
                info = self._ingest_csv(name, subject_column, csv or "")
            return _dataset(info)

    def append_rows(
        self, name: str, *, rows: list[dict[str, Any]] | None, csv: str | None
    ) -> dict[str, Any]:
        check_upload(rows, csv)
        with self.lock:
            if rows is not None:
                added = self.store.append(name, rows)
            else:
                added = self._with_csv(csv or "", lambda path: self.store.append(name, path))
            return asdict(added)

    def _ingest_csv(self, name: str, subject_column: str, text: str) -> Any:
        return self._with_csv(
            text, lambda path: self.store.ingest(name, path, subject_column=subject_column)
        )

    def _with_csv(self, text: str, use: Any) -> Any:
        # The store reads CSV from a file-like object in memory: no copy of the upload is ever
        # written, so none can outlive a crash (copies older versions left are swept on open).
        return use(io.StringIO(text))

    # ------------------------------------------------------------------ erasure
    def erase(
        self, subject_id: str, legal_ground: str, *, requested_by: str | None = None
    ) -> dict[str, Any]:
        """Carry out an erasure request; its receipt once its models' new revisions serve.

        Group commit: requests that arrive while a group is being carried out queue; when it
        is done its callers return at once (woken, not queued for the lock behind the next
        group), and one of the waiting callers leads: it carries out every queued request (up
        to ``GROUP``) in one transaction (:meth:`ModelStore.erase_many`: each keeps its own
        request, audit entries, revisions and receipt). If the group fails, each request is
        tried alone, so one bad request fails no other.
        """
        mine = _Erasure(
            {"subject_id": subject_id, "legal_ground": legal_ground, "requested_by": requested_by}
        )
        with self._queue_done:
            self._queue.append(mine)
            while not mine.done and self._leading:
                self._queue_done.wait()
            lead = not mine.done
            if lead:
                self._leading = True
        if lead:
            self._lead(mine)
        if mine.error is not None:
            raise mine.error
        return self._answer(mine.receipt)

    async def erase_async(
        self, subject_id: str, legal_ground: str, *, requested_by: str | None = None
    ) -> dict[str, Any]:
        """:meth:`erase` for the event loop: answered from memory on the loop itself when it
        can (:meth:`_erase_round`: no thread hop, no statement; while the lock is held it
        waits on the loop), else by ``erase`` on a worker thread. The requests that arrive in
        one round of the loop (a storm's) are carried out together, each still its own
        request and receipt."""
        receipt = None
        if self.journal:
            erasure.check_legal_ground(legal_ground)  # a bad request fails alone, not its round
            self.store.subject_key(subject_id)
            call = {
                "subject_id": subject_id,
                "legal_ground": legal_ground,
                "requested_by": requested_by,
            }
            loop = asyncio.get_running_loop()
            answer: asyncio.Future[erasure.ErasureReceipt | None] = loop.create_future()
            self._round.append((call, answer))
            if len(self._round) == 1:
                loop.call_soon(self._erase_round)
            receipt = await answer
        if receipt is None:
            return await asyncio.to_thread(
                self.erase, subject_id, legal_ground, requested_by=requested_by
            )
        return self._answer(receipt)

    BUSY_RETRY_S = (0.001, 0.05)  # a round that finds the lock held retries, backing off

    def _erase_round(
        self, calls: list[tuple[dict[str, Any], asyncio.Future[Any]]] | None = None, wait: float = 0
    ) -> None:
        """Carry out the erasure requests of this round of the loop together
        (:meth:`_erase_now`); if the store wants the recorded path for the group, each alone.
        Each request's future gets its receipt, None for the recorded path, or the error
        (a group that fails fails whole: nothing of it happened). While the lock is held (a
        purge, a training, a recorded erasure) the round waits on the loop and tries again:
        sent down the recorded path instead, each would hold the lock in turn, and the rounds
        after it would find it held too."""
        if calls is None:
            calls, self._round = self._round, []
        if not self.lock.acquire(blocking=False):
            lo, hi = self.BUSY_RETRY_S
            wait = min(max(2 * wait, lo), hi)
            asyncio.get_running_loop().call_later(wait, self._erase_round, calls, wait)
            return
        try:
            self._answer_round(calls)
        finally:
            self.lock.release()

    def _answer_round(self, calls: list[tuple[dict[str, Any], asyncio.Future[Any]]]) -> None:
        """The round's requests together, or each alone (the lock held)."""
        got: list[erasure.ErasureReceipt | BaseException | None] = [None] * len(calls)
        try:
            together = self._erase_now([c for c, _ in calls])
        except Exception as exc:
            together, got = None, [exc] * len(calls)
        if together is not None:
            got = list(together)
        elif len(calls) > 1 and got[0] is None:
            for i, (c, _) in enumerate(calls):
                try:
                    alone = self._erase_now([c])
                except Exception as exc:
                    got[i] = exc
                else:
                    got[i] = None if alone is None else alone[0]
        for (_, answer), result in zip(calls, got, strict=True):
            if answer.done():  # a caller that went away cancelled its future
                continue
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)
        if self._due:  # after the callers' wake-ups, which answer first
            asyncio.get_running_loop().call_soon(self._refresh_due)

    def _erase_now(self, calls: list[dict[str, Any]]) -> list[erasure.ErasureReceipt] | None:
        """Carry out erasure requests from memory (:meth:`ModelStore.erase_now`): the
        subjects' rows read, the models forgetting under their gates and recompiled, the
        answer cache emptied, the new revisions published, the group durable in the store's
        journal — then the receipts, and the settler records them in the database (the drift
        references lose the rows then). None, with nothing changed, when the store says the
        recorded path must answer (a repeat, a subject with no rows, one erased but not yet
        recorded). The caller holds the lock (:meth:`_erase_round`)."""
        try:
            receipts = self._forgetting(
                lambda fence, removed: self.store.erase_now(
                    calls,
                    channel="http",
                    before_forget=fence.close,
                    after_forget=fence.open,
                    removed=removed,
                ),
                settled=False,
            )
        except NotNow:
            return None
        self._unsettled.set()
        return receipts

    def _answer(self, receipt: erasure.ErasureReceipt) -> dict[str, Any]:
        self.metrics.inc("forget_erasures_total", {"status": receipt.status})
        log.info(
            "erasure %s for subject %s: %s, %d rows",
            receipt.request_id,
            receipt.subject_key,
            receipt.status,
            receipt.rows_erased,
        )
        return _receipt(receipt)

    def _lead(self, mine: _Erasure) -> None:
        """Carry out the queued erasure requests a group at a time until ``mine`` is done,
        waking the callers after each group; then another waiting caller leads."""
        try:
            while not mine.done:
                with self._queue_done:
                    group, self._queue = self._queue[: self.GROUP], self._queue[self.GROUP :]
                with self.lock:
                    try:
                        self._erase_group(group)
                    finally:  # the callers answer now, whoever takes the lock next
                        with self._queue_done:
                            for t in group:  # whatever happened, no caller waits for ever
                                if not t.done:
                                    t.error = RuntimeError("the erasure group stopped unexpectedly")
                                    t.done = True
                            self._queue_done.notify_all()
        finally:
            with self._queue_done:
                self._leading = False
                self._queue_done.notify_all()

    GROUP = 64  # the most requests one transaction carries out
    # the same, for the requests of one batch: per request, a group shares the statements
    # and each model's forget call (a forest refits beyond 1/16 of its rows: REFIT_SHARE)
    BATCH_GROUP = 4096

    def erase_batch(
        self,
        subject_ids: Sequence[str],
        legal_ground: str,
        *,
        requested_by: str | None = None,
    ) -> list[dict[str, Any]]:
        """Erasure requests for many subjects (account closures, a backlog), in order: each
        still its own request, audit entries and receipt, carried out ``BATCH_GROUP`` to a
        transaction. A group that fails is tried request by request, so a request fails alone
        and whole (nothing of it happened); its entry says why. A subject named twice gets one
        erasure: its second entry is a repeat (the first request's receipt). The legal ground
        and every id are checked first: a bad one refuses the whole batch.
        """
        erasure.check_legal_ground(legal_ground)
        for i, s in enumerate(subject_ids):
            if not isinstance(s, str) or not s:
                raise InvalidSubjectError(f"subject_ids[{i}] is not a non-empty string")
        ticket_of: dict[str, _Erasure] = {}  # one request per subject, the first entry's
        for s in subject_ids:
            if s not in ticket_of:
                call = {"subject_id": s, "legal_ground": legal_ground, "requested_by": requested_by}
                ticket_of[s] = _Erasure(call)
        tickets = list(ticket_of.values())
        with self.lock:
            for start in range(0, len(tickets), self.BATCH_GROUP):
                group = tickets[start : start + self.BATCH_GROUP]
                try:
                    self._erase_group(group)
                finally:
                    for t in group:
                        if not t.done:
                            t.error = RuntimeError("the erasure group stopped unexpectedly")
                            t.done = True
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, s in enumerate(subject_ids):
            t = ticket_of[s]
            if t.error is not None:
                self.metrics.inc("forget_erasures_total", {"status": "failed"})
                out.append({"index": i, "error": _error_doc(t.error)})
                continue
            receipt = t.receipt if s not in seen else replace(t.receipt, repeat=True)
            seen.add(s)
            self.metrics.inc("forget_erasures_total", {"status": receipt.status})
            out.append({"index": i} | _receipt(receipt))
        log.info("erasure batch of %d requests by %s", len(tickets), requested_by)
        return out

    def _erase_group(self, group: list[_Erasure]) -> None:
        """Carry out queued requests in one transaction (the lock held); each gets its receipt,
        or its error once tried alone, and its caller is woken at once."""
        try:
            receipts = self._forgetting(
                lambda fence, removed: self.store.erase_many(
                    [t.call for t in group],
                    evidence=self.evidence,
                    channel="http",
                    before_forget=fence.close,
                    after_forget=fence.open,
                    removed=removed,
                )
            )
        except Exception as exc:
            if len(group) == 1:
                with self._queue_done:
                    group[0].error, group[0].done = exc, True
                    self._queue_done.notify_all()
            else:  # the group failed: each alone
                for t in group:
                    self._erase_group([t])
            return
        with self._queue_done:
            for t, receipt in zip(group, receipts, strict=True):
                t.receipt, t.done = receipt, True
            self._queue_done.notify_all()

    def _gated(
        self,
        run: Callable[[_Fence], _T],
        changed: Callable[[_T], Sequence[Any]],
        *,
        defer: bool = False,
    ) -> _T:
        """Run a store call that changes models — ``run(fence)`` — with the lock held: the
        models about to change have their gates closed (``fence.close``, the store's
        ``before_forget``) until they forgot and their compiled forms caught up
        (``fence.open``, the store's ``after_forget``, for erasures), or else until their new
        revisions are published (``changed(result)``: the actions to publish; the answer cache
        empties). If the call fails (nothing of it happened) the models it rebuilt are dropped
        from serving, to be loaded again, and the error propagates."""
        fence = _Fence(self, defer=defer)
        try:
            result = run(fence)
            moved = changed(result)
            if moved:
                # every cached answer goes, not only those of the models that changed: an
                # answer to a query made of the subject's own rows names their data too
                self.cache.invalidate(None)
                self._moved(moved, defer=defer)
        except Exception:
            if fence.closed:  # the store rebuilt the models that changed: new objects
                self.cache.invalidate(None)
                for target in list(self._serving):
                    if self._gates.get(target[0]) in fence.closed:
                        self._drop(target)
            raise
        finally:
            fence.release()
        return result

    def _forgetting(
        self,
        run: Callable[[_Fence, list[dict[str, DeletedRows]]], list[Any]],
        *,
        settled: bool = True,
    ) -> list[Any]:
        """Run a store call that erases rows — ``run(fence, removed)``, its receipts —
        through :meth:`_gated`; then the drift references lose the erased rows and the feeds
        follow the new revisions. Not ``settled`` (an erasure answered from memory, whose
        record is to come, on the loop), only the feeds that need no statement follow (the
        others are rebuilt on their next use), the rows leave the drift references once
        recorded (:meth:`_settled`), and the compiled forms catch up after the answer."""
        removed: list[dict[str, DeletedRows]] = []
        # the store samples the requests that carry a retrain check (evidence_rate);
        # a sampled one only schedules them: collect_evidence runs them off the lock
        receipts = self._gated(
            lambda fence: run(fence, removed),
            lambda rs: [a for r in rs if r.rows_erased and not r.repeat for a in r.models],
            defer=not settled,
        )
        if any(a.evidence.get("status") == SCHEDULED for r in receipts for a in r.models):
            self._awaiting_evidence = True
        if any(r.rows_erased and not r.repeat for r in receipts):
            self._awaiting_purge = True
            if settled:  # the rows leave the references now
                self._leave_references(receipts, removed)
        self._follow_feeds(settled)
        return receipts

    def _settled(self, groups: Sequence[erasure.Group]) -> None:
        """Erasures answered from memory are recorded (on the thread that settled them): their
        rows leave the drift references now, all groups' at once. Should that fail, every
        reference is rebuilt from the store on its next use."""
        answered = [
            (g.receipts[plan[0].request_id], taken)
            for g in groups
            for plan, taken in zip(g.plans, g.removed(), strict=True)
            if not isinstance(plan, str)
        ]
        try:
            self._leave_references([r for r, _ in answered], [t for _, t in answered])
        except Exception:
            log.exception("taking erased rows out of the drift references failed: rebuilt")
            if self.monitoring is not None:
                self.monitoring.stale_all()

    def _leave_references(
        self, receipts: Sequence[erasure.ErasureReceipt], removed: Sequence[dict[str, DeletedRows]]
    ) -> None:
        """The rows the receipts' requests erased (``removed``: each one's by dataset) leave
        the windows and the drift references of the versions that forgot them."""
        fresh = [
            (r, rows)
            for r, rows in zip(receipts, removed, strict=True)
            if r.rows_erased and not r.repeat
        ]
        if self.monitoring is None or not fresh:
            return
        keys = [r.subject_key for r, _ in fresh if not r.subject_key.startswith(RETAINED)]
        self.monitoring.erased(keys, *_together([r for r, _ in fresh], [t for _, t in fresh]))

    def _follow_feeds(self, settled: bool = True) -> None:
        if self.monitoring is not None:  # feeds at the new revisions: no prediction waits
            for mv, _ in list(self._serving.values()):
                if settled or self.monitoring.fresh(mv.name, mv.version):
                    self.monitoring.follow(self.store, mv)

    def expire(self, at: str | None = None) -> list[dict[str, Any]]:
        """Erase the rows past their dataset's retention period (:meth:`ModelStore.expire`)
        as an erasure is carried out: the models forget at once, predictions wait only for
        the publication; the purge follows. The background purger calls this each round; the
        receipts of the requests made (none when nothing expired)."""
        with self.lock:
            receipts = self._forgetting(
                lambda fence, removed: self.store.expire(
                    at=at,
                    evidence=self.evidence,
                    before_forget=fence.close,
                    after_forget=fence.open,
                    removed=removed,
                )
            )
        for r in receipts:
            self.metrics.inc("forget_erasures_total", {"status": r.status})
            log.info(
                "retention: %d rows of %s expired (request %s)",
                r.rows_erased,
                ", ".join(r.datasets),
                r.request_id,
            )
        return [_receipt(r) for r in receipts]

    def request(self, request_id: str) -> dict[str, Any]:
        with self.lock:
            return _receipt(self.store.erasure_request(request_id))

    def report(self, request_id: str) -> dict[str, Any]:
        with self.lock:
            return self.store.erasure_report(request_id)

    def summary(self, since: str | None, until: str | None) -> dict[str, Any]:
        with self.lock:
            return self.store.summary_report(since, until)

    def access(self, subject_id: str) -> dict[str, Any]:
        """What the store holds on a subject (Art. 15 / 20; :meth:`ModelStore.access`),
        audited; logged by pseudonym and counts only."""
        with self.lock:
            doc = self.store.access(subject_id)
        log.info("access request for subject %s: %s", doc["subject_key"], doc["counts"])
        return doc

    # ------------------------------------------------------------------ objection, restriction
    def declare_purpose(self, purpose: str, *, by: str | None = None) -> dict[str, Any]:
        """Declare a processing purpose (:meth:`ModelStore.declare_purpose`), so that
        objections to it are taken before a model is trained for it."""
        with self.lock:
            created = self.store.declare_purpose(purpose, by=by)
        return {"purpose": purpose, "created": created}

    def purposes(self) -> dict[str, Any]:
        """The known purposes, each with the model versions processed for it and how many
        subjects objected to it."""
        with self.lock:
            names = self.store.purposes()
            versions = self.store.list_models()
            objections = self.store.objection_counts()
        return {
            "purposes": [
                {
                    "purpose": p,
                    "models": [
                        {"model": mv.name, "version": mv.version, "status": mv.status}
                        for mv in versions
                        if mv.purpose == p
                    ],
                    "objections": objections.get(p, 0),
                }
                for p in names
            ]
        }

    def object_to(self, subject_id: str, purpose: str, *, by: str | None = None) -> dict[str, Any]:
        """The subject objects to ``purpose`` (Art. 21; :meth:`ModelStore.object_to`): that
        purpose's versions forget the rows as an erasure's do (see :meth:`_withholding`)."""
        with self.lock:
            r = self._withholding(
                lambda bf: self.store.object_to(
                    subject_id, purpose, by=by, purge=False, before_forget=bf
                ),
                window=False,
            )
        log.info(
            "objection %s for subject %s to %s: %d rows, %d model versions%s",
            r.objection_id,
            r.subject_key,
            r.purpose,
            r.rows,
            len(r.models),
            " (repeat)" if r.repeat else "",
        )
        return purposes.as_json(r)

    def restrict(self, subject_id: str, *, by: str | None = None) -> dict[str, Any]:
        """Restrict the subject's processing (Art. 18; :meth:`ModelStore.restrict`)."""
        with self.lock:
            r = self._withholding(
                lambda bf: self.store.restrict(subject_id, by=by, purge=False, before_forget=bf),
                window=True,
            )
        log.info(
            "restriction %s for subject %s: %d rows, %d model versions%s",
            r.restriction_id,
            r.subject_key,
            r.rows,
            len(r.models),
            " (repeat)" if r.repeat else "",
        )
        return purposes.as_json(r)

    def lift_restriction(self, subject_id: str, *, by: str | None = None) -> dict[str, Any]:
        """Lift the subject's restriction (:meth:`ModelStore.lift_restriction`): models learn
        the rows back in place, or are retrained by the purger."""
        with self.lock:
            r = self._withholding(
                lambda bf: self.store.lift_restriction(
                    subject_id, by=by, purge=False, before_forget=bf
                ),
                window=False,
            )
        log.info(
            "restriction %s lifted for subject %s: %d model versions",
            r.restriction_id,
            r.subject_key,
            len(r.models),
        )
        return purposes.as_json(r)

    def _withholding(
        self, run: Callable[[Callable[[Sequence[tuple[str, int]]], None]], Any], *, window: bool
    ) -> Any:
        """Run an objection, a restriction or a lift — ``run(before_forget)``, its receipt —
        through :meth:`_gated`, as an erasure: no prediction after the answer comes from a
        revision that still held (or lacked) the rows; a version left awaiting a retrain stops
        serving and the purger retrains it. The versions' drift references are rebuilt from
        their training rows before their next use (the rows set aside leave them, rows taken
        back return); with ``window`` (a restriction) the subject's served rows also leave the
        drift windows."""
        receipt = self._gated(lambda fence: run(fence.close), lambda r: r.models)
        if purposes.pending_steps(receipt.models):
            self._awaiting_purge = True
        if self.monitoring is not None and receipt.models:
            keys = [receipt.subject_key] if window else []
            self.monitoring.erased(keys, [(s.model, s.version) for s in receipt.models])
        self._follow_feeds()
        return receipt

    def purge(self) -> dict[str, Any]:
        """Run the scheduled checks and retrain sharded models' dropped shards (off the lock);
        under it, retrain what awaits a retrain and copy the models whose artifacts are
        rewritten (:meth:`ModelStore.purge_plan`); off it again, build their compacted forms
        and artifacts while erasures and trainings go on; under it, have the models take
        them, compact the database and complete the requests that waited at the copy
        (:meth:`ModelStore.purge_finish`). One purge at a time; versions retrained here have
        their checks run after."""
        with self._purging:
            return self._purge()

    def _purge(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        checked = self.collect_evidence()
        with self.lock:  # sharded models' dropped shards: copied under the lock,
            self._rebuilt()
            jobs = self.store.shard_jobs()
        for job in jobs:  # retrained outside it (erasures and trainings go on),
            job.run()
        with self.lock:  # published as new revisions unless an erasure moved them meanwhile
            self._rebuilt()  # (the copies read the forests a rebuild may be changing)
            self._awaiting_purge = False
            shards = self.store.publish_shards(jobs)
            plan = self.store.purge_plan(evidence=False)
            retrained = bool(shards or plan.retrained or plan.shards_retrained)
            if retrained:  # new model objects
                if self.monitoring is not None:
                    self.monitoring.stale_all()  # rebuilt as the entries are published
                self._changed()
        try:
            plan.run()  # the compacted models and their artifacts, without the lock
            for _ in range(self.CATCH_UP_ROUNDS):  # the forgets made meanwhile, replayed
                with self.lock:  # onto them without it too, up to the last few
                    if not self.store.purge_since(plan):
                        break
                plan.catch_up()
        except BaseException:
            self._awaiting_purge = True  # its requests still wait: the next round purges
            raise
        finally:
            with self.lock:  # taken by the models (under their gates), or dropped
                self._rebuilt()
                result = self.store.purge_finish(plan, guard=self._closed)
        self.metrics.inc("forget_purges_total", {})
        log.info("purged %d requests in %.2f s", len(result.requests), time.perf_counter() - t0)
        if retrained:
            checked += self.collect_evidence()
        return {
            "requests": list(result.requests),
            "artifacts_written": result.artifacts_written,
            "compacted": result.compacted,
            "seconds": result.seconds,
            "evidence_recorded": checked,
        }

    CATCH_UP_ROUNDS = 3  # a purge's replays without the lock; the finish replays the rest

    @contextmanager
    def _after_purge(self) -> Iterator[None]:
        """The lock, once any purge in progress has finished: for what may purge the store
        itself (a training's or a retention's deletion of versions), which must not run
        between a purge's copies and its finish."""
        with self._purging, self.lock:
            yield

    @contextmanager
    def _closed(self, name: str, version: int) -> Iterator[None]:
        """The model's gate closed (a purge compacting it), if it serves."""
        gate = self._gates.get(name)
        if gate is None:
            yield
            return
        with gate.exclusive():
            yield

    def collect_evidence(self) -> int:
        """Run the scheduled retrain checks, one model version at a time: its job is read
        under the lock, refitted outside it (predictions and erasures go on), and recorded
        under it; how many checks were recorded. Checks scheduled meanwhile are taken along
        only as far as the number outstanding at the start, so a stream of erasures cannot
        keep the caller here."""
        recorded = 0
        with self._collecting:
            with self.lock:
                outstanding = self.store.evidence_scheduled()
            while recorded < outstanding:
                with self.lock:
                    jobs = self.store.evidence_jobs(limit=1)
                if not jobs:  # what is left waits for a retrain
                    break
                job, t0 = jobs[0], time.perf_counter()
                result = job.run()
                with self.lock:
                    got = self.store.record_evidence(job, result)
                log.info(
                    "retrain check of %s v%d at revision %d: passed %s, %d checks, %.2f s",
                    job.model,
                    job.version,
                    job.revision,
                    result.get("passed"),
                    got,
                    time.perf_counter() - t0,
                )
                if not got:  # recorded by someone else meanwhile
                    break
                recorded += got
            with self.lock:
                self._awaiting_evidence = self.store.evidence_scheduled() > 0
        return recorded

    # ------------------------------------------------------------------ audit
    def verify(self) -> dict[str, Any]:
        with self.lock:
            v = self.store.verify_audit_log()
        problems = list(v.problems) or ([] if v.ok else [str(v.reason)])
        return {"ok": v.ok, "entries": v.entries, "head": v.head.entry_hash, "problems": problems}

    def health(self) -> dict[str, Any]:
        """Liveness; never waits for the lock: during an erasure or a purge it counts the
        models as last seen."""
        if self.lock.acquire(blocking=False):
            try:
                self._names = frozenset(mv.name for mv in self.store.list_models())
            finally:
                self.lock.release()
        return {"status": "ok", "models": len(self._names), "version": forget.__version__}


def _trees_wait(est: Any) -> bool:
    """Whether a forest left trees out of its predictions until its deferred rebuilds
    (``defer_rows``); a sharded model's dropped shards wait for the purge instead."""
    return parts_of(est) == "trees" and bool(est.pending_)


def _matrix(rows: Sequence[Mapping[str, float]], features: Sequence[str]) -> np.ndarray:
    want = set(features)
    for i, row in enumerate(rows):
        if row.keys() != want:
            missing = sorted(want - row.keys())
            extra = sorted(row.keys() - want)
            raise PredictInputError(
                f"row {i}: "
                + "; ".join(
                    p
                    for p in (
                        f"missing features {missing}" if missing else "",
                        f"unknown features {extra}" if extra else "",
                    )
                    if p
                )
                + f" (the model uses {list(features)})"
            )
    return np.array([[row[f] for f in features] for row in rows], dtype=np.float64)


# Tree models read their inputs as float32 (scikit-learn's convention): a larger value would
# become an infinity, and an answer to the wrong question.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_inputs(est: Any, X: np.ndarray, features: Sequence[str]) -> None:
    """:class:`PredictInputError` naming the row and column of a value that ``est`` cannot
    read: beyond the float32 range, for a tree model."""
    if not hasattr(est, "tree_structures"):
        return
    beyond = np.abs(X) > _FLOAT32_MAX
    if beyond.any():
        row, col = (int(v) for v in np.argwhere(beyond)[0])
        raise PredictInputError(
            f"row {row}: {features[col]}={X[row, col]:g} is beyond the float32 range "
            f"(±{_FLOAT32_MAX:.4g}) in which this tree model reads its inputs"
        )


def check_outputs(model: str, features: Sequence[str], X: np.ndarray, outputs: np.ndarray) -> None:
    """:class:`PredictInputError` when ``outputs`` (one row's per row of ``X``) are not all
    finite: inputs so large that the model's arithmetic overflowed. Names the row's largest
    input."""
    if outputs.dtype.kind not in "fc" or np.isfinite(outputs).all():
        return
    finite = np.isfinite(outputs).reshape(len(outputs), -1).all(axis=1)
    row = int(np.argmin(finite))
    col = int(np.argmax(np.abs(X[row])))
    raise PredictInputError(
        f"row {row}: model {model!r} overflows on these inputs (its output is not finite); "
        f"its largest is {features[col]}={X[row, col]:g}"
    )


def check_upload(rows: Sequence[Mapping[str, Any]] | None, csv: str | None) -> None:
    """:class:`InvalidUploadError` unless exactly one of ``rows`` and ``csv`` is given, with
    at most ``MAX_COLUMNS`` columns. CSV text is judged by its first line split at every
    common delimiter (DuckDB guesses which one), a count that errs high."""
    if (rows is None) == (csv is None):
        raise InvalidUploadError("give exactly one of rows or csv")
    if rows is not None:
        what, n = "the rows name", len(set().union(*rows))
    else:
        header = (csv or "").partition("\n")[0]
        what, n = "the CSV header has", max(header.count(d) + 1 for d in ",;\t|")
    if n > MAX_COLUMNS:
        raise InvalidUploadError(f"{what} {n} columns; a dataset has at most {MAX_COLUMNS}")


def _answered_by(ob: Observation) -> tuple[str, int, int]:
    return ob.model, ob.answer["version"], ob.answer["revision"]


def check_subject_ids(subject_ids: Sequence[str | None] | None, n: int) -> None:
    """:class:`PredictInputError` unless ``subject_ids`` is None or names one subject (or
    None) for each of ``n`` rows."""
    if subject_ids is not None and len(subject_ids) != n:
        raise PredictInputError(f"{len(subject_ids)} subject_ids for {n} rows (give one per row)")


def _class_of(mv: ModelVersion) -> Any:
    return ESTIMATORS.get(mv.estimator.rpartition(":")[2])


def _fresh_estimator(mv: ModelVersion) -> Any:
    """An unfitted estimator of the version's class and parameters, or None."""
    cls = _class_of(mv)
    return None if cls is None else cls(**mv.params)


def _dataset(info: Any) -> dict[str, Any]:
    return {
        "name": info.name,
        "subject_column": info.subject_column,
        "rows": info.n_rows,
        "columns": [{"name": c.name, "type": c.type} for c in info.columns],
    }


def _together(
    receipts: Sequence[Any], removed: Sequence[Mapping[str, DeletedRows]]
) -> tuple[list[Any], dict[str, DeletedRows]]:
    """A group's erasures as one: per model version one action holding every row it forgot
    (at the group's last revision), and per dataset the deleted rows by row id."""
    last: dict[tuple[str, int], Any] = {}
    ids_of: dict[tuple[str, int], list[int]] = {}
    for r in receipts:
        for a in r.models:
            last[(a.model, a.version)] = a
            ids_of.setdefault((a.model, a.version), []).extend(a.row_ids)
    actions = {key: replace(a, row_ids=tuple(ids_of[key])) for key, a in last.items()}
    rows: dict[str, DeletedRows] = {}
    for name in {n for taken in removed for n in taken}:
        parts = [taken[name] for taken in removed if name in taken]
        ids = np.concatenate([p.row_ids for p in parts])
        order = np.argsort(ids, kind="stable")
        columns = {
            c: np.concatenate([p.columns[c] for p in parts])[order] for c in parts[0].columns
        }
        rows[name] = DeletedRows(ids[order], columns)
    return list(actions.values()), rows


def _error_doc(exc: BaseException) -> dict[str, str]:
    """A failed request of a batch, as the API words errors: a store error's kind and message;
    anything else is internal (logged, not shown)."""
    if not isinstance(exc, StoreError):
        log.error("an erasure of a batch failed", exc_info=exc)
        return {"type": "internal", "message": "internal error; the server log has the details"}
    return {"type": kind(exc), "message": str(exc)}


def _alias(t: Any) -> dict[str, Any]:
    """An alias target as the API shows it."""
    return {
        "split": {str(v): w for v, w in t.split},
        "shadow": t.shadow,
        "set_at": t.set_at,
        "set_by": t.set_by,
    }


def _receipt(r: Any) -> dict[str, Any]:
    """A receipt as a dict, shallow (``asdict`` would copy every row id one by one)."""
    d = {f.name: getattr(r, f.name) for f in fields(r)}
    d["datasets"] = dict(r.datasets)
    d["models"] = [
        {f.name: getattr(a, f.name) for f in fields(a)} | {"evidence": dict(a.evidence)}
        for a in r.models
    ]
    return d
