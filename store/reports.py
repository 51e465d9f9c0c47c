"""Reports, for Art. 5(2) accountability: one per request, and one per period.

:func:`erasure_report` names the subject only by pseudonym, and gives the Art. 12(3) deadline
(received + one month), what was deleted where, what each model version did (with retrain
evidence when the request was sampled for it), any retrain a request waited for (a sharded
model's: ``shards_dropped`` by the erasure, then ``shards_retrained`` and ``retrained_at`` on
its ``retrain_shards`` step), when the bytes were purged, and the request's audit entries
with the chain head. Deferred evidence shows as ``scheduled``, then ``recorded`` with the
revision it checked and the audit entry that holds it (``evidence_audit``: its seq, and
whether the stored evidence still matches it).
Each model's action and evidence is also given in words (``action_label``, ``evidence_text``,
``evidence_state``). The audit chain is verified when the report is built
(``audit_verification``): a report of a store whose chain fails says so, and marks the entries
past the first bad one as unverified. ``requested_by`` and ``handled_by`` are as recorded with
the request (older requests: what is known).
:func:`summary_report` counts a period's requests: by status and legal ground, completion
times, overdue and pending ones; it names no subject at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from store import audit, erasure, exports
from store._clock import add_month, now
from store.audit import AuditEntry, AuditVerification
from store.db import Database
from store.errors import InvalidPeriodError
from store.evidence import METHOD, PROBE_ROWS, RECORDED, SCHEDULED, Policy

_ACTION_LABEL = {
    "exact_unlearning": "exact unlearning",
    "approximate_unlearning": "approximate unlearning",
    "pending_retrain": "pending retrain",
    "retrain": "retrained",
    "retire": "retired",
    "retrain_shards": "shards retrained",
}
_STATUS_LABEL = {
    erasure.PENDING_REQUEST: "erased, a model awaits its retrain",
    erasure.ERASED: "erased, physical purge to follow",
    erasure.COMPLETED: "completed",
    erasure.NO_DATA: "no data found",
}
# Requests made before the store recorded requesters (migration 6) say what is known: who
# may file one.
_REQUESTED_BY = (
    "not recorded (request made before forget recorded requesters); filed by a caller allowed "
    "to erase: an API client whose token has the scope erase (or admin), or the forget erase "
    "command run with access to the store"
)
_NOT_GIVEN = (
    "not given: filed through forget's Python API (ModelStore.erase) without requested_by, "
    "by code with access to the store"
)
_HANDLED = (
    "automatically, each step written to the audit chain; no person handled the subject's data"
)
_HANDLED_BY = "the forget store, " + _HANDLED
_ACTION_TEXT = {
    "exact_unlearning": "forgot the rows exactly (equal to a retrain without them)",
    "approximate_unlearning": "forgot the rows approximately (within the stated bound)",
    "pending_retrain": "could not forget in place; not served until retrained",
    "retrain": "retrained from scratch on the remaining rows; served again",
    "retire": "retired: no rows it could be retrained on remain; never served again",
    "retrain_shards": "retrained the shards it had dropped, from scratch on their remaining "
    "rows; served with every shard again",
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
    checked = audit.verify(db)
    waiting = sum(a.evidence.get("status") == SCHEDULED for a in r.models)
    return {
        "request_id": r.request_id,
        "generated_at": now(),
        "subject_key": r.subject_key,
        "legal_ground": r.legal_ground,
        "legal_ground_article": ground_article(r.legal_ground),
        "legal_ground_text": erasure.GROUND_TEXT[r.legal_ground],
        "status": r.status,
        "status_label": _STATUS_LABEL[r.status],
        "status_text": erasure.STATUS_TEXT[r.status],
        "requested_by": r.requested_by or (_REQUESTED_BY if r.handled_by is None else _NOT_GIVEN),
        "handled_by": _HANDLED_BY if r.handled_by is None else f"{r.handled_by}: {_HANDLED}",
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
                "action_label": _ACTION_LABEL.get(a.action, a.action),
                "action_text": _action_text(a.action, a.evidence),
                "guarantee": a.guarantee,
                "forget_seconds": a.forget_seconds,
                "evidence": dict(a.evidence),
            }
            | _shards(a.action, a.evidence)
            | _in_words(a.action, a.revision, a.evidence, audited)
            | audited
            for a in r.models
            for audited in [_audited(a.model, a.version, a.revision, a.evidence, entries)]
        ],
        # Art. 19: the copies exported before the erasure, of the revisions it replaced
        "recipients": exports.to_notify(
            db, [(a.model, a.version, a.revision) for a in r.models], r.erased_at
        ),
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
            {k: v for k, v in asdict(e).items() if k != "payload"}
            | {"payload": dict(e.payload), "verified": _verified(checked, e.seq)}
            for e in entries
        ],
        "audit_chain_head": {"seq": head.seq, "entry_hash": head.entry_hash},
        "audit_verification": _verification(checked),
    }


def ground_article(ground: str) -> str:
    """The article a legal ground code names, as a lawyer writes it.

    >>> ground_article("art17-1-b")
    'Art. 17(1)(b)'
    """
    article, paragraph, point = ground.removeprefix("art").split("-")
    return f"Art. {article}({paragraph})({point})"


def _verified(checked: AuditVerification, seq: int) -> bool:
    """Whether an entry lies in the part of the chain that verified (all of it, or the part
    before the first bad entry; with no bad entry named, a problem elsewhere, nothing)."""
    if checked.ok:
        return True
    return checked.first_bad_seq is not None and seq < checked.first_bad_seq


def _verification(checked: AuditVerification) -> dict[str, Any]:
    """The chain's check, in fields and in words."""
    if checked.ok:
        text = (
            f"all {checked.entries} entries recomputed under the store's key, in order, ending "
            f"at the sealed head (entry {checked.head.seq}); every request, model version and "
            "dataset in the store has its entry"
        )
    else:
        text = (
            f"{checked.reason}. The entries of this report cannot be relied on: investigate "
            "before filing it"
        )
    return {
        "verified": checked.ok,
        "entries": checked.entries,
        "head": {"seq": checked.head.seq, "entry_hash": checked.head.entry_hash},
        "first_bad_seq": checked.first_bad_seq,
        "problems": list(checked.problems),
        "text": text,
        "note": "compare with a head exported earlier (forget verify --expect-head) to show "
        "that no entry was removed since",
    }


