"""Objection by purpose (Art. 21) and restriction of processing (Art. 18): the data stays,
the models stop using it.

A model version may carry a *purpose* (``train(..., purpose="marketing")``); one trained
without is *unspecified*, and no objection to a purpose touches it (an objection names the
processing it objects to; a version that declares none is no such processing). A purpose is
*known* once declared (:func:`declare`) or trained for; an objection to any other is refused
(:class:`~store.errors.UnknownPurposeError`): most likely a typo, which must not record a
right as honoured when it was not.

- :func:`object_to`: every version of the purpose's models (any status) forgets the
  subject's rows, exactly as for an erasure (``forget`` in memory inside the transaction; a
  version that cannot forget in place goes ``pending_retrain``); the rows leave those
  versions' training rows (``version_rows``), so a retrain, a later erasure or an access
  report sees that they no longer hold them. Other purposes keep them; the data stays.
- :func:`restrict`: the same for every version; which rows each version set aside is kept
  (``restricted_rows``: ids of rows that stay in the datasets) for the lift.
- :func:`lift`: each version that set rows aside takes them back — a model with ``learn``
  (kNN, linear, naive Bayes) learns them in place, exactly (equal to a fit on the union); any
  other (forests, logistic regression) goes ``pending_retrain`` and the purge refits it on its
  training rows, which include them again. A version of a purpose the subject objected to
  takes nothing back; rows erased meanwhile are gone for good.
- :func:`withheld`: the rows training leaves out: those of restricted subjects, and for a
  purpose those of the subjects who objected to it.

Each step is one transaction with its ``forget_log`` entries (a lift's have action ``learn``;
replay at open learns them again from the dataset) and one audit entry — ``subject.objected``,
``subject.restricted``, ``subject.restriction_lifted`` — holding the pseudonym, the counts and
each version's action, never the subject id. Repeats answer with the earlier record
(``repeat``) and write nothing.

>>> check_purpose("marketing"), is_purpose_name("credit-risk")
('marketing', True)
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from store import audit, data
from store._clock import now
from store.db import Database, quote
from store.errors import (
    InvalidPurposeError,
    NotRestrictedError,
    UnknownPurposeError,
    UnknownSubjectError,
)
from store.registry import PENDING, RETIRED, ForgetOp, ForgetOutcome, Registry
from store.subjects import Subject, SubjectKeys

OBJECTED, RESTRICTED, LIFTED = (
    "subject.objected",
    "subject.restricted",
    "subject.restriction_lifted",
)
DECLARED = "purpose.declared"
PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_EVIDENCE = {"method": "none", "reason": "not an erasure: the rows stay in the dataset"}
BeforeForget = Callable[[Sequence[tuple[str, int]]], None]


def is_purpose_name(purpose: object) -> bool:
    """Whether ``purpose`` has the form of a purpose name."""
    return isinstance(purpose, str) and PURPOSE_RE.fullmatch(purpose) is not None


def check_purpose(purpose: object) -> str:
    if not is_purpose_name(purpose):
        raise InvalidPurposeError(
            f"purpose {purpose!r} must be a lower-case name matching {PURPOSE_RE.pattern}"
        )
    return str(purpose)


@dataclass(frozen=True)
class Step:
    """What one model version did for an objection, a restriction or its lift: ``action``
    ``exact_unlearning``, ``learn`` (took the rows back in place) or ``pending_retrain``."""

    model: str
    version: int
    revision: int
    action: str
    guarantee: str | None
    rows: int
    reason: str | None = None


@dataclass(frozen=True)
class ObjectionReceipt:
    """The answer to an objection: the versions of ``purpose`` that forgot ``rows`` rows."""

    objection_id: str
    subject_key: str
    purpose: str
    objected_at: str
    objected_by: str | None
    rows: int
    models: tuple[Step, ...]
    repeat: bool = False


@dataclass(frozen=True)
class RestrictionReceipt:
    """A restriction (``status`` ``restricted``) or its lift (``lifted``), and what each
    version did in this step (none on a repeat)."""

    restriction_id: str
    subject_key: str
    status: str
    since: str
    restricted_by: str | None
    rows: int
    lifted_at: str | None
    lifted_by: str | None
    models: tuple[Step, ...]
    repeat: bool = False


# ---------------------------------------------------------------------- purposes
def declare(db: Database, purpose: str, by: str | None) -> bool:
    """Declare ``purpose`` (audited) so that objections to it are taken before a model is
    trained for it; False if it was known already."""
    purpose = check_purpose(purpose)
    with db.atomic():
        if known(db, purpose):
            return False
        db.execute("INSERT INTO purposes VALUES (?, ?, ?)", [purpose, now(), by])
        audit.append(db, DECLARED, {"purpose": purpose, "by": by})
    return True


def known(db: Database, purpose: str) -> bool:
    row = db.one(
        "SELECT EXISTS (SELECT 1 FROM purposes WHERE purpose = ?) "
        "OR EXISTS (SELECT 1 FROM model_versions WHERE purpose = ?)",
        [purpose, purpose],
    )
    return bool(row and row[0])


def names(db: Database) -> list[str]:
    """Every known purpose: declared or trained for."""
    return [
        str(p)
        for (p,) in db.all(
            "SELECT purpose FROM purposes UNION SELECT purpose FROM model_versions "
            "WHERE purpose IS NOT NULL ORDER BY 1"
        )
    ]


def objection_counts(db: Database) -> dict[str, int]:
    """The number of objections recorded to each purpose."""
    rows = db.all("SELECT purpose, count(*) FROM objections GROUP BY purpose")
    return {str(p): int(n) for p, n in rows}


# ---------------------------------------------------------------------- training
def withheld(db: Database, keys: SubjectKeys, dataset: str, purpose: str | None) -> np.ndarray:
    """Row ids of ``dataset`` that training (for ``purpose``) leaves out: restricted
    subjects' rows, and the rows of subjects who objected to ``purpose``.

    Only pseudonyms are recorded, so the dataset's distinct subject ids are keyed to find
    them (one pass; nothing when no restriction or objection applies).
    """
    wanted = {
        str(k)
        for (k,) in db.all(
            "SELECT subject_key FROM restrictions WHERE lifted_at IS NULL UNION "
            "SELECT subject_key FROM objections WHERE purpose = ?",
            [purpose],
        )
    }
    if not wanted:
        return np.empty(0, dtype=np.int64)
    info = data.get(db, dataset)
    column, table = quote(info.subject_column), data.table(dataset)
    raws = [str(r) for (r,) in db.all(f"SELECT DISTINCT {column} FROM {table}")]
    hit = [r for r in raws if keys.subject(r).key in wanted]
    if not hit:
        return np.empty(0, dtype=np.int64)
    rows = db.all(
        f"SELECT {data.ROW_ID} FROM {table} WHERE {column} IN (SELECT unnest(?::VARCHAR[])) "
        f"ORDER BY 1",
        [hit],
    )
    return np.array([int(i) for (i,) in rows], dtype=np.int64)


# ---------------------------------------------------------------------- objection
def object_to(
    db: Database,
    registry: Registry,
    subject: Subject,
    purpose: str,
    by: str | None,
    before_forget: BeforeForget | None = None,
) -> ObjectionReceipt:
    """Record the subject's objection to ``purpose``; that purpose's versions forget the
    subject's rows (see the module docstring)."""
    purpose = check_purpose(purpose)
    with _transaction(db, registry) as touched:
        if not known(db, purpose):
            raise UnknownPurposeError(
                f"no model was trained for purpose {purpose!r} and it was never declared "
                f"(known purposes: {names(db)})"
            )
        earlier = _objection(db, subject.key, purpose)
        if earlier is not None:
            return earlier
        found = data.subject_rows(db, subject)
        if not found:
            raise UnknownSubjectError()
        ids = sorted(i for rows in found.values() for i in rows)
        only = {
            (str(m), int(v))
            for m, v in db.all(
                "SELECT model, version FROM model_versions WHERE purpose = ?", [purpose]
            )
        }
        oid, at = "ob_" + secrets.token_hex(8), now()
        done, pending = _forget(registry, oid, ids, only, before_forget, at, touched)
        db.execute(
            "INSERT INTO objections VALUES (?, ?, ?, ?, ?, ?)",
            [oid, subject.key, purpose, at, by, len(ids)],
        )
        steps = _steps(done)
        audit.append_many(
            db,
            [
                (
                    OBJECTED,
                    {
                        "objection_id": oid,
                        "subject_key": subject.key,
                        "purpose": purpose,
                        "by": by,
                        "datasets": {name: len(rows) for name, rows in found.items()},
                        "rows": len(ids),
                        "models": _payload(steps),
                    },
                ),
                *pending,
            ],
        )
    return ObjectionReceipt(oid, subject.key, purpose, at, by, len(ids), steps)


