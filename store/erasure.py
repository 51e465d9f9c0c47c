"""Erasure requests: one transaction deletes, logs the forget operations and audits; then the
models forget in memory; a purge later removes the bytes.

The transaction in :func:`commit` deletes the subject's rows from every dataset, appends one
``forget_log`` entry per affected model version, records the request (status ``erased``) and
appends the audit entry. Only after it commits are the in-memory models told to forget
(:func:`apply`); on open, models are rebuilt from their checkpoint plus ``forget_log``, so a
crash at any point leaves the store before the request or after it. :func:`purge` rewrites the
artifacts and compacts the database, then marks requests ``completed``.

Repeats are idempotent: a request for a subject with no rows left returns the receipt of that
subject's latest earlier request (``repeat=True``); with no earlier request it records a no-op
request that completes at once (nothing held, so nothing to erase).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store import audit, data
from store._clock import add_month, now
from store._faults import crash_point
from store.db import Database
from store.errors import InvalidLegalGroundError, UnknownRequestError
from store.evidence import retrain_check
from store.registry import PENDING, ForgetOp, ForgetOutcome, Registry
from store.subjects import Subject

ERASED, COMPLETED = "erased", "completed"
LEGAL_GROUNDS = {
    "art17-1-a": "no longer necessary for the purposes",
    "art17-1-b": "consent withdrawn",
    "art17-1-c": "objection under Art. 21",
    "art17-1-d": "unlawfully processed",
    "art17-1-e": "legal obligation to erase",
    "art17-1-f": "child's data, information society services",
}


@dataclass(frozen=True)
class ModelAction:
    """What one model version did for a request."""

    model: str
    version: int
    revision: int
    action: str
    guarantee: str | None
    forget_seconds: float | None
    evidence: Mapping[str, Any]


@dataclass(frozen=True)
class ErasureReceipt:
    """The answer to an erasure request; ``status`` is ``"erased"`` or ``"completed"``.

    ``erased``: rows deleted and models forgot, bytes not yet purged; ``completed``: purged too.
    ``repeat`` is true when this receipt answers a repeated request with the earlier one's.
    """

    request_id: str
    status: str
    subject_key: str
    legal_ground: str
    received_at: str
    erased_at: str | None
    completed_at: str | None
    deadline: str
    datasets: Mapping[str, int]
    rows_erased: int
    models: tuple[ModelAction, ...]
    repeat: bool = False


def check_legal_ground(ground: object) -> str:
    if ground not in LEGAL_GROUNDS:
        raise InvalidLegalGroundError(
            f"legal ground {ground!r} is not one of {sorted(LEGAL_GROUNDS)} (Art. 17(1)(a)-(f))"
        )
    return str(ground)


def commit(
    db: Database, registry: Registry, subject: Subject, legal_ground: str
) -> tuple[str, list[ForgetOp], bool]:
    """The erasure transaction; returns (request id, forget operations, is_repeat)."""
    received = now()
    with db.atomic():
        rows = data.subject_rows(db, subject)
        if not rows:
            earlier = db.one(
                "SELECT request_id FROM erasure_requests WHERE subject_key = ? "
                "ORDER BY received_at DESC LIMIT 1",
                [subject.key],
            )
            if earlier is not None:
                return str(earlier[0]), [], True
        request_id = "er_" + secrets.token_hex(8)
        counts = {name: data.delete_rows(db, name, ids) for name, ids in rows.items()}
        all_ids = sorted(i for ids in rows.values() for i in ids)
        ops = registry.log_forget(request_id, all_ids) if all_ids else []
        status = ERASED if all_ids else COMPLETED
        db.execute(
            "INSERT INTO erasure_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                request_id,
                subject.key,
                legal_ground,
                status,
                received,
                now(),
                None if all_ids else now(),
                json.dumps(counts, sort_keys=True),
                len(all_ids),
            ],
        )
        audit.append(
            db,
            "erasure.committed",
            {
                "request_id": request_id,
                "subject_key": subject.key,
                "legal_ground": legal_ground,
                "datasets": counts,
                "rows": len(all_ids),
                "models": [[o.model, o.version, o.revision, len(o.row_ids)] for o in ops],
            },
        )
        crash_point("erase.before_commit")
    crash_point("erase.after_commit")
    return request_id, ops, False


def apply(db: Database, registry: Registry, ops: list[ForgetOp], *, verify: bool = True) -> None:
    """Make the in-memory models forget (after the commit) and record what each did.

    The actions of all versions are recorded in one transaction: a crash before it commits
    leaves them to :func:`recover`, which records what replay did.
    """
    done = []
    for op in ops:
        done.append((op, registry.forget(op)))
        crash_point("erase.after_forget")
    record_all(db, registry, done, verify=verify)


def record(
    db: Database, registry: Registry, op: ForgetOp, outcome: ForgetOutcome, *, verify: bool
) -> None:
    """Record one version's action for a request."""
    record_all(db, registry, [(op, outcome)], verify=verify)


