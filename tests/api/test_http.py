"""The HTTP API over a real uvicorn process: predict, models, scopes, bad input, reports."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from store import ModelStore
from tests.api.conftest import TOKENS, Server, auth, launch
from tests.store.helpers import FEATURES, VICTIM, budgeted, populate


def _undated(html: str) -> str:
    """A report page without the time it was rendered."""
    return re.sub(r"generated [^<]*? by the forget model store", "generated", html)


ROW = {"a": 0.5, "b": -0.25, "c": 1.0}


def test_predict_classifier_gives_labels_and_probabilities(shared_server: Server):
    r = shared_server.client.post(
        "/v1/models/risk/predict", json={"rows": [ROW, ROW | {"a": -3.0}]}, headers=auth("predict")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"], body["revision"]) == ("risk", 1, 0)
    assert len(body["predictions"]) == 2 and set(body["predictions"]) <= {0, 1}
    assert body["classes"] == [0, 1]
    for p in body["probabilities"]:
        assert len(p) == 2 and abs(sum(p) - 1) < 1e-9


def test_predict_regressor_has_no_probabilities(shared_server: Server):
    r = shared_server.client.post(
        "/v1/models/score/predict", json={"rows": [ROW]}, headers=auth("predict")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["probabilities"] is None and isinstance(body["predictions"][0], float)


def test_models_list_and_lineage(shared_server: Server):
    r = shared_server.client.get("/v1/models", headers=auth("audit"))
    assert r.status_code == 200
    names = [m["name"] for m in r.json()["models"]]
    assert names == ["risk", "score"]
    risk = shared_server.client.get("/v1/models/risk", headers=auth("predict")).json()
    v = risk["versions"][0]
    assert risk["serving_version"] == 1 and v["serving"] and v["guarantee"] == "exact"
    assert v["features"] == ["a", "b", "c"] and v["lineage"] == [] and v["rows_forgotten"] == 0
    assert isinstance(v["deletion_budget_left"], int)


@pytest.mark.parametrize(
    ("method", "path", "scope_ok", "scope_bad"),
    [
        ("POST", "/v1/models/risk/predict", "predict", "audit"),
        ("GET", "/v1/models", "predict", None),
        ("POST", "/v1/erasure-requests", "erase", "predict"),
        ("GET", "/v1/audit/verify", "audit", "erase"),
        ("GET", "/v1/datasets", "audit", "predict"),
        ("POST", "/v1/models", "admin", "erase"),
        ("POST", "/v1/datasets", "admin", "audit"),
        ("POST", "/v1/admin/purge", "admin", "predict"),
    ],
)
def test_scopes(
    shared_server: Server, method: str, path: str, scope_ok: str, scope_bad: str | None
):
    c = shared_server.client
    assert c.request(method, path).status_code == 401
    r = c.request(method, path, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["type"] == "unauthorized"
    if scope_bad is not None:
        r = c.request(method, path, headers=auth(scope_bad))
        assert r.status_code == 403 and scope_ok in r.json()["error"]["message"]
    # the right scope gets past auth (a 422 for a missing body is fine here)
    assert c.request(method, path, headers=auth(scope_ok)).status_code not in (401, 403)
    assert c.request(method, path, headers=auth("admin")).status_code not in (401, 403)


@pytest.mark.parametrize(
    ("body", "status", "kind", "fragment"),
    [
        (b"{not json", 400, "malformed_json", "not valid JSON"),
        (b'{"rows": [{"a": NaN, "b": 1, "c": 1}]}', 422, "invalid_request", "finite"),
        (b'{"rows": [{"a": Infinity, "b": 1, "c": 1}]}', 422, "invalid_request", "finite"),
        (b'{"rows": [{"a": "1.0", "b": 1, "c": 1}]}', 422, "invalid_request", "number"),
        (b'{"rows": [{"a": true, "b": 1, "c": 1}]}', 422, "invalid_request", "number"),
        (b'{"rows": [{"a": 1, "b": 1}]}', 422, "predict_input", "missing features ['c']"),
        (b'{"rows": [{"a": 1, "b": 1, "c": 1, "z": 2}]}', 422, "predict_input", "unknown"),
        (b'{"rows": []}', 422, "invalid_request", "at least 1"),
        (b'{"rows": [{"a": 1, "b": 1, "c": 1}], "extra": 1}', 422, "invalid_request", "extra"),
        (b"[]", 422, "invalid_request", "body: Input should be an object"),
        (b"", 400, "malformed_json", "not valid JSON"),
    ],
)
def test_bad_predict_input_is_a_4xx_with_a_message(
    shared_server: Server, body: bytes, status: int, kind: str, fragment: str
):
    r = shared_server.client.post(
        "/v1/models/risk/predict",
        content=body,
        headers=auth("predict") | {"Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == kind and fragment in err["message"]


def test_oversized_and_unknown(shared_server: Server):
    c = shared_server.client
    big = b'{"rows": [' + b'{"a": 1, "b": 1, "c": 1},' * 2_000_000 + b"]}"
    r = c.post("/v1/models/risk/predict", content=big, headers=auth("predict"))
    assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"
    r = c.post("/v1/models/nope/predict", json={"rows": [ROW]}, headers=auth("predict"))
    assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_model"
    r = c.get("/v1/erasure-requests/er_0000", headers=auth("audit"))
    assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_request"
    assert c.get("/v1/nothing-here").status_code == 404
    assert c.put("/v1/models", headers=auth("admin")).status_code == 405
    r = c.post("/v1/models/bad name!/predict", json={"rows": [ROW]}, headers=auth("predict"))
    assert r.status_code == 422


def wait_status(server: Server, request_id: str, status: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = server.client.get(f"/v1/erasure-requests/{request_id}", headers=auth("erase")).json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_erasure_flow(server: Server):
    c = server.client
    r = c.post(
        "/v1/erasure-requests",
        json={"subject_id": VICTIM, "legal_ground": "art17-1-a"},
        headers=auth("erase"),
    )
    assert r.status_code == 202, r.text
    receipt = r.json()
    rid = receipt["request_id"]
    assert r.headers["location"] == f"/v1/erasure-requests/{rid}"
    assert receipt["status"] == "erased" and receipt["rows_erased"] == 2
    assert receipt["datasets"] == {"people": 2}
    assert VICTIM not in r.text
    actions = {(a["model"], a["action"]) for a in receipt["models"]}
    assert actions == {("risk", "exact_unlearning"), ("score", "exact_unlearning")}
    # sampled (evidence rate 1): the retrain checks are scheduled, run off the lock later
    assert {a["evidence"]["status"] for a in receipt["models"]} == {"scheduled"}

    # the models serve their new revision at once
    p = c.post("/v1/models/risk/predict", json={"rows": [ROW]}, headers=auth("predict")).json()
    assert p["revision"] == 1

    # the background purge completes the request
    assert wait_status(server, rid, "completed")["completed_at"] is not None

    # a repeat answers with the earlier receipt
    again = c.post("/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"))
    assert again.status_code == 200 and again.json()["request_id"] == rid
    assert again.json()["repeat"] is True

    # a subject the store never held (a typo?): recorded, and said so — never "completed"
    none = c.post("/v1/erasure-requests", json={"subject_id": "nobody"}, headers=auth("erase"))
    assert none.status_code == 201 and none.json()["status"] == "no_data"
    assert none.json()["rows_erased"] == 0
    page = c.get(
        f"/v1/erasure-requests/{none.json()['request_id']}/report?format=html",
        headers=auth("audit"),
    )
    assert "held no data under this subject id" in page.text and "nobody" not in page.text

    report = c.get(f"/v1/erasure-requests/{rid}/report", headers=auth("audit"))
    assert report.status_code == 200 and report.headers["content-type"] == "application/json"
    doc = report.json()
    assert doc["status"] == "completed" and doc["legal_ground"] == "art17-1-a"
    assert doc["physical_purge"]["purged_at"] is not None
    # the purge ran the scheduled checks first: a completed request shows them recorded
    assert all(
        m["evidence"]["status"] == "recorded" and m["evidence"]["passed"] for m in doc["models"]
    )
    assert VICTIM not in report.text

    page = c.get(
        f"/v1/erasure-requests/{rid}/report",
        headers=auth("audit") | {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert rid in page.text and "Art. 12(3)" in page.text and VICTIM not in page.text
    # the same page by ?format=html; each rendering says when it was made (to the second)
    again = c.get(f"/v1/erasure-requests/{rid}/report?format=html", headers=auth("erase")).text
    assert _undated(again) == _undated(page.text) and "generated 20" in again

    lineage = c.get("/v1/models/risk", headers=auth("audit")).json()["versions"][0]["lineage"]
    assert [(x["revision"], x["request_id"], x["rows_forgotten"]) for x in lineage] == [(1, rid, 2)]

    v = c.get("/v1/audit/verify", headers=auth("audit")).json()
    assert v["ok"] and v["entries"] > 5 and len(v["head"]) == 64 and v["problems"] == []

    metrics = c.get("/metrics").text
    assert 'forget_erasures_total{status="erased"} 1' in metrics
    assert 'forget_model_revision{model="risk",version="1"} 1' in metrics
    assert 'http_requests_total{method="POST",route="/v1/erasure-requests",status="202"} 1' in (
        metrics
    )
    assert VICTIM not in metrics and "nobody" not in metrics

    server.stop()  # uvicorn exits by re-raising SIGTERM after a graceful shutdown
    log = server.log.read_text()
    assert "Application shutdown complete" in log
    assert "POST /v1/erasure-requests" in log  # the access log is on
    assert VICTIM not in log and "nobody" not in log
    for secret in TOKENS.values():
        assert secret not in log


def test_bad_erasure_requests(server: Server):
    c = server.client
    r = c.post(
        "/v1/erasure-requests",
        json={"subject_id": VICTIM, "legal_ground": "because"},
        headers=auth("erase"),
    )
    assert r.status_code == 422 and "art17-1-a" in r.json()["error"]["message"]
    assert VICTIM not in r.text
    r = c.post("/v1/erasure-requests", json={"subject_id": ""}, headers=auth("erase"))
    assert r.status_code == 422
    r = c.post("/v1/erasure-requests", json={}, headers=auth("erase"))
    assert r.status_code == 422 and "subject_id" in r.json()["error"]["message"]
    # nothing was erased by the bad requests
    assert c.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]
    p = c.post("/v1/models/risk/predict", json={"rows": [ROW]}, headers=auth("predict")).json()
    assert p["revision"] == 0


def test_dataset_upload_and_training_over_http(server: Server):
    c = server.client
    csv = "subject_id,x,y\n" + "".join(f"u{i},{i},{2 * i + 1}\n" for i in range(30))
    r = c.post(
        "/v1/datasets",
        json={"name": "lines", "subject_column": "subject_id", "csv": csv},
        headers=auth("admin"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["rows"] == 30
    assert [f.name for f in server.directory.glob("*.csv")] == []  # the upload left no copy
    rows = [{"subject_id": f"k{i}", "x": float(i), "label": i % 2} for i in range(20)]
    r = c.post(
        "/v1/datasets",
        json={"name": "parity", "subject_column": "subject_id", "rows": rows},
        headers=auth("admin"),
    )
    assert r.status_code == 201, r.text
    again = c.post(
        "/v1/datasets",
        json={"name": "parity", "subject_column": "subject_id", "rows": rows},
        headers=auth("admin"),
    )
    assert again.status_code == 409
    r = c.post(
        "/v1/datasets",
        json={"name": "bad", "subject_column": "who", "rows": rows},
        headers=auth("admin"),
    )
    assert r.status_code == 422

    train = {
        "name": "line",
        "dataset": "lines",
        "estimator": {"kind": "LinearRegression", "params": {"alpha": 0.0}},
        "label": "y",
        "features": ["x"],
    }
    r = c.post("/v1/models", json=train, headers=auth("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["guarantee"] == "exact"
    p = c.post("/v1/models/line/predict", json={"rows": [{"x": 100}]}, headers=auth("predict"))
    assert abs(p.json()["predictions"][0] - 201.0) < 1e-6

    for bad, fragment in [
        ({"estimator": {"kind": "Pickle"}}, "unknown estimator"),
        ({"estimator": {"kind": "LinearRegression", "params": {"nope": 1}}}, "parameters"),
        ({"features": ["x", "zz"]}, "not in dataset"),
        ({"dataset": "missing"}, "missing"),
        ({"label": "x"}, "also a feature"),
    ]:
        r = c.post("/v1/models", json=train | bad, headers=auth("admin"))
        assert 400 <= r.status_code < 500 and fragment in r.json()["error"]["message"], r.text

    r = c.get("/v1/datasets/lines", headers=auth("audit"))
    assert r.status_code == 200 and [col["name"] for col in r.json()["columns"]] == [
        "subject_id",
        "x",
        "y",
    ]
    assert "u3" not in r.text


def test_period_summary(server: Server):
    c = server.client
    for subject in ("subj-001", "subj-002", "nobody"):
        assert c.post(
            "/v1/erasure-requests", json={"subject_id": subject}, headers=auth("erase")
        ).status_code in (201, 202)
    r = c.get("/v1/erasure-requests/summary", headers=auth("audit"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["requests"] == 3 and doc["by_legal_ground"]["art17-1-b"] == 3
    assert doc["overdue"]["count"] == 0
    assert "subj-00" not in r.text and "nobody" not in r.text
    r = c.get("/v1/erasure-requests/summary?since=2999-01-01T00:00:00", headers=auth("audit"))
    assert r.status_code == 200 and r.json()["requests"] == 0
    r = c.get("/v1/erasure-requests/summary?since=yesterday", headers=auth("audit"))
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_period"
    assert c.get("/v1/erasure-requests/summary", headers=auth("erase")).status_code == 403


def test_a_model_that_cannot_forget_is_not_served_until_retrained(tmp_path: Path):
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        populate(st)
        st.train("odds", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
    srv = launch(directory, tmp_path / "log", "--purge-interval", "3600")
    try:
        c = srv.client
        r = c.post("/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"))
        assert r.status_code == 202 and r.json()["status"] == "pending"
        actions = {a["model"]: a["action"] for a in r.json()["models"]}
        assert actions["odds"] == "pending_retrain" and actions["risk"] == "exact_unlearning"
        p = c.post("/v1/models/odds/predict", json={"rows": [ROW]}, headers=auth("predict"))
        assert p.status_code == 409 and p.json()["error"]["type"] == "model_not_servable"
        assert (
            c.post(
                "/v1/models/risk/predict", json={"rows": [ROW]}, headers=auth("predict")
            ).status_code
            == 200
        )
        purge = c.post("/v1/admin/purge", headers=auth("admin"))
        assert purge.status_code == 200, purge.text
        rid = r.json()["request_id"]
        assert c.get(f"/v1/erasure-requests/{rid}", headers=auth("erase")).json()["status"] == (
            "completed"
        )
        p = c.post("/v1/models/odds/predict", json={"rows": [ROW]}, headers=auth("predict"))
        assert p.status_code == 200, p.text
        model = c.get("/v1/models/odds", headers=auth("audit")).json()
        assert model["versions"][0]["status"] == "ready"
    finally:
        srv.stop()


def test_docs_are_served_from_the_package(shared_server: Server):
    """/docs works offline: Swagger UI's script and stylesheet come from this server."""
    page = shared_server.client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in page.text
        r = shared_server.client.get(asset)
        assert r.status_code == 200 and len(r.content) > 10_000, asset
    assert shared_server.client.get("/openapi.json").json()["info"]["title"] == "forget"


def test_a_subject_id_in_a_url_is_neither_echoed_nor_logged(shared_server: Server):
    """A subject id pasted where a request id belongs: 404, not repeated, not in the log."""
    pasted = "alice.pasted-7f3q@example.org"
    for path in (f"/v1/erasure-requests/{pasted}", f"/v1/erasure-requests/{pasted}/report"):
        r = shared_server.client.get(path, headers=auth("audit"))
        assert r.status_code == 404 and pasted not in r.text, r.text
        assert "not repeated" in r.json()["error"]["message"]
    other = "er_0123456789abcdef"  # a request id of the right form is named
    known = shared_server.client.get(f"/v1/erasure-requests/{other}", headers=auth("audit"))
    assert known.status_code == 404 and other in known.text
    time.sleep(0.2)  # the access log line is written after the answer
    log = shared_server.log.read_text()
    assert "/v1/erasure-requests/{redacted}/report" in log and other in log
    assert pasted not in log
