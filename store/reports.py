"""Reports, for Art. 5(2) accountability: one per request, and one per period.

:func:`erasure_report` names the subject only by pseudonym, and gives the Art. 12(3) deadline
(received + one month), what was deleted where, what each model version did (with retrain
evidence when the request was sampled for it), any retrain a request waited for, when the bytes
were purged, and the request's audit entries with the chain head. Deferred evidence shows as
``scheduled``, then ``recorded`` with the revision it checked and the audit entry that holds
it (``evidence_audit``: its seq, and whether the stored evidence still matches it).
:func:`summary_report` counts a period's requests: by status and legal ground, completion
times, overdue and pending ones; it names no subject at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from store import audit, erasure
from store._clock import add_month, now
from store.audit import AuditEntry
from store.db import Database
from store.errors import InvalidPeriodError
from store.evidence import PROBE_ROWS, RECORDED, SCHEDULED, Policy

_ACTION_TEXT = {
    "exact_unlearning": "forgot the rows exactly (equal to a retrain without them)",
    "approximate_unlearning": "forgot the rows approximately (within the stated bound)",
    "pending_retrain": "could not forget in place; not served until retrained",
    "retrain": "retrained from scratch on the remaining rows; served again",
    "retire": "retired: no rows it could be retrained on remain; never served again",
}


def erasure_report(db: Database, request_id: str) -> dict[str, Any]:
    """The report of one request (raises :class:`~store.errors.UnknownRequestError`)."""
    r = erasure.receipt(db, request_id)
    rate, sampled, deferred, purged_at = db.one(
        "SELECT evidence_rate, evidence_sampled, evidence_status, purged_at "
        "FROM erasure_requests WHERE request_id = ?",
        [request_id],
    ) or (None, None, None, None)
    entries = audit.entries_for_request(db, request_id)
    head = audit.head(db)
    waiting = sum(a.evidence.get("status") == SCHEDULED for a in r.models)
    return {
        "request_id": r.request_id,
        "subject_key": r.subject_key,
        "legal_ground": r.legal_ground,
        "legal_ground_text": erasure.LEGAL_GROUNDS[r.legal_ground],
        "status": r.status,
        "status_text": erasure.STATUS_TEXT[r.status],
        "received_at": r.received_at,
        "erased_at": r.erased_at,
        "completed_at": r.completed_at,
        "deadline_art12_3": r.deadline,
        "datasets": [{"dataset": k, "rows_deleted": v} for k, v in sorted(r.datasets.items())],
        "rows_erased": r.rows_erased,
        "models": [
            {
                "model": a.model,
                "version": a.version,
                "new_revision": a.revision,
                "action": a.action,
                "action_text": _ACTION_TEXT.get(a.action, a.action),
                "guarantee": a.guarantee,
                "forget_seconds": a.forget_seconds,
                "evidence": dict(a.evidence),
            }
            | _audited(a.model, a.version, a.revision, a.evidence, entries)
            for a in r.models
        ],
        "evidence_policy": _policy_text(rate, sampled) + _deferred_text(deferred, waiting),
        "evidence_status": deferred,
        "evidence_sampled": True if sampled is None else bool(sampled),
        "evidence_rate": 1.0 if rate is None else float(rate),
        "physical_purge": {
            "purged_at": purged_at,
            "method": "artifacts rewritten without the rows; database copied to a fresh file "
            "and swapped in (no WAL or old file keeps them)",
        },
        "audit_entries": [
            {k: v for k, v in asdict(e).items() if k != "payload"} | {"payload": dict(e.payload)}
            for e in entries
        ],
        "audit_chain_head": {"seq": head.seq, "entry_hash": head.entry_hash},
    }


def _audited(
    model: str, version: int, revision: int, ev: Mapping[str, Any], entries: list[AuditEntry]
) -> dict[str, Any]:
    """For recorded deferred evidence: its audit entry, and whether the evidence stored with
    the action is still what that entry holds (an edit of either shows: the chain breaks, or
    they differ)."""
    if ev.get("status") != RECORDED:
        return {}
    for e in entries:
        p = e.payload
        if e.kind == "erasure.evidence_recorded" and (
            p.get("model"),
            p.get("version"),
            p.get("revision"),
        ) == (model, version, revision):
            return {"evidence_audit": {"seq": e.seq, "matches": p.get("evidence") == dict(ev)}}
    return {"evidence_audit": {"seq": None, "matches": False}}


def _deferred_text(status: str | None, waiting: int) -> str:
    if status == SCHEDULED:
        return (
            "; the checks were scheduled with the erasure and run after it committed "
            f"({waiting} still scheduled)"
        )
    if status == RECORDED:
        return (
            "; the checks ran after the erasure committed, each at the revision it names "
            "(checked_revision): a later revision is checked on rows that exclude this "
            "request's, so a pass shows its subject absent"
        )
    return ""


def _policy_text(rate: float | None, sampled: bool | None) -> str:
    check = (
        f"each model that forgot is compared with a retrain from scratch on up to "
        f"{PROBE_ROWS} of its remaining training rows"
    )
    if rate is None or sampled is None:  # requests recorded before sampling existed
        return f"every request: {check}"
    policy = Policy(float(rate), bool(sampled))
    if sampled:
        return f"this request was sampled ({policy.describe()}): {check}"
    return f"this request was not sampled ({policy.describe()}); no retrain check was run"


def _instant(value: object, what: str) -> str | None:
    """A period bound as the store writes timestamps (ISO 8601 in UTC), or None."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidPeriodError(f"{what} {value!r} is not an ISO 8601 timestamp") from exc
    if not isinstance(value, datetime):
        raise InvalidPeriodError(
            f"{what} must be an ISO 8601 string or a datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the store keeps UTC; a naive bound means UTC
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def summary_report(
    db: Database, since: object = None, until: object = None, as_of: object = None
) -> dict[str, Any]:
    """Counts and times of the requests received in ``[since, until)`` (open bounds: all).

    ``as_of`` (default: now) is the instant against which requests are overdue: past their
    Art. 12(3) deadline and not completed. Completion time runs from receipt to completion;
    ``no_data`` requests (the store held nothing under the id) are counted, not timed.
    """
    lo, hi = _instant(since, "since"), _instant(until, "until")
    at = _instant(as_of, "as_of") or now()
    if lo is not None and hi is not None and lo > hi:
        raise InvalidPeriodError(f"since {lo} is after until {hi}")
    rows = db.all(
        "SELECT request_id, status, legal_ground, received_at, completed_at, rows_erased "
        "FROM erasure_requests WHERE (? IS NULL OR received_at >= ?) "
        "AND (? IS NULL OR received_at < ?) ORDER BY received_at",
        [lo, lo, hi, hi],
    )
    by_status = dict.fromkeys(erasure.STATUSES, 0)
    by_ground = dict.fromkeys(sorted(erasure.LEGAL_GROUNDS), 0)
    durations, overdue, late = [], [], 0
    for request_id, status, ground, received, completed, _ in rows:
        by_status[status] = by_status.get(status, 0) + 1
        by_ground[ground] = by_ground.get(ground, 0) + 1
        deadline = add_month(received)
        if status == erasure.NO_DATA:  # closed at once, nothing erased: not an erasure's time
            continue
        if completed is not None:
            durations.append(_seconds(received, completed))
            late += completed > deadline
        elif at > deadline:
            overdue.append(request_id)
    secs = np.asarray(durations, dtype=np.float64)
    return {
        "period": {"since": lo, "until": hi, "as_of": at},
        "requests": len(rows),
        "by_status": by_status,
        "by_legal_ground": by_ground,
        "completion_seconds": {
            "count": int(secs.size),
            "median": float(np.median(secs)) if secs.size else None,
            "p95": float(np.percentile(secs, 95)) if secs.size else None,
            "max": float(secs.max()) if secs.size else None,
        },
        "open": by_status[erasure.PENDING_REQUEST] + by_status[erasure.ERASED],
        "pending": by_status[erasure.PENDING_REQUEST],
        "awaiting_purge": by_status[erasure.ERASED],
        "overdue": {"count": len(overdue), "request_ids": overdue},
        "completed_late": int(late),
        "no_op": sum(1 for r in rows if not r[5]),
        "rows_erased": int(sum(r[5] for r in rows)),
        "deadline_rule": "Art. 12(3): one calendar month after receipt",
    }


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
