"""The router: Ray actors for the owner and the replicas, the fence, fan-out and catch-up.

It lives in the HTTP process and offers the methods of :class:`api.service.Service` that the
``api`` routes call, so the same app serves a cluster. Writes go to the owner; predictions to
a replica that holds the routed version at the published revision.

Routing. Each model's routing table (its versions' statuses and its aliases) comes from the
owner with every write and is published here whole; a request is routed by it with
:func:`store.aliases.route`, the function the embedded server routes with, so a bare name
(``default``, else the newest ready version), an alias split by ``routing_key``, or a pinned
version picks the same version as on a single server, and the answer names its version,
revision and alias. An alias move is a write: its table is published before it is answered,
so the next request routes by it. Requests queue and leave in batches per (model, version):
a batch, and so an answer, never mixes versions. A route's shadow version is scored on a
replica after the answer (its rows queued like a request's, never answered): counted in
``forget_shadow_rows_total`` (``_failed_total``, and ``_dropped_total`` past
``SHADOW_BACKLOG`` shadow requests waiting) and fed to the shadow version's drift monitor
(with no prediction id: nobody got the answer to give feedback on).

Fencing. The *fence* is every ready version's revision, as the owner returns it with every
write: replicas hold them all (a request may pin any), so an erasure's forget operations
reach every version that trained on the subject, served or idle. The router publishes a new
fence *before* it sends the change to the replicas and routes a prediction only to a replica
whose acknowledged revision of the routed version equals the fence's; the replica checks it
again and refuses when it is behind. An erasure is answered only once every live
replica acknowledged it (or was declared down), so a prediction sent after the receipt never
comes from a revision that still holds the erased rows. With no replica at the fence within
``fence_wait`` seconds, a prediction fails with :class:`ReplicaBehindError` (HTTP 503).

Ordering. Changes are sent to the replicas under one lock from this process, and Ray runs the
calls from one caller to a synchronous actor in the order they were sent, so a replica applies
erasures in revision order (it drops a version when it sees a gap anyway).

Catch-up. A replica that fails a call, times out, restarts (Ray restarts it, empty) or answers
that it is behind is marked down; a background thread asks the owner for a snapshot of every
ready version (checkpoint plus forget log, as the owner holds it in memory) and sends it under
the same lock, so no later change can overtake it. Until it acknowledges, it gets no traffic.

Drift. Each answered prediction gets a prediction id here and is buffered as an
:class:`~api.service.Observation`; the buffer goes to the owner's monitors in one Ray call
per ``OBSERVE_ROWS`` rows or ``observe_every`` seconds, never awaited by a prediction. Before
any write, drift report or feedback the buffer is sent first, and the owner runs one caller's
calls in order: an erasure finds every prediction answered before it in the windows, and a
report or feedback every prediction answered before it was asked for. Past
``max_observing_rows`` rows sent and not yet taken in, new observations are dropped (counted
in ``forget_drift_dropped_rows_total``) rather than queue without bound.

Metrics. ``/metrics`` here is one exposition of this process's metrics (requests, batches,
replicas up) and the owner's (erasures, purges, model revisions, drift), which the router
pulls over Ray on each scrape (:meth:`StoreOwner.metric_families`, the drift gauges refreshed
first) and merges (:meth:`api.metrics.Metrics.include`): one family per name, the owner's
``process_*``/``python_*`` samples labelled ``process="owner"``. If the owner does not answer
within ``metrics_timeout`` (a synchronous actor busy with a training, or dead), the scrape
goes on without its families and ``forget_metrics_source_up{process="owner"}`` is 0.

Why a pull over Ray rather than ``prometheus_client``'s multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``): that mode shares metric files in one directory, so it works
only for processes on one host, while Ray places the owner and the replicas on any node of the
cluster; it is process-global (set before ``prometheus_client`` is imported; one directory per
process tree), where each :class:`~api.metrics.Metrics` keeps its own registry; it needs the
directory wiped at start and dead processes marked (Ray restarts replicas); and it gives up
the process and GC collectors, which the pull carries (the owner's memory is the store's).
The price: one Ray call per scrape, bounded by ``metrics_timeout``. The replicas report no
metrics of their own (the router counts what they score), so only the owner is pulled.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from api.batching import Overloaded, take_batch
from api.metrics import Metrics
from api.monitoring import PredictionIds
from api.service import SHADOW_BACKLOG, Observation, check_subject_ids
from cluster.errors import ReplicaBehindError, import_ray
from cluster.owner import StoreOwner
from cluster.replica import Replica, State
from cluster.state import Change, Failure, Fence, Routes, Target
from store.aliases import route
from store.errors import PredictInputError, StoreError, UnknownModelError

log = logging.getLogger("forget.cluster")

OBSERVE_ROWS = 256  # observations leave for the owner in batches of this many rows (or older)


@dataclass
class _Call:
    """A prediction request waiting in the router's queue: answered (``future``, the alias
    that routed it, the shadow to score after it) or a shadow scoring (no future)."""

    rows: list[Mapping[str, float]]
    subject_ids: Sequence[str | None] | None
    future: asyncio.Future[dict[str, Any]] | None
    alias: str | None = None
    shadow: int | None = None


@dataclass
class Member:
    """A replica as the router sees it."""

    name: str
    handle: Any
    state: State = field(default_factory=dict)
    up: bool = False
    acked: int = 0  # sequence number of the last change it acknowledged


@dataclass(frozen=True)
class FanOut:
    """How a change reached the replicas: who applied it, who was declared down, and the
    seconds from sending it to the last acknowledgement (or the timeout)."""

    applied: tuple[str, ...]
    down: tuple[str, ...]
    seconds: float


class Cluster:
    """A store owner and ``replicas`` serving replicas on the running Ray cluster.

    Parameters
    ----------
    directory : the store directory (opened by the owner actor only).
    replicas : how many serving replicas.
    fence_wait : how long a prediction waits for a replica at the current revision.
    ack_timeout : how long a change waits for a replica's acknowledgement before declaring it
        down (it is then caught up in the background).
    purge_interval : seconds between background purges (0: only on request and at close).
    max_inflight : prediction batches per model on their way to replicas at once (default
        two per replica); requests arriving meanwhile queue and leave together.
    max_batch_rows : rows per batch at most.
    max_queue_rows : queued rows at most; past it predictions get :class:`Overloaded`.
    monitoring : drift monitoring and feedback (in the owner); off, drift and feedback answer
        :class:`~api.service.MonitoringOffError` (HTTP 409) and answers carry no prediction id.
    retrain_on_drift : a drift report that finds drift retrains the version (as in
        :class:`api.service.Service`); the new version reaches the replicas like a training.
    estimate_accuracy : the owner estimates classifiers' accuracy on the observed traffic
        (:mod:`api.accuracy`), in its drift reports.
    observe_every : seconds an observation waits at most before it leaves for the owner.
    max_observing_rows : observed rows sent to the owner and not yet taken in, at most; past
        it new observations are dropped (and counted), so predictions never wait on the owner.
    metrics : this process's metrics (made when not given); the owner's are included in them.
    metrics_timeout : seconds a scrape waits for the owner's metrics before going on without.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        replicas: int = 2,
        evidence_rate: float = 0.1,
        fence_wait: float = 2.0,
        ack_timeout: float = 10.0,
        purge_interval: float = 30.0,
        max_inflight: int | None = None,
        max_batch_rows: int = 1024,
        max_queue_rows: int = 50_000,
        monitoring: bool = True,
        retrain_on_drift: bool = False,
        estimate_accuracy: bool = False,
        observe_every: float = 0.5,
        max_observing_rows: int = 20_000,
        metrics: Metrics | None = None,
        metrics_timeout: float = 5.0,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be 1 or more, not {replicas}")
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            ray.init()
        self.metrics = metrics or Metrics()
        self.metrics_timeout = metrics_timeout
        self.fence_wait, self.ack_timeout = fence_wait, ack_timeout
        self.purge_interval = purge_interval
        owner_cls = ray.remote(StoreOwner).options(num_cpus=0, max_restarts=0)
        self.owner = owner_cls.remote(
            os.fspath(directory),
            evidence_rate,
            monitoring=monitoring,
            retrain_on_drift=retrain_on_drift,
            estimate_accuracy=estimate_accuracy,
        )
        replica_cls = ray.remote(Replica).options(num_cpus=0, max_restarts=-1, max_task_retries=0)
        self.members = [
            Member(f"replica-{i}", replica_cls.remote(f"replica-{i}")) for i in range(replicas)
        ]
        self.fence: Fence = {}
        self.routes: dict[str, Routes] = {}  # published routing tables, replaced whole
        self.last_fanout: FanOut | None = None
        self._lock = threading.Lock()  # serialises writes and the changes sent to replicas
        self._state = threading.Lock()  # guards members' state and the fence
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.max_inflight = max_inflight or 2 * replicas
        self.max_batch_rows = max_batch_rows
        self.max_queue_rows = max_queue_rows
        self._queue: dict[Target, deque[_Call]] = {}  # on the event loop only
        self._queued_rows = 0
        self._shadowing = 0  # shadow scorings queued or in flight
        self._inflight: dict[Target, int] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.monitoring = monitoring
        self.observe_every, self.max_observing_rows = observe_every, max_observing_rows
        self._ids = PredictionIds()
        self._observations: list[Observation] = []  # answered, not yet sent to the owner
        self._observed_rows = 0  # rows in them
        self._observing_rows = 0  # rows sent to the owner, not yet taken in
        self._observe_lock = threading.Lock()  # the buffer; sends leave in order under it
        self._observe_timer: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self.metrics.include("owner", self._owner_metrics)
        for m in self.members:  # fresh workers import numpy, duckdb, ...: give them time
            self._catch_up(m, wait=max(60.0, ack_timeout))

    # ------------------------------------------------------------------ lifecycle
    def warm(self) -> list[str]:
        """Nothing to do here: each replica loads and compiles its models when caught up."""
        return []

    def start(self) -> None:
        """Start the background thread (catch-up of replicas that are down, purges)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="forget-cluster", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread, purge and close the store in the owner, stop the actors."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        ray = self._ray
        try:
            ray.get(self.owner.close.remote())
        finally:
            for m in self.members:
                ray.kill(m.handle, no_restart=True)
            ray.kill(self.owner, no_restart=True)

    def _loop(self) -> None:
        last_purge = time.monotonic()
        while not self._stop.wait(0.1):
            for m in self.members:
                if not m.up and not self._stop.is_set():
                    self._catch_up(m)
            if self.purge_interval > 0 and time.monotonic() - last_purge > self.purge_interval:
                last_purge = time.monotonic()
                try:
                    try:
                        self.expire()  # rows past their retention period, purged below
                    except StoreError as exc:  # unreadable times: said each round
                        log.warning("retention: %s", exc)
                    self.purge()
                except Exception:  # keep serving; the next round or close() purges
                    log.exception("background purge failed")

    # ------------------------------------------------------------------ fan-out
    def _catch_up(self, m: Member, wait: float | None = None) -> bool:
        """Send ``m`` a snapshot of every ready version; it serves again once it applied it."""
        ray = self._ray
        try:  # alive (restarted)?
            ray.get(m.handle.state.remote(), timeout=wait or self.ack_timeout)
        except Exception:
            return False
        with self._lock:
            change: Change = ray.get(self.owner.snapshot.remote())
            with self._state:
                self.fence, self.routes = change.fence, change.routes
                seq = next(self._turn) + 1
                ref = m.handle.update.remote(change)
        try:
            state = ray.get(ref, timeout=self.ack_timeout)
        except Exception:
            return False
        with self._state:
            if seq > m.acked:
                m.state, m.acked = state, seq
            # a change made meanwhile was not sent to it (it was down): try again next round
            m.up = _at(m.state, self.fence)
            if not m.up:
                return False
        self.metrics.set("forget_cluster_replica_up", {"replica": m.name}, 1)
        log.info("%s caught up: %s", m.name, state)
        return True

    def _send(self, change: Change) -> list[tuple[Member, int, Any]]:
        """Publish ``change.fence`` and its routes and send the change to every live replica
        (call with ``_lock`` held, so that changes leave in the order the owner made them)."""
        with self._state:
            self.fence, self.routes = change.fence, change.routes
            sent = []
            for m in self.members:
                if m.up:
                    seq = next(self._turn) + 1
                    sent.append((m, seq, m.handle.update.remote(change)))
        return sent

    def _acks(self, change: Change, sent: list[tuple[Member, int, Any]], t0: float) -> FanOut:
        """Wait for the replicas' acknowledgements (outside ``_lock``): a replica that fails,
        times out or does not reach the fence is declared down, to be caught up."""
        ray = self._ray
        refs = [ref for _, _, ref in sent]
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=self.ack_timeout)
        applied, down = [], []
        for m, seq, ref in sent:
            try:
                state = ray.get(ref, timeout=0)
            except Exception as exc:  # died, restarting, or too slow: catch it up later
                log.warning("%s missed a change (%s): down until caught up", m.name, exc)
                self._down(m)
                down.append(m.name)
                continue
            with self._state:
                if seq > m.acked:
                    m.state, m.acked = state, seq
            if _at(state, change.fence):
                applied.append(m.name)
            else:
                self._down(m)
                down.append(m.name)
        fan = FanOut(tuple(applied), tuple(down), time.perf_counter() - t0)
        self.last_fanout = fan
        return fan

    def _down(self, m: Member) -> None:
        with self._state:
            m.up, m.state = False, {}
        self.metrics.set("forget_cluster_replica_up", {"replica": m.name}, 0)

    def _write(
        self, method: str, *args: Any, if_moved: bool = False, **kwargs: Any
    ) -> tuple[Any, FanOut]:
        """Call the owner's ``method`` and fan its change out; with ``if_moved`` (a drift
        report, which may retrain) only when it moves a model, else the fan-out is empty."""
        ray = self._ray
        self._send_observations()  # ahead of the write: an erasure must find them in
        with self._lock:
            result, change = ray.get(getattr(self.owner, method).remote(*args, **kwargs))
            moved = change.ops or change.snapshots or change.fence != self.fence
            t0 = time.perf_counter()
            sent = self._send(change) if moved or not if_moved else None
            if sent is None:  # nothing for the replicas (an alias move): the routes only
                with self._state:
                    self.routes = change.routes
        fan = FanOut((), (), 0.0) if sent is None else self._acks(change, sent, t0)
        if isinstance(result, Failure):
            raise result.rebuild()
        return result, fan

    def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._send_observations()  # ahead of the read: feedback must find its prediction
        result = self._ray.get(self.owner.call.remote(method, *args, **kwargs))
        if isinstance(result, Failure):
            raise result.rebuild()
        return result

    # ------------------------------------------------------------------ predict
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
        """Score on a replica at the routed version's current revision: ``version`` when
        pinned, else the one ``alias`` (``default``: the bare name) routes ``key`` to, as
        :meth:`api.service.Service.predict` routes it. With monitoring, the answer gets a
        ``prediction_id`` and goes to the owner's drift monitor (with ``subject_ids``, one
        per row or None, whose rows leave the monitor's window when they are erased).

        Requests are micro-batched per version: at most ``max_inflight`` batches per version
        are on their way to replicas, and requests that arrive meanwhile wait to leave
        together as one Ray call (a call costs ~1 ms of this process's CPU, scoring a row
        ~10 µs). The queue is bounded: past ``max_queue_rows`` rows, :class:`Overloaded`
        (HTTP 503).
        """
        with self._state:
            table = self.routes.get(name)
        if table is None:
            raise UnknownModelError(name)
        routed = route(name, table.statuses, table.aliases, alias=alias, key=key, version=version)
        check_subject_ids(subject_ids, len(rows))
        if self._queued_rows and self._queued_rows + len(rows) > self.max_queue_rows:
            raise Overloaded(f"{self._queued_rows} rows are waiting to be scored")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        call = _Call(list(rows), subject_ids, future, routed.alias, routed.shadow)
        self._enqueue((name, routed.version), call)
        return await future

    async def predict_models_async(
        self,
        dataset: str,
        models: Sequence[tuple[str, str | None, int | None]],
        rows: Sequence[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None = None,
        *,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Several models of ``dataset`` score the same rows, each routed as
        :meth:`predict_async` routes it, in one call to one replica that holds every routed
        version at the fence: the answers come from that replica's state at one moment (see
        :meth:`api.service.Service.predict_models`). Not micro-batched."""
        if len(set(models)) != len(models):
            raise PredictInputError("a model is named twice in models: name each once")
        routed = []
        for name, alias, version in models:
            with self._state:
                table = self.routes.get(name)
            if table is None:
                raise UnknownModelError(name)
            r = route(name, table.statuses, table.aliases, alias=alias, key=key, version=version)
            trained_on = table.datasets.get(r.version)
            if trained_on != dataset:
                if not any(dataset in t.datasets.values() for t in self.routes.values()):
                    self._read("dataset", dataset)  # UnknownDatasetError for a dataset it lacks
                raise PredictInputError(
                    f"model {name!r} v{r.version} was trained on dataset {trained_on!r}, not "
                    f"{dataset!r}: a multi-model request scores models of one dataset"
                )
            routed.append(r)
        check_subject_ids(subject_ids, len(rows))
        targets = [(r.model, r.version) for r in routed]
        results = await self._score_models(targets, list(rows))
        answers = []
        for r, res in zip(routed, results, strict=True):
            res["alias"] = r.alias
            if self.monitoring:
                res["prediction_id"] = self._ids()
                self._observe(Observation(r.model, rows, res, subject_ids))
            if r.shadow is not None:
                self._shadow((r.model, r.shadow), list(rows), subject_ids)
            answers.append(res)
        self.metrics.inc("forget_multi_model_requests_total", {"dataset": dataset})
        return {"dataset": dataset, "answers": answers}

    async def _score_models(
        self, targets: list[Target], rows: list[Mapping[str, float]]
    ) -> list[dict[str, Any]]:
        """One call scoring every target on a replica that holds each at the fence."""
        res: list[dict[str, Any]] = await self._at_fence(
            targets,
            lambda m, fence: m.handle.predict_models.remote(fence, rows),
            "no replica holds every model of the request at the published revisions yet",
        )
        return res

    async def _at_fence(
        self,
        targets: Sequence[Target],
        call: Callable[[Member, list[tuple[Target, int]]], Any],
        behind: str,
    ) -> Any:
        """``await call(m, fence)`` on a replica ``m`` that holds every target at its fence
        revision, taking the live replicas in turn; one that answers it is behind (restarted)
        or dies is declared down and the next tried, until ``fence_wait`` (then
        :class:`ReplicaBehindError` with ``behind``). A target that left the fence after the
        request was routed is routed again, which raises why it cannot serve."""
        ray = self._ray
        deadline = time.monotonic() + self.fence_wait
        turn = next(self._turn)
        while True:
            with self._state:
                fence = [(t, self.fence.get(t)) for t in targets]
                ready = [
                    m for m in self.members if m.up and all(m.state.get(t) == at for t, at in fence)
                ]
            held: list[tuple[Target, int]] = []
            for (name, version), at in fence:
                if at is None:
                    table = self.routes.get(name)
                    route(name, {} if table is None else table.statuses, {}, version=version)
                    raise UnknownModelError(name, version)  # pragma: no cover - route raised
                held.append(((name, version), at))
            if ready:
                m = ready[turn % len(ready)]
                try:
                    return await call(m, held)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause
                    if not isinstance(cause, ReplicaBehindError):
                        raise cause from None
                    self._down(m)  # behind what it acknowledged: it restarted; catch it up
                except ray.exceptions.RayActorError:
                    self._down(m)
            if time.monotonic() > deadline:
                raise ReplicaBehindError(behind)
            await asyncio.sleep(0.005)
            turn += 1

    def _enqueue(self, target: Target, call: _Call) -> None:
        self._queue.setdefault(target, deque()).append(call)
        self._queued_rows += len(call.rows)
        self._flush(target)

    def _shadow(
        self,
        target: Target,
        rows: list[Mapping[str, float]],
        subject_ids: Sequence[str | None] | None,
    ) -> None:
        """Queue an answered request's rows for the shadow version ``target`` (on the event
        loop), or count them dropped when ``SHADOW_BACKLOG`` shadows already wait or the
        queue is full: a shadow never makes an answer wait or fail."""
        if self._shadowing >= SHADOW_BACKLOG or self._queued_rows + len(rows) > self.max_queue_rows:
            labels = {"model": target[0], "version": str(target[1])}
            self.metrics.inc("forget_shadow_dropped_total", labels)
            return
        self._shadowing += 1
        self._enqueue(target, _Call(rows, subject_ids, None))

    def _flush(self, target: Target) -> None:
        """Send ``target``'s queued requests in batches while fewer than ``max_inflight`` are
        out (on the event loop)."""
        q = self._queue.get(target)
        while q and self._inflight.get(target, 0) < self.max_inflight:
            calls, size = take_batch(q, self.max_batch_rows, lambda c: len(c.rows))
            self._queued_rows -= size
            self._inflight[target] = self._inflight.get(target, 0) + 1
            task = asyncio.ensure_future(self._dispatch(target, calls))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, target: Target, calls: list[_Call]) -> None:
        name = target[0]
        try:
            results = await self._score(target, [c.rows for c in calls])
        except BaseException as exc:  # every caller gets the error, none waits forever
            for c in calls:
                if c.future is None:
                    self._shadowed(target, c, None)
                elif not c.future.done():
                    c.future.set_exception(exc)
        else:
            for c, r in zip(calls, results, strict=True):
                if c.future is None:
                    self._shadowed(target, c, r)
                    continue
                if c.future.done():  # the client went away
                    continue
                if isinstance(r, Failure):
                    c.future.set_exception(r.rebuild())
                    continue
                r["alias"] = c.alias
                if self.monitoring:
                    r["prediction_id"] = self._ids()
                    self._observe(Observation(name, c.rows, r, c.subject_ids))
                c.future.set_result(r)
                if c.shadow is not None:
                    self._shadow((name, c.shadow), c.rows, c.subject_ids)
        finally:
            self._inflight[target] -= 1
            self._flush(target)

    def _shadowed(
        self, target: Target, call: _Call, result: dict[str, Any] | Failure | None
    ) -> None:
        """Count a shadow scoring: its rows when it scored (and, with monitoring, send them
        to the owner's monitor of the shadow version, with no prediction id: nobody got the
        answer to give feedback on), a failure when it did not."""
        self._shadowing -= 1
        labels = {"model": target[0], "version": str(target[1])}
        if isinstance(result, dict):
            self.metrics.inc("forget_shadow_rows_total", labels, len(call.rows))
            if self.monitoring:
                self._observe(Observation(target[0], call.rows, result, call.subject_ids))
        else:
            self.metrics.inc("forget_shadow_failed_total", labels)

    # ------------------------------------------------------------------ drift observations
    def _observe(self, ob: Observation) -> None:
        """Buffer an answered prediction for the owner's monitor (on the event loop)."""
        with self._observe_lock:
            self._observations.append(ob)
            self._observed_rows += len(ob.rows)
            full = self._observed_rows >= OBSERVE_ROWS
        if full:
            self._send_observations()
            return
        loop = asyncio.get_running_loop()
        if self._observe_timer is None or self._observe_timer[0] is not loop:
            self._observe_timer = (loop, loop.call_later(self.observe_every, self._on_timer))

    def _on_timer(self) -> None:
        self._observe_timer = None
        self._send_observations()

    def _send_observations(self) -> None:
        """Send the buffered observations to the owner in one call, not waiting for it (from
        any thread; under the buffer's lock, so they leave in the order answered)."""
        if self._stop.is_set():  # closed: the owner's monitors go with it
            return
        with self._observe_lock:
            batch, self._observations = self._observations, []
            rows, self._observed_rows = self._observed_rows, 0
            if not batch:
                return
            if self._observing_rows + rows > self.max_observing_rows:
                dropped: dict[str, int] = {}
                for ob in batch:
                    dropped[ob.model] = dropped.get(ob.model, 0) + len(ob.rows)
                ref = None
            else:
                self._observing_rows += rows
                ref = self.owner.observe.remote(batch)
        if ref is None:  # the owner is behind: drop rather than queue without bound
            for model, n in dropped.items():
                self.metrics.inc("forget_drift_dropped_rows_total", {"model": model}, n)
            return
        ref.future().add_done_callback(lambda done: self._taken_in(rows, done))

    def _taken_in(self, rows: int, done: Any) -> None:
        with self._observe_lock:
            self._observing_rows -= rows
        if done.exception() is not None:
            log.warning("the owner failed to take %d observed rows: %s", rows, done.exception())

    async def _score(
        self, target: Target, batch: list[list[Mapping[str, float]]]
    ) -> list[dict[str, Any] | Failure]:
        """One batch of one version on a replica at the fence (:meth:`_at_fence`)."""
        name, version = target
        res: list[dict[str, Any] | Failure] = await self._at_fence(
            [target],
            lambda m, fence: m.handle.predict_many.remote(target, batch, fence[0][1]),
            f"no replica holds model {name!r} at version {version} at its revision yet",
        )
        self.metrics.inc("forget_batches_total", {"model": name})
        self.metrics.inc("forget_batched_rows_total", {"model": name}, sum(len(r) for r in batch))
        return res

    # ------------------------------------------------------------------ writes via the owner
    def erase(
        self, subject_id: str, legal_ground: str, *, requested_by: str | None = None
    ) -> dict[str, Any]:
        """Erase in the store, then fan the forget operations out; answered once every live
        replica applied them (``replicas`` says which did, and which were declared down)."""
        receipt, fan = self._write("erase", subject_id, legal_ground, requested_by=requested_by)
        out: dict[str, Any] = receipt | {
            "replicas": {"applied": list(fan.applied), "down": list(fan.down)}
        }
        return out

    async def erase_async(
        self, subject_id: str, legal_ground: str, *, requested_by: str | None = None
    ) -> dict[str, Any]:
        """:meth:`erase` on a worker thread (the route's call): a cluster's erasure is the
        owner's recorded one, answered once the replicas applied it, so it waits on them."""
        return await asyncio.to_thread(
            self.erase, subject_id, legal_ground, requested_by=requested_by
        )

    def erase_batch(
        self, subject_ids: Sequence[str], legal_ground: str, *, requested_by: str | None = None
    ) -> list[dict[str, Any]]:
        """Many erasures in the store (see ``Service.erase_batch``), then one fan-out of all
        their forget operations: answered once every live replica applied them."""
        done, _ = self._write(
            "erase_batch", list(subject_ids), legal_ground, requested_by=requested_by
        )
        out: list[dict[str, Any]] = done
        return out

    def declare_purpose(self, purpose: str, *, by: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self._read("declare_purpose", purpose, by=by)
        return out

    def purposes(self) -> dict[str, Any]:
        out: dict[str, Any] = self._read("purposes")
        return out

    def object_to(self, subject_id: str, purpose: str, *, by: str | None = None) -> dict[str, Any]:
        """An objection in the store, answered once every live replica holds the versions it
        moved at their new revisions."""
        out: dict[str, Any] = self._write("object_to", subject_id, purpose, by=by)[0]
        return out

    def restrict(self, subject_id: str, *, by: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self._write("restrict", subject_id, by=by)[0]
        return out

    def lift_restriction(self, subject_id: str, *, by: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self._write("lift_restriction", subject_id, by=by)[0]
        return out

    def train(self, name: str, **kwargs: Any) -> dict[str, Any]:
        result, _ = self._write("train", name, **kwargs)
        out: dict[str, Any] = result
        return out

    def purge(self) -> dict[str, Any]:
        result, _ = self._write("purge")
        out: dict[str, Any] = result
        return out

    def expire(self, at: str | None = None) -> list[dict[str, Any]]:
        """Rows past their retention period erased in the store (see ``Service.expire``),
        answered once every live replica forgot them."""
        done, _ = self._write("expire", at)
        out: list[dict[str, Any]] = done
        return out

    # ------------------------------------------------------------------ reads via the owner
    def models(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._read("models")
        return out

    def model(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self._read("model", name)
        return out

    def datasets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._read("datasets")
        return out

    def dataset(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self._read("dataset", name)
        return out

    def create_dataset(self, name: str, subject_column: str, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = self._read("create_dataset", name, subject_column, **kwargs)
        return out

    def append_rows(self, name: str, **kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = self._read("append_rows", name, **kwargs)
        return out

    def request(self, request_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._read("request", request_id)
        return out

    def report(self, request_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._read("report", request_id)
        return out

    def summary(self, since: str | None, until: str | None) -> dict[str, Any]:
        out: dict[str, Any] = self._read("summary", since, until)
        return out

    def verify(self) -> dict[str, Any]:
        out: dict[str, Any] = self._read("verify")
        return out

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = self._read("health")
        return out

    def access(self, subject_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._read("access", subject_id)
        return out

    # ------------------------------------------------------------------ retention
    def set_retention_policy(
        self, name: str, time_column: str, period: str, by: str | None
    ) -> dict[str, Any]:
        out: dict[str, Any] = self._read("set_retention_policy", name, time_column, period, by)
        return out

    def remove_retention_policy(self, name: str, by: str | None) -> None:
        self._read("remove_retention_policy", name, by)

    def retention(self, since: str | None, until: str | None) -> dict[str, Any]:
        out: dict[str, Any] = self._read("retention", since, until)
        return out

    # ------------------------------------------------------------------ exported copies
    def export(self, name: str, **kwargs: Any) -> tuple[bytes, dict[str, Any]]:
        """A copy for a recipient, made and recorded by the owner (it holds the store)."""
        out: tuple[bytes, dict[str, Any]] = self._read("export", name, **kwargs)
        return out

    def exports(self, name: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._read("exports", name, **kwargs)
        return out

    # ------------------------------------------------------------------ aliases, versions
    def set_alias(
        self,
        name: str,
        alias: str,
        target: int | Mapping[Any, float],
        *,
        shadow: int | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        """Move an alias in the store; answered once its routing table is published here,
        so the next request routes by it (replicas already hold every ready version)."""
        out, _ = self._write("set_alias", name, alias, target, shadow=shadow, by=by, if_moved=True)
        result: dict[str, Any] = out
        return result

    def delete_alias(self, name: str, alias: str, *, by: str | None = None) -> None:
        self._write("delete_alias", name, alias, by=by, if_moved=True)

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> dict[str, Any]:
        """Delete a version in the store (refused while an alias names it); answered once
        the replicas dropped it."""
        out, _ = self._write("delete_version", name, version, by=by)
        result: dict[str, Any] = out
        return result

    def version_retention(self) -> dict[str, Any]:
        out: dict[str, Any] = self._read("version_retention")
        return out

    def set_version_retention(
        self, keep_last: int | None, *, by: str | None = None
    ) -> dict[str, Any]:
        """Set how many versions the store keeps; answered once the replicas dropped those
        it deleted."""
        out: dict[str, Any] = self._write("set_version_retention", keep_last, by=by)[0]
        return out

    # ------------------------------------------------------------------ drift, in the owner
    def drift(
        self, name: str, *, alias: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """A version's drift report (pinned, else the one ``alias`` answers keyless requests
        with), counting every prediction answered so far; with ``retrain_on_drift`` it may
        retrain, and the new version is fanned out."""
        doc, _ = self._write("drift", name, alias=alias, version=version, if_moved=True)
        out: dict[str, Any] = doc
        return out

    def feedback(self, name: str, prediction_id: str, labels: Sequence[Any]) -> dict[str, Any]:
        """True labels for a prediction's rows (feeds DDM in the owner's monitor)."""
        out: dict[str, Any] = self._read("feedback", name, prediction_id, list(labels))
        return out

    def refresh_drift_metrics(self) -> None:
        """Send the buffered observations to the owner, which refreshes its drift gauges when
        the scrape pulls its metrics (:meth:`_owner_metrics`): they count every prediction
        answered before it."""
        self._send_observations()

    def _owner_metrics(self) -> list[Metric] | None:
        """The owner's metric families, or None when it does not answer within
        ``metrics_timeout`` (busy with a long write, or dead): the scrape goes on without."""
        ray = self._ray
        try:
            result = ray.get(self.owner.metric_families.remote(), timeout=self.metrics_timeout)
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as exc:
            log.warning("/metrics goes without the owner's metrics: %s", exc)
            return None
        if isinstance(result, Failure):
            raise result.rebuild()
        families: list[Metric] = result
        return families

    # ------------------------------------------------------------------ for tests, benches
    def states(self) -> dict[str, State]:
        """Each live replica's acknowledged state."""
        with self._state:
            return {m.name: dict(m.state) for m in self.members if m.up}

    def wait_all_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(m.up for m in self.members):
            if time.monotonic() > deadline:
                raise TimeoutError("replicas did not come back: " + str(self.states()))
            time.sleep(0.05)


def _at(state: State, fence: Fence) -> bool:
    """Whether a replica's state reaches the fence: every ready version at its revision."""
    return all(state.get(t) == rev for t, rev in fence.items())
