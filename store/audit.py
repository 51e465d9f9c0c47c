"""The audit log: an insert-only chain of entries, keyed with the store's secret.

Each entry in the ``audit_log`` table carries ``seq`` (1, 2, ...), ``prev_hash`` (the previous
entry's hash; 64 zeros for the first) and ``entry_hash = HMAC-SHA256(K_entry, prev_hash ||
canonical_json([seq, ts, kind, payload]))``. The newest entry's position is also kept *outside*
the table, sealed: ``store_meta['audit_head'] = seq:entry_hash:HMAC-SHA256(K_head, ...)``,
written in the same transaction as the entries. ``K_entry`` and ``K_head`` are subkeys of the
store's secret (``subject.key``, :meth:`~store.subjects.SubjectKeys.derive`), which is never in
the database. Payloads hold pseudonyms only, never a raw subject id. This module is the only
writer of the table; :func:`verify` reports every way the log can fail.

What someone who can write the DuckDB file, but has no key file, can and cannot do:

- *cannot* edit, insert, remove or reorder an entry: every hash is a MAC they cannot compute,
  and each links to the one before (a forged ``erasure.completed`` with a recomputed plain
  SHA-256, or any other hash, fails);
- *cannot* cut entries off the end or empty the log: the sealed head says where it ends, and
  they cannot seal another; deleting the head too is reported (a store always has one), and
  the store, finding it missing when it next writes, says so in the chain itself
  (``audit.head_missing``, an entry they cannot remove), so the log is never clean again;
- *cannot* start a fresh chain: only a store created by the open that applies the first
  migration writes ``store.created`` at seq 1; and every erasure request, model version and
  dataset in the tables must have its entry in the log;
- *can* roll the whole database file (or the log and its head together) back to a copy taken
  earlier: that state was genuine, and nothing in the directory can tell it from the present.
  Compare with a head exported earlier (:func:`head`, ``forget verify --expect-head``) to
  catch it; an exported head is what proves the log has not lost entries since;
- *can* change the other tables (a request's status, a dataset's rows): the log records what
  was done, and the reports show its entries; it does not seal those tables.

Whoever holds the key file as well can rewrite everything; only exported heads help then.
Stores from before keying are re-chained by a migration (:func:`rekey`), which first checks
the unkeyed chain and records the result, and the unkeyed head, in an ``audit.keyed`` entry.

>>> canonical({"b": 1, "a": [1.5, "x"]})
'{"a":[1.5,"x"],"b":1}'
>>> key = AuditKey(b"e" * 32, b"h" * 32)
>>> key.entry_hash(GENESIS, 1, "t", "k", {}) == chain_hash(GENESIS, 1, "t", "k", {})
False
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from store._clock import now
from store.db import Database

GENESIS = "0" * 64
CREATED, KEYED, HEAD_MISSING = "store.created", "audit.keyed", "audit.head_missing"
_HEAD = "audit.head"  # the cache slot of the current tip
_META = "audit_head"  # the store_meta key of the sealed head


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def chain_hash(prev_hash: str, seq: int, ts: str, kind: str, payload: Any) -> str:
    """The unkeyed hash of stores written before keying (kept to check their old heads)."""
    body = canonical([seq, ts, kind, payload])
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class AuditKey:
    """The two subkeys of the chain: ``entry`` for entry hashes, ``head`` for the seal."""

    entry: bytes
    head: bytes

    @classmethod
    def derive(cls, keys: Any) -> AuditKey:
        """From a :class:`~store.subjects.SubjectKeys` (anything with ``derive(purpose)``)."""
        return cls(keys.derive("audit.entry.v1"), keys.derive("audit.head.v1"))

    def entry_hash(self, prev_hash: str, seq: int, ts: str, kind: str, payload: Any) -> str:
        return self.entry_hash_of(prev_hash, seq, ts, kind, canonical(payload))

    def entry_hash_of(self, prev_hash: str, seq: int, ts: str, kind: str, text: str) -> str:
        """:meth:`entry_hash` of a payload given as its canonical JSON ``text``: the body
        ``canonical([seq, ts, kind, payload])`` is put together, not encoded again."""
        return self._hash(prev_hash, seq, canonical(ts), canonical(kind), text)

    def _hash(self, prev_hash: str, seq: int, ts_text: str, kind_text: str, text: str) -> str:
        body = f"[{int(seq)},{ts_text},{kind_text},{text}]"
        return hmac.new(self.entry, (prev_hash + body).encode(), hashlib.sha256).hexdigest()

    def seal(self, head: AuditHead) -> str:
        message = f"{head.seq}:{head.entry_hash}".encode()
        return hmac.new(self.head, message, hashlib.sha256).hexdigest()


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
    """The newest entry's position and hash; keep it outside the store to detect rollback."""

    seq: int
    entry_hash: str


