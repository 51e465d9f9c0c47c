"""The store owner: the one process that holds the :class:`~store.ModelStore` open.

DuckDB lets one process write a database, so every write — erasures, training, uploads,
purges — and every report goes through this actor, which wraps the embedded
:class:`api.service.Service` (its lock, receipts and reports) without its serving parts.
After each write it says what replicas must do to follow, as a :class:`~cluster.state.Change`:
the committed forget operations (model, version, revision, row ids) of *every* version the
erasure touched (served, aliased, shadowing or idle: replicas hold every ready version),
snapshots of versions that replicas cannot reach by forgetting (a new training, a retrain),
the new fence, and every model's routing table (statuses and aliases) for the router. Alias
moves and version deletions are writes too: the router publishes the new table before it
answers, so the next request routes by it.

Drift monitoring lives here too, in the Service's :class:`~api.monitoring.Monitoring`: the
router sends what the replicas answered (:meth:`StoreOwner.observe`), and erasures, which pass
through here, drop the erased subject's rows from the windows as in the embedded server. A
drift report may retrain a drifting version (``retrain_on_drift``), so it is called like a write.

Metrics. The Service counts erasures, purges and drift retrains and sets the model revision and
drift gauges in this process's :class:`~api.metrics.Metrics`; the router pulls them with
:meth:`StoreOwner.metric_families` on each scrape and merges them into its ``/metrics``.

The class is plain Python; :mod:`cluster.router` makes it a Ray actor. Its methods are run one
at a time (a synchronous actor), which is what serialises the writes; calls from one caller
run in the order sent, so observations sent before a report or an erasure are in by then.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from api.metrics import Metrics
from api.service import Observation, Service
from cluster.state import Change, Failure, Fence, Op, Routes, Snapshot, Target
from drift import DriftError
from store.errors import StoreError
from store.registry import READY

log = logging.getLogger("forget.cluster")

# Only these Service methods may be called through :meth:`StoreOwner.call` (read-only, or
# writes that no replica follows: datasets, feedback).
PASSTHROUGH = frozenset(
    {
        "models",
        "model",
        "datasets",
        "dataset",
        "create_dataset",
        "append_rows",
        "request",
        "report",
        "summary",
        "verify",
        "health",
        "feedback",
        "export",
        "exports",
        "access",
        "retention",
        "set_retention_policy",
        "remove_retention_policy",
        "declare_purpose",
        "purposes",
        "version_retention",
    }
)


class StoreOwner:
    """Holds the store; answers with results or :class:`Failure`, never raises store errors."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        evidence_rate: float = 0.1,
        *,
        monitoring: bool = True,
        retrain_on_drift: bool = False,
        estimate_accuracy: bool = False,
    ) -> None:
        self.metrics = Metrics()
        self.service = Service.open(
            directory,
            evidence_rate=evidence_rate,
            metrics=self.metrics,
            purge_interval=0,  # the router runs purges, so that replicas follow retrains
            batching=False,
            cache_bytes=0,
            monitoring=monitoring,
            retrain_on_drift=retrain_on_drift,
            estimate_accuracy=estimate_accuracy,
            compile_forests=False,
            journal=False,  # erasures take the recorded path: replicas follow its receipts
        )
        self._ops: list[Op] = []  # the last erasure's forget operations, from its receipt
        self._published: Fence = self.fence()
        self._gate: Path | None = None

    # ------------------------------------------------------------------ reading
    def fence(self) -> Fence:
        """Every ready version and its revision: what replicas hold (any of them may be
        pinned, routed to by an alias or a bare name, or shadow one)."""
        return {
            (mv.name, mv.version): mv.revision
            for mv in self.service.store.list_models()
            if mv.status == READY
        }

    def routes(self) -> dict[str, Routes]:
        """Every model's routing table: its versions' statuses and its aliases (what the
        embedded service publishes for itself)."""
        store = self.service.store
        statuses: dict[str, dict[int, str]] = {}
        datasets: dict[str, dict[int, str]] = {}
        for mv in store.list_models():
            statuses.setdefault(mv.name, {})[mv.version] = mv.status
            datasets.setdefault(mv.name, {})[mv.version] = mv.dataset
        return {
            name: Routes(s, store.aliases(name), datasets[name])
            for name, s in sorted(statuses.items())
        }

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read (or a dataset write) of :class:`api.service.Service`."""
        if method not in PASSTHROUGH:
            raise ValueError(f"{method!r} cannot be called through the owner")
        try:
            return getattr(self.service, method)(*args, **kwargs)
        except StoreError as exc:
            return Failure.of(exc)

    def metric_families(self) -> list[Metric] | Failure:
        """This process's metric families, the drift gauges refreshed first (which never
        trains): what the router merges into its ``/metrics``."""
        try:
            self.service.refresh_drift_metrics()
        except StoreError as exc:
            return Failure.of(exc)
        return self.metrics.families()

    def observe(self, batch: Sequence[Observation]) -> int:
        """Feed the drift monitors with answered predictions (in the order answered); how
        many were taken (those of a revision that no longer serves are not)."""
        if self._gate is not None:
            self._wait_gate(self._gate)
            self._gate = None
        try:
            return self.service.observe(batch)
        except (StoreError, DriftError) as exc:  # e.g. a model retired meanwhile
            log.warning("%d observations dropped: %s", len(batch), exc)
            return 0

    def hold(self, path: str) -> None:
        """Test hook: the next :meth:`observe` waits until the file ``path`` exists."""
        self._gate = Path(path)

    @staticmethod
    def _wait_gate(path: Path, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def snapshot(self) -> Change:
        """Every ready version as bytes, and the routing tables: how a replica catches up."""
        fence = self.fence()
        self._published = fence
        snaps = tuple(self._snapshot(t, rev) for t, rev in sorted(fence.items()))
        return Change(fence, snapshots=snaps, routes=self.routes())

    def _snapshot(self, target: Target, revision: int) -> Snapshot:
        name, version = target
        mv = self.service.store.get_model(name, version)
        est = self.service.store.estimator(name, version)
        assert est is not None, "a ready version is in memory"
        return Snapshot(name, version, revision, mv.estimator, mv.features, est.to_bytes())

    # ------------------------------------------------------------------ writing
    def erase(
        self, subject_id: str, legal_ground: str, *, requested_by: str | None = None
    ) -> tuple[Any, Change]:
        self._ops.clear()
        try:
            receipt = self.service.erase(subject_id, legal_ground, requested_by=requested_by)
        except StoreError as exc:
            return Failure.of(exc), self._change()
        self._ops = [
            Op(a["model"], a["version"], a["revision"], tuple(a["row_ids"]))
            for a in receipt["models"]
            if a["row_ids"]
        ]
        return receipt, self._change()

    def erase_batch(
        self, subject_ids: list[str], legal_ground: str, *, requested_by: str | None = None
    ) -> tuple[Any, Change]:
        self._ops.clear()
        try:
            done = self.service.erase_batch(subject_ids, legal_ground, requested_by=requested_by)
        except StoreError as exc:
            return Failure.of(exc), self._change()
        self._ops = [  # a repeat's operations came with the request it repeats
            Op(a["model"], a["version"], a["revision"], tuple(a["row_ids"]))
            for d in done
            if "error" not in d and not d["repeat"]
            for a in d["models"]
            if a["row_ids"]
        ]
        return done, self._change()

    def expire(self, at: str | None = None) -> tuple[Any, Change]:
        """Erase the rows past their retention period (one request per dataset): the
        replicas get the forget operations, as for an erasure."""
        self._ops.clear()
        try:
            done = self.service.expire(at)
        except StoreError as exc:
            return Failure.of(exc), self._change()
        self._ops = [
            Op(a["model"], a["version"], a["revision"], tuple(a["row_ids"]))
            for d in done
            for a in d["models"]
            if a["row_ids"]
        ]
        return done, self._change()

    def object_to(self, subject_id: str, purpose: str, **kwargs: Any) -> tuple[Any, Change]:
        """An objection (Art. 21): the purpose's versions forget the subject's rows; the
        replicas get snapshots of the versions that moved."""
        return self._apply(self.service.object_to, subject_id, purpose, **kwargs)

    def restrict(self, subject_id: str, **kwargs: Any) -> tuple[Any, Change]:
        """A restriction (Art. 18): every version forgets the subject's rows."""
        return self._apply(self.service.restrict, subject_id, **kwargs)

    def lift_restriction(self, subject_id: str, **kwargs: Any) -> tuple[Any, Change]:
        """A lifted restriction: versions learn the rows back (snapshots: a learn is not in the
        forget log) or await a retrain (they leave the fence)."""
        return self._apply(self.service.lift_restriction, subject_id, **kwargs)

    def train(self, name: str, **kwargs: Any) -> tuple[Any, Change]:
        return self._apply(self.service.train, name, **kwargs)

    def purge(self) -> tuple[Any, Change]:
        return self._apply(self.service.purge)

    def drift(
        self, name: str, *, alias: str | None = None, version: int | None = None
    ) -> tuple[Any, Change]:
        """A version's drift report (pinned, else the one ``alias`` answers keyless requests
        with); a write when it retrains (``retrain_on_drift``)."""
        return self._apply(self.service.drift, name, alias=alias, version=version)

    def set_alias(self, name: str, alias: str, target: Any, **kwargs: Any) -> tuple[Any, Change]:
        """Move an alias: only the routing table changes (replicas hold every ready version)."""
        return self._apply(self.service.set_alias, name, alias, target, **kwargs)

    def delete_alias(self, name: str, alias: str, **kwargs: Any) -> tuple[Any, Change]:
        return self._apply(self.service.delete_alias, name, alias, **kwargs)

    def delete_version(self, name: str, version: int, **kwargs: Any) -> tuple[Any, Change]:
        """Delete a version (refused while an alias names it): replicas drop it."""
        return self._apply(self.service.delete_version, name, version, **kwargs)

    def set_version_retention(self, keep_last: int | None, **kwargs: Any) -> tuple[Any, Change]:
        """Versions the retention deletes are dropped by the replicas."""
        return self._apply(self.service.set_version_retention, keep_last, **kwargs)

    def _apply(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Change]:
        self._ops.clear()
        try:
            return method(*args, **kwargs), self._change()
        except StoreError as exc:
            return Failure.of(exc), self._change()

    def close(self) -> None:
        self.service.close()

    def _change(self) -> Change:
        """From the fence last published to the one now, version by version: operations
        where they bridge the gap, snapshots where they do not; a version that left the
        fence is dropped by the replicas."""
        old, new = self._published, self.fence()
        done, self._ops = self._ops, []
        ops: list[Op] = []
        snaps: list[Snapshot] = []
        for target, now in sorted(new.items()):
            was = old.get(target)
            if was == now:
                continue
            mine = sorted((op for op in done if (op.model, op.version) == target), key=_rev)
            bridged = was is not None and [op.revision for op in mine] == list(
                range(was + 1, now + 1)
            )
            if bridged:
                ops += mine
            else:
                snaps.append(self._snapshot(target, now))
        self._published = new
        return Change(new, tuple(ops), tuple(snaps), self.routes())


def _rev(op: Op) -> int:
    return op.revision
