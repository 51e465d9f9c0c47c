"""Bulk erasure (issue 19, item 4): many subjects, each its own request, nothing half-done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.service import Service
from forget.cli import main
from store import ModelStore
from store.errors import InvalidLegalGroundError, InvalidSubjectError
from tests.api.conftest import Server, auth
from tests.store.helpers import FEATURES, VICTIM, people, populate

ROWS = people(n_subjects=30, seed=3)
SUBJECTS = sorted({r["subject_id"] for r in ROWS})
PROBE = [dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))]


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    s = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(s.store, ROWS)
    s.predict("risk", PROBE)
    yield s
    s.close()


def _alone(tmp: Path, ids: list[str]) -> list[tuple[str, bool, int]]:
    """The same erasures one request at a time, on a store of its own."""
    s = Service.open(tmp, purge_interval=0, evidence_rate=0)
    populate(s.store, ROWS)
    out = [(r["status"], r["repeat"], r["rows_erased"]) for r in map(_erase_one(s), ids)]
    s.close()
    return out


def _erase_one(s: Service) -> Any:
    return lambda subject: s.erase(subject, "art17-1-b")


@settings(max_examples=8, deadline=None)
@given(
    picks=st.lists(st.sampled_from([*SUBJECTS, "nobody-1", "nobody-2"]), min_size=1, max_size=12)
)
def test_a_batch_is_its_requests_one_at_a_time(tmp_path_factory: Any, picks: list[str]):
    """Any batch, duplicates and unknown subjects included, ends as the same requests made one
    at a time would: the same statuses, repeats and rows per entry, and the same models."""
    tmp = tmp_path_factory.mktemp("batch")
    s = Service.open(tmp / "a", purge_interval=0, evidence_rate=0)
    populate(s.store, ROWS)
    Service.BATCH_GROUP, group = 4, Service.BATCH_GROUP  # several groups in one batch
    try:
        done = s.erase_batch(picks, "art17-1-b")
    finally:
        Service.BATCH_GROUP = group
    got = [(d["status"], d["repeat"], d["rows_erased"]) for d in done]
    assert [d["index"] for d in done] == list(range(len(picks)))
    assert got == _alone(tmp / "b", picks)
    assert s.store.verify_audit_log().ok
    mv = s.store.get_model("risk")
    assert mv.revision == sum(1 for st_, rep, n in got if n and not rep)
    s.close()


def test_a_failing_request_fails_alone_and_whole(svc: Service):
    real = svc.store.erase_many

    def erase_many(calls: Any, **kwargs: Any) -> Any:
        if any(c["subject_id"] == SUBJECTS[1] for c in calls):
            raise OSError("this one fails")
        return real(calls, **kwargs)

    svc.store.erase_many = erase_many  # type: ignore[method-assign]
    done = svc.erase_batch([SUBJECTS[0], SUBJECTS[1], VICTIM], "art17-1-b")
    assert [d.get("status") for d in done] == ["erased", None, "erased"]
    assert done[1]["error"]["type"] == "internal"  # not a store error: not shown
    svc.store.erase_many = real  # type: ignore[method-assign]
    assert svc.store.find_subject(SUBJECTS[1])  # its rows are all still there
    assert not svc.store.find_subject(VICTIM)


def test_bad_batches_refuse_everything(svc: Service):
    before = svc.store.get_model("risk").revision
    with pytest.raises(InvalidSubjectError, match=r"subject_ids\[1\]"):
        svc.erase_batch([VICTIM, ""], "art17-1-b")
    with pytest.raises(InvalidLegalGroundError):
        svc.erase_batch([VICTIM], "because")
    assert svc.store.get_model("risk").revision == before
    assert svc.store.find_subject(VICTIM)


def test_batch_over_http(server: Server):
    c = server.client
    body = {"subject_ids": [VICTIM, "nobody-here", VICTIM], "legal_ground": "art17-1-b"}
    r = c.post("/v1/erasure-requests:batch", json=body, headers=auth("erase"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [d["status"] for d in doc["requests"]] == ["erased", "no_data", "erased"]
    assert [d["repeat"] for d in doc["requests"]] == [False, False, True]
    assert doc["by_status"] == {"erased": 1, "no_data": 1, "repeat": 1} and doc["failed"] == 0
    rid = doc["requests"][0]["request_id"]
    assert c.get(f"/v1/erasure-requests/{rid}", headers=auth("erase")).json()["rows_erased"] == 2
    for bad in ({"subject_ids": []}, {"subject_ids": ["a", ""]}, {"subject_ids": "a"},
                {"subject_ids": ["a"], "legal_ground": "because"}):  # fmt: skip
        r = c.post("/v1/erasure-requests:batch", json=bad, headers=auth("erase"))
        assert r.status_code == 422, (bad, r.text)
    r = c.post("/v1/erasure-requests:batch", json=body, headers=auth("predict"))
    assert r.status_code == 403
    assert VICTIM not in server.log.read_text()  # ids are never logged


def test_forget_erase_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "store"
    with ModelStore.open(path) as st_:
        populate(st_, ROWS)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# closures of 2026-12\n{VICTIM}\n\n{SUBJECTS[0]}  # a note\n{VICTIM}\n")
    assert main(["erase", "--store", str(path), "--from-file", str(ids)]) == 0
    out = capsys.readouterr().out
    assert "3 requests: 2 erased, 1 repeat" in out or "3 requests: 2 completed, 1 repeat" in out
    with ModelStore.open(path) as st_:
        assert not st_.find_subject(VICTIM) and not st_.find_subject(SUBJECTS[0])
    (tmp_path / "empty.txt").write_text("# nothing\n")
    assert main(["erase", "--store", str(path), "--from-file", str(tmp_path / "empty.txt")]) == 2
