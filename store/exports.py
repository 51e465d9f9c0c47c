"""Exported copies of models, and the recipients an erasure must reach (Art. 19).

A model exported to another system (ONNX, :mod:`forget.exchange`) is a copy of what personal
data taught it: when an erasure moves the version to a new revision, every recipient holding
an older revision's copy must be told, and sent a fresh one. The store records each export
(model, version, revision, recipient, format, the bytes' SHA-256, when, by whom) in the
``exports`` table and the audit log (``model.exported``); the bytes themselves are never kept.

A copy is *stale* when its version moved past the revision it holds (an erasure), or the
version can no longer serve (it awaits a retrain, was retired, or was deleted): its recipient
should be told and, where the version serves, re-sent the current revision. A later export of
the same version to the same recipient at the current revision *replaces* it.

>>> check_recipient("acme-scoring")
'acme-scoring'
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from store import audit
from store._clock import now
from store.db import Database
from store.errors import ModelError

FORMATS = ("onnx",)
RECIPIENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:/-]{0,99}$")


class ExportError(ModelError, ValueError):
    """An export that cannot be made: an unknown format, a bad recipient name, a model whose
    class has no exported form (kNN: it would carry its training rows), or the ``exchange``
    extra missing."""


@dataclass(frozen=True)
class ExportRecord:
    """One copy that left the store."""

    export_id: str
    model: str
    version: int
    revision: int
    recipient: str
    format: str
    sha256: str
    size: int
    exported_at: str
    exported_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_COLUMNS = (
    "export_id, model, version, revision, recipient, format, sha256, size, exported_at, exported_by"
)


def check_recipient(name: object) -> str:
    """A recipient's name: a system or organisation, 1–100 printable characters."""
    if not isinstance(name, str) or not RECIPIENT_RE.match(name):
        raise ExportError(
            f"recipient {name!r} must be 1-100 characters: letters, digits, space and ._@:/-, "
            "starting with a letter or digit"
        )
    return name


def check_format(fmt: object) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {list(FORMATS)}")
    return str(fmt)


def record(
    db: Database,
    model: str,
    version: int,
    revision: int,
    recipient: str,
    fmt: str,
    blob: bytes,
    by: str | None,
) -> ExportRecord:
    """Record an export and its audit entry, in one transaction."""
    rec = ExportRecord(
        "ex_" + secrets.token_hex(8),
        model,
        int(version),
        int(revision),
        check_recipient(recipient),
        check_format(fmt),
        hashlib.sha256(blob).hexdigest(),
        len(blob),
        now(),
        by,
    )
    with db.atomic():
        db.execute(
            f"INSERT INTO exports ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            list(asdict(rec).values()),
        )
        audit.append(db, "model.exported", rec.as_dict())
    return rec


def records(db: Database, model: str | None = None) -> list[ExportRecord]:
    """Every export (of ``model``), oldest first."""
    rows = db.all(
        f"SELECT {_COLUMNS} FROM exports WHERE (? IS NULL OR model = ?) "
        "ORDER BY exported_at, export_id",
        [model, model],
    )
    return [ExportRecord(*r) for r in rows]


def copies(
    db: Database, current: dict[tuple[str, int], int | None], model: str | None = None
) -> list[dict[str, Any]]:
    """The latest copy each recipient holds of each version, with ``stale`` and why.

    ``current`` maps (model, version) to the revision that serves now, None when the version
    cannot serve (awaits a retrain or is retired); a version absent from it was deleted.
    """
    latest: dict[tuple[str, int, str], ExportRecord] = {}
    for rec in records(db, model):
        latest[(rec.model, rec.version, rec.recipient)] = rec
    out = []
    for (m, v, _), rec in sorted(latest.items()):
        now_rev = current.get((m, v), -1)
        if now_rev == -1:
            why = "the version was deleted: tell the recipient to delete its copy"
        elif now_rev is None:
            why = "the version awaits a retrain or is retired: tell the recipient to stop using it"
        elif now_rev != rec.revision:
            why = f"an erasure moved v{v} to revision {now_rev}: notify, and re-export it"
        else:
            why = None
        out.append(rec.as_dict() | {"stale": why is not None, "action": why})
    return out


def to_notify(
    db: Database, actions: Sequence[tuple[str, int, int]], erased_at: str | None
) -> list[dict[str, Any]]:
    """For an erasure whose models moved to ``actions`` ((model, version, new revision)):
    every copy exported before it of an older revision, its recipient, and the export that
    replaced it since (the same version, to the same recipient, at the new revision or
    later), if any."""
    out = []
    for model, version, revision in actions:
        recs = [r for r in records(db, model) if r.version == version]
        for rec in recs:
            if rec.revision >= revision or (erased_at is not None and rec.exported_at > erased_at):
                continue
            newer = [r for r in recs if r.recipient == rec.recipient and r.revision >= revision]
            out.append(
                {
                    "recipient": rec.recipient,
                    "model": model,
                    "version": version,
                    "exported_revision": rec.revision,
                    "exported_at": rec.exported_at,
                    "export_id": rec.export_id,
                    "new_revision": revision,
                    "replaced_by": newer[0].export_id if newer else None,
                    "replaced_at": newer[0].exported_at if newer else None,
                }
            )
    return out
