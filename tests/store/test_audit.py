"""The audit log's keyed chain: it verifies, and any edit, removal or reordering breaks it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import AuditHead, ModelStore
from store.audit import GENESIS, canonical, key_of
from tests.store.helpers import VICTIM, populate


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelStore]:
    store = ModelStore.open(tmp_path_factory.mktemp("audit") / "store")
    populate(store)
    store.erase(VICTIM, legal_ground="art17-1-b")
    store.erase("subj-002", legal_ground="art17-1-a", purge=False)
    try:
        yield store
    finally:
        store.close()


def rows(store: ModelStore) -> list[tuple]:
    return store._db.all("SELECT * FROM audit_log ORDER BY seq")


def test_chain_verifies_and_holds_no_raw_ids(audited: ModelStore) -> None:
    result = audited.verify_audit_log()
    assert result.ok and result.first_bad_seq is None and result.reason is None
    assert result.entries == len(rows(audited)) >= 8
    assert result.head == audited.audit_head()
    prev, key = GENESIS, key_of(audited._db)
    for seq, ts, kind, payload, prev_hash, entry_hash in rows(audited):
        assert prev_hash == prev
        assert entry_hash == key.entry_hash(prev, seq, ts, kind, json.loads(payload))
        assert payload == canonical(json.loads(payload))
        assert VICTIM not in payload and "subj-002" not in payload
        prev = entry_hash
    kinds = [r[2] for r in rows(audited)]
    assert kinds[0] == "store.created" and "erasure.committed" in kinds


def _mutations(store: ModelStore):
    n = len(rows(store))
    columns = ["seq", "ts", "kind", "payload_json", "prev_hash", "entry_hash"]
    return st.tuples(st.integers(1, n), st.sampled_from(columns), st.integers(0, 2**31))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_changed_value_breaks_verification(audited: ModelStore, data) -> None:
    seq, column, salt = data.draw(_mutations(audited))
    db = audited._db
    (old,) = db.one(f"SELECT {column} FROM audit_log WHERE seq = ?", [seq])
    if column == "seq":
        new = -1 - salt if salt % 2 else 10_000 + salt  # moves it before or after the rest
    elif column == "payload_json":
        payload = json.loads(old)
        payload["tampered"] = salt
        new = canonical(payload)
    elif column in ("prev_hash", "entry_hash"):
        new = format(salt if format(salt, "064x") != old else salt + 1, "064x")
    else:
        new = f"{old}{salt}"
    db.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = ?", [new, seq])
    try:
        result = audited.verify_audit_log()
        assert not result.ok and result.reason
        assert result.first_bad_seq is not None and result.first_bad_seq <= max(seq, 1)
    finally:
        where = new if column == "seq" else seq
        db.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = ?", [old, where])
    assert audited.verify_audit_log().ok


def test_removed_or_swapped_entries_are_caught(audited: ModelStore) -> None:
    db = audited._db
    saved = rows(audited)
    try:
        db.execute("DELETE FROM audit_log WHERE seq = 3")
        bad = audited.verify_audit_log()
        assert not bad.ok and bad.first_bad_seq == 3
        db.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)", list(saved[2]))
        db.execute("UPDATE audit_log SET seq = -5 WHERE seq = 4")
        db.execute("UPDATE audit_log SET seq = 4 WHERE seq = 5")
        db.execute("UPDATE audit_log SET seq = 5 WHERE seq = -5")
        assert not audited.verify_audit_log().ok
    finally:
        db.execute("DELETE FROM audit_log")
        for r in saved:
            db.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)", list(r))
    assert audited.verify_audit_log().ok


def test_truncation_is_caught_by_the_sealed_head_and_an_exported_one(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "s") as store:
        populate(store)
        head = store.audit_head()
        assert isinstance(head, AuditHead) and head.seq > 1
        store._db.execute("DELETE FROM audit_log WHERE seq = ?", [head.seq])
        cut = store.verify_audit_log()  # the sealed head outside the log says where it ends
        assert not cut.ok and f"its sealed head is at seq {head.seq}" in str(cut.reason)
        bad = store.verify_audit_log(expected_head=head)  # and so does a head exported earlier
        assert not bad.ok and any("expected head" in p for p in bad.problems)
