"""Erasures answered from memory (``Service.erase_async``): the answer never waits for the
database, and nothing of the guarantee moves.

An erasure answers once its models forgot and its group is durable in the store's journal;
the settler records it in the database afterwards. The tests hold the recording back and show
that the erasure answers meanwhile, that every prediction after the answer is at the new
revision (never a cached answer from before), that every read of the store waits for the
record, that the answers equal the recorded path's, and that a group that cannot be made
durable leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from api.service import Service
from store import ModelStore
from tests.store.helpers import FEATURES, VICTIM, people, populate

PROBE = [dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))]
ROWS = people(n_subjects=30, seed=3)
HOLDERS = sorted({r["subject_id"] for r in ROWS})
WAIT = 10.0
PAUSE = 0.3


def _open(directory: Path, **kwargs: Any) -> Service:
    s = Service.open(directory, purge_interval=0, evidence_rate=0, **kwargs)
    s.start()
    s.warm()  # as the server does: models served and compiled, the catalogue read
    return s


@pytest.fixture
def template(tmp_path: Path) -> Path:
    with ModelStore.open(tmp_path / "template", evidence_rate=0) as st:
        populate(st, ROWS)
    return tmp_path / "template"


@pytest.fixture
def svc(template: Path, tmp_path: Path) -> Iterator[Service]:
    shutil.copytree(template, tmp_path / "s")
    s = _open(tmp_path / "s")
    yield s
    s.close()


def _versions(svc: Service) -> list[tuple[Any, ...]]:
    """Each version's revision, status and lineage (without the times logged)."""
    return [
        (
            mv.name,
            mv.version,
            mv.revision,
            mv.status,
            [(r.revision, r.rows_forgotten) for r in mv.lineage],
        )
        for mv in svc.store.list_models()
    ]


def _erase(svc: Service, subject: str) -> dict[str, Any]:
    return asyncio.run(svc.erase_async(subject, "art17-1-b", requested_by="t"))


def _hold_records(svc: Service) -> threading.Event:
    """Recording waits (the settler's and every read's) until the event is set."""
    go_on, real = threading.Event(), svc.store.settle

    def settle() -> int:
        assert go_on.wait(WAIT)
        return real()

    svc.store.settle = settle  # type: ignore[method-assign]
    return go_on


def test_an_erasure_answers_while_its_record_waits_and_reads_wait_for_the_record(svc: Service):
    before = svc.predict("risk", PROBE)  # cached from here
    go_on = _hold_records(svc)
    receipt = _erase(svc, VICTIM)  # answered with the database untouched
    assert receipt["status"] == "erased" and receipt["rows_erased"] == 2
    assert svc.store.unsettled == 1
    new = {a["model"]: a["revision"] for a in receipt["models"]}["risk"]
    after = svc.predict("risk", PROBE)
    assert new == before["revision"] + 1 and after["revision"] == new  # not the cached answer
    with ThreadPoolExecutor(1) as pool:
        read = pool.submit(svc.request, receipt["request_id"])
        with pytest.raises(TimeoutError):
            read.result(timeout=PAUSE)  # a read of the store waits for the record
        go_on.set()
        assert read.result(timeout=WAIT)["status"] == "erased"
    assert svc.store.unsettled == 0
    assert (svc.store.directory / "erasure.journal").read_bytes() == b""


def test_answers_from_memory_equal_the_recorded_path(template: Path, tmp_path: Path):
    picks = [VICTIM, HOLDERS[0], HOLDERS[0], "nobody-1", HOLDERS[5], HOLDERS[9], VICTIM]
    shutil.copytree(template, tmp_path / "now")
    shutil.copytree(template, tmp_path / "recorded")
    now, recorded = _open(tmp_path / "now"), _open(tmp_path / "recorded", journal=False)
    try:
        for subject in picks:
            a, b = _erase(now, subject), _erase(recorded, subject)
            for k in ("status", "rows_erased", "datasets", "repeat", "subject_key"):
                assert a[k] == b[k], (subject, k)
            assert [(m["model"], m["revision"], m["action"]) for m in a["models"]] == [
                (m["model"], m["revision"], m["action"]) for m in b["models"]
            ]
            for name in ("risk", "score"):
                x, y = now.predict(name, PROBE), recorded.predict(name, PROBE)
                assert (x["revision"], x["predictions"]) == (y["revision"], y["predictions"])
        assert _versions(now) == _versions(recorded)
        kinds = [
            [k for (k,) in s.store._db.all("SELECT kind FROM audit_log ORDER BY seq")]
            for s in (now, recorded)
        ]
        assert kinds[0] == kinds[1]
        assert now.verify()["ok"]
    finally:
        now.close()
        recorded.close()