def _objection(db: Database, key: str, purpose: str) -> ObjectionReceipt | None:
    row = db.one(
        "SELECT objection_id, objected_at, objected_by, rows FROM objections "
        "WHERE subject_key = ? AND purpose = ?",
        [key, purpose],
    )
    if row is None:
        return None
    oid, at, by, n = row
    return ObjectionReceipt(oid, key, purpose, at, by, int(n), (), repeat=True)


# ---------------------------------------------------------------------- restriction
def restrict(
    db: Database,
    registry: Registry,
    subject: Subject,
    by: str | None,
    before_forget: BeforeForget | None = None,
) -> RestrictionReceipt:
    """Restrict the processing of the subject's rows: every version forgets them (see the
    module docstring); repeated while restricted, the earlier restriction."""
    with _transaction(db, registry) as touched:
        earlier = _active(db, subject.key)
        if earlier is not None:
            return earlier
        found = data.subject_rows(db, subject)
        if not found:
            raise UnknownSubjectError()
        ids = sorted(i for rows in found.values() for i in rows)
        dataset_of = {i: name for name, rows in found.items() for i in rows}
        rid, at = "rs_" + secrets.token_hex(8), now()
        done, pending = _forget(registry, rid, ids, None, before_forget, at, touched)
        db.execute(
            "INSERT INTO restrictions VALUES (?, ?, ?, ?, ?, NULL, NULL)",
            [rid, subject.key, at, by, len(ids)],
        )
        kept = [(rid, op.model, op.version, dataset_of[i], i) for op, _ in done for i in op.row_ids]
        if kept:
            db.insert(
                "restricted_rows",
                ["restriction_id", "model", "version", "dataset", "row_id"],
                kept,
            )
        steps = _steps(done)
        audit.append_many(
            db,
            [
                (
                    RESTRICTED,
                    {
                        "restriction_id": rid,
                        "subject_key": subject.key,
                        "by": by,
                        "datasets": {name: len(rows) for name, rows in found.items()},
                        "rows": len(ids),
                        "models": _payload(steps),
                    },
                ),
                *pending,
            ],
        )
    return RestrictionReceipt(rid, subject.key, "restricted", at, by, len(ids), None, None, steps)


