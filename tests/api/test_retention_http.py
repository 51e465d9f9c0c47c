"""Retention over HTTP: a policy set, the purger expiring rows on its own, the report of what
expired, and bad input refused with a message (issue 19, item 3)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import ModelStore
from tests.api.conftest import Server, auth, launch
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, people


@pytest.fixture
def dated_server(tmp_path: Path) -> Iterator[Server]:
    """The populated store, each row seen a day ago except the victim's (three years ago)."""
    now = datetime.now(UTC)
    rows = [
        r
        | {"seen": (now - timedelta(days=3 * 365 if r["subject_id"] == VICTIM else 1)).isoformat()}
        for r in people()
    ]
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        st.ingest("people", rows, subject_column="subject_id")
        st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
        st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    srv = launch(directory, tmp_path / "server.log", "--purge-interval", "0.2")
    try:
        yield srv
    finally:
        srv.stop()


def test_the_purger_expires_rows_past_their_period(dated_server: Server) -> None:
    c = dated_server.client
    r = c.put(
        "/v1/datasets/people/retention",
        json={"time_column": "seen", "period": "P2Y"},
        headers=auth("admin"),
    )
    assert r.status_code == 200, r.text
    policy = r.json()
    assert (policy["dataset"], policy["time_column"], policy["period"]) == ("people", "seen", "P2Y")
    assert policy["set_by"].startswith("key-")  # the admin key's fingerprint
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the purger's next round expires the victim's rows
        report = c.get("/v1/retention", headers=auth("audit")).json()
        if report["expiries"] and report["expiries"][0]["status"] == "completed":
            break
        time.sleep(0.1)
    (e,) = report["expiries"]
    assert (e["dataset"], e["rows"]) == ("people", 2)
    assert {(m["model"], m["action"]) for m in e["models"]} == {
        ("risk", "exact_unlearning"),
        ("score", "exact_unlearning"),
    }
    receipt = c.get(f"/v1/erasure-requests/{e['request_id']}", headers=auth("audit")).json()
    assert (receipt["legal_ground"], receipt["subject_key"]) == ("art5-1-e", "retention:people")
    page = c.get(
        f"/v1/erasure-requests/{e['request_id']}/report",
        headers=auth("audit") | {"Accept": "text/html"},
    )
    assert page.status_code == 200 and "Art. 5(1)(e)" in page.text
    summary = c.get("/v1/erasure-requests/summary", headers=auth("audit")).json()
    assert summary["by_legal_ground"]["art5-1-e"] == 1
    # the models serve without the rows; nothing more expires
    row = dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))
    assert c.post(
        "/v1/models/risk/predict", json={"rows": [row]}, headers=auth("predict")
    ).is_success
    assert c.post("/v1/admin/expire", headers=auth("admin")).json() == {"requests": []}
    assert (
        c.get(
            "/v1/retention", params={"since": "2999-01-01T00:00:00Z"}, headers=auth("audit")
        ).json()["expiries"]
        == []
    )
    r = c.delete("/v1/datasets/people/retention", headers=auth("admin"))
    assert r.status_code == 204
    assert c.get("/v1/retention", headers=auth("audit")).json()["policies"] == []
    assert VICTIM not in dated_server.log.read_text()


def test_bad_retention_requests_are_4xx_and_change_nothing(dated_server: Server) -> None:
    c = dated_server.client
    put = "/v1/datasets/people/retention"
    for body, status, kind in (
        ({"time_column": "seen", "period": "30 days"}, 422, "invalid_request"),
        ({"time_column": "seen", "period": "P0D"}, 422, "invalid_retention_policy"),
        ({"time_column": "nope", "period": "P1D"}, 422, "invalid_retention_policy"),
        ({"time_column": "subject_id", "period": "P1D"}, 422, "invalid_retention_policy"),
        ({"time_column": "seen"}, 422, "invalid_request"),
        ({"time_column": "seen", "period": "P1D", "extra": 1}, 422, "invalid_request"),
    ):
        r = c.put(put, json=body, headers=auth("admin"))
        assert (r.status_code, r.json()["error"]["type"]) == (status, kind), (body, r.text)
        assert r.json()["error"]["message"]
    r = c.put(
        put, content=b"{not json", headers=auth("admin") | {"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["message"]
    r = c.put(
        "/v1/datasets/ghost/retention",
        json={"time_column": "t", "period": "P1D"},
        headers=auth("admin"),
    )
    assert r.status_code == 404
    assert c.delete(put, headers=auth("admin")).status_code == 404  # no policy to remove
    assert (
        c.put(put, json={"time_column": "seen", "period": "P1D"}, headers=auth("audit")).status_code
        == 403
    )
    assert c.get("/v1/retention", headers=auth("predict")).status_code == 403
    assert c.post("/v1/admin/expire", headers=auth("erase")).status_code == 403
    assert c.get("/v1/retention", headers=auth("audit")).json() == {"policies": [], "expiries": []}