@dataclass(frozen=True)
class AuditVerification:
    """What :func:`verify` found: ``ok``, entries checked, the head, and the first bad entry.

    ``reason`` is the first problem; ``problems`` lists them all (a broken chain, a head that
    does not match, records the log lacks). ``first_bad_seq`` is None for a problem that is no
    single entry (the tables name a request the log does not).
    """

    ok: bool
    entries: int
    head: AuditHead
    first_bad_seq: int | None = None
    reason: str | None = None
    problems: tuple[str, ...] = ()


def key_of(db: Database) -> AuditKey:
    key = db.audit_key
    if not isinstance(key, AuditKey):
        raise RuntimeError("the audit key is not set: open the store with ModelStore.open")
    return key


def start(db: Database, payload: Mapping[str, Any]) -> AuditEntry:
    """Write ``store.created`` at seq 1 (in the transaction that creates the store)."""
    if db.one("SELECT 1 FROM audit_log LIMIT 1") is not None:
        raise RuntimeError("the audit log of this store has entries already")
    db.cache[_HEAD] = AuditHead(0, GENESIS)
    return append(db, CREATED, payload)


_COLUMNS = ("seq", "ts", "kind", "payload_json", "prev_hash", "entry_hash")


def append(db: Database, kind: str, payload: Mapping[str, Any]) -> AuditEntry:
    """Append one entry; call inside ``db.atomic()`` so it commits with what it records."""
    return append_many(db, [(kind, payload)])[-1]