def lift(
    db: Database,
    registry: Registry,
    subject: Subject,
    by: str | None,
    before_forget: BeforeForget | None = None,
) -> RestrictionReceipt:
    """Lift the subject's restriction: each version that set rows aside takes back those
    still in its dataset, unless the subject objected to its purpose (see the module
    docstring). Raises :class:`~store.errors.NotRestrictedError` when none is in force."""
    with _transaction(db, registry) as touched:
        active = _active(db, subject.key)
        if active is None:
            raise NotRestrictedError(
                "the processing of this subject is not restricted: nothing to lift "
                "(the id is not repeated; check it)"
            )
        rid = active.restriction_id
        objected = {
            str(p)
            for (p,) in db.all(
                "SELECT purpose FROM objections WHERE subject_key = ?", [subject.key]
            )
        }
        back: dict[tuple[str, int], list[int]] = {}
        for m, v, i in db.all(
            "SELECT r.model, r.version, r.row_id FROM restricted_rows r "
            "JOIN model_versions m USING (model, version) WHERE r.restriction_id = ? "
            "AND m.status <> ? AND (m.purpose IS NULL OR m.purpose NOT IN "
            "(SELECT unnest(?::VARCHAR[]))) ORDER BY 1, 2, 3",
            [rid, RETIRED, sorted(objected)],
        ):
            back.setdefault((str(m), int(v)), []).append(int(i))
        ops = []
        for (m, v), ids in sorted(back.items()):
            there = registry.rows(m, v, ids)[0]  # rows erased meanwhile stay gone
            if there.size:
                rev = registry.revision(m, v) + 1
                ops.append(ForgetOp(m, v, rev, rid, tuple(sorted(there.tolist()))))
        at = now()
        done, pending = _apply(registry, ops, registry.learn, before_forget, at, touched)
        registry.take_back(ops)
        db.execute(
            "UPDATE restrictions SET lifted_at = ?, lifted_by = ? WHERE restriction_id = ?",
            [at, by, rid],
        )
        db.execute("DELETE FROM restricted_rows WHERE restriction_id = ?", [rid])
        steps = _steps(done)
        audit.append_many(
            db,
            [
                (
                    LIFTED,
                    {
                        "restriction_id": rid,
                        "subject_key": subject.key,
                        "by": by,
                        "rows": sum(len(op.row_ids) for op in ops),
                        "objected_purposes": sorted(objected),
                        "models": _payload(steps),
                    },
                ),
                *pending,
            ],
        )
    return RestrictionReceipt(
        rid,
        subject.key,
        "lifted",
        active.since,
        active.restricted_by,
        active.rows,
        at,
        by,
        steps,
    )


