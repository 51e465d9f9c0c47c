"""Counters, gauges and histograms rendered in the Prometheus text format (version 0.0.4).

Label values come from route templates, model names and statuses — never from request bodies —
so no subject identifier can reach ``/metrics``.

>>> m = Metrics()
>>> m.inc("forget_erasures_total", {"status": "completed"})
>>> m.observe("http_request_duration_seconds", {"route": "/healthz"}, 0.003)
>>> print(m.render().splitlines()[2])
forget_erasures_total{status="completed"} 1
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Mapping

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HELP = {
    "http_requests_total": ("counter", "HTTP requests by method, route and status code."),
    "http_request_duration_seconds": ("histogram", "HTTP request latency by route."),
    "forget_erasures_total": ("counter", "Erasure requests answered, by resulting status."),
    "forget_predicted_rows_total": ("counter", "Rows scored, by model."),
    "forget_model_revision": ("gauge", "Current revision of each model's serving version."),
    "forget_purges_total": ("counter", "Physical purges run (artifact rewrite, compaction)."),
    "forget_cache_hits_total": ("counter", "Predictions answered from the cache, by model."),
    "forget_batches_total": ("counter", "Batches the micro-batcher scored, by model."),
    "forget_batched_rows_total": ("counter", "Rows in those batches, by model."),
    "forget_batch_limit_rows": ("gauge", "The micro-batcher's current row limit, by model."),
    "forget_drift": ("gauge", "1 when the serving version's inputs or outputs drift."),
    "forget_drift_retrains_total": ("counter", "Versions trained because of drift, by model."),
    "forget_drift_alerts": ("gauge", "Drift alerts standing for the serving version."),
    "forget_feature_drift": ("gauge", "1 when a feature of the serving version drifts."),
    "forget_drift_dropped_rows_total": (
        "counter",
        "Served rows not sent to the drift monitor because the owner fell behind (Ray mode).",
    ),
}

Labels = tuple[tuple[str, str], ...]


def _key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels, extra: Labels = ()) -> str:
    items = [*labels, *extra]
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


class Metrics:
    """A thread-safe registry of the service's metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hist: dict[str, dict[Labels, list[float]]] = defaultdict(dict)

    def inc(self, name: str, labels: Mapping[str, str], by: float = 1.0) -> None:
        key = _key(labels)
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + by

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        with self._lock:
            self._values[name][_key(labels)] = float(value)

    def observe(self, name: str, labels: Mapping[str, str], value: float) -> None:
        key = _key(labels)
        with self._lock:
            h = self._hist[name].setdefault(key, [0.0] * (len(BUCKETS) + 2))
            h[bisect.bisect_left(BUCKETS, value)] += 1  # last bucket slot is +Inf
            h[-1] += value

    def render(self) -> str:
        lines = []
        with self._lock:
            for name in sorted(set(self._values) | set(self._hist)):
                kind, text = HELP.get(name, ("untyped", name))
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                for labels, value in sorted(self._values.get(name, {}).items()):
                    lines.append(f"{name}{_fmt(labels)} {_num(value)}")
                for labels, h in sorted(self._hist.get(name, {}).items()):
                    cum = 0.0
                    for bound, count in zip((*BUCKETS, float("inf")), h[:-1], strict=True):
                        cum += count
                        le = "+Inf" if bound == float("inf") else _num(bound)
                        lines.append(f"{name}_bucket{_fmt(labels, (('le', le),))} {_num(cum)}")
                    lines.append(f"{name}_sum{_fmt(labels)} {h[-1]!r}")
                    lines.append(f"{name}_count{_fmt(labels)} {_num(cum)}")
        return "\n".join(lines) + "\n"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
