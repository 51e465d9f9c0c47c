"""``/metrics`` through prometheus_client: one registry per service, the process's own metrics
for free, the same names, types, help texts, labels and buckets, read back by its parser."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import httpx
import prometheus_client
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.auth import ApiKeys
from api.metrics import BUCKETS, SPECS, Metrics
from api.server import BackgroundServer
from api.service import Service
from store import ModelStore
from tests.api.conftest import TOKENS, auth
from tests.store.helpers import FEATURES, VICTIM, populate


def parse(text: str) -> dict[str, Metric]:
    """The exposition's families by name, each name once (a real client's reading)."""
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    return {f.name: f for f in families}


def value(families: dict[str, Metric], sample: str, **labels: str) -> float | None:
    """The value of the sample named ``sample`` with exactly ``labels``, or None."""
    for f in families.values():
        for s in f.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


def family(name: str) -> str:
    """The family a metric of :data:`SPECS` is exposed under (a counter's without ``_total``)."""
    return name.removesuffix("_total") if SPECS[name].kind == "counter" else name


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Service, httpx.Client]]:
    with ModelStore.open(tmp_path / "store") as st:
        populate(st)
    service = Service.open(tmp_path / "store", purge_interval=0, evidence_rate=0)
    keys = ApiKeys.from_mapping({tok: [scope] for scope, tok in TOKENS.items()})
    with BackgroundServer(create_app(service, keys)) as url, httpx.Client(base_url=url) as c:
        yield service, c


def test_metrics_are_prometheus_clients_exposition(live: tuple[Service, httpx.Client]) -> None:
    _, c = live
    row = dict.fromkeys(FEATURES, 0.5)
    r = c.post("/v1/models/score/predict", json={"rows": [row]}, headers=auth("predict"))
    assert r.status_code == 200, r.text
    r = c.post("/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"))
    assert r.status_code == 202, r.text
    assert c.post("/v1/admin/purge", headers=auth("admin")).status_code == 200

    r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == prometheus_client.CONTENT_TYPE_LATEST
    assert VICTIM not in r.text
    got = parse(r.text)

    assert value(got, "forget_erasures_total", status="erased") == 1
    assert value(got, "forget_purges_total") == 1
    assert value(got, "forget_model_revision", model="score", version="1") == 1
    assert value(got, "forget_predicted_rows_total", model="score", version="1") == 1
    route = {"method": "POST", "route": "/v1/erasure-requests", "status": "202"}
    assert value(got, "http_requests_total", **route) == 1
    # the same types and help texts as declared, whatever the names on the wire
    for name, spec in SPECS.items():
        if family(name) in got:
            assert (got[family(name)].type, got[family(name)].documentation) == (
                spec.kind,
                spec.help,
            )
    assert {"forget_erasures", "forget_model_revision", "http_request_duration_seconds"} <= set(got)
    # the same buckets
    bounds = [
        s.labels["le"]
        for s in got["http_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["route"] == "/v1/erasure-requests"
    ]
    assert [float(b) for b in bounds] == [*BUCKETS, float("inf")]
    # for free: the process, its garbage collector, the interpreter
    assert (value(got, "process_resident_memory_bytes") or 0) > 0
    assert (value(got, "process_cpu_seconds_total") or 0) > 0
    assert got["python_gc_objects_collected"].type == "counter"
    assert got["python_info"].samples[0].labels["implementation"]
    # label values are route templates, names, versions and statuses: nothing a client sent
    values = {v for f in got.values() for s in f.samples for v in s.labels.values()}
    assert VICTIM not in values and not any(v.startswith("/v1/erasure-requests/") for v in values)


def test_each_metrics_has_its_own_registry_and_fixed_label_names() -> None:
    a, b = Metrics(), Metrics()
    a.inc("forget_erasures_total", {"status": "erased"})
    assert a.registry.get_sample_value("forget_erasures_total", {"status": "erased"}) == 1
    assert b.registry.get_sample_value("forget_erasures_total", {"status": "erased"}) is None
    assert prometheus_client.REGISTRY.get_sample_value("forget_erasures_total") is None
    assert all(list(spec.labels) == sorted(spec.labels) for spec in SPECS.values())
    # a label the metric does not declare (a subject id, say) is refused, not exposed
    with pytest.raises(ValueError, match=r"'forget_erasures_total' has labels \['status'\]"):
        a.inc("forget_erasures_total", {"status": "erased", "subject": VICTIM})
    with pytest.raises(TypeError, match="'forget_erasures_total' is not a gauge"):
        a.set("forget_erasures_total", {"status": "erased"}, 3)
    with pytest.raises(TypeError, match="'http_request_duration_seconds' is a histogram"):
        a.inc("http_request_duration_seconds", {"route": "/healthz"})
    assert VICTIM not in a.render()
    # a metric SPECS does not declare: its type from the call, its labels from the first use
    a.set("forget_test_gauge", {"model": "risk"}, 2)
    assert parse(a.render())["forget_test_gauge"].type == "gauge"
    with pytest.raises(ValueError, match="has labels"):
        a.set("forget_test_gauge", {"name": "risk"}, 2)


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=30))
def test_label_values_are_read_back_as_written(name: str) -> None:
    m = Metrics(runtime=False)
    m.set("forget_model_revision", {"model": name, "version": "1"}, 3)
    assert value(parse(m.render()), "forget_model_revision", model=name, version="1") == 3


def test_included_processes_merge_into_one_family_per_name() -> None:
    router, owner = Metrics(), Metrics()
    router.inc("http_requests_total", {"method": "GET", "route": "/healthz", "status": "200"})
    owner.inc("forget_erasures_total", {"status": "erased"})
    owner.set("forget_model_revision", {"model": "risk", "version": "1"}, 4)
    # the owner's families cross a process boundary pickled (Ray)
    router.include("owner", lambda: pickle.loads(pickle.dumps(owner.families())))

    got = parse(router.render())
    assert value(got, "forget_metrics_source_up", process="owner") == 1
    # the owner's own metrics keep the labels they have in the embedded server
    assert value(got, "forget_erasures_total", status="erased") == 1
    assert value(got, "forget_model_revision", model="risk", version="1") == 4
    route = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(got, "http_requests_total", **route) == 1
    # both processes have a resident set: one family, the owner's sample labelled
    rss = {s.labels.get("process"): s.value for s in got["process_resident_memory_bytes"].samples}
    assert set(rss) == {None, "owner"} and all(v > 0 for v in rss.values())
    assert {s.labels.get("process") for s in got["python_info"].samples} == {None, "owner"}

    router.include("owner", lambda: None)  # the owner did not answer in time
    got = parse(router.render())
    assert value(got, "forget_metrics_source_up", process="owner") == 0
    assert "forget_erasures" not in got and value(got, "http_requests_total", **route) == 1
    rss = {s.labels.get("process"): s.value for s in got["process_resident_memory_bytes"].samples}
    assert set(rss) == {None}


def test_a_family_of_two_types_is_refused() -> None:
    router, owner = Metrics(runtime=False), Metrics(runtime=False)
    router.set("forget_test_metric", {}, 1)
    owner.inc("forget_test_metric", {})
    router.include("owner", owner.families)
    with pytest.raises(ValueError, match="'forget_test_metric' is a gauge here but a counter"):
        router.render()
