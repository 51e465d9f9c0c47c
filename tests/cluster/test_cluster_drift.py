"""Drift monitoring and feedback in replicated serving: the router observes, the owner monitors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from api.auth import ApiKeys
from api.server import BackgroundServer
from api.service import Observation
from cluster import Cluster, create_app
from cluster.owner import StoreOwner
from store import ModelStore
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, people

TOKEN = "cluster-drift-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def rows(n: int, seed: int, shift: float = 0.0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).round(6)
    X[:, 0] += shift
    return [dict(zip(FEATURES, map(float, x), strict=True)) for x in X]


def _populate(directory: Path) -> None:
    data = people()
    with ModelStore.open(directory) as st:
        st.ingest("people", data, subject_column="subject_id")
        # the victim has no rows here: an erasure leaves model "other" at its revision
        others = [
            r | {"subject_id": "o-" + r["subject_id"]} for r in data if r["subject_id"] != VICTIM
        ]
        st.ingest("others", others, subject_column="subject_id")
        for name in ("risk", "fb"):
            st.train(name, dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
        for name, dataset in (("score", "people"), ("load", "people"), ("other", "others")):
            st.train(name, dataset=dataset, estimator=linear(), label="score", features=FEATURES)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    ray = pytest.importorskip("ray")
    directory = tmp_path_factory.mktemp("cluster-drift")
    _populate(directory)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster = Cluster(
        directory,
        replicas=2,
        purge_interval=0,
        ack_timeout=5.0,
        evidence_rate=0,
        retrain_on_drift=True,
    )
    try:
        app = create_app(cluster, ApiKeys.from_mapping({TOKEN: ["admin", "predict", "audit"]}))
        with BackgroundServer(app) as url:
            yield cluster, url
    finally:
        if started:
            ray.shutdown()


def predict(url: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/models/{model}/predict", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def drift(url: str, model: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/v1/models/{model}/drift", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_feedback_finds_a_prediction_by_its_id_at_once(served: tuple[Cluster, str]) -> None:
    _, url = served
    res = predict(url, "fb", {"rows": rows(4, 7)})
    pid = res["prediction_id"]
    assert pid.startswith("pr_")
    # at once: the observation is still in the router's buffer, sent ahead of the feedback
    ok = httpx.post(
        f"{url}/v1/models/fb/feedback",
        json={"prediction_id": pid, "labels": res["predictions"]},
        headers=AUTH,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"model": "fb", "version": 1, "rows": 4}
    ddm = next(d for d in drift(url, "fb")["detectors"] if d["detector"] == "DDM")
    assert ddm["rows"] == 4 and ddm["error_rate"] == 0.0
    for body, status in [
        ({"prediction_id": "pr_nope", "labels": [1]}, 404),
        ({"prediction_id": pid, "labels": [1]}, 422),
    ]:
        r = httpx.post(f"{url}/v1/models/fb/feedback", json=body, headers=AUTH)
        assert r.status_code == status, r.text
    other = httpx.post(
        f"{url}/v1/models/risk/feedback",
        json={"prediction_id": pid, "labels": res["predictions"]},
        headers=AUTH,
    )
    assert other.status_code == 404  # the id belongs to another model
    reg = predict(url, "score", {"rows": rows(1, 8)})
    r = httpx.post(
        f"{url}/v1/models/score/feedback",
        json={"prediction_id": reg["prediction_id"], "labels": [0.5]},
        headers=AUTH,
    )
    assert r.status_code == 422 and "regressor" in r.json()["error"]["message"]
    assert reg["prediction_id"] != pid


def test_the_report_counts_every_row_served_and_a_shift_retrains(
    served: tuple[Cluster, str],
) -> None:
    cluster, url = served
    for i in range(7):
        predict(url, "risk", {"rows": rows(90, i)})
    quiet = drift(url, "risk")  # 630 rows: the last 90 were still in the router's buffer
    assert quiet["window"]["rows"] == 630 and quiet["model"] == "risk"
    assert not quiet["drift"] and quiet["retrained"] is None, quiet["alerts"]
    for i in range(12):
        predict(url, "risk", {"rows": rows(100, 100 + i, shift=3.0)})
    loud = drift(url, "risk")
    assert loud["drift"] and [f["name"] for f in loud["features"] if f["drift"]] == ["a"]
    assert any("feature 'a' shifted by" in a for a in loud["alerts"])
    # retrain_on_drift: the owner trained version 2, and every replica serves it
    assert (
        loud["retrained"]["version"] == 2 and "feature 'a' shifted" in loud["retrained"]["because"]
    )
    assert all(s[("risk", 2)] == 0 for s in cluster.states().values())
    assert predict(url, "risk", {"rows": rows(1, 9)})["version"] == 2
    metrics = httpx.get(f"{url}/metrics").text
    assert 'forget_feature_drift{feature="a",model="risk",version="1"} 1' in metrics
    assert 'forget_feature_drift{feature="b",model="risk",version="1"} 0' in metrics
    assert 'forget_drift_retrains_total{model="risk"} 1' in metrics
    assert httpx.get(f"{url}/v1/models/nope/drift", headers=AUTH).status_code == 404


def test_an_erased_subjects_rows_leave_every_window(served: tuple[Cluster, str]) -> None:
    _, url = served
    before = {m: drift(url, m)["window"] for m in ("score", "other")}
    for m in ("score", "other"):
        predict(url, m, {"rows": rows(30, 1)})
        predict(url, m, {"rows": rows(20, 2), "subject_ids": [VICTIM] * 10 + [None] * 10})
    # erased at once: the observations still wait in the router, and go ahead of the erasure
    r = httpx.post(f"{url}/v1/erasure-requests", json={"subject_id": VICTIM}, headers=AUTH)
    assert r.status_code == 202, r.text
    touched = {a["model"] for a in r.json()["models"]}
    assert "score" in touched and "other" not in touched
    for m in ("score", "other"):
        after = drift(url, m)
        assert after["window"]["rows"] == before[m]["rows"] + 40
        assert after["window"]["discarded"] == before[m]["discarded"] + 10
    assert drift(url, "score")["revision"] == 1
    assert VICTIM not in httpx.get(f"{url}/metrics").text
    bad = httpx.post(
        f"{url}/v1/models/score/predict",
        json={"rows": rows(2, 3), "subject_ids": [VICTIM]},
        headers=AUTH,
    )
    assert bad.status_code == 422 and "one per row" in bad.json()["error"]["message"]


def _dropped(cluster: Cluster, model: str) -> float:
    # the router's own counter: its /metrics would wait for the owner, held in this test
    labels = {"model": model}
    value = cluster.metrics.registry.get_sample_value("forget_drift_dropped_rows_total", labels)
    return value or 0.0


def test_predictions_never_wait_for_the_owner(served: tuple[Cluster, str], tmp_path: Path) -> None:
    cluster, url = served
    ray = pytest.importorskip("ray")
    start = drift(url, "load")["window"]["rows"]
    gate = tmp_path / "open"
    ray.get(cluster.owner.hold.remote(str(gate)))  # the next observe blocks until it exists
    cluster.max_observing_rows = 300
    try:
        with httpx.Client(timeout=30) as client:  # were they to wait, they would time out
            for i in range(20):
                r = client.post(
                    f"{url}/v1/models/load/predict", json={"rows": rows(50, 300 + i)}, headers=AUTH
                )
                assert r.status_code == 200, r.text
        # the first batch is stuck in the owner; past 300 rows in flight the rest is dropped
        assert 0 < _dropped(cluster, "load") < 1000
    finally:
        cluster.max_observing_rows = 20_000
        gate.touch()
    window = drift(url, "load")["window"]
    dropped = _dropped(cluster, "load")  # the last rows may have been dropped after the gate
    assert window["rows"] == start + 1000 - dropped
    metrics = httpx.get(f"{url}/metrics").text
    assert f'forget_drift_dropped_rows_total{{model="load"}} {dropped:g}' in metrics


def test_an_observation_of_a_revision_that_no_longer_serves_is_dropped(tmp_path: Path) -> None:
    _populate(tmp_path)
    owner = StoreOwner(tmp_path, evidence_rate=0.0)
    try:
        answer = {"model": "score", "version": 1, "revision": 0, "predictions": [0.1, 0.2]}
        seen = Observation("score", rows(2, 1), answer | {"prediction_id": "pr_x1"})
        assert owner.observe([seen]) == 1
        owner.erase(VICTIM, "art17-1-b")
        late = Observation("score", rows(2, 2), answer | {"prediction_id": "pr_x2"})
        now = Observation("score", rows(2, 3), answer | {"revision": 1, "prediction_id": "pr_x3"})
        assert owner.observe([late, now]) == 1
        doc, _ = owner.drift("score")
        assert doc["window"]["rows"] == 4
        fb = owner.call("feedback", "score", "pr_x2", [0.0, 0.0])
        assert fb.kind.endswith("UnknownPredictionError")
    finally:
        owner.close()