def _in_words(
    action: str, revision: int, ev: Mapping[str, Any], audited: Mapping[str, Any]
) -> dict[str, str]:
    """``evidence_state`` (passed, failed, scheduled, not_checked, pending, retrained,
    retired) and ``evidence_text``: what the evidence of one model action shows."""
    state, text = _evidence_words(action, revision, ev)
    where = audited.get("evidence_audit")
    if where is not None:
        if where["matches"]:
            text += f"; recorded in audit entry {where['seq']}, which holds the same evidence"
        else:
            state = "failed"
            text += (
                "; THE STORED EVIDENCE DIFFERS FROM ITS AUDIT ENTRY"
                if where["seq"] is not None
                else "; NO AUDIT ENTRY RECORDS THIS EVIDENCE"
            )
    if ev.get("note") and state != "scheduled":  # a scheduled check's note is the text above
        text += f" (note: {ev['note']})"
    return {"evidence_state": state, "evidence_text": text}


def _listing(shards: object, parts: object = "shards") -> str:
    """``[3, 7]`` as ``shards 3 and 7`` (``parts``: ``trees`` for a forest's trees)."""
    names = [str(s) for s in shards] if isinstance(shards, list | tuple) else [str(shards)]
    word = "tree" if parts == "trees" else "shard"
    word += "" if len(names) == 1 else "s"
    return f"{word} {', '.join(names[:-1]) + ' and ' if len(names) > 1 else ''}{names[-1]}"


def _action_text(action: str, ev: Mapping[str, Any]) -> str:
    """What a model action did, in words; a sharded model's forget names the shards, a
    forest's that deferred rebuilds its trees."""
    if action == "exact_unlearning" and ev.get("shards_dropped") and ev.get("parts") == "trees":
        return (
            f"forgot the rows exactly, leaving out {_listing(ev['shards_dropped'], 'trees')} "
            "whose subtree rebuilds it deferred; served without them (every tree it still "
            "uses is that of a retrain without the rows) until they are rebuilt"
        )
    if action == "exact_unlearning" and ev.get("shards_dropped"):
        return (
            f"forgot the rows exactly at once by dropping {_listing(ev['shards_dropped'])}, "
            "whose constituents were trained on them; served without them (every constituent "
            "it still uses is that of a retrain without the rows) until they are retrained"
        )
    return _ACTION_TEXT.get(action, action)