def record_all(
    db: Database,
    registry: Registry,
    done: list[tuple[ForgetOp, ForgetOutcome]],
    *,
    verify: bool,
) -> None:
    """Record versions' actions for a request, with retrain evidence for exact models."""
    rows = [(op, outcome, _evidence(registry, op, outcome, verify)) for op, outcome in done]
    if not rows:
        return
    with db.atomic():  # one insert per table: each DuckDB statement costs ~1 ms
        at = now()
        db.execute(
            "INSERT INTO erasure_actions VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows)),
            [
                x
                for op, outcome, evidence in rows
                for x in (
                    op.request_id,
                    op.model,
                    op.version,
                    op.revision,
                    outcome.action,
                    outcome.guarantee,
                    outcome.seconds,
                    audit.canonical(evidence),
                    at,
                )
            ],
        )
        audit.append_many(
            db,
            [
                (
                    "erasure.model_action",
                    {
                        "request_id": op.request_id,
                        "model": op.model,
                        "version": op.version,
                        "revision": op.revision,
                        "action": outcome.action,
                        "guarantee": outcome.guarantee,
                        "evidence_passed": evidence.get("passed"),
                    },
                )
                for op, outcome, evidence in rows
            ],
        )


def _evidence(
    registry: Registry, op: ForgetOp, outcome: ForgetOutcome, verify: bool
) -> dict[str, Any]:
    estimator = registry.estimator(op.model, op.version)
    if estimator is None:
        return {"method": "none", "reason": outcome.reason or "model not in memory"}
    if not verify:
        return {"method": "none", "reason": "verification skipped (verify=False)"}
    mv = registry.get(op.model, op.version)
    if mv.revision != op.revision:
        return {"method": "none", "reason": "replayed at open; a later revision is checked"}
    return retrain_check(registry, mv, estimator)


def recover(db: Database, registry: Registry) -> int:
    """On open: rebuild models (checkpoint + forget_log) and record actions a crash lost."""
    done = {(m, v, r) for m, v, r in db.all("SELECT model, version, revision FROM erasure_actions")}
    n = 0
    for op, outcome in registry.load():
        if (op.model, op.version, op.revision) not in done:
            record(db, registry, op, outcome, verify=True)
            n += 1
    # Versions that were pending before the crash do not load; record their missing actions.
    for m, v, r, q, ids in db.all(
        "SELECT f.model, f.version, f.revision, f.request_id, f.row_ids FROM forget_log f "
        "ANTI JOIN erasure_actions a USING (model, version, revision) ORDER BY 1, 2, 3"
    ):
        if registry.estimator(m, v) is not None:  # pragma: no cover - loaded ones were replayed
            continue
        op = ForgetOp(m, int(v), int(r), q, tuple(map(int, ids)))
        record(
            db, registry, op, ForgetOutcome(PENDING, None, None, "awaits a retrain"), verify=False
        )
        n += 1
    return n


def pending_purge(db: Database) -> list[str]:
    return [
        q for (q,) in db.all("SELECT request_id FROM erasure_requests WHERE status = ?", [ERASED])
    ]


@dataclass(frozen=True)
class PurgeResult:
    """What :meth:`store.ModelStore.purge` did: requests completed, artifacts rewritten."""

    requests: tuple[str, ...]
    artifacts_written: int
    compacted: bool
    seconds: float


def purge(db: Database, registry: Registry, *, force: bool = False) -> PurgeResult:
    """Rewrite changed artifacts, compact the database, then mark erased requests completed."""
    t0 = time.perf_counter()
    written = registry.checkpoint()
    waiting = pending_purge(db)
    compacted = bool(waiting) or force
    if compacted:
        crash_point("purge.before_compact")
        db.compact()
        crash_point("purge.after_compact")
        with db.atomic():
            at = now()
            if waiting:
                db.execute(
                    "UPDATE erasure_requests SET status = ?, completed_at = ? "
                    "WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
                    [COMPLETED, at, waiting],
                )
            audit.append_many(
                db,
                [
                    (
                        "erasure.completed",
                        {"request_id": q, "purge": "artifacts rewritten, database compacted"},
                    )
                    for q in waiting
                ],
            )
        db.checkpoint()  # leave no WAL behind, even of entries without personal data
    return PurgeResult(tuple(waiting), written, compacted, time.perf_counter() - t0)


def receipt(db: Database, request_id: str, *, repeat: bool = False) -> ErasureReceipt:
    row = db.one(
        "SELECT request_id, status, subject_key, legal_ground, received_at, erased_at, "
        "completed_at, datasets_json, rows_erased FROM erasure_requests WHERE request_id = ?",
        [request_id],
    )
    if row is None:
        raise UnknownRequestError(request_id)
    actions = tuple(
        ModelAction(m, int(v), int(r), a, g, s, json.loads(e))
        for m, v, r, a, g, s, e in db.all(
            "SELECT model, version, revision, action, guarantee, forget_seconds, evidence_json "
            "FROM erasure_actions WHERE request_id = ? ORDER BY model, version",
            [request_id],
        )
    )
    rid, status, key, ground, received, erased, completed, datasets, n = row
    return ErasureReceipt(
        rid,
        status,
        key,
        ground,
        received,
        erased,
        completed,
        add_month(received),
        json.loads(datasets),
        int(n),
        actions,
        repeat,
    )
