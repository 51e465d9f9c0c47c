"""The erasure journal: erasure groups carried out in memory, durable before they are answered,
recorded in the database after.

A server answers an erasure once its models forgot, without waiting for the database: the
group is carried out in memory (:func:`store.erasure.carry_out`: rows found, models forgetting,
receipts), appended to ``<store>/erasure.journal`` and ``fsync``-ed (one JSON line, ~0.2 ms),
and only then answered. :meth:`Journal.apply` later records the groups in order, in one
transaction: their rows deleted by row id and everything :func:`store.erasure.erase` writes
(forget log, requests, audit entries). Why: each DuckDB statement a thread runs takes the
interpreter's lock back several times, and beside busy predictions each time waits up to a
switch interval (5 ms), so the seven statements of an erasure took ~150 ms beside 8
predicting connections; the journal takes them off the answer's path.

What the journal holds per request: its id, pseudonym, legal ground, evidence draw, who asked
and who handled it, its times, and its rows' ids by dataset — what ``erasure_requests`` and
``forget_log`` keep anyway; no raw subject id and no row values. Once a group is recorded its
line leaves the file (rewritten without it).

Everything that reads or writes the database applies the journal first
(:meth:`store.ModelStore.settle`), so that no read misses an answered erasure and no write
comes between an erasure and its record. A crash loses nothing answered: on open, the models
are rebuilt from their checkpoints and ``forget_log``, and :func:`replay` carries out each
line not yet recorded (same requests, same rows, same order: the same revisions, as the
models are deterministic) and records it. A torn last line was never answered (its ``fsync``
had not returned) and is dropped.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from store import data, erasure, evidence
from store._faults import crash_point
from store.db import Database, fsync_path
from store.errors import StoreCorruptError
from store.registry import Registry
from store.subjects import Subject

FILE = "erasure.journal"
_VERSION = 1


class NotNow(Exception):  # noqa: N818 - control flow, never shown to a user
    """The requests cannot be carried out from memory (a repeat, a subject with no rows, a
    store not warmed up): take the recorded path, :meth:`store.ModelStore.erase_many`.
    Raised before anything changed."""


class Journal:
    """The groups answered and not yet recorded, in order, in memory and in the file.

    Thread-safe: one thread appends (the server's event loop) while another applies; the
    file, the queue, the revisions planned and the subjects held change under one lock, never
    held across a statement.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE
        self._lock = threading.Lock()
        self._applying = threading.Lock()  # one apply at a time
        self._queue: list[tuple[erasure.Group, bytes]] = []
        self._keys: set[str] = set()  # the subjects of the queued groups
        # the last revision planned for each version by a queued group: later groups follow it
        self._planned: dict[tuple[str, int], int] = {}
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def holds(self, key: str) -> bool:
        """Whether a queued group erased the subject ``key`` (a new request for it is a
        repeat: the caller takes the recorded path, after applying)."""
        return key in self._keys

    def planned(self) -> dict[tuple[str, int], int]:
        """A copy of the revisions the queued groups planned, for the next group to follow."""
        with self._lock:
            return dict(self._planned)

    def append(self, group: erasure.Group, *, deferred: bool, planned: dict[Any, int]) -> None:
        """Make ``group`` durable (one line, ``fsync``-ed) and queue it; ``planned`` are the
        revisions its planning left (:meth:`planned` updated by it)."""
        line = encode(group, deferred=deferred)
        with self._lock:
            fd = self._open()
            os.write(fd, line)
            os.fsync(fd)
            crash_point("journal.appended")
            self._queue.append((group, line))
            self._keys.update(_subjects(group))
            self._planned.update(planned)

    def apply(
        self,
        db: Database,
        registry: Registry,
        then: Callable[[list[erasure.Group]], None] | None = None,
    ) -> list[erasure.Group]:
        """Record every queued group in one transaction, in order (rows deleted by row id,
        then :func:`store.erasure.record_groups`); their lines leave the file after the
        commit, and ``then`` is called with the groups (one apply at a time, whatever the
        thread). The groups recorded; none when the queue was empty. If the transaction
        fails nothing is recorded and the groups stay queued (their models stay as they are:
        they forgot, as the answers said)."""
        with self._applying:
            with self._lock:
                groups = [g for g, _ in self._queue]
            if not groups:
                return []
            with db.atomic():  # the statements of one group, however many there are
                _delete(db, groups)
                erasure.record_groups(db, registry, groups)
                crash_point("journal.before_commit")
            crash_point("journal.after_commit")
            with self._lock:
                del self._queue[: len(groups)]
                self._rewrite()
                self._keys = {k for g, _ in self._queue for k in _subjects(g)}
                for key in [k for k, r in self._planned.items() if r <= registry.revision(*k)]:
                    del self._planned[key]
            if then is not None:
                then(groups)
            return groups

    def open(self) -> None:
        """Open (or create) the file now rather than on the first append."""
        with self._lock:
            self._open()

    def close(self) -> None:
        with self._lock:
            self._close_fd()

    def _open(self) -> int:
        if self._fd is None:
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if new:
                fsync_path(self.path.parent)
        return self._fd

    def _rewrite(self) -> None:
        """The file holds the queued groups' lines only (lock held)."""
        if not self._queue:
            _empty(self._open())
            return
        fresh = self.path.with_name(FILE + ".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(line for _, line in self._queue))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._close_fd()
        os.replace(fresh, self.path)
        fsync_path(self.path.parent)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _subjects(group: erasure.Group) -> list[str]:
    """The pseudonyms of the subjects a group erased."""
    return [p[0].subject.key for p in group.plans if not isinstance(p, str)]


def _empty(fd: int) -> None:
    """Truncate the open file to nothing, durably."""
    os.ftruncate(fd, 0)
    os.fsync(fd)


def _delete(db: Database, groups: Sequence[erasure.Group]) -> None:
    """Delete the groups' rows by row id, one statement per dataset; every one must still be
    there."""
    by_dataset: dict[str, list[np.ndarray]] = {}
    for g in groups:
        for plan in g.plans:
            if not isinstance(plan, str):
                for name, rows in plan[1].items():
                    by_dataset.setdefault(name, []).append(rows.row_ids)
    for name, parts in sorted(by_dataset.items()):
        ids = np.concatenate(parts)
        gone = data.delete_rows(db, name, ids)
        if gone != ids.size:
            raise StoreCorruptError(
                f"erasures to record: {ids.size} rows of dataset {name!r} to delete, {gone} found"
            )


def encode(group: erasure.Group, *, deferred: bool) -> bytes:
    """A group's line: what :func:`replay` needs to carry it out again."""
    requests = []
    for plan in group.plans:
        if isinstance(plan, str):
            raise ValueError("a journaled group holds no repeats")
        r, rows, _ = plan
        if r.expires is not None:
            raise ValueError("retention requests are not journaled")
        requests.append(
            {
                "request_id": r.request_id,
                "subject_key": r.subject.key,
                "legal_ground": r.legal_ground,
                "rate": r.policy.rate,
                "sampled": r.policy.sampled,
                "requested_by": r.requested_by,
                "handled_by": r.handled_by,
                "rows": {name: t.row_ids.tolist() for name, t in sorted(rows.items())},
            }
        )
    doc = {
        "v": _VERSION,
        "received": group.received,
        "erased_at": group.erased_at,
        "deferred": deferred,
        "requests": requests,
    }
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


def _decode(doc: dict[str, Any]) -> list[tuple[erasure.Request, dict[str, data.DeletedRows]]]:
    return [
        (
            erasure.Request(
                Subject(q["subject_key"], ""),  # the raw id is not needed: rows go by id
                q["legal_ground"],
                q["request_id"],
                evidence.Policy(float(q["rate"]), bool(q["sampled"])),
                q["requested_by"],
                q["handled_by"],
            ),
            {
                name: data.DeletedRows(np.asarray(ids, dtype=np.int64), {})
                for name, ids in q["rows"].items()
            },
        )
        for q in doc["requests"]
    ]


def lines(path: Path) -> list[dict[str, Any]]:
    """The file's complete lines, decoded. A last line without its newline is a torn write,
    left out: its ``fsync`` never returned, so it was never answered. Any other line that is
    not an entry means the file was damaged: :class:`StoreCorruptError` (never skipped, as
    it may be an answered erasure)."""
    if not path.exists():
        return []
    *complete, _torn = path.read_bytes().split(b"\n")
    out = []
    for number, raw in enumerate(complete, 1):
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("v") != _VERSION:
            raise StoreCorruptError(f"{path}: line {number} is not an erasure journal entry")
        out.append(doc)
    return out


def unrecorded(directory: Path, db: Database) -> list[dict[str, Any]]:
    """The journal's lines whose groups the database has not recorded (a crash came first)."""
    return [doc for doc in lines(directory / FILE) if not _recorded(db, doc)]


def _recorded(db: Database, doc: dict[str, Any]) -> bool:
    first = doc["requests"][0]["request_id"]  # a group is recorded whole or not at all
    return db.one("SELECT 1 FROM erasure_requests WHERE request_id = ?", [first]) is not None


def replay(directory: Path, db: Database, registry: Registry) -> int:
    """On open, after the models are rebuilt: carry out and record, in order, each journaled
    group not recorded before a crash; then empty the file. The groups replayed."""
    path = directory / FILE
    docs = lines(path)
    done = 0
    for doc in docs:
        if _recorded(db, doc):
            continue  # the crash came after its record, before its line left the file
        kept = _decode(doc)
        touched: list[tuple[str, int]] = []
        try:
            with db.atomic():
                group = erasure.carry_out(
                    registry,
                    kept,
                    received=doc["received"],
                    erased_at=doc["erased_at"],
                    deferred=bool(doc["deferred"]),
                    touched=touched,
                )
                _delete(db, [group])
                erasure.record_groups(db, registry, [group])
        except BaseException:
            if touched:
                registry.reload(touched)
            raise
        done += 1
    if path.exists():
        fd = os.open(path, os.O_WRONLY)
        try:
            _empty(fd)
        finally:
            os.close(fd)
    return done