def _shards(action: str, ev: Mapping[str, Any]) -> dict[str, Any]:
    """A sharded model's shards: dropped by the erasure, or retrained (and when)."""
    if action == "exact_unlearning" and ev.get("shards_dropped"):
        return {"shards_dropped": list(ev["shards_dropped"])}
    if action == "retrain_shards":
        return {
            "shards_retrained": list(ev.get("shards") or []),
            "retrained_at": ev.get("retrained_at"),
        }
    return {}


def _evidence_words(action: str, revision: int, ev: Mapping[str, Any]) -> tuple[str, str]:
    if action == "retrain_shards" and ev.get("parts") == "trees":
        return "retrained", (
            f"{_listing(ev.get('shards') or [], 'trees')} rebuilt where their subtrees' "
            f"rebuilds were deferred, from the {ev.get('training_rows')} remaining rows those "
            f"held, at {ev.get('retrained_at')} (revision {revision}): exact by construction"
        )
    if action == "retrain_shards":
        return "retrained", (
            f"{_listing(ev.get('shards') or [], ev.get('parts'))} retrained from scratch on their "
            f"{ev.get('training_rows')} remaining training rows at {ev.get('retrained_at')} "
            f"(revision {revision}): exact by construction"
        )
    if action == "retrain":
        return "retrained", (
            f"refitted from scratch on the {ev.get('training_rows')} remaining training rows "
            f"(revision {revision}): exact by construction"
        )
    if action == "retire":
        return "retired", f"retired, never served again: {ev.get('reason') or 'no rows remain'}"
    if action == "pending_retrain":
        return "pending", f"not served until retrained: {ev.get('reason') or 'no reason given'}"
    if ev.get("status") == SCHEDULED:
        return "scheduled", (
            "retrain check scheduled: it runs after the erasure committed and is not recorded yet"
        )
    if ev.get("method") == "none" or "error" in ev:
        why = ev.get("error") or ev.get("reason") or "no reason recorded"
        return "not_checked", f"no retrain check: {why}"
    if ev.get("method") == METHOD and "passed" in ev:
        at = ev.get("checked_revision", revision)
        against = (
            f"a retrain without the rows (revision {at}; "
            f"{ev.get('probe_rows')} of {ev.get('training_rows')} training rows probed)"
        )
        if ev["passed"]:
            same = (
                "outputs identical to"
                if ev.get("identical")
                else f"outputs within {_g(ev.get('tolerance'))} of"
            )
            return "passed", f"retrain check passed: {same} {against}"
        return "failed", (
            f"RETRAIN CHECK FAILED: outputs differ by up to {_g(ev.get('max_abs_diff'))} "
            f"(tolerance {_g(ev.get('tolerance'))}) from {against}"
        )
    listed = "; ".join(f"{k}: {v}" for k, v in sorted(ev.items()))
    return "not_checked", f"evidence not in a known form: {listed or 'none'}"


def _g(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


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


def period(since: object, until: object) -> tuple[str | None, str | None]:
    """A report's period ``[since, until)`` as the store writes timestamps (open: None)."""
    lo, hi = _instant(since, "since"), _instant(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise InvalidPeriodError(f"since {lo} is after until {hi}")
    return lo, hi


def instant(value: object, what: str) -> str | None:
    """A moment given as ISO 8601 text or a datetime, as the store writes timestamps."""
    return _instant(value, what)


def summary_report(
    db: Database, since: object = None, until: object = None, as_of: object = None
) -> dict[str, Any]:
    """Counts and times of the requests received in ``[since, until)`` (open bounds: all).

    ``as_of`` (default: now) is the instant against which requests are overdue: past their
    Art. 12(3) deadline and not completed. Completion time runs from receipt to completion;
    ``no_data`` requests (the store held nothing under the id) are counted, not timed.
    """
    lo, hi = period(since, until)
    at = _instant(as_of, "as_of") or now()
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
    notify = [
        n
        for request_id, *_ in rows
        for rec in [erasure.receipt(db, request_id)]
        for n in exports.to_notify(
            db, [(a.model, a.version, a.revision) for a in rec.models], rec.erased_at
        )
    ]
    outstanding = sorted({n["recipient"] for n in notify if n["replaced_by"] is None})
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
        "recipients": {  # Art. 19: exported copies the period's erasures made stale
            "copies_to_notify": len(notify),
            "replaced": sum(n["replaced_by"] is not None for n in notify),
            "outstanding_recipients": outstanding,
        },
    }


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
