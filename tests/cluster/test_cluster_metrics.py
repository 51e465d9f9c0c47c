"""One ``/metrics`` in Ray mode: the router's own metrics and the store owner's, pulled over Ray
on each scrape; a busy owner leaves its metrics out of a scrape, not the scrape out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from api.auth import ApiKeys
from api.server import BackgroundServer
from cluster import Cluster, create_app
from store import ModelStore
from tests.store.helpers import FEATURES, VICTIM, linear, people

TOKEN = "cluster-metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TIMEOUT = 3.0  # the scrape's wait for the owner's metrics


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    ray = pytest.importorskip("ray")
    directory = tmp_path_factory.mktemp("cluster-metrics")
    with ModelStore.open(directory) as st:
        st.ingest("people", people(), subject_column="subject_id")
        st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster = Cluster(
        directory,
        replicas=1,
        purge_interval=0,
        ack_timeout=5.0,
        evidence_rate=0,
        metrics_timeout=TIMEOUT,
    )
    try:
        app = create_app(cluster, ApiKeys.from_mapping({TOKEN: ["admin", "predict", "erase"]}))
        with BackgroundServer(app) as url:
            yield cluster, url
    finally:
        if started:
            ray.shutdown()


def scrape(url: str) -> tuple[str, dict[str, Metric]]:
    """The exposition, and its families by name as prometheus_client reads them (once each)."""
    text = httpx.get(f"{url}/metrics", timeout=60).text
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    return text, {f.name: f for f in families}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float | None:
    for f in families.values():
        for s in f.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


def test_the_routers_metrics_carry_the_owners(served: tuple[Cluster, str]) -> None:
    _, url = served
    rows = [dict.fromkeys(FEATURES, float(i)) for i in range(5)]
    r = httpx.post(f"{url}/v1/models/score/predict", json={"rows": rows}, headers=AUTH)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/v1/erasure-requests", json={"subject_id": VICTIM}, headers=AUTH)
    assert r.status_code == 202, r.text
    r = httpx.post(f"{url}/v1/admin/purge", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text

    text, got = scrape(url)
    assert VICTIM not in text
    # the owner's counters and gauges, with the labels they have in the embedded server
    assert value(got, "forget_erasures_total", status="erased") == 1
    assert value(got, "forget_purges_total") == 1
    assert value(got, "forget_model_revision", model="score", version="1") == 1
    assert value(got, "forget_metrics_source_up", process="owner") == 1
    # the owner's drift gauges, refreshed by the scrape (no drift report asked for)
    assert value(got, "forget_drift", model="score", version="1") is not None
    drifts = got["forget_feature_drift"].samples
    assert {s.labels["feature"] for s in drifts if s.labels["model"] == "score"} == set(FEATURES)
    # and the router's
    route = {"method": "POST", "route": "/v1/erasure-requests", "status": "202"}
    assert value(got, "http_requests_total", **route) == 1
    assert value(got, "forget_cluster_replica_up", replica="replica-0") == 1
    # each process's resident set, in one family: the router's, and the owner's labelled
    rss = {s.labels.get("process"): s.value for s in got["process_resident_memory_bytes"].samples}
    assert set(rss) == {None, "owner"} and all(v > 0 for v in rss.values())


def test_a_busy_owner_leaves_its_metrics_out_of_a_scrape(
    served: tuple[Cluster, str], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray")
    cluster, url = served
    gate = tmp_path / "open"
    ray.get(cluster.owner.hold.remote(str(gate)))  # its next observe waits for the file
    try:
        row = dict.fromkeys(FEATURES, 0.5)
        r = httpx.post(
            f"{url}/v1/models/score/predict", json={"rows": [row]}, headers=AUTH, timeout=30
        )
        assert r.status_code == 200, r.text
        t0 = time.monotonic()
        _, got = scrape(url)  # sends the observation ahead: the owner is stuck in it
        assert time.monotonic() - t0 < TIMEOUT + 10
        assert value(got, "forget_metrics_source_up", process="owner") == 0
        owners = {s.labels.get("process") for s in got["process_resident_memory_bytes"].samples}
        assert owners == {None}  # the router's alone
        route = {"method": "POST", "route": "/v1/models/{model}/predict", "status": "200"}
        assert (value(got, "http_requests_total", **route) or 0) >= 1
    finally:
        gate.touch()
    _, got = scrape(url)
    assert value(got, "forget_metrics_source_up", process="owner") == 1
    assert (value(got, "process_resident_memory_bytes", process="owner") or 0) > 0
