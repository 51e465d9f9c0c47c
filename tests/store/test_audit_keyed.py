"""The keyed audit chain, as someone with write access to the DuckDB file but not the key file
would attack it; the migration that keys older stores; and the read-only open that ``forget
verify`` uses, which changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hyp

from forget.cli import main as cli
from store import ModelStore, StoreNotFoundError, StoreReadOnlyError, audit, migrations
from store.audit import GENESIS, KEYED, AuditHead, AuditKey, canonical, chain_hash
from store.subjects import SubjectKeys
from tests.store.helpers import FEATURES, VICTIM, populate

REPO = Path(__file__).resolve().parents[2]


def rows(st: ModelStore) -> list[tuple]:
    return st._db.all("SELECT * FROM audit_log ORDER BY seq")


def forge(st: ModelStore, kind: str, payload: dict, digest: Callable[..., str]) -> int:
    """Append an entry as an attacker would: right seq, linked, hashed by ``digest``."""
    seq, _, _, _, _, prev = rows(st)[-1]
    ts = "2030-01-01T00:00:00.000000+00:00"
    body = json.loads(canonical(payload))
    st._db.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
        [seq + 1, ts, kind, canonical(body), prev, digest(prev, seq + 1, ts, kind, body)],
    )
    return int(seq + 1)


def test_a_forged_entry_fails_with_a_plain_hash_or_another_key(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert st.verify_audit_log().ok
    saved = (rows(st), st._db.all("SELECT value FROM store_meta WHERE key = 'audit_head'")[0][0])
    fake = {"request_id": r.request_id, "purge": "artifacts rewritten, database compacted"}
    other = AuditKey(b"x" * 32, b"y" * 32)
    for digest in (chain_hash, other.entry_hash):  # the old scheme, and a key of one's own
        seq = forge(st, "erasure.completed", fake, digest)
        bad = st.verify_audit_log()
        assert not bad.ok and bad.first_bad_seq == seq
        assert "not the keyed hash" in str(bad.reason)
        # moving the sealed head along takes a seal only the key file can make
        forged_head = AuditHead(seq, rows(st)[-1][5])
        st._db.execute(
            "UPDATE store_meta SET value = ? WHERE key = 'audit_head'",
            [f"{seq}:{forged_head.entry_hash}:{other.seal(forged_head)}"],
        )
        bad = st.verify_audit_log()
        assert not bad.ok and any("does not verify: it was forged" in p for p in bad.problems)
        st._db.execute("DELETE FROM audit_log WHERE seq = ?", [seq])
        st._db.execute("UPDATE store_meta SET value = ? WHERE key = 'audit_head'", [saved[1]])
        assert (rows(st), st.verify_audit_log().ok) == (saved[0], True)


def test_an_emptied_log_is_reported_and_stays_reported(store_dir: Path) -> None:
    with ModelStore.open(store_dir) as st:
        populate(st)
        st.erase(VICTIM, legal_ground="art17-1-b")
        st._db.execute("DELETE FROM audit_log")
        v = st.verify_audit_log()
        assert not v.ok and v.entries == 0 and "the audit log is empty" in str(v.reason)
        assert any("erasure requests are not in the audit log" in p for p in v.problems)
    with ModelStore.open(store_dir) as st:  # reopening writes no fresh chain
        assert not st.verify_audit_log().ok
        st.erase("subj-001", legal_ground="art17-1-b")
        after = st.verify_audit_log()
        assert not after.ok and after.first_bad_seq == 1  # the chain has a hole where 1.. were


def test_a_recreated_log_is_reported(store_dir: Path) -> None:
    """The log and its sealed head deleted: the store never starts a clean chain again."""
    with ModelStore.open(store_dir) as st:
        populate(st)
        st._db.execute("DELETE FROM audit_log")
        st._db.execute("DELETE FROM store_meta WHERE key = 'audit_head'")
        v = st.verify_audit_log()
        assert not v.ok and "sealed audit head is missing" in str(v.reason)
        assert {p.split(" are ")[0] for p in v.problems if " are not in " in p} == {
            "2 model versions",
            "1 datasets",
        }
    with ModelStore.open(store_dir) as st:
        st.erase(VICTIM, legal_ground="art17-1-b")
        kinds = [r[2] for r in rows(st)]
        assert kinds[0] == "audit.head_missing" and "store.created" not in kinds
        v = st.verify_audit_log()
        assert not v.ok and "the log was recreated" in str(v.reason)


def test_a_cut_log_with_its_head_removed_is_caught_for_ever(populated: ModelStore) -> None:
    st = populated
    st.erase(VICTIM, legal_ground="art17-1-b")
    n = len(rows(st))
    st._db.execute("DELETE FROM audit_log WHERE seq > ?", [n - 3])
    st._db.execute("DELETE FROM store_meta WHERE key = 'audit_head'")
    st._db.cache.clear()
    assert not st.verify_audit_log().ok
    st.erase("subj-001", legal_ground="art17-1-b")  # the store writes on, and says what it found
    v = st.verify_audit_log()
    assert not v.ok and v.first_bad_seq == n - 2
    assert "audit head missing or forged" in str(v.reason)
    missing = [r for r in rows(st) if r[2] == "audit.head_missing"]
    assert [json.loads(r[3])["continues_from"] for r in missing] == [n - 3]


def test_a_rolled_back_database_needs_an_exported_head(tmp_path: Path) -> None:
    """The documented limit: a copy of the whole file, taken earlier, is a genuine state."""
    live, old = tmp_path / "live", tmp_path / "old"
    with ModelStore.open(live) as st:
        populate(st)
    shutil.copytree(live, old)
    with ModelStore.open(live) as st:
        st.erase(VICTIM, legal_ground="art17-1-b")
        exported = st.audit_head()
    shutil.rmtree(live)
    shutil.copytree(old, live)  # the directory as it was (the key file has not changed)
    with ModelStore.open(live) as st:
        assert st.verify_audit_log().ok  # nothing in the directory tells the old state apart
        v = st.verify_audit_log(expected_head=exported)
        assert not v.ok and "before the expected head" in str(v.reason)


def unkey(directory: Path, tamper: bool = False) -> AuditHead:
    """Turn a store into one written before keying: plain SHA-256 chain, no sealed head,
    migrations 4 to 6 unrecorded; the unkeyed head."""
    with ModelStore.open(directory) as st:
        populate(st)
        st.erase(VICTIM, legal_ground="art17-1-b", purge=False)  # older code kept row ids
        db = st._db
        prev = GENESIS
        for seq, ts, kind, payload, _, _ in rows(st):
            digest = chain_hash(prev, seq, ts, kind, json.loads(payload))
            db.execute(
                "UPDATE audit_log SET prev_hash = ?, entry_hash = ? WHERE seq = ?",
                [prev, digest, seq],
            )
            prev = digest
        head = AuditHead(len(rows(st)), prev)
        if tamper:
            db.execute("UPDATE audit_log SET ts = 'yesterday' WHERE seq = 2")
        db.execute("DELETE FROM store_meta WHERE key = 'audit_head'")
        db.execute("DELETE FROM schema_migrations WHERE number >= 4")
        db.execute("ALTER TABLE forget_log DROP COLUMN rows_forgotten")
        db.execute("ALTER TABLE erasure_requests DROP COLUMN requested_by")
        db.execute("ALTER TABLE erasure_requests DROP COLUMN handled_by")
        st._closed = True  # no purge or checkpoint on the way out: they would audit
        db.close()
    return head


def test_the_migration_keys_an_older_store_and_says_so(store_dir: Path) -> None:
    old_head = unkey(store_dir)
    later = [n for n in sorted(migrations.MIGRATIONS) if n >= 4]
    with pytest.raises(StoreReadOnlyError, match=re.escape(f"needs migrations {later}")):
        ModelStore.open(store_dir, read_only=True)
    with ModelStore.open(store_dir) as st:
        assert st.verify_audit_log().ok  # (the open then purged the erasure: more entries)
        (seq, _, kind, payload, _, _) = rows(st)[old_head.seq]
        assert kind == KEYED and seq == old_head.seq + 1
        doc = json.loads(payload)
        assert doc["unkeyed_verified"] and doc["unkeyed_head"] == {
            "seq": old_head.seq,
            "entry_hash": old_head.entry_hash,
        }
        assert st.verify_audit_log(expected_head=old_head).ok  # heads exported before keying
        wrong = AuditHead(old_head.seq, "f" * 64)
        assert not st.verify_audit_log(expected_head=wrong).ok
        lineage = st.get_model("risk").lineage
        assert [r.rows_forgotten for r in lineage] == [2]
        (rid,) = st._db.one("SELECT request_id FROM erasure_requests")
        report = st.erasure_report(rid)  # made before requesters were recorded: said so
        assert report["requested_by"].startswith("not recorded (request made before")
        assert report["handled_by"].startswith("the forget store")
        # a forged entry now fails, as in a store created keyed
        forge(st, "erasure.completed", {"request_id": "er_0"}, chain_hash)
        assert not st.verify_audit_log().ok


def test_a_broken_unkeyed_chain_is_not_laundered_by_keying(store_dir: Path) -> None:
    unkey(store_dir, tamper=True)
    with ModelStore.open(store_dir) as st:
        v = st.verify_audit_log()
        assert not v.ok and "before keying, the unkeyed chain did not verify" in str(v.reason)
        assert "seq 2" in str(v.reason)


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(directory)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_forget_verify_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Even a store that a crash left with a WAL, an unpurged erasure, a pending checkpoint
    and a stray upload copy: verify reads it (the WAL in memory) and writes nothing."""
    directory = tmp_path / "s"
    with ModelStore.open(directory) as st:
        populate(st)
    crash = (
        "import os, sys\n"
        "from store import ModelStore\n"
        "st = ModelStore.open(sys.argv[1])\n"
        "st.erase(sys.argv[2], legal_ground='art17-1-b', purge=False)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(directory), VICTIM], cwd=REPO, check=True)
    (directory / "tmpab12cd34.csv").write_text("subject_id,a\nleftover,1\n")
    assert (directory / "store.duckdb.wal").exists()
    before = snapshot(directory)
    assert cli(["verify", "--store", str(directory)]) == 0
    assert "audit log verified: 7 entries" in capsys.readouterr().out
    assert snapshot(directory) == before
    # the same store opened for writing recovers, purges and sweeps: it does change things
    with ModelStore.open(directory) as st:
        assert st.verify_audit_log().ok and st.find_subject(VICTIM) == {}
    assert snapshot(directory) != before and not (directory / "tmpab12cd34.csv").exists()


def test_forget_verify_reports_a_broken_log(store_dir: Path, capsys: pytest.CaptureFixture) -> None:
    with ModelStore.open(store_dir) as st:
        populate(st)
        st._db.execute("DELETE FROM audit_log WHERE seq = 3")
    assert cli(["verify", "--store", str(store_dir)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN" in out and "first bad entry 3" in out and "sealed head" in out


def test_a_read_only_store_reads_and_refuses_to_write(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b")
    head, held = st.audit_head(), st.find_subject("subj-001")
    directory = st.directory
    st.close()
    before = snapshot(directory)
    with ModelStore.open(directory, read_only=True) as ro:
        assert ro.read_only and ro.verify_audit_log(expected_head=head).ok
        assert ro.erasure_report(r.request_id)["status"] == "completed"
        assert ro.find_subject("subj-001") == held
        assert [m.name for m in ro.list_models()] == ["risk", "score"]
        assert ro.summary_report()["requests"] == 1
        for attempt in (
            lambda: ro.erase("subj-001", legal_ground="art17-1-b"),
            lambda: ro.ingest("more", [{"sid": "a", "v": 1.0}], subject_column="sid"),
            lambda: ro.train("t", dataset="people", estimator=None, label="label",
                             features=FEATURES),
            lambda: ro.purge(),
            lambda: ro.predict("risk", [[0.0, 0.0, 0.0]]),
        ):  # fmt: skip
            with pytest.raises(StoreReadOnlyError, match="read-only"):
                attempt()
    assert snapshot(directory) == before
    with pytest.raises(StoreNotFoundError, match="no store in"):
        ModelStore.open(directory / "nowhere", read_only=True)
    assert not (directory / "nowhere").exists()


def test_subkeys_are_no_pseudonym_of_any_id() -> None:
    """Pseudonyms are written to the database: no subject id may have a subkey for one."""
    keys = SubjectKeys(os.urandom(32))
    for purpose in ("audit.entry.v1", "audit.head.v1"):
        sub = keys.derive(purpose)
        assert len(sub) == 32
        for raw in (purpose, "derive\x00" + purpose, "\xffderive\x00" + purpose):
            assert keys.subject(raw).key != "sk_" + sub.hex()
    assert min(migrations.MIGRATIONS) == migrations.FIRST


_PAYLOADS = hyp.recursive(
    hyp.none()
    | hyp.booleans()
    | hyp.integers()
    | hyp.floats(allow_nan=False, allow_infinity=False)
    | hyp.text(),
    lambda inner: (
        hyp.lists(inner, max_size=3)
        | hyp.tuples(inner, inner)
        | hyp.dictionaries(hyp.text(max_size=5), inner, max_size=3)
        | hyp.dictionaries(hyp.integers(), inner, max_size=3)  # one key type: sortable
    ),
    max_leaves=12,
)


@given(
    payload=_PAYLOADS,
    seq=hyp.integers(1, 2**40),
    ts=hyp.text(max_size=30),
    kind=hyp.text(max_size=20),
)
@settings(max_examples=200, deadline=None)
def test_the_assembled_entry_body_is_the_canonical_one(payload, seq, ts, kind):
    """append_many hashes the payload's canonical text put together with the entry's fields;
    verification hashes canonical([seq, ts, kind, payload as read back]): the same bytes."""
    key = AuditKey(b"e" * 32, b"h" * 32)
    body = json.loads(canonical({"p": payload}))
    assembled = key.entry_hash_of(GENESIS, seq, ts, kind, canonical(body))
    assert assembled == key.entry_hash(GENESIS, seq, ts, kind, body)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelStore]:
    st = ModelStore.open(tmp_path_factory.mktemp("chain") / "store")
    try:
        yield st
    finally:
        st.close()


@given(
    payloads=hyp.lists(hyp.dictionaries(hyp.text(max_size=5), _PAYLOADS, max_size=4), max_size=3)
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_written_entries_verify_whatever_their_keys(chain: ModelStore, payloads) -> None:
    """``audit.write`` encodes a payload once when its keys are strings, and again after a
    round trip when some are not (integers become strings and sort anew): either way the
    entry reads back as written and the chain verifies."""
    db = chain._db
    with db.atomic():
        written = audit.write(db, [("test.entry", p) for p in payloads])
    for (seq, _, _, text, _, _), p in zip(written, payloads, strict=True):
        assert text == canonical(json.loads(canonical(p)))
        stored = db.one("SELECT payload_json FROM audit_log WHERE seq = ?", [seq])
        assert stored is not None and stored[0] == text
    assert chain.verify_audit_log().ok