def test_a_busy_lock_makes_the_round_wait_and_then_answer_from_memory(svc: Service):
    """Sent down the recorded path, each erasure of a storm would hold the lock in turn and
    every round after it would find it held: the round waits on the loop instead."""
    sizes = _spy_groups(svc)
    recorded: list[str] = []
    real = svc.erase
    svc.erase = lambda *a, **k: recorded.append(a[0]) or real(*a, **k)  # type: ignore[method-assign]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with svc.lock:
            held.set()
            assert release.wait(WAIT)

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(hold)
        assert held.wait(WAIT)
        erasure = pool.submit(_round, svc, [VICTIM, HOLDERS[0]])
        with pytest.raises(TimeoutError):
            erasure.result(timeout=PAUSE)  # waits for the lock, on its loop
        assert sizes == []
        release.set()
        holder.result(timeout=WAIT)
        got = erasure.result(timeout=WAIT)
    assert [r["rows_erased"] for r in got] == [
        2,
        len([r for r in ROWS if r["subject_id"] == HOLDERS[0]]),
    ]
    assert sizes == [2] and recorded == []  # one group, from memory


def test_a_group_that_cannot_be_made_durable_leaves_nothing(svc: Service):
    before = svc.predict("risk", PROBE)
    _, forgot = svc.store.serving("risk")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("no space left on device")

    svc.store._journal.append = fail  # type: ignore[method-assign]
    with pytest.raises(OSError, match="no space"):
        _erase(svc, VICTIM)
    mv, est = svc.store.serving("risk")
    assert est is not forgot and mv.revision == before["revision"]  # rebuilt from the log
    again = svc.predict("risk", PROBE)
    assert again["revision"] == before["revision"]
    assert again["probabilities"] == before["probabilities"]
    counts = svc.access(VICTIM)["counts"]
    assert counts["rows"] == 2 and counts["erasure_requests"] == 0


def _spy_groups(svc: Service) -> list[int]:
    """The sizes of the groups the store was asked to answer from memory."""
    sizes: list[int] = []
    real = svc.store.erase_now

    def erase_now(calls: Any, **kwargs: Any) -> Any:
        sizes.append(len(calls))
        return real(calls, **kwargs)

    svc.store.erase_now = erase_now  # type: ignore[method-assign]
    return sizes


def _round(svc: Service, subjects: list[str]) -> list[Any]:
    async def together() -> list[Any]:
        return await asyncio.gather(
            *(svc.erase_async(s, "art17-1-b") for s in subjects), return_exceptions=True
        )

    return asyncio.run(together())


def test_the_requests_of_one_round_are_carried_out_together_each_its_own(svc: Service):
    sizes = _spy_groups(svc)
    before = svc.predict("risk", PROBE)["revision"]
    got = _round(svc, [VICTIM, HOLDERS[0], HOLDERS[3]])
    assert sizes == [3]  # one group
    assert [r["status"] for r in got] == ["erased"] * 3
    assert len({r["request_id"] for r in got}) == 3
    risk = [{a["model"]: a["revision"] for a in r["models"]}["risk"] for r in got]
    assert risk == [before + 1, before + 2, before + 3]  # in order, one revision each
    assert svc.predict("risk", PROBE)["revision"] == before + 3


def test_a_round_the_store_refuses_whole_goes_request_by_request(svc: Service):
    sizes = _spy_groups(svc)
    got = _round(svc, [VICTIM, HOLDERS[0], HOLDERS[0], "nobody-1", HOLDERS[3]])
    assert sizes == [5, 1, 1, 1, 1, 1]  # refused whole (a repeat, nothing held), then alone
    assert [(r["status"], r["repeat"]) for r in got] == [
        ("erased", False),
        ("erased", False),
        ("erased", True),  # the recorded path: a repeat of the request before it
        ("no_data", False),
        ("erased", False),
    ]
    assert got[2]["request_id"] == got[1]["request_id"]


def test_a_bad_request_fails_alone_and_its_round_goes_on(svc: Service):
    async def together() -> list[Any]:
        return await asyncio.gather(
            svc.erase_async(VICTIM, "art17-1-b"),
            svc.erase_async(HOLDERS[0], "because"),
            svc.erase_async("", "art17-1-b"),
            return_exceptions=True,
        )

    ok, bad_ground, bad_id = asyncio.run(together())
    assert ok["status"] == "erased"
    assert "legal ground" in str(bad_ground) and "subject" in str(bad_id).lower()
    assert svc.access(HOLDERS[0])["counts"]["rows"] > 0


