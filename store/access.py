"""The right of access (Art. 15) and to data portability (Art. 20): what the store holds on one
data subject, and what it did with it.

:func:`access` reads, inside the caller's transaction (one consistent view):

- ``datasets``: every dataset holding rows of the subject, with the rows themselves — every
  column, the subject column included, as JSON values (:func:`json_value`) — the
  machine-readable copy Art. 20 asks for; the store's own ``row_id`` is given beside them;
- ``models``: every model version trained on those rows now, its status, the revision it is
  at, and whether requests reach it (``served``: the bare model name or an alias routes to it;
  any ``ready`` version also answers a request that pins it);
- ``forgotten``: what each model version did for the subject's erasure requests (forgot at
  revision *r* by request *X*, then perhaps a retrain); such a version no longer holds the rows;
- ``exports``: the copies handed to recipients (Art. 19) that carry the subject's influence —
  every copy of a version trained on the rows now (``reason`` ``trained_on_rows``), and every
  copy exported before an erasure of a revision the erasure replaced
  (``exported_before_erasure``), with the export that replaced it since, if any;
- ``erasure_requests``: the subject's requests (found by pseudonym), their status and times.
- ``objections`` and ``restrictions``: the subject's objections by purpose (Art. 21) and
  restrictions of processing (Art. 18), in force or lifted (see :mod:`store.purposes`).

The raw id is used only to find the rows, in the dataset tables where it lives; the document
names the subject by pseudonym (``subject_key``), and its audit entry (:func:`audit_payload`)
holds the pseudonym and counts, never an id or a value. A subject the store knows nothing of
(no rows, no request) gives ``found: false``; :meth:`store.ModelStore.access` turns that into
:class:`~store.errors.UnknownSubjectError`.

>>> json_value(float("nan")), json_value(b"\\x00\\xff"), json_value(2.5)
('NaN', '00ff', 2.5)
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from store import data, erasure, exports, purposes
from store._clock import add_month, now
from store.aliases import DEFAULT, Aliases
from store.db import Database, quote
from store.errors import ModelNotServableError
from store.registry import ACTIONS, READY, Registry
from store.subjects import Subject

ACCESS = "subject.access"  # the audit entry's kind
TRAINED = "trained_on_rows"
BEFORE_ERASURE = "exported_before_erasure"


def json_value(value: Any) -> Any:
    """A dataset value as JSON can hold it, losing nothing a reader needs.

    Numbers, text, booleans and null stay as they are; a float that JSON cannot write becomes
    ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``; dates and times their ISO 8601 text; a
    decimal its exact text; bytes their hex; lists and maps element by element.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    item = getattr(value, "item", None)  # a numpy scalar
    return json_value(item()) if callable(item) else str(value)


def routes(registry: Registry, aliases: Aliases, name: str) -> dict[int, list[str]]:
    """The ready versions of model ``name`` that requests reach, and the aliases that route
    there (``default``: the bare name, set or not; other aliases answering or shadowing)."""
    statuses = registry.statuses(name)
    targets = aliases.all(name)
    out: dict[int, list[str]] = {}
    if DEFAULT not in targets:
        with suppress(ModelNotServableError):  # no ready version: the bare name reaches none
            out[aliases.resolve(name).version] = [DEFAULT]
    for alias, target in sorted(targets.items()):
        for v in target.versions:
            if statuses.get(v) == READY and alias not in out.setdefault(v, []):
                out[v].append(alias)
    return {v: names for v, names in out.items() if names}


def access(db: Database, registry: Registry, aliases: Aliases, subject: Subject) -> dict[str, Any]:
    """The access document of ``subject`` (see the module docstring); reads only.

    Call it inside ``db.atomic()`` with the audit entry, so that both see one state.
    """
    found = data.subject_rows(db, subject)
    catalog = data.catalog(db)
    datasets = [_dataset(db, catalog[name], subject) for name in sorted(found)]
    row_ids = sorted(i for ids in found.values() for i in ids)
    models = _trained(db, registry, aliases, row_ids)
    requests = _requests(db, subject.key)
    forgotten = [
        {
            "request_id": r["request_id"],
            "model": a.model,
            "version": a.version,
            "revision": a.revision,
            "action": a.action,
            "version_status": registry.status(a.model, a.version) or "deleted",
        }
        for r in requests
        for a in erasure.actions(db, r["request_id"])
    ]
    copies = _copies_trained(db, registry, models) + _copies_before_erasure(db, requests)
    doc = {
        "subject_key": subject.key,
        "generated_at": now(),
        "found": bool(datasets or requests),
        "datasets": datasets,
        "models": models,
        "forgotten": forgotten,
        "exports": copies,
        "erasure_requests": requests,
        **purposes.of_subject(db, subject.key),  # objections (Art. 21), restrictions (Art. 18)
    }
    doc["counts"] = counts(doc)
    return doc


def counts(doc: Mapping[str, Any]) -> dict[str, int]:
    """How many of each thing an access document lists (what its audit entry records)."""
    return {
        "datasets": len(doc["datasets"]),
        "rows": sum(d["rows"] for d in doc["datasets"]),
        "models_trained": len(doc["models"]),
        "models_served": sum(m["served"] for m in doc["models"]),
        "models_forgot": len({(f["model"], f["version"]) for f in doc["forgotten"]}),
        "exports": len(doc["exports"]),
        "erasure_requests": len(doc["erasure_requests"]),
        "objections": len(doc.get("objections", ())),
        "restrictions": len(doc.get("restrictions", ())),
    }