def append_many(db: Database, entries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[AuditEntry]:
    """Append entries in order, and move the sealed head (inside ``atomic()``; 2 statements).

    When the sealed head is missing or does not verify, an ``audit.head_missing`` entry comes
    first: the chain then says for ever that entries before it may have been removed. The
    entries of one call share their time stamp (they commit together).
    """
    rows = write(db, entries)
    return [
        AuditEntry(q, ts, kind, json.loads(text), prev, h) for q, ts, kind, text, prev, h in rows
    ]


def write(
    db: Database, entries: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[tuple[int, str, str, str, str, str]]:
    """:func:`append_many` without making the entries: the rows written (``_COLUMNS``), for
    callers that append thousands at once (a batch of erasure requests)."""
    if not db.in_transaction:
        raise RuntimeError("audit entries are appended inside the transaction they describe")
    if not entries:
        return []
    key = key_of(db)
    current = db.cache.get(_HEAD)
    todo = list(entries)
    if current is None:
        current, problem = _tip(db, key)
        if problem is not None:
            todo.insert(0, (HEAD_MISSING, {"problem": problem, "continues_from": current.seq}))
    seq, prev = current.seq, current.entry_hash
    ts = now()
    ts_text = canonical(ts)
    kind_texts: dict[str, str] = {}
    rows = []
    for kind, payload in todo:
        seq += 1
        text = canonical(dict(payload))  # refuses what JSON cannot hold
        if not _string_keyed(payload):  # as verification re-encodes it: keys became strings
            text = canonical(json.loads(text))
        kind_text = kind_texts.get(kind)
        if kind_text is None:
            kind_text = kind_texts[kind] = canonical(kind)
        digest = key._hash(prev, seq, ts_text, kind_text, text)
        rows.append((seq, ts, kind, text, prev, digest))
        prev = digest
    db.insert("audit_log", _COLUMNS, rows)
    _write_head(db, key, AuditHead(seq, prev))
    return rows


def _string_keyed(obj: Any) -> bool:
    """Whether every mapping in ``obj`` has string keys only: its canonical JSON is then what
    encoding it again after a round trip gives (other keys become strings, and sort anew)."""
    kind = type(obj)
    if kind is dict or (kind not in _SCALARS and isinstance(obj, Mapping)):
        for k, v in obj.items():
            if type(k) is not str or (type(v) not in _SCALARS and not _string_keyed(v)):
                return False
    elif kind is list or kind is tuple:
        for v in obj:
            if type(v) not in _SCALARS and not _string_keyed(v):
                return False
    return True


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _write_head(db: Database, key: AuditKey, tip: AuditHead) -> None:
    value = f"{tip.seq}:{tip.entry_hash}:{key.seal(tip)}"
    # an UPDATE costs ~0.4 ms, an upsert ~1 ms: insert only when the row is not there
    updated = db.one("UPDATE store_meta SET value = ? WHERE key = ?", [value, _META])
    if not updated or not updated[0]:
        db.execute("INSERT INTO store_meta VALUES (?, ?)", [_META, value])
    db.cache[_HEAD] = tip  # a rollback clears it with the entries


def _sealed(db: Database, key: AuditKey) -> tuple[AuditHead | None, str | None]:
    """The sealed head, or None and why not (missing, or a seal that does not verify)."""
    row = db.one("SELECT value FROM store_meta WHERE key = ?", [_META])
    if row is None:
        return None, "the sealed audit head is missing"
    seq, _, rest = str(row[0]).partition(":")
    digest, _, seal = rest.partition(":")
    try:
        found = AuditHead(int(seq), digest)
    except ValueError:
        return None, "the sealed audit head is not in its format"
    if not hmac.compare_digest(seal, key.seal(found)):
        return None, f"the sealed audit head (seq {found.seq}) does not verify: it was forged"
    return found, None


def _last(db: Database) -> AuditHead:
    last = db.one("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return AuditHead(int(last[0]), str(last[1])) if last else AuditHead(0, GENESIS)


def _tip(db: Database, key: AuditKey) -> tuple[AuditHead, str | None]:
    """Where the next entry links to: the sealed head, else (with the problem) the last row."""
    sealed, problem = _sealed(db, key)
    return (sealed, None) if sealed is not None else (_last(db), problem)


def head(db: Database) -> AuditHead:
    """The newest entry's seq and hash (kept in memory after the first read)."""
    cached = db.cache.get(_HEAD)
    if cached is not None:
        return cached
    if db.audit_key is None:  # pragma: no cover - a bare Database, as in migration tests
        return _last(db)
    tip, problem = _tip(db, key_of(db))
    if problem is None:
        db.cache[_HEAD] = tip
    return tip


def entries_for_request(db: Database, request_id: str) -> list[AuditEntry]:
    rows = db.all(
        "SELECT seq, ts, kind, payload_json, prev_hash, entry_hash FROM audit_log "
        "WHERE json_extract_string(payload_json, '$.request_id') = ? ORDER BY seq",
        [request_id],
    )
    return [AuditEntry(s, t, k, json.loads(p), ph, eh) for s, t, k, p, ph, eh in rows]


# ---------------------------------------------------------------------- keying (migration)
def rekey(db: Database) -> AuditEntry | None:
    """Re-chain an unkeyed log under the key and seal its head (migration 4, in its
    transaction); the ``audit.keyed`` entry that records it, or None for an empty log.

    The unkeyed chain is checked first: the entry says whether it verified (and if not, where
    it broke, which :func:`verify` then reports for ever) and what its head was, so heads
    exported before keying can still be checked.
    """
    rows = db.all(
        "SELECT seq, ts, kind, payload_json, prev_hash, entry_hash FROM audit_log ORDER BY seq"
    )
    if not rows:
        return None
    key = key_of(db)
    prev, bad = GENESIS, None
    for i, row in enumerate(rows):
        bad = _unkeyed_problem(i + 1, prev, *row)
        if bad is not None:
            break
        prev = row[5]
    keyed, prev = [], GENESIS
    for seq, ts, kind, payload_json, _, _ in rows:
        digest = key.entry_hash(prev, seq, ts, kind, json.loads(payload_json))
        keyed.append((seq, prev, digest))
        prev = digest
    db.execute(
        "UPDATE audit_log a SET prev_hash = u.prev_hash, entry_hash = u.entry_hash FROM ("
        "SELECT unnest(?::BIGINT[]) AS seq, unnest(?::VARCHAR[]) AS prev_hash, "
        "unnest(?::VARCHAR[]) AS entry_hash) u WHERE a.seq = u.seq",
        [[s for s, _, _ in keyed], [p for _, p, _ in keyed], [h for _, _, h in keyed]],
    )
    last = rows[-1]
    db.cache[_HEAD] = AuditHead(int(last[0]), prev)
    return append(
        db,
        KEYED,
        {
            "scheme": "hmac-sha256, sealed head",
            "entries": len(rows),
            "unkeyed_head": {"seq": int(last[0]), "entry_hash": str(last[5])},
            "unkeyed_verified": bad is None,
            "unkeyed_problem": bad,
        },
    )


def _unkeyed_problem(
    expected: int, prev: str, seq: int, ts: str, kind: str, payload_json: str, ph: str, eh: str
) -> str | None:
    if seq != expected or ph != prev:
        return f"seq {seq}: out of order or unlinked"
    try:
        payload = json.loads(payload_json)
    except json.JSONDecodeError:
        return f"seq {seq}: payload is not JSON"
    if chain_hash(ph, seq, ts, kind, payload) != eh:
        return f"seq {seq}: entry_hash does not match the entry's contents"
    return None


# ---------------------------------------------------------------------- verification
def verify(db: Database, expected_head: AuditHead | None = None) -> AuditVerification:
    """Recompute the chain and check it against the sealed head and the store's tables.

    Reports the first entry that was edited, forged, removed or moved; a log that ends
    elsewhere than its sealed head (cut, emptied); a missing or forged head; a log that does
    not begin with ``store.created`` (recreated); and requests, model versions or datasets
    the log does not record. With ``expected_head`` (exported earlier), also a log that has
    lost that entry (rolled back). Reads only.
    """
    key = key_of(db)
    db.cache.pop(_HEAD, None)  # read the table afresh, whatever was done to it
    rows = db.all(
        "SELECT seq, ts, kind, payload_json, prev_hash, entry_hash FROM audit_log ORDER BY seq"
    )
    problems: list[tuple[int | None, str]] = []
    prev, plain, unkeyed = GENESIS, GENESIS, {}
    # a store keyed by the migration has heads exported before it, in the unkeyed hash
    rekeyed = any(row[2] == KEYED for row in rows)
    keyed_at, checked = None, 0
    for i, (seq, ts, kind, payload_json, prev_hash, entry_hash) in enumerate(rows):
        bad = _entry_problem(key, i + 1, prev, seq, ts, kind, payload_json, prev_hash, entry_hash)
        if bad is None and i == 0 and kind != CREATED:
            bad = f"seq 1 is {kind!r}, not {CREATED!r}: the log was recreated"
        if bad is not None:
            problems.append((i + 1, bad))
            break
        payload = json.loads(payload_json)
        if kind == HEAD_MISSING:
            problems.append(
                (seq, f"seq {seq}: the store found its audit head missing or forged here "
                 f"({payload.get('problem')}); entries before it may have been removed")
            )  # fmt: skip
        if kind == KEYED and keyed_at is None:
            keyed_at = seq
            if not payload.get("unkeyed_verified", False):
                problems.append(
                    (seq, f"seq {seq}: before keying, the unkeyed chain did not verify "
                     f"({payload.get('unkeyed_problem')})")
                )  # fmt: skip
        if rekeyed and keyed_at is None:  # the hashes exported heads were taken from then
            plain = chain_hash(plain, seq, ts, kind, payload)
            unkeyed[seq] = plain
        prev, checked = entry_hash, i + 1
    found = AuditHead(checked, prev)
    problems += _head_problems(db, key, rows)
    problems += [(None, p) for p in _unrecorded(db)]
    if expected_head is not None and expected_head.seq > 0:
        problems += _expected_problems(rows, expected_head, unkeyed)
    if not problems:
        return AuditVerification(True, len(rows), found)
    first_seq, first = problems[0]
    return AuditVerification(
        False, checked, found, first_seq, first, tuple(text for _, text in problems)
    )


def _entry_problem(
    key: AuditKey,
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
    if not hmac.compare_digest(key.entry_hash(prev_hash, seq, ts, kind, payload), entry_hash):
        return f"seq {seq}: entry_hash is not the keyed hash of the entry (edited or forged)"
    return None


def _head_problems(
    db: Database, key: AuditKey, rows: Sequence[tuple[Any, ...]]
) -> list[tuple[int | None, str]]:
    sealed, problem = _sealed(db, key)
    n = len(rows)
    if sealed is None:
        what = "the audit log is empty and " if not n else ""
        return [(n + 1 if n else 1, f"{what}{problem}")]
    if not n:
        return [(1, f"the audit log is empty, but its sealed head is at seq {sealed.seq}")]
    if sealed.seq != n:
        cut = "entries were removed from its end" if sealed.seq > n else "entries were added"
        return [
            (min(sealed.seq, n) + 1, f"the log ends at seq {n}, its sealed head is at seq "
             f"{sealed.seq}: {cut}")
        ]  # fmt: skip
    if sealed.entry_hash != rows[-1][5]:
        return [(n, f"seq {n}: the last entry is not the one the sealed head names")]
    return []


def _unrecorded(db: Database) -> list[str]:
    """Records of the store's tables that the log has no entry for (a log recreated or cut)."""
    out = []
    requests = [
        q
        for (q,) in db.all(
            "SELECT request_id FROM erasure_requests WHERE request_id NOT IN (SELECT "
            "json_extract_string(payload_json, '$.request_id') FROM audit_log "
            "WHERE kind = 'erasure.committed') ORDER BY received_at"
        )
    ]
    if requests:
        out.append(f"{len(requests)} erasure requests are not in the audit log: {requests[:5]}")
    versions = db.all(
        "SELECT model, version FROM model_versions m WHERE NOT EXISTS (SELECT 1 FROM audit_log "
        "a WHERE a.kind = 'model.trained' AND json_extract_string(a.payload_json, '$.model') "
        "= m.model AND json_extract(a.payload_json, '$.version')::INTEGER = m.version) "
        "ORDER BY 1, 2"
    )
    if versions:
        names = [f"{m!r} v{v}" for m, v in versions[:5]]
        out.append(f"{len(versions)} model versions are not in the audit log: {names}")
    datasets = [
        name
        for (name,) in db.all(
            "SELECT name FROM datasets WHERE name NOT IN (SELECT json_extract_string("
            "payload_json, '$.dataset') FROM audit_log WHERE kind = 'dataset.ingested') "
            "ORDER BY 1"
        )
    ]
    if datasets:
        out.append(f"{len(datasets)} datasets are not in the audit log: {datasets[:5]}")
    return out


def _expected_problems(
    rows: Sequence[tuple[Any, ...]], expected: AuditHead, unkeyed: Mapping[int, str]
) -> list[tuple[int | None, str]]:
    if expected.seq > len(rows):
        return [
            (expected.seq, f"the log ends at seq {len(rows)}, before the expected head "
             f"{expected.seq}")
        ]  # fmt: skip
    if expected.entry_hash in (rows[expected.seq - 1][5], unkeyed.get(expected.seq)):
        return []
    return [(expected.seq, "the entry at the expected head has another hash")]
