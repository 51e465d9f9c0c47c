"""The service's counters, gauges and histograms, kept and exposed by ``prometheus_client``.

Each :class:`Metrics` has its own :class:`~prometheus_client.CollectorRegistry` (never the
process-global ``REGISTRY``: tests run several services in one process), with the process, GC
and platform collectors registered on it, so ``/metrics`` carries ``process_*`` and
``python_*`` for free. The service's metrics are made on first use, by name, as :data:`SPECS`
declares them (type, help text, label names); ``/metrics`` is
:func:`~prometheus_client.generate_latest` of a :class:`Metrics` with its ``CONTENT_TYPE``.

Label values come from route templates, model and feature names, versions and statuses —
never from request bodies — so no subject identifier can reach ``/metrics``. The label
*names* of each metric are fixed by :data:`SPECS`: a call with another label is refused.

Several processes, one ``/metrics``. The embedded server is one process (DuckDB has one
writer), so there is nothing to merge. In Ray mode the HTTP process :meth:`~Metrics.include`\\ s
the store owner's families, pulled over Ray on each scrape (:mod:`cluster.router` says why
that rather than ``prometheus_client``'s multiprocess mode): :meth:`Metrics.collect` merges
them into one family per name, and tells a family that both processes export apart by a
``process`` label on the included process's samples (``process_resident_memory_bytes`` is
the HTTP process's, ``process_resident_memory_bytes{process="owner"}`` the owner's).

>>> m = Metrics(runtime=False)
>>> m.inc("forget_erasures_total", {"status": "erased"})
>>> m.observe("http_request_duration_seconds", {"route": "/healthz"}, 0.003)
>>> print(m.render().splitlines()[2])
forget_erasures_total{status="erased"} 1.0
>>> m.registry.get_sample_value("http_request_duration_seconds_count", {"route": "/healthz"})
1.0
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

__all__ = ["BUCKETS", "CONTENT_TYPE", "SPECS", "Metrics", "Source", "Spec", "merge"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Spec:
    """A metric's type, help text and label names (sorted, as they appear on the wire)."""

    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


SPECS: dict[str, Spec] = {
    "http_requests_total": Spec(
        "counter", "HTTP requests by method, route and status code.", ("method", "route", "status")
    ),
    "http_request_duration_seconds": Spec(
        "histogram", "HTTP request latency by route.", ("route",)
    ),
    "forget_erasures_total": Spec(
        "counter", "Erasure requests answered, by resulting status.", ("status",)
    ),
    "forget_predicted_rows_total": Spec(
        "counter", "Rows scored for answers, by model and version.", ("model", "version")
    ),
    "forget_shadow_rows_total": Spec(
        "counter", "Rows a shadow version scored (never answered).", ("model", "version")
    ),
    "forget_shadow_dropped_total": Spec(
        "counter", "Shadow scorings dropped: the shadow thread was behind.", ("model", "version")
    ),
    "forget_shadow_failed_total": Spec(
        "counter", "Shadow scorings that failed (it could not score).", ("model", "version")
    ),
    "forget_exports_total": Spec(
        "counter", "Model copies exported to recipients, by model.", ("model",)
    ),
    "forget_alias_moves_total": Spec(
        "counter", "Aliases set, moved or removed, by alias and model.", ("alias", "model")
    ),
    "forget_model_revision": Spec(
        "gauge", "Current revision of each model's serving version.", ("model", "version")
    ),
    "forget_purges_total": Spec("counter", "Physical purges run (artifact rewrite, compaction)."),
    "forget_settle_failures_total": Spec(
        "counter",
        "Failed tries to record erasures answered from memory (they stay journaled; retried).",
    ),
    "forget_cache_hits_total": Spec(
        "counter", "Predictions answered from the cache, by model.", ("model",)
    ),
    "forget_batches_total": Spec(
        "counter", "Batches the micro-batcher scored, by model.", ("model",)
    ),
    "forget_batched_rows_total": Spec("counter", "Rows in those batches, by model.", ("model",)),
    "forget_batch_limit_rows": Spec(
        "gauge", "The micro-batcher's current row limit, by model.", ("model",)
    ),
    "forget_drift": Spec(
        "gauge", "1 when the serving version's inputs or outputs drift.", ("model", "version")
    ),
    "forget_drift_retrains_total": Spec(
        "counter", "Versions trained because of drift, by model.", ("model",)
    ),
    "forget_estimated_accuracy": Spec(
        "gauge",
        "Estimated accuracy of a classifier version on its drift window (performance "
        "prediction; forget serve --estimate-accuracy).",
        ("model", "version"),
    ),
    "forget_drift_alerts": Spec(
        "gauge", "Drift alerts standing for the serving version.", ("model", "version")
    ),
    "forget_feature_drift": Spec(
        "gauge", "1 when a feature of the serving version drifts.", ("feature", "model", "version")
    ),
    "forget_drift_dropped_rows_total": Spec(
        "counter",
        "Served rows not sent to the drift monitor because the owner fell behind (Ray mode).",
        ("model",),
    ),
    "forget_cluster_replica_up": Spec(
        "gauge",
        "1 when a replica serves, 0 while it is down or catching up (Ray mode).",
        ("replica",),
    ),
    "forget_metrics_source_up": Spec(
        "gauge",
        "1 when the last scrape got the metrics of this process (Ray mode: the store owner).",
        ("process",),
    ),
}