def audit_payload(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``subject.access`` audit entry: the pseudonym, whether anything was found, counts."""
    return {"subject_key": doc["subject_key"], "found": doc["found"], **counts(doc)}


def _dataset(db: Database, info: data.DatasetInfo, subject: Subject) -> dict[str, Any]:
    cursor = db.execute(
        f"SELECT * FROM {data.table(info.name)} WHERE {quote(info.subject_column)} = ? "
        f"ORDER BY {data.ROW_ID}",
        [subject.raw],
    )
    names = [d[0] for d in cursor.description or ()]
    records, ids = [], []
    for row in cursor.fetchall():
        record = dict(zip(names, row, strict=True))
        ids.append(int(record.pop(data.ROW_ID)))
        records.append({c: json_value(v) for c, v in record.items()})
    return {
        "dataset": info.name,
        "subject_column": info.subject_column,
        "columns": [{"name": c.name, "type": c.type} for c in info.columns],
        "rows": len(records),
        "row_ids": ids,
        "records": records,
    }


def _trained(
    db: Database, registry: Registry, aliases: Aliases, row_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The versions whose training rows include any of ``row_ids`` (rows still held)."""
    if not row_ids:
        return []
    rows = db.all(
        "SELECT v.model, v.version, m.dataset, m.created_at, count(*) FROM version_rows v "
        "JOIN model_versions m USING (model, version) "
        "WHERE v.row_id IN (SELECT unnest(?::BIGINT[])) GROUP BY ALL ORDER BY 1, 2",
        [list(row_ids)],
    )
    reached: dict[str, dict[int, list[str]]] = {}
    out = []
    for model, version, dataset, created, n in rows:
        if model not in reached:
            reached[model] = routes(registry, aliases, model)
        served_by = reached[model].get(int(version), [])
        out.append(
            {
                "model": model,
                "version": int(version),
                "dataset": dataset,
                "trained_at": created,
                "rows": int(n),
                "status": registry.status(model, int(version)),
                "revision": registry.revision(model, int(version)),
                "served": bool(served_by),
                "served_by": served_by,
            }
        )
    return out


def _copies_trained(
    db: Database, registry: Registry, models: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The latest copy each recipient holds of each version trained on the rows now."""
    current = {
        (m["model"], m["version"]): m["revision"] if m["status"] == READY else None for m in models
    }
    out = []
    for name in sorted({m for m, _ in current}):
        for c in exports.copies(db, current, name):
            if (c["model"], c["version"]) in current:
                out.append(_copy(c, TRAINED, c["revision"], c["stale"], c["action"]))
    return out


def _copies_before_erasure(
    db: Database, requests: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Copies exported, before each of the subject's erasures, of a revision it replaced."""
    out = []
    for r in requests:
        moved = [
            (a.model, a.version, a.revision)
            for a in erasure.actions(db, r["request_id"])
            if a.action in ACTIONS  # the forget step; a later retrain moved nothing exported
        ]
        for n in exports.to_notify(db, moved, r["erased_at"]):
            if n["replaced_by"]:
                why = (
                    f"replaced by export {n['replaced_by']} (revision {n['new_revision']}) on "
                    f"{str(n['replaced_at'])[:10]}: ask the recipient to delete the older copy"
                )
            else:
                why = (
                    f"request {r['request_id']} moved v{n['version']} to revision "
                    f"{n['new_revision']}: notify the recipient, and re-export it"
                )
            rec = {
                "export_id": n["export_id"],
                "recipient": n["recipient"],
                "model": n["model"],
                "version": n["version"],
                "exported_at": n["exported_at"],
            }
            out.append(
                _copy(rec, BEFORE_ERASURE, n["exported_revision"], True, why)
                | {"request_id": r["request_id"], "replaced_by": n["replaced_by"]}
            )
    return out


def _copy(
    rec: Mapping[str, Any], reason: str, revision: int, stale: bool, action: str | None
) -> dict[str, Any]:
    return {
        "export_id": rec["export_id"],
        "recipient": rec["recipient"],
        "model": rec["model"],
        "version": int(rec["version"]),
        "revision": int(revision),
        "exported_at": rec["exported_at"],
        "stale": bool(stale),
        "action": action,
        "reason": reason,
        "request_id": None,
        "replaced_by": None,
    }


def _requests(db: Database, subject_key: str) -> list[dict[str, Any]]:
    rows = db.all(
        "SELECT request_id, status, legal_ground, received_at, erased_at, completed_at, "
        "rows_erased FROM erasure_requests WHERE subject_key = ? ORDER BY received_at, request_id",
        [subject_key],
    )
    return [
        {
            "request_id": rid,
            "status": status,
            "status_text": erasure.STATUS_TEXT.get(status, status),
            "legal_ground": ground,
            "received_at": received,
            "erased_at": erased,
            "completed_at": completed,
            "deadline": add_month(received),
            "rows_erased": int(n),
        }
        for rid, status, ground, received, erased, completed, n in rows
    ]
