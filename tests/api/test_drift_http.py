"""Drift monitoring through the API: reports, alerts, feedback, erasures and revisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from store import ModelStore
from tests.api.conftest import Server, auth, launch
from tests.store.helpers import FEATURES, VICTIM, populate


def rows(n: int, seed: int, shift: float = 0.0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).round(6)
    X[:, 0] += shift
    return [dict(zip(FEATURES, map(float, x), strict=True)) for x in X]


def predict(server: Server, body: dict, model: str = "risk") -> dict:
    r = server.client.post(f"/v1/models/{model}/predict", json=body, headers=auth("predict"))
    assert r.status_code == 200, r.text
    return r.json()


def test_a_shifted_feature_is_flagged_with_an_alert_and_a_metric(server: Server):
    c = server.client
    for i in range(6):
        predict(server, {"rows": rows(100, i)})
    r = c.get("/v1/models/risk/drift", headers=auth("audit"))
    assert r.status_code == 200, r.text
    quiet = r.json()
    assert quiet["window"]["rows"] == 600 and quiet["model"] == "risk"
    assert not any(f["drift"] for f in quiet["features"]), quiet["alerts"]
    for i in range(12):
        predict(server, {"rows": rows(100, 100 + i, shift=3.0)})
    loud = c.get("/v1/models/risk/drift", headers=auth("predict")).json()
    flagged = [f["name"] for f in loud["features"] if f["drift"]]
    assert loud["drift"] and flagged == ["a"]
    assert any("feature 'a' shifted by" in a for a in loud["alerts"])
    metrics = c.get("/metrics").text
    assert 'forget_feature_drift{feature="a",model="risk",version="1"} 1' in metrics
    assert 'forget_feature_drift{feature="b",model="risk",version="1"} 0' in metrics
    assert c.get("/v1/models/risk/drift", headers=auth("erase")).status_code == 403
    assert c.get("/v1/models/nope/drift", headers=auth("audit")).status_code == 404


def test_feedback_drives_the_error_detector(server: Server):
    c = server.client
    res = predict(server, {"rows": rows(4, 7)})
    pid = res["prediction_id"]
    assert pid.startswith("pr_")
    ok = c.post(
        "/v1/models/risk/feedback",
        json={"prediction_id": pid, "labels": res["predictions"]},
        headers=auth("predict"),
    )
    assert ok.status_code == 200 and ok.json() == {"model": "risk", "version": 1, "rows": 4}
    ddm = next(
        d
        for d in c.get("/v1/models/risk/drift", headers=auth("audit")).json()["detectors"]
        if d["detector"] == "DDM"
    )
    assert ddm["rows"] == 4 and ddm["error_rate"] == 0.0
    for body, status in [
        ({"prediction_id": "pr_nope", "labels": [1]}, 404),
        ({"prediction_id": pid, "labels": [1]}, 422),
        ({"prediction_id": pid}, 422),
    ]:
        r = c.post("/v1/models/risk/feedback", json=body, headers=auth("predict"))
        assert r.status_code == status, r.text
    other = c.post(
        "/v1/models/score/feedback",
        json={"prediction_id": pid, "labels": res["predictions"]},
        headers=auth("predict"),
    )
    assert other.status_code == 404  # the id belongs to another model
    reg = c.post("/v1/models/score/predict", json={"rows": rows(1, 8)}, headers=auth("predict"))
    r = c.post(
        "/v1/models/score/feedback",
        json={"prediction_id": reg.json()["prediction_id"], "labels": [0.5]},
        headers=auth("predict"),
    )
    assert r.status_code == 422 and "regressor" in r.json()["error"]["message"]


def test_an_erasure_empties_the_subjects_rows_from_the_window_and_restarts_detectors(
    server: Server,
):
    c = server.client
    predict(server, {"rows": rows(30, 1)})
    predict(server, {"rows": rows(20, 2), "subject_ids": [VICTIM] * 10 + [None] * 10})
    before = c.get("/v1/models/risk/drift", headers=auth("audit")).json()
    assert before["window"]["rows"] == 50 and before["revision"] == 0
    assert before["detectors"][0]["rows"] == 50
    r = c.post("/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"))
    assert r.status_code == 202
    after = c.get("/v1/models/risk/drift", headers=auth("audit")).json()
    assert after["window"]["rows"] == 40 and after["window"]["discarded"] == 10
    assert after["revision"] == 1 and after["detectors"][0]["rows"] == 0
    assert VICTIM not in c.get("/metrics").text
    bad = c.post(
        "/v1/models/risk/predict",
        json={"rows": rows(2, 3), "subject_ids": [VICTIM]},
        headers=auth("predict"),
    )
    assert bad.status_code == 422 and "one per row" in bad.json()["error"]["message"]


def test_retrain_on_drift_refits_on_the_dataset_as_it_is_now(tmp_path: Path):
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        populate(st)
    srv = launch(directory, tmp_path / "log", "--retrain-on-drift", "--purge-interval", "0")
    try:
        c = srv.client
        fresh = [r | {"subject_id": f"new-{i}", "label": 1, "score": 0.0} for i, r in
                 enumerate(rows(40, 5, shift=3.0))]  # fmt: skip
        r = c.post("/v1/datasets/people/rows", json={"rows": fresh}, headers=auth("admin"))
        assert r.status_code == 201, r.text
        assert r.json()["rows"] == 40
        for i in range(6):
            predict(srv, {"rows": rows(100, 200 + i, shift=3.0)})
        # /metrics (no token) publishes the drift it sees, and never trains
        assert 'forget_drift{model="risk",version="1"} 1' in c.get("/metrics").text
        assert c.get("/v1/models/risk", headers=auth("audit")).json()["serving_version"] == 1
        doc = c.get("/v1/models/risk/drift", headers=auth("audit")).json()
        assert doc["drift"] and doc["retrained"]["version"] == 2
        assert "feature 'a' shifted" in doc["retrained"]["because"]
        model = c.get("/v1/models/risk", headers=auth("audit")).json()
        assert model["serving_version"] == 2
        assert model["versions"][1]["n_rows"] == model["versions"][0]["n_rows"] + 40
        assert predict(srv, {"rows": rows(1, 9)})["version"] == 2
        again = c.get("/v1/models/risk/drift", headers=auth("audit")).json()
        assert again["retrained"] is None  # a fresh version, and a cool-down
        assert "forget_drift_retrains_total" in c.get("/metrics").text
    finally:
        srv.stop()


def test_appending_rows_checks_the_schema(server: Server):
    c = server.client
    good = {"subject_id": "late", "a": 1.0, "b": 2.0, "c": 3.0, "label": 1, "score": 0.5}
    r = c.post("/v1/datasets/people/rows", json={"rows": [good]}, headers=auth("admin"))
    assert r.status_code == 201, r.text
    r = c.post(
        "/v1/datasets/people/rows", json={"rows": [good | {"a": "x"}]}, headers=auth("admin")
    )
    assert r.status_code == 422, r.text
    r = c.post("/v1/datasets/nope/rows", json={"rows": [good]}, headers=auth("admin"))
    assert r.status_code == 404
    csv = "subject_id,a,b,c,label,score\nlate2,1,2,3,0,0.1\n"
    r = c.post("/v1/datasets/people/rows", json={"csv": csv}, headers=auth("admin"))
    assert r.status_code == 201 and r.json()["rows"] == 1
    assert c.post("/v1/datasets/people/rows", json={}, headers=auth("admin")).status_code == 422
    assert (
        c.post(
            "/v1/datasets/people/rows", json={"rows": [good]}, headers=auth("predict")
        ).status_code
        == 403
    )
