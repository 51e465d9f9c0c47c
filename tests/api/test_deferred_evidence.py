"""Retrain evidence over HTTP: an erasure only schedules its checks; the background purger (or
an admin purge) runs them, refitting outside the service's lock while predictions and other
erasures are answered."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import ApiKeys
from api.server import BackgroundServer
from api.service import Service
from store import EvidenceJob, ModelStore
from tests.api.conftest import TOKENS, Server, auth
from tests.store.helpers import FEATURES, VICTIM, populate

ROW = dict.fromkeys(FEATURES, 0.5)


def report_when(server: Server, request_id: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = server.client.get(
            f"/v1/erasure-requests/{request_id}/report", headers=auth("audit")
        ).json()
        if doc["evidence_status"] == status or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def test_the_purger_records_the_scheduled_evidence(server: Server) -> None:
    """``forget serve --evidence-rate 1 --purge-interval 0.2``: the erasure answers with its
    checks scheduled (no refit ran in the request); the purger records them."""
    r = server.client.post(
        "/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase")
    )
    assert r.status_code == 202, r.text
    receipt = r.json()
    assert {a["evidence"]["status"] for a in receipt["models"]} == {"scheduled"}
    assert all("passed" not in a["evidence"] for a in receipt["models"])

    doc = report_when(server, receipt["request_id"], "recorded")
    assert doc["evidence_status"] == "recorded", doc["evidence_policy"]
    for m in doc["models"]:
        assert m["evidence"]["status"] == "recorded" and m["evidence"]["passed"] is True
        assert m["evidence"]["checked_revision"] >= m["new_revision"]
        assert m["evidence_audit"]["matches"] is True
    kinds = [e["kind"] for e in doc["audit_entries"]]
    assert kinds.count("erasure.evidence_recorded") == 2
    assert server.client.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]


@pytest.fixture
def live(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An in-process server (no background purger) over a populated store, every request
    sampled: the test decides when evidence is collected."""
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        populate(st)
    service = Service.open(directory, purge_interval=0, evidence_rate=1.0)
    keys = ApiKeys.from_mapping({tok: [scope] for scope, tok in TOKENS.items()})
    with BackgroundServer(create_app(service, keys)) as url:
        yield service, url


def test_predictions_and_erasures_are_answered_while_a_check_runs(
    live: tuple[Service, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, url = live
    running, release = threading.Event(), threading.Event()
    real_run = EvidenceJob.run

    def slow_run(job: EvidenceJob) -> dict[str, Any]:
        running.set()
        assert release.wait(60), "the test never released the check"
        return real_run(job)

    monkeypatch.setattr(EvidenceJob, "run", slow_run)
    with httpx.Client(base_url=url, timeout=30) as c:
        first = c.post("/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"))
        assert first.status_code == 202, first.text
        rid = first.json()["request_id"]

        purged: list[httpx.Response] = []
        purge = threading.Thread(
            target=lambda: purged.append(c.post("/v1/admin/purge", headers=auth("admin")))
        )
        purge.start()  # collects the evidence first: phase 2 blocks in slow_run
        try:
            assert running.wait(30), "the purge never ran a check"
            # the check holds no lock: a prediction and another erasure are answered now
            p = c.post("/v1/models/risk/predict", json={"rows": [ROW]}, headers=auth("predict"))
            assert p.status_code == 200 and p.json()["revision"] == 1
            second = c.post(
                "/v1/erasure-requests", json={"subject_id": "subj-001"}, headers=auth("erase")
            )
            assert second.status_code == 202 and not release.is_set()
            scheduled = c.get(f"/v1/erasure-requests/{rid}/report", headers=auth("audit")).json()
            assert scheduled["evidence_status"] == "scheduled"
        finally:
            release.set()
            purge.join(60)
        assert purged and purged[0].status_code == 200, purged
        # the forest's job was read before the second erasure, the ridge's after it
        assert purged[0].json()["evidence_recorded"] == 3

        doc = c.get(f"/v1/erasure-requests/{rid}/report", headers=auth("audit")).json()
        assert doc["status"] == "completed" and doc["evidence_status"] == "recorded"
        risk, score = (m["evidence"] for m in doc["models"])
        assert risk["passed"] is True and risk["checked_revision"] == 1
        assert "moved on to revision 2 since" in risk["note"]
        assert score["passed"] is True and score["checked_revision"] == 2
        assert "later than this request's 1" in score["note"]
        assert c.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]
    service.collect_evidence()  # the rest of the second erasure's checks
    with service.lock:
        assert service.store.evidence_scheduled() == 0
