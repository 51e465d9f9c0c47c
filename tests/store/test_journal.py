"""The erasure journal: erasures answered from memory are what the recorded path makes of them.

The property: any sequence of requests, cut into groups anyhow, each group answered by
``erase_now`` (or, where it must, by ``erase_many``) and settled at any points, leaves the
store where one request at a time leaves it — receipts, models byte for byte, rows, audit
entries in order. A crash after the journal line is durable loses nothing answered (the
reopened store replays it); a crash before it loses nothing either (nothing was answered).
The journal never holds a raw subject id or a value, and is empty once settled.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import ModelStore
from store import journal as journal_mod
from store._faults import ENV, EXIT_CODE
from store.errors import StoreCorruptError, StoreReadOnlyError
from store.journal import NotNow
from tests.store.helpers import VICTIM, needles, scan
from tests.store.test_group_erasure import ROWS, _scrub, _summary, _template

REPO = Path(__file__).resolve().parents[2]
HOLDERS = sorted({r["subject_id"] for r in ROWS})
SUBJECTS = [*HOLDERS, "nobody-1"]


def _store(directory: Path) -> ModelStore:
    shutil.copytree(_template(), directory)
    st_ = ModelStore.open(directory, evidence_rate=0)
    st_.datasets()  # what a server's warm-up reads: the catalogue, then the answers need none
    return st_


def _state(st_: ModelStore) -> tuple:
    models = tuple(
        (mv.name, mv.version, mv.status, mv.revision, st_.estimator(mv.name, mv.version).to_bytes())
        for mv in st_.list_models()
    )
    audit = [
        (kind, _scrub(json.loads(payload)))
        for kind, payload in st_._db.all("SELECT kind, payload_json FROM audit_log ORDER BY seq")
    ]
    requests = st_._db.all(
        "SELECT subject_key, status, rows_erased, datasets_json FROM erasure_requests "
        "ORDER BY received_at, request_id"
    )
    _, X, y = st_.training_data("score", 1)
    return models, audit, sorted(requests), X.tobytes(), y.tobytes()


def _journal(directory: Path) -> bytes:
    path = directory / journal_mod.FILE
    return path.read_bytes() if path.exists() else b""


def _call(s: str) -> dict[str, Any]:
    return {"subject_id": s, "legal_ground": "art17-1-b", "requested_by": "t"}


def _died_before_the_record(directory: Path) -> bytes:
    """The journal line of an erasure of the victim answered in a copy of the template at
    ``directory``, whose process then died before recording it: the copy is put back as the
    template left it, the line returned."""
    st_ = _store(directory)
    st_.erase_now([_call(VICTIM)])
    line = (directory / journal_mod.FILE).read_bytes()
    st_._journal._queue.clear()  # as if the process died here: nothing settles on close
    st_._journal._keys.clear()
    st_.close()
    shutil.rmtree(directory)
    shutil.copytree(_template(), directory)
    return line


@settings(max_examples=12, deadline=None)
@given(
    picks=st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=10),
    cuts=st.lists(st.integers(1, 3), min_size=1, max_size=10),
    settles=st.lists(st.booleans(), min_size=1, max_size=10),
)
def test_answered_from_memory_equals_the_recorded_path(
    picks: list[str], cuts: list[int], settles: list[bool]
):
    with tempfile.TemporaryDirectory() as tmp:
        one, now = _store(Path(tmp) / "one"), _store(Path(tmp) / "now")
        alone = [
            one.erase(s, legal_ground="art17-1-b", purge=False, requested_by="t") for s in picks
        ]
        got, at = [], 0
        for i, size in enumerate(cuts * len(picks)):
            if at >= len(picks):
                break
            calls = [_call(s) for s in picks[at : at + size]]
            try:
                got += now.erase_now(calls)
            except NotNow:
                got += now.erase_many(calls)  # applies the journal first, as every read does
            if settles[i % len(settles)]:
                now.settle()
            at += size
        assert [_summary(r) for r in got] == [_summary(r) for r in alone]
        assert _state(now) == _state(one)  # reads settle first
        assert now.unsettled == 0 and _journal(Path(tmp) / "now") == b""
        assert now.verify_audit_log().ok
        for s_ in (one, now):
            s_.purge()
        assert _state(now) == _state(one)
        one.close()
        now.close()


def test_what_must_take_the_recorded_path_is_refused_before_anything_changes(tmp_path: Path):
    st_ = _store(tmp_path / "s")
    before = _state(st_)
    with pytest.raises(NotNow):  # nothing held under the id
        st_.erase_now([_call("nobody-1")])
    with pytest.raises(NotNow):  # named twice in one group
        st_.erase_now([_call(HOLDERS[0]), _call(HOLDERS[0])])
    assert st_.unsettled == 0 and _state(st_) == before
    (r,) = st_.erase_now([_call(HOLDERS[0])])
    assert r.status == "erased" and r.rows_erased > 0
    with pytest.raises(NotNow):  # erased by a group not yet recorded
        st_.erase_now([_call(HOLDERS[0])])
    assert st_.unsettled == 1
    (again,) = st_.erase_many([_call(HOLDERS[0])])  # the recorded path: a repeat of it
    assert again.repeat and again.request_id == r.request_id and st_.unsettled == 0
    with pytest.raises(NotNow):  # erased and recorded: no rows left
        st_.erase_now([_call(HOLDERS[0])])
    st_.close()


def test_a_cold_store_reads_what_it_needs_unless_a_group_awaits_its_record(tmp_path: Path):
    shutil.copytree(_template(), tmp_path / "s")
    with ModelStore.open(tmp_path / "s", evidence_rate=0) as st_:
        assert st_.erase_now([_call(HOLDERS[0])])[0].rows_erased > 0  # nothing to record: read
        st_._db.cache.clear()  # as a purge or a new dataset leaves it, with a group queued
        with pytest.raises(NotNow, match="catalogue"):
            st_.erase_now([_call(HOLDERS[1])])  # the settler may hold the connection
        st_.settle()
        assert st_.erase_now([_call(HOLDERS[1])])[0].rows_erased > 0


def test_reads_see_answered_erasures(tmp_path: Path):
    st_ = _store(tmp_path / "s")
    (r,) = st_.erase_now([_call(VICTIM)])
    assert st_.unsettled == 1
    assert st_.erasure_request(r.request_id).status == "erased"  # recorded first
    assert st_.unsettled == 0
    assert st_.find_subject(VICTIM) == {}
    st_.close()


def test_a_failed_record_keeps_the_answers_and_records_them_later(tmp_path: Path):
    ref = _store(tmp_path / "ref")
    ref.erase_many([_call(VICTIM), _call(HOLDERS[1])])
    st_ = _store(tmp_path / "s")
    st_.erase_now([_call(VICTIM)])
    st_.erase_now([_call(HOLDERS[1])])
    forgot = {mv.name: st_.estimator(mv.name, mv.version) for mv in st_._registry.versions()}

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    st_._registry.log = fail  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        st_.settle()
    assert st_.unsettled == 2  # nothing recorded, nothing lost; the models stay as answered
    assert all(st_.estimator(n, 1) is est for n, est in forgot.items())
    del st_._registry.log
    assert st_.settle() == 2
    assert _state(st_) == _state(ref)
    ref.close()
    st_.close()


def test_the_journal_holds_no_raw_id_nor_value_and_is_empty_once_settled(tmp_path: Path):
    st_ = _store(tmp_path / "s")
    st_.erase_now([_call(VICTIM)])
    path = tmp_path / "s" / journal_mod.FILE
    line = path.read_bytes()
    assert line.endswith(b"\n") and st_.subject_key(VICTIM).encode() in line
    assert not [hit for hit in scan(tmp_path / "s", needles()) if journal_mod.FILE in hit]
    st_.settle()
    assert path.read_bytes() == b""
    st_.close()
    assert scan(tmp_path / "s", needles()) == []  # closed: purged and compacted


CHILD = (
    "import sys\n"
    "from store import ModelStore\n"
    "st = ModelStore.open(sys.argv[1], evidence_rate=0)\n"
    "st.datasets()\n"
    "calls = [{'subject_id': s, 'legal_ground': 'art17-1-b', 'requested_by': 't'}\n"
    "         for s in sys.argv[2:]]\n"
    "st.erase_now(calls[:1])\n"
    "print('answered', flush=True)\n"
    "st.erase_now(calls[1:])\n"
    "print('answered', flush=True)\n"
    "st.settle()\n"
    "st.close()\n"
)


@pytest.mark.parametrize(
    "point", ["journal.appended", "journal.before_commit", "journal.after_commit"]
)
def test_a_crash_loses_no_answered_erasure(tmp_path: Path, point: str):
    ref = _store(tmp_path / "ref")
    ref.erase_many([_call(VICTIM)])
    ref.erase_many([_call(HOLDERS[2]), _call(HOLDERS[3])])
    ref.purge()  # as the reopened store purges on open
    shutil.copytree(_template(), tmp_path / "s")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "s"), VICTIM, HOLDERS[2], HOLDERS[3]],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, ENV: point},
        timeout=600,
    )
    assert child.returncode == EXIT_CODE, child.stderr
    answered = child.stdout.count("answered")
    with ModelStore.open(tmp_path / "s", evidence_rate=0) as st_:
        assert st_.unsettled == 0 and (tmp_path / "s" / journal_mod.FILE).read_bytes() == b""
        if point == "journal.appended":  # died after the first line's fsync, unanswered
            assert answered == 0
            assert st_.find_subject(VICTIM) == {}  # durable, so carried out on reopen
            assert st_.find_subject(HOLDERS[2])  # never journaled: still held
            with tempfile.TemporaryDirectory() as tmp:
                one = _store(Path(tmp) / "one")
                one.erase_many([_call(VICTIM)])
                one.purge()  # as the reopened store purged on open
                assert _state(st_) == _state(one)
                one.close()
        else:
            assert answered == 2
            assert _state(st_) == _state(ref)
        assert st_.verify_audit_log().ok
    ref.close()


def test_a_torn_last_line_was_never_answered_and_is_dropped(tmp_path: Path):
    line = _died_before_the_record(tmp_path / "s")
    (tmp_path / "s" / journal_mod.FILE).write_bytes(line + line[: len(line) // 2])
    with ModelStore.open(tmp_path / "s", evidence_rate=0) as again:
        assert again.find_subject(VICTIM) == {}  # the whole line replayed
        assert [r[0] for r in again._db.all("SELECT rows_erased FROM erasure_requests")] == [2]


def test_a_read_only_open_refuses_a_store_with_answers_not_yet_recorded(tmp_path: Path):
    """``forget verify`` and the reports open read-only: they would not see the journaled
    erasures of a server that died before recording them, so they say so instead."""
    st_ = _store(tmp_path / "s")
    st_.erase_now([_call(VICTIM)])
    line = (tmp_path / "s" / journal_mod.FILE).read_bytes()
    st_.close()  # recorded: the line left the file
    (tmp_path / "s" / journal_mod.FILE).write_bytes(line)  # a crash after the record
    with ModelStore.open(tmp_path / "s", read_only=True) as ro:  # recorded: nothing to miss
        assert ro.find_subject(VICTIM) == {}
    shutil.copytree(_template(), tmp_path / "t")
    (tmp_path / "t" / journal_mod.FILE).write_bytes(line)  # a crash before the record
    with pytest.raises(StoreReadOnlyError, match="not yet recorded"):
        ModelStore.open(tmp_path / "t", read_only=True)
    with ModelStore.open(tmp_path / "t", evidence_rate=0):  # records it
        pass
    with ModelStore.open(tmp_path / "t", read_only=True) as ro:
        assert ro.find_subject(VICTIM) == {}


def test_a_damaged_line_is_refused_not_skipped(tmp_path: Path):
    """Only the last line can be torn (no newline: never answered). A damaged line before it
    may be an answered erasure: the store refuses to open rather than drop it."""
    line = _died_before_the_record(tmp_path / "s")
    for damaged in (b"{not json\n" + line, line[:-1] + b"\n" + line[:-1]):
        shutil.rmtree(tmp_path / "s")
        shutil.copytree(_template(), tmp_path / "s")
        (tmp_path / "s" / journal_mod.FILE).write_bytes(damaged)
        if damaged.startswith(b"{not"):
            with pytest.raises(StoreCorruptError, match="line 1"):
                ModelStore.open(tmp_path / "s", evidence_rate=0)
        else:  # a whole entry without its newline last: torn, dropped; the first replayed
            with ModelStore.open(tmp_path / "s", evidence_rate=0) as again:
                assert again.find_subject(VICTIM) == {}
                assert len(again._db.all("SELECT 1 FROM erasure_requests")) == 1