def test_a_settle_that_fails_is_retried_and_the_answers_stand(svc: Service):
    svc.SETTLE_RETRY_S = 0.05  # type: ignore[misc]
    fails, real = [2], svc.store._journal.apply

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if fails[0]:
            fails[0] -= 1
            raise OSError("the disk hiccuped")
        return real(*args, **kwargs)

    svc.store._journal.apply = flaky  # type: ignore[method-assign]
    receipt = _erase(svc, VICTIM)
    deadline = time.monotonic() + WAIT
    while svc.store.unsettled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert svc.store.unsettled == 0 and fails == [0]  # recorded by the settler's third try
    assert "forget_settle_failures_total 2.0" in svc.metrics.render()
    assert svc.request(receipt["request_id"])["status"] == "erased"


def test_a_server_killed_before_the_record_commits_carries_the_answer_out_on_restart(
    template: Path, tmp_path: Path
):
    """Over HTTP: the erasure is answered (202), the server dies in the settler's transaction
    (``os._exit``: a power cut), and the restarted server holds the request and not the rows."""
    from store._faults import ENV, EXIT_CODE
    from tests.api.conftest import auth, launch, start_server, wait_ready

    shutil.copytree(template, tmp_path / "s")
    log = tmp_path / "server.log"
    proc = start_server(
        tmp_path / "s", log, "--purge-interval", "0", env={ENV: "journal.before_commit"}
    )
    url = f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    wait_ready(url, proc, log)
    r = httpx.post(
        url + "/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"), timeout=60
    )
    assert r.status_code == 202, r.text
    assert proc.wait(timeout=60) == EXIT_CODE  # the settler died before its commit
    srv = launch(tmp_path / "s", log, "--purge-interval", "0")
    try:
        got = srv.client.get(
            f"/v1/erasure-requests/{r.json()['request_id']}", headers=auth("audit")
        )
        assert got.status_code == 200 and got.json()["status"] == "completed"  # purged on open
        access = srv.client.post(
            "/v1/subjects/access", json={"subject_id": VICTIM}, headers=auth("audit")
        )
        counts = access.json()["counts"]
        assert counts["rows"] == 0 and counts["erasure_requests"] == 1
    finally:
        srv.stop()


def test_the_forest_catches_up_right_after_the_answer_and_predictions_between_forgot(svc: Service):
    """The compiled trees are refreshed on the loop right after the answer, not before it,
    and the refresh leaves no mark of where the forgotten rows went; a prediction in between
    scores the model that forgot (its node arrays, or a refresh of its own)."""
    est = svc._serving[("risk", 1)][1]
    X = np.array([[PROBE[0][f] for f in FEATURES]])
    est.predict_proba(X)  # compiled
    seen: dict[str, Any] = {}

    async def erase_and_look() -> None:
        first = await svc.erase_async(VICTIM, "art17-1-b")
        seen["stale at the answer"] = est._compiled.stale  # the refresh comes after
        await asyncio.sleep(0)  # one turn of the loop: the refresh ran
        await asyncio.sleep(0)
        seen["stale after"] = est._compiled.stale
        second = await svc.erase_async(HOLDERS[0], "art17-1-b")
        seen["between"] = svc.predict("risk", PROBE)
        seen["receipts"] = [first, second]

    asyncio.run(erase_and_look())
    assert [r["status"] for r in seen["receipts"]] == ["erased", "erased"]
    assert seen["stale at the answer"] and not seen["stale after"]
    assert not est._compiled.touched.any() and est._compiled.leaf_n[0] == 0
    new = {a["model"]: a["revision"] for a in seen["receipts"][1]["models"]}["risk"]
    assert seen["between"]["revision"] == new
    assert seen["between"]["probabilities"] == est._node_proba(X).tolist()
    assert svc.predict("risk", PROBE)["probabilities"] == est._node_proba(X).tolist()


def test_a_refresh_that_finds_the_gate_closed_waits_for_it_on_the_loop(svc: Service):
    """Between the answer and the refresh a compaction or a recorded erasure may hold the
    model's gate: the refresh never runs beside it, and runs once the gate opens."""
    est = svc._serving[("risk", 1)][1]
    est.predict_proba(np.zeros((1, len(FEATURES))))
    gate, seen = svc._gates["risk"], []

    async def erase_and_look() -> None:
        await svc.erase_async(VICTIM, "art17-1-b")
        assert gate.acquire(blocking=False)  # before the refresh's turn
        asyncio.get_running_loop().call_later(0.05, gate.release)
        await asyncio.sleep(0.02)
        seen.append(est._compiled.stale)
        await asyncio.sleep(0.1)
        seen.append(est._compiled.stale)

    asyncio.run(erase_and_look())
    assert seen == [True, False]
