"""The audit log: an insert-only hash chain in the ``audit_log`` table.

Each entry carries ``seq`` (1, 2, ...), ``prev_hash`` (the previous entry's hash; 64 zeros for
the first) and ``entry_hash = sha256(prev_hash || canonical_json([seq, ts, kind, payload]))``.
Editing, removing or reordering any entry breaks the chain; cutting entries off the end is
caught by comparing with a head exported earlier (:func:`head`). Payloads hold pseudonyms
only, never a raw subject id. This module is the only writer of the table.

>>> canonical({"b": 1, "a": [1.5, "x"]})
'{"a":[1.5,"x"],"b":1}'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from store._clock import now
from store.db import Database

GENESIS = "0" * 64
_HEAD = "audit.head"


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def chain_hash(prev_hash: str, seq: int, ts: str, kind: str, payload: Any) -> str:
    body = canonical([seq, ts, kind, payload])
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    ts: str
    kind: str
    payload: Mapping[str, Any]
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class AuditHead:
    """The newest entry's position and hash; keep it outside the store to detect truncation."""

    seq: int
    entry_hash: str


@dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify` found: ``ok``, entries checked, the head, and the first bad entry."""

    ok: bool
    entries: int
    head: AuditHead
    first_bad_seq: int | None = None
    reason: str | None = None


def append(db: Database, kind: str, payload: Mapping[str, Any]) -> AuditEntry:
    """Append one entry; call inside ``db.atomic()`` so it commits with what it records."""
    return append_many(db, [(kind, payload)])[0]


def append_many(db: Database, entries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[AuditEntry]:
    """Append entries in order with one read of the head and one insert (inside ``atomic()``)."""
    if not db.in_transaction:
        raise RuntimeError("audit entries are appended inside the transaction they describe")
    current = head(db)
    seq, prev = current.seq, current.entry_hash
    out = []
    for kind, payload in entries:
        seq += 1
        ts = now()
        body = json.loads(canonical(dict(payload)))  # refuses what JSON cannot hold
        digest = chain_hash(prev, seq, ts, kind, body)
        out.append(AuditEntry(seq, ts, kind, body, prev, digest))
        prev = digest
    if out:
        db.execute(
            "INSERT INTO audit_log VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(out)),
            [
                x
                for e in out
                for x in (e.seq, e.ts, e.kind, canonical(e.payload), e.prev_hash, e.entry_hash)
            ],
        )
        db.cache[_HEAD] = AuditHead(seq, prev)  # a rollback clears it with the entries
    return out


def head(db: Database) -> AuditHead:
    """The newest entry's seq and hash (kept in memory after the first read)."""
    cached = db.cache.get(_HEAD)
    if cached is None:
        last = db.one("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        cached = AuditHead(int(last[0]), str(last[1])) if last else AuditHead(0, GENESIS)
        db.cache[_HEAD] = cached
    return cached


def entries_for_request(db: Database, request_id: str) -> list[AuditEntry]:
    rows = db.all(
        "SELECT seq, ts, kind, payload_json, prev_hash, entry_hash FROM audit_log "
        "WHERE json_extract_string(payload_json, '$.request_id') = ? ORDER BY seq",
        [request_id],
    )
    return [AuditEntry(s, t, k, json.loads(p), ph, eh) for s, t, k, p, ph, eh in rows]


def verify(db: Database, expected_head: AuditHead | None = None) -> AuditVerification:
    """Recompute the chain; report the first entry that was edited, removed or moved."""
    db.cache.pop(_HEAD, None)  # read the table afresh, whatever was done to it
    rows = db.all(
        "SELECT seq, ts, kind, payload_json, prev_hash, entry_hash FROM audit_log ORDER BY seq"
    )
    prev = GENESIS
    for i, (seq, ts, kind, payload_json, prev_hash, entry_hash) in enumerate(rows):
        bad = _check_entry(i + 1, prev, seq, ts, kind, payload_json, prev_hash, entry_hash)
        if bad is not None:
            return AuditVerification(False, i, AuditHead(i, prev), i + 1, bad)
        prev = entry_hash
    found = AuditHead(len(rows), prev)
    if expected_head is not None and expected_head.seq > 0:
        if expected_head.seq > len(rows):
            return AuditVerification(
                False,
                len(rows),
                found,
                expected_head.seq,
                f"the log ends at seq {len(rows)}, before the expected head {expected_head.seq}",
            )
        if rows[expected_head.seq - 1][5] != expected_head.entry_hash:
            return AuditVerification(
                False,
                len(rows),
                found,
                expected_head.seq,
                "the entry at the expected head has another hash",
            )
    return AuditVerification(True, len(rows), found)


def _check_entry(
    expected_seq: int,
    prev: str,
    seq: int,
    ts: str,
    kind: str,
    payload_json: str,
    prev_hash: str,
    entry_hash: str,
) -> str | None:
    if seq != expected_seq:
        return f"expected seq {expected_seq}, found {seq}: an entry was removed or moved"
    if prev_hash != prev:
        return f"seq {seq}: prev_hash does not match the previous entry's hash"
    try:
        payload = json.loads(payload_json)
    except json.JSONDecodeError:
        return f"seq {seq}: payload is not JSON"
    if canonical(payload) != payload_json:
        return f"seq {seq}: payload is not in canonical form (edited)"
    if chain_hash(prev_hash, seq, ts, kind, payload) != entry_hash:
        return f"seq {seq}: entry_hash does not match the entry's contents"
    return None