# What a process included in another's /metrics answers: its families, or None when it could
# not be reached in time (the scrape then goes on without them).
Source = Callable[[], Sequence[Metric] | None]

_Made = Counter | Gauge | Histogram


class Metrics:
    """A thread-safe set of the service's metrics over its own registry.

    Parameters
    ----------
    runtime : register the process, GC and platform collectors (``process_*``, ``python_*``).

    Examples
    --------
    >>> m = Metrics(runtime=False)
    >>> m.set("forget_model_revision", {"model": "risk", "version": "1"}, 3)
    >>> m.registry.get_sample_value("forget_model_revision", {"model": "risk", "version": "1"})
    3.0
    >>> m.inc("forget_erasures_total", {"subject": "alice"})
    Traceback (most recent call last):
    ...
    ValueError: metric 'forget_erasures_total' has labels ['status'], not ['subject']
    """

    def __init__(self, *, runtime: bool = True) -> None:
        self.registry = CollectorRegistry()
        if runtime:
            ProcessCollector(registry=self.registry)
            GCCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._lock = threading.Lock()
        self._made: dict[str, tuple[Spec, _Made]] = {}
        self._sources: dict[str, Source] = {}

    # ------------------------------------------------------------------ recording
    def inc(self, name: str, labels: Mapping[str, str], by: float = 1.0) -> None:
        """Add ``by`` to a counter (or a gauge)."""
        child = self._child(name, labels, "counter")
        if not isinstance(child, Counter | Gauge):
            raise TypeError(f"metric {name!r} is a histogram: observe it, not inc")
        child.inc(by)

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """Set a gauge."""
        child = self._child(name, labels, "gauge")
        if not isinstance(child, Gauge):
            raise TypeError(f"metric {name!r} is not a gauge: it cannot be set")
        child.set(float(value))

    def observe(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """Count ``value`` in a histogram (buckets :data:`BUCKETS`)."""
        child = self._child(name, labels, "histogram")
        if not isinstance(child, Histogram):
            raise TypeError(f"metric {name!r} is not a histogram: it cannot observe")
        child.observe(value)

    def _child(self, name: str, labels: Mapping[str, str], kind: Kind) -> _Made:
        """The series of ``name`` with ``labels``; a metric not made yet is made, of ``kind``
        when :data:`SPECS` does not declare it."""
        spec, metric = self._metric(name, labels, kind)
        if sorted(labels) != list(spec.labels):
            raise ValueError(
                f"metric {name!r} has labels {list(spec.labels)}, not {sorted(labels)}"
            )
        return metric.labels(**{k: str(v) for k, v in labels.items()}) if labels else metric

    def _metric(self, name: str, labels: Mapping[str, str], kind: Kind) -> tuple[Spec, _Made]:
        made = self._made.get(name)
        if made is not None:
            return made
        with self._lock:  # made once, by whichever thread comes first
            made = self._made.get(name)
            if made is None:
                # a metric not in SPECS is declared by its first use (as the text renderer
                # before it took it): its type from the call, its labels from the first labels
                spec = SPECS.get(name) or Spec(kind, name, tuple(sorted(labels)))
                made = self._made[name] = (spec, self._make(name, spec))
            return made

    def _make(self, name: str, spec: Spec) -> _Made:
        args = (name, spec.help, spec.labels)
        if spec.kind == "counter":
            return Counter(*args, registry=self.registry)
        if spec.kind == "gauge":
            return Gauge(*args, registry=self.registry)
        return Histogram(*args, buckets=BUCKETS, registry=self.registry)

    # ------------------------------------------------------------------ exposing
    def include(self, process: str, source: Source) -> None:
        """Merge the families that ``source`` returns (another process's :meth:`families`)
        into :meth:`collect`, on each collection; ``forget_metrics_source_up`` says whether
        it answered."""
        self._sources[process] = source

    def families(self) -> list[Metric]:
        """This process's metric families (picklable: what an included process sends)."""
        return list(self.registry.collect())

    def collect(self) -> Iterator[Metric]:
        """This process's families merged with those of the included processes (see the
        module's docstring): what ``/metrics`` exposes."""
        remote: dict[str, Sequence[Metric]] = {}
        for process, source in self._sources.items():
            got = source()
            self.set("forget_metrics_source_up", {"process": process}, float(got is not None))
            remote[process] = got or ()
        return iter(merge(self.families(), remote))

    def render(self) -> str:
        """The exposition of :meth:`collect` (Prometheus text format, ``CONTENT_TYPE``)."""
        return generate_latest(self).decode()


def merge(local: Sequence[Metric], remote: Mapping[str, Sequence[Metric]]) -> list[Metric]:
    """One family per name: ``local`` families first, then families only other processes
    export; in a family that more than one process exports, each sample of an included
    process carries a ``process`` label naming it, so no series is told twice.

    >>> a, b = Metrics(runtime=False), Metrics(runtime=False)
    >>> a.inc("forget_purges_total", {})
    >>> b.inc("forget_purges_total", {}, 2)
    >>> b.inc("forget_erasures_total", {"status": "erased"})
    >>> [(s.name, s.labels, s.value) for f in merge(a.families(), {"owner": b.families()})
    ...  for s in f.samples if s.name.endswith("_total")]  # doctest: +NORMALIZE_WHITESPACE
    [('forget_purges_total', {}, 1.0), ('forget_purges_total', {'process': 'owner'}, 2.0),
     ('forget_erasures_total', {'status': 'erased'}, 1.0)]
    """
    exporters: dict[str, int] = {}
    for families in (local, *remote.values()):
        for f in families:
            exporters[f.name] = exporters.get(f.name, 0) + 1
    out: dict[str, Metric] = {}
    for process, families in (("", local), *remote.items()):
        for f in families:
            shared = exporters[f.name] > 1
            samples = [
                s._replace(labels=s.labels | {"process": process}) if process and shared else s
                for s in f.samples
            ]
            into = out.get(f.name)
            if into is None:
                into = out[f.name] = Metric(f.name, f.documentation, f.type, f.unit)
            elif into.type != f.type:
                raise ValueError(
                    f"metric {f.name!r} is a {into.type} here but a {f.type} in {process!r}"
                )
            into.samples += samples
    return list(out.values())
