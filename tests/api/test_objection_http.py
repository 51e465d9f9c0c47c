"""Objection by purpose and restriction over real HTTP (issue 19, item 2):
``POST /v1/subjects/objections``, ``/v1/subjects/restrictions`` and ``.../restrictions:lift``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store import ModelStore
from tests.api.conftest import Server, auth, launch
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, people

OBJECT, RESTRICT, LIFT = (
    "/v1/subjects/objections",
    "/v1/subjects/restrictions",
    "/v1/subjects/restrictions:lift",
)
PROBE = {"rows": [dict(zip(FEATURES, (0.4, -0.1, 0.2), strict=True))]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``risk`` (forest) for marketing, ``score`` (linear) for credit."""
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        st.ingest("people", people(), subject_column="subject_id")
        st.train(
            "risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES,
            purpose="marketing",
        )  # fmt: skip
        st.train(
            "score", dataset="people", estimator=linear(), label="score", features=FEATURES,
            purpose="credit",
        )  # fmt: skip
    srv = launch(directory, tmp_path / "server.log", "--purge-interval", "0.2")
    try:
        yield srv
    finally:
        srv.stop()


def _revision(c: Any, model: str) -> int:
    doc = c.get(f"/v1/models/{model}", headers=auth("audit")).json()
    return int(doc["versions"][-1]["revision"])


def _predict(c: Any, model: str) -> float:
    r = c.post(f"/v1/models/{model}/predict", json=PROBE, headers=auth("predict"))
    assert r.status_code == 200, r.text
    return float(r.json()["predictions"][0])


def test_an_objection_over_http(server: Server) -> None:
    c = server.client
    before = _predict(c, "score")
    r = c.post(OBJECT, json={"subject_id": VICTIM, "purpose": "credit"}, headers=auth("erase"))
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert doc["purpose"] == "credit" and doc["rows"] == 2 and not doc["repeat"]
    assert [(m["model"], m["action"]) for m in doc["models"]] == [("score", "exact_unlearning")]
    # answered: the serving revision no longer holds the rows
    assert _revision(c, "score") == 1 and _revision(c, "risk") == 0
    assert _predict(c, "score") != before
    again = c.post(OBJECT, json={"subject_id": VICTIM, "purpose": "credit"}, headers=auth("erase"))
    assert again.status_code == 200 and again.json()["repeat"]
    assert again.json()["objection_id"] == doc["objection_id"]
    # training for the purpose leaves the rows out, and says so
    trained = c.post(
        "/v1/models",
        json={
            "name": "score",
            "dataset": "people",
            "estimator": {"kind": "LinearRegression", "params": {"alpha": 0.1}},
            "label": "score",
            "features": FEATURES,
            "purpose": "credit",
        },
        headers=auth("admin"),
    )
    assert trained.status_code == 201, trained.text
    assert trained.json()["purpose"] == "credit" and trained.json()["rows_withheld"] == 2
    access = c.post("/v1/subjects/access", json={"subject_id": VICTIM}, headers=auth("audit"))
    assert [o["purpose"] for o in access.json()["objections"]] == ["credit"]
    assert c.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]


def test_bad_objections_are_refused_with_a_message(server: Server) -> None:
    c = server.client
    cases = [
        ({"subject_id": VICTIM, "purpose": "nope"}, 404, "unknown_purpose"),
        ({"subject_id": "nobody-7f", "purpose": "credit"}, 404, "unknown_subject"),
        ({"subject_id": VICTIM, "purpose": "Bad Purpose"}, 422, "invalid_request"),
        ({"subject_id": VICTIM}, 422, "invalid_request"),
        ({"subject_id": "", "purpose": "credit"}, 422, "invalid_request"),
        ({"subject_id": VICTIM, "purpose": "credit", "extra": 1}, 422, "invalid_request"),
    ]
    for body, status, kind in cases:
        r = c.post(OBJECT, json=body, headers=auth("erase"))
        assert (r.status_code, r.json()["error"]["type"]) == (status, kind), (body, r.text)
    r = c.post(OBJECT, params={"subject_id": VICTIM}, json={}, headers=auth("erase"))
    assert r.status_code == 400 and r.json()["error"]["type"] == "subject_id_in_url"
    for scope in ("predict", "audit"):
        r = c.post(OBJECT, json={"subject_id": VICTIM, "purpose": "credit"}, headers=auth(scope))
        assert r.status_code == 403
    assert _revision(c, "score") == 0
    # a declared purpose takes objections before any model is trained for it
    assert c.put("/v1/purposes/nope", headers=auth("predict")).status_code == 403
    assert c.put("/v1/purposes/Bad%20Name", headers=auth("admin")).status_code == 422
    declared = c.put("/v1/purposes/nope", headers=auth("admin"))
    assert declared.status_code == 201 and declared.json() == {"purpose": "nope", "created": True}
    assert c.put("/v1/purposes/nope", headers=auth("admin")).status_code == 200
    r = c.post(OBJECT, json={"subject_id": VICTIM, "purpose": "nope"}, headers=auth("erase"))
    assert r.status_code == 201 and r.json()["models"] == []
    listed = c.get("/v1/purposes", headers=auth("audit")).json()["purposes"]
    assert [(p["purpose"], p["objections"]) for p in listed] == [
        ("credit", 0),
        ("marketing", 0),
        ("nope", 1),
    ]
    assert listed[0]["models"] == [{"model": "score", "version": 1, "status": "ready"}]


def test_a_restriction_and_its_lift_over_http(server: Server) -> None:
    c = server.client
    before = _predict(c, "score")
    r = c.post(RESTRICT, json={"subject_id": VICTIM}, headers=auth("erase"))
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["status"] == "restricted" and doc["rows"] == 2
    assert {m["model"] for m in doc["models"]} == {"risk", "score"}
    assert _predict(c, "score") != before
    assert c.post(RESTRICT, json={"subject_id": VICTIM}, headers=auth("erase")).json()["repeat"]
    lifted = c.post(LIFT, json={"subject_id": VICTIM}, headers=auth("erase"))
    assert lifted.status_code == 200, lifted.text
    actions = {m["model"]: m["action"] for m in lifted.json()["models"]}
    assert actions == {"score": "learn", "risk": "pending_retrain"}
    assert _predict(c, "score") == pytest.approx(before, rel=1e-12, abs=1e-12)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the purger retrains the forest
        risk = c.get("/v1/models/risk", headers=auth("audit")).json()["versions"][-1]
        if risk["status"] == "ready":
            break
        time.sleep(0.1)
    assert risk["status"] == "ready"
    r = c.post(LIFT, json={"subject_id": VICTIM}, headers=auth("erase"))
    assert r.status_code == 409 and r.json()["error"]["type"] == "not_restricted"
    r = c.post(RESTRICT, json={"subject_id": "nobody-7f"}, headers=auth("erase"))
    assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_subject"
    access = c.post("/v1/subjects/access", json={"subject_id": VICTIM}, headers=auth("audit"))
    assert [x["status"] for x in access.json()["restrictions"]] == ["lifted"]
    assert c.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]
    server.stop()
    assert VICTIM not in server.log.read_text()