def _active(db: Database, key: str) -> RestrictionReceipt | None:
    row = db.one(
        "SELECT restriction_id, since, restricted_by, rows FROM restrictions "
        "WHERE subject_key = ? AND lifted_at IS NULL",
        [key],
    )
    if row is None:
        return None
    rid, since, by, n = row
    return RestrictionReceipt(rid, key, "restricted", since, by, int(n), None, None, (), True)


# ---------------------------------------------------------------------- shared
def _forget(
    registry: Registry,
    step_id: str,
    ids: Sequence[int],
    only: set[tuple[str, int]] | None,
    before_forget: BeforeForget | None,
    at: str,
    touched: list[tuple[str, int]],
) -> tuple[list[tuple[ForgetOp, ForgetOutcome]], list[tuple[str, dict[str, Any]]]]:
    """The versions (of ``only``) trained on ``ids`` forget them and set them aside, inside
    the caller's transaction: the outcomes, and the audit entries of versions gone pending."""
    ops = registry.plan_forget(step_id, ids, only)
    done, pending = _apply(registry, ops, registry.forget, before_forget, at, touched)
    registry.set_aside(ops)
    return done, pending


def _apply(
    registry: Registry,
    ops: Sequence[ForgetOp],
    act: Callable[[ForgetOp], ForgetOutcome],
    before_forget: BeforeForget | None,
    at: str,
    touched: list[tuple[str, int]],
) -> tuple[list[tuple[ForgetOp, ForgetOutcome]], list[tuple[str, dict[str, Any]]]]:
    """Each op's version forgets or learns its rows (``act``) in memory, logged at ``at``;
    the outcomes, and the audit entries of versions gone pending."""
    pairs = sorted({(op.model, op.version) for op in ops})
    if before_forget is not None and pairs:
        before_forget(pairs)
    done = []
    for op in ops:
        touched.append((op.model, op.version))
        done.append((op, act(op)))
    registry.log(done, [audit.canonical(_EVIDENCE)] * len(done), at)
    return done, registry.mark_pending(done)


@contextmanager
def _transaction(db: Database, registry: Registry) -> Iterator[list[tuple[str, int]]]:
    """One step's transaction; yields the list of versions the step touches in memory,
    which are loaded again from the store if the step fails (nothing of it happened)."""
    touched: list[tuple[str, int]] = []
    try:
        with db.atomic():
            yield touched
    except BaseException:
        if touched:
            registry.reload(sorted(set(touched)))
        raise


def _steps(done: Sequence[tuple[ForgetOp, ForgetOutcome]]) -> tuple[Step, ...]:
    return tuple(
        Step(op.model, op.version, op.revision, o.action, o.guarantee, len(op.row_ids), o.reason)
        for op, o in done
    )


def _payload(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [
        {
            "model": s.model,
            "version": s.version,
            "revision": s.revision,
            "action": s.action,
            "rows": s.rows,
        }
        for s in steps
    ]


def pending_steps(steps: Sequence[Step]) -> bool:
    """Whether a version went pending (a purge then retrains it)."""
    return any(s.action == PENDING for s in steps)


def of_subject(db: Database, key: str) -> dict[str, list[dict[str, Any]]]:
    """The subject's objections and restrictions, for the access report (Art. 15)."""
    objections = [
        {"objection_id": o, "purpose": p, "objected_at": t, "objected_by": b, "rows": int(n)}
        for o, p, t, b, n in db.all(
            "SELECT objection_id, purpose, objected_at, objected_by, rows FROM objections "
            "WHERE subject_key = ? ORDER BY objected_at, purpose",
            [key],
        )
    ]
    restrictions = [
        {
            "restriction_id": r,
            "status": "restricted" if lifted is None else "lifted",
            "since": since,
            "restricted_by": b,
            "rows": int(n),
            "lifted_at": lifted,
            "lifted_by": lb,
        }
        for r, since, b, n, lifted, lb in db.all(
            "SELECT restriction_id, since, restricted_by, rows, lifted_at, lifted_by "
            "FROM restrictions WHERE subject_key = ? ORDER BY since",
            [key],
        )
    ]
    return {"objections": objections, "restrictions": restrictions}


def as_json(receipt: ObjectionReceipt | RestrictionReceipt) -> dict[str, Any]:
    """A receipt as JSON-able dict (models as lists of dicts)."""
    out = dict(vars(receipt))
    out["models"] = [dict(vars(s)) for s in receipt.models]
    return json.loads(json.dumps(out))
