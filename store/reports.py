"""Erasure reports: one JSON-able document per request, for Art. 5(2) accountability.

It names the subject only by pseudonym, and gives the Art. 12(3) deadline (received + one
month), what was deleted where, what each model version did (with retrain evidence for exact
models), when the bytes were purged, and the request's audit entries with the chain head.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from store import audit, erasure
from store.db import Database
from store.evidence import PROBE_ROWS

_ACTION_TEXT = {
    "exact_unlearning": "forgot the rows exactly (equal to a retrain without them)",
    "approximate_unlearning": "forgot the rows approximately (within the stated bound)",
    "pending_retrain": "could not forget in place; not served until retrained",
}


def erasure_report(db: Database, request_id: str) -> dict[str, Any]:
    """The report of one request (raises :class:`~store.errors.UnknownRequestError`)."""
    r = erasure.receipt(db, request_id)
    entries = audit.entries_for_request(db, request_id)
    head = audit.head(db)
    return {
        "request_id": r.request_id,
        "subject_key": r.subject_key,
        "legal_ground": r.legal_ground,
        "legal_ground_text": erasure.LEGAL_GROUNDS[r.legal_ground],
        "status": r.status,
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
            for a in r.models
        ],
        "evidence_policy": (
            f"every request: each model that forgot is compared with a retrain from scratch "
            f"on up to {PROBE_ROWS} of its remaining training rows"
        ),
        "physical_purge": {
            "purged_at": r.completed_at if r.status == erasure.COMPLETED else None,
            "method": "artifacts rewritten without the rows; database copied to a fresh file "
            "and swapped in (no WAL or old file keeps them)",
        },
        "audit_entries": [
            {k: v for k, v in asdict(e).items() if k != "payload"} | {"payload": dict(e.payload)}
            for e in entries
        ],
        "audit_chain_head": {"seq": head.seq, "entry_hash": head.entry_hash},
    }
