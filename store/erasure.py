"""Erasure requests: one transaction deletes the rows, logs and records what every model did,
and audits it; a purge later removes the bytes.

:func:`erase` plans the forget operations from memory, and the models forget in memory *inside*
the transaction window, before anything is committed, so that their outcomes are written with
the deletion: the subject's rows leave every dataset; one ``forget_log`` entry per affected
model version, with what it did (``erasure_actions`` is a view of these); the request; and the
audit entries — six statements in all for a subject in one dataset. ``forget_log`` is the
durable truth: on open, models are rebuilt from their checkpoint plus ``forget_log`` (replay is
deterministic), so a crash at any point leaves the store before the request or after it. If
the transaction fails, the models that forgot are rebuilt the same way, from what did commit.

A sharded model (:class:`forget.Sharded`) forgets by dropping the shards that held the rows
and keeps serving without them (``exact_unlearning``, its evidence naming ``shards_dropped``;
a sampled retrain check is scheduled, to run once they are back); the purge retrains them as a
revision of its own, a ``retrain_shards`` step of the request (see
:meth:`~store.registry.Registry.retrain_shards`).

A request is ``pending`` while a model version it touched awaits a retrain (see
:mod:`store.retrain`), ``erased`` when every model forgot but the bytes are not yet purged, and
``completed`` once :func:`purge` rewrote the artifacts and compacted the database too.

A request sampled for retrain checks gets them inside the transaction, or with ``deferred``
has them recorded as ``scheduled`` in the same statements (its ``evidence_status`` is
``scheduled`` until :func:`store.evidence.record` recorded every one, then ``recorded``).

Repeats are idempotent: a request for a subject with no rows left returns the receipt of that
subject's latest earlier request (``repeat=True``); with no earlier request it records a no-op
request that completes at once (nothing held, so nothing to erase).
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import forget
from store import audit, data, evidence, retention
from store._clock import add_month, now
from store._faults import crash_point
from store.db import Database
from store.errors import InvalidLegalGroundError, UnknownRequestError
from store.registry import (
    PENDING,
    SHARDS,
    SHARDS_RETRAINED,
    CheckpointJob,
    ForgetOp,
    ForgetOutcome,
    Registry,
    ShardRetrain,
    parts_of,
)
from store.subjects import Subject

if TYPE_CHECKING:  # retrain imports this module
    from store.retrain import RetrainResult

PENDING_REQUEST, ERASED, COMPLETED = "pending", "erased", "completed"
NO_DATA = "no_data"  # the store held nothing under the subject id: recorded, nothing erased
STATUSES = (PENDING_REQUEST, ERASED, COMPLETED, NO_DATA)
STATUS_TEXT = {
    PENDING_REQUEST: "the rows are deleted; a model that could not forget them in place is not "
    "served until it is retrained",
    ERASED: "the rows are deleted and every model forgot them; the physical purge follows",
    COMPLETED: "erased from every dataset and model, and physically purged",
    NO_DATA: "this store held no data under this subject id at the time of the request: "
    "nothing was erased (check the id)",
}
LEGAL_GROUNDS = {
    "art17-1-a": "no longer necessary for the purposes",
    "art17-1-b": "consent withdrawn",
    "art17-1-c": "objection under Art. 21",
    "art17-1-d": "unlawfully processed",
    "art17-1-e": "legal obligation to erase",
    "art17-1-f": "child's data, information society services",
}
# what reports say of each ground: the Art. 17 grounds a request names, and retention's
GROUND_TEXT = LEGAL_GROUNDS | {retention.GROUND: retention.GROUND_TEXT}
_REQUEST_COLUMNS = (
    "request_id, subject_key, legal_ground, status, received_at, erased_at, completed_at, "
    "datasets_json, rows_erased, purged_at, evidence_rate, evidence_sampled, evidence_status, "
    "requested_by, handled_by, expired_before"
)


@dataclass(frozen=True)
class ModelAction:
    """What one model version did for a request.

    ``action``: ``exact_unlearning``, ``approximate_unlearning``, ``pending_retrain``, or —
    once a pending version was dealt with — ``retrain`` (refitted on the remaining rows) or
    ``retire`` (nothing left to refit on); a sharded model's ``exact_unlearning`` that dropped
    shards (its evidence's ``shards_dropped``) is followed by ``retrain_shards`` once a purge
    retrained them (its evidence: ``shards``, ``training_rows``, ``retrained_at``).
    ``row_ids`` are the training rows the version forgot, on the receipt :func:`erase` returns
    (for replicas that must forget them too); receipts read back later leave it empty.
    """

    model: str
    version: int
    revision: int
    action: str
    guarantee: str | None
    forget_seconds: float | None
    evidence: Mapping[str, Any]
    row_ids: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ErasureReceipt:
    """The answer to an erasure request; ``status`` is ``pending``, ``erased`` or ``completed``.

    ``pending``: rows deleted, but a model version awaits a retrain (it is not served until
    then); ``erased``: rows deleted and every model forgot, bytes not yet purged;
    ``completed``: purged too. ``repeat`` is true when this receipt answers a repeated request
    with the earlier one's.
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
    requested_by: str | None = None  # who asked (an API key's name, ``cli:<user>``, ...)
    handled_by: str | None = None  # the forget instance that carried the request out


def check_legal_ground(ground: object) -> str:
    if ground not in LEGAL_GROUNDS:
        raise InvalidLegalGroundError(
            f"legal ground {ground!r} is not one of {sorted(LEGAL_GROUNDS)} (Art. 17(1)(a)-(f))"
        )
    return str(ground)


CHANNELS = ("python", "http", "cli", "retention")


def handler(channel: str) -> str:
    """Who handles a request arriving through ``channel``: this forget instance, by version
    and host (``forget 0.1.0 (http) on db-7``); recorded with the request."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    return f"forget {forget.__version__} ({channel}) on {socket.gethostname()}"


def new_request_id() -> str:
    return "er_" + secrets.token_hex(8)


def is_request_id(text: str) -> bool:
    """Whether ``text`` has the form of a request id (``er_`` and 16 hex digits).

    Anything else given where a request id belongs may be a subject id pasted by mistake, so it
    is never repeated in a message or a log line.

    >>> is_request_id(new_request_id()), is_request_id("subject-123")
    (True, False)
    """
    return len(text) == 19 and text.startswith("er_") and all(c in _HEX for c in text[3:])


_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Request:
    """An erasure request to carry out: who, on what ground, its id and evidence policy.

    ``request_id`` is drawn by the caller (the evidence sample is keyed by it); ``policy``
    says whether this request gets retrain checks. ``requested_by`` and ``handled_by`` are
    recorded with the request and in its ``erasure.committed`` audit entry.
    """

    subject: Subject
    legal_ground: str
    request_id: str
    policy: evidence.Policy
    requested_by: str | None = None
    handled_by: str | None = None
    expires: retention.Expiry | None = None  # a retention request: these rows, no subject


def erase(
    db: Database,
    registry: Registry,
    requests: Sequence[Request],
    *,
    deferred: bool = False,
    before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
    after_forget: Callable[[], None] | None = None,
    removed: list[dict[str, data.DeletedRows]] | None = None,
) -> list[ErasureReceipt]:
    """Erasure requests, in order, in one transaction, the models forgetting inside it; the
    receipts from memory, one per request.

    A group costs the statements of one request (one ``DELETE ... RETURNING`` per dataset, one
    insert each into the forget log, the requests and the audit log, and the commit) and one
    ``forget`` call per exactly unlearning model version (:meth:`Registry.forget_many`), and
    each request keeps all it would have alone: its own rows and models' revisions, its
    ``forget_log`` entries, its request row, its audit entries (in request order), its
    receipt. A request whose subject an earlier one in the group erased is a repeat of it, as
    it would be after it. If anything fails, nothing of the group commits (and the models
    that forgot are rebuilt from what did); a caller that groups requests retries them alone.

    With ``deferred`` the sampled retrain checks are scheduled, not run. ``before_forget`` is
    called once with the (model, version) pairs about to forget, just before they do (a server
    fences their predictions there), and ``after_forget`` once they did: nothing after it
    changes them, unless the transaction fails (then they are rebuilt: new objects).
    ``removed``, when given, receives the deleted rows of each request by dataset (one dict
    per request) once the transaction committed.
    """
    touched: list[tuple[str, int]] = []
    received = now()
    try:
        with db.atomic():
            taken = data.take_subjects(db, [r.subject for r in requests if r.expires is None])
            erased_at = now()
            first = _latest(db, [r.subject.key for r in requests if r.subject.key not in taken])
            kept: list[tuple[Request, dict[str, data.DeletedRows]] | str] = []
            for r in requests:
                rows = taken.pop(r.subject.key, {})  # a later request of the subject: none
                earlier = first.get(r.subject.key)
                if r.expires is not None:  # retention: the rows past the cutoff, no repeats
                    e, earlier = r.expires, None
                    got = data.take_rows(db, e.dataset, e.where, [e.before])
                    rows = {e.dataset: got} if got.row_ids.size else {}
                if not rows and earlier is not None:
                    kept.append(earlier)  # a repeat: that request's receipt
                    continue
                first[r.subject.key] = r.request_id
                kept.append((r, rows))
            group = carry_out(
                registry,
                kept,
                received=received,
                erased_at=erased_at,
                deferred=deferred,
                before_forget=before_forget,
                after_forget=after_forget,
                touched=touched,
            )
            crash_point("erase.after_forget")
            record_groups(db, registry, [group])
            repeats = receipts(db, [p for p in group.plans if isinstance(p, str)], repeat=True)
            out = [
                repeats[p] if isinstance(p, str) else group.receipts[p[0].request_id]
                for p in group.plans
            ]
            crash_point("erase.before_commit")
    except BaseException:
        if touched:  # they forgot in memory what did not commit: rebuild them from the log
            registry.reload(touched)
        raise
    crash_point("erase.after_commit")
    if removed is not None:
        removed += group.removed()
    return out


@dataclass
class Group:
    """Erasure requests carried out in memory (:func:`carry_out`), for one transaction to
    record (:func:`record_groups`).

    ``plans`` hold, per request in order, the request, its rows by dataset and its forget
    operations, or for a repeat the earlier request's id; ``done`` the operations with their
    outcomes, per request; ``receipts`` the new requests' receipts by request id.
    """

    plans: list[tuple[Request, dict[str, data.DeletedRows], list[ForgetOp]] | str]
    done: list[list[tuple[ForgetOp, ForgetOutcome]]]
    proofs: dict[str, list[dict[str, Any]]]
    texts: dict[str, list[str]]
    statuses: dict[str, tuple[str, str | None, str | None]]  # status, completed_at, purged_at
    receipts: dict[str, ErasureReceipt]
    received: str
    erased_at: str

    def removed(self) -> list[dict[str, data.DeletedRows]]:
        """The deleted rows of each request by dataset (none for a repeat)."""
        return [{} if isinstance(p, str) else p[1] for p in self.plans]


def carry_out(
    registry: Registry,
    kept: Sequence[tuple[Request, dict[str, data.DeletedRows]] | str],
    *,
    received: str,
    erased_at: str,
    deferred: bool,
    before_forget: Callable[[Sequence[tuple[str, int]]], None] | None = None,
    after_forget: Callable[[], None] | None = None,
    planned: dict[tuple[str, int], int] | None = None,
    touched: list[tuple[str, int]] | None = None,
) -> Group:
    """What the requests do in memory, in order: each one's forget operations planned
    (revisions after ``planned``'s, when given: see :meth:`Registry.plan_forget_many`), the
    models forgetting (``before_forget`` and ``after_forget`` around it, as in :func:`erase`),
    the evidence and the receipts. No statement is run (deferred checks are only scheduled;
    inline ones refit in memory). ``touched`` receives the (model, version) pairs about to
    forget, before they do: if anything fails after that, the caller rebuilds them."""
    each = iter(
        registry.plan_forget_many(
            [
                (k[0].request_id, [int(i) for t in k[1].values() for i in t.row_ids])
                for k in kept
                if not isinstance(k, str)
            ],
            planned=planned,
        )
    )
    plans: list[tuple[Request, dict[str, data.DeletedRows], list[ForgetOp]] | str] = [
        k if isinstance(k, str) else (*k, next(each)) for k in kept
    ]
    pairs = sorted({(op.model, op.version) for p in plans if not isinstance(p, str) for op in p[2]})
    if touched is not None:
        touched += pairs
    if before_forget is not None and pairs:
        before_forget(pairs)
    ops_of = [[] if isinstance(p, str) else p[2] for p in plans]
    outcomes = iter(registry.forget_many([op for ops in ops_of for op in ops]))
    done_by = [[(op, next(outcomes)) for op in ops] for ops in ops_of]
    if after_forget is not None and pairs:
        after_forget()
    g = Group(plans, done_by, {}, {}, {}, {}, received, erased_at)
    for plan, done in zip(plans, done_by, strict=True):
        if not isinstance(plan, str):
            g.proofs[plan[0].request_id] = [
                _evidence(registry, op, o, plan[0].policy, deferred) for op, o in done
            ]
    g.texts = {q: [audit.canonical(p) for p in ps] for q, ps in g.proofs.items()}
    parsed: dict[str, Any] = {}  # evidence texts read back, once each
    for plan, done in zip(plans, done_by, strict=True):
        if isinstance(plan, str):
            continue
        r, rows, _ = plan
        counts = {name: len(t.row_ids) for name, t in rows.items()}
        n = sum(counts.values())
        if not n:
            status, completed, purged = NO_DATA, erased_at, erased_at
        elif any(o.action == PENDING for _, o in done):
            status, completed, purged = PENDING_REQUEST, None, None
        else:
            status, completed, purged = ERASED, None, None
        g.statuses[r.request_id] = (status, completed, purged)
        g.receipts[r.request_id] = ErasureReceipt(
            r.request_id,
            status,
            r.subject.key,
            r.legal_ground,
            received,
            erased_at,
            completed,
            add_month(received),
            counts,
            n,
            _actions(done, g.texts[r.request_id], parsed),
            requested_by=r.requested_by,
            handled_by=r.handled_by,
        )
    return g


def record_groups(db: Database, registry: Registry, groups: Sequence[Group]) -> None:
    """Record groups carried out in memory, in order, inside the caller's transaction, with
    the statements of one: their forget log entries, the versions that went pending, the
    request rows and the audit entries (their rows were deleted by the caller)."""
    everything = [d for g in groups for done in g.done for d in done]
    texts = [
        t
        for g in groups
        for p in g.plans
        if not isinstance(p, str)
        for t in g.texts[p[0].request_id]
    ]
    ats = [g.erased_at for g in groups for done in g.done for _ in done]
    registry.log(everything, texts, ats)
    pending: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for kind, payload in registry.mark_pending(everything):
        pending.setdefault(payload["request_id"], []).append((kind, payload))
    rows_in: list[list[Any]] = []
    entries: list[tuple[str, dict[str, Any]]] = []
    for g in groups:
        for plan, done in zip(g.plans, g.done, strict=True):
            if isinstance(plan, str):
                continue
            counts = g.receipts[plan[0].request_id].datasets  # rows by dataset, as answered
            rows_in.append(_request_row(g, plan[0], counts))
            entries += [
                _committed_entry(plan[0], counts, plan[2]),
                *pending.get(plan[0].request_id, []),
                *_action_entries(done, g.proofs[plan[0].request_id]),
            ]
    db.insert("erasure_requests", _REQUEST_COLUMNS.split(", "), rows_in)
    audit.write(db, entries)


def _request_row(g: Group, r: Request, counts: Mapping[str, int]) -> list[Any]:
    """A request's ``erasure_requests`` row (``counts``: its rows by dataset)."""
    status, completed, purged = g.statuses[r.request_id]
    waits = any(p.get("status") == evidence.SCHEDULED for p in g.proofs[r.request_id])
    return [
        r.request_id,
        r.subject.key,
        r.legal_ground,
        status,
        g.received,
        g.erased_at,
        completed,
        json.dumps(counts, sort_keys=True),
        sum(counts.values()),
        purged,
        r.policy.rate,
        r.policy.sampled,
        evidence.SCHEDULED if waits else None,
        r.requested_by,
        r.handled_by,
        None if r.expires is None else r.expires.before,
    ]


def _committed_entry(
    r: Request, counts: Mapping[str, int], ops: Sequence[ForgetOp]
) -> tuple[str, dict[str, Any]]:
    """A request's ``erasure.committed`` audit entry (``counts``: its rows by dataset)."""
    return (
        "erasure.committed",
        {
            "request_id": r.request_id,
            "subject_key": r.subject.key,
            "legal_ground": r.legal_ground,
            "requested_by": r.requested_by,
            "handled_by": r.handled_by,
            "datasets": counts,
            "rows": sum(counts.values()),
            "models": [[o.model, o.version, o.revision, len(o.row_ids)] for o in ops],
        }
        | _expired(r.expires),
    )


def _latest(db: Database, keys: Sequence[str]) -> dict[str, str]:
    """The latest request of each subject key that has one (one statement)."""
    if not keys:
        return {}
    rows = db.all(
        "SELECT subject_key, arg_max(request_id, received_at) FROM erasure_requests "
        "WHERE subject_key IN (SELECT unnest(?::VARCHAR[])) GROUP BY subject_key",
        [sorted(set(keys))],
    )
    return {str(k): str(q) for k, q in rows}


def _expired(e: retention.Expiry | None) -> dict[str, Any]:
    """A retention request's audit fields: which rows expired."""
    if e is None:
        return {}
    return {"expired": {"dataset": e.dataset, "time_column": e.column.name, "before": e.before}}


def _actions(
    done: Sequence[tuple[ForgetOp, ForgetOutcome]],
    texts: Sequence[str],
    parsed: dict[str, Any] | None = None,
) -> tuple[ModelAction, ...]:
    """The actions as the database returns them (evidence through its JSON text). ``parsed``
    keeps each text's evidence for the next receipts of a group (most are alike; receipts
    are read, never changed)."""
    memo: dict[str, Any] = {} if parsed is None else parsed
    out = []
    for (op, outcome), text in zip(done, texts, strict=True):
        evidence = memo.get(text)
        if evidence is None:
            evidence = memo[text] = json.loads(text)
        out.append(
            ModelAction(
                op.model,
                op.version,
                op.revision,
                outcome.action,
                outcome.guarantee,
                outcome.seconds,
                evidence,
                op.row_ids,
            )
        )
    return tuple(out)


def _action_entries(
    done: Sequence[tuple[ForgetOp, ForgetOutcome]], proofs: Sequence[Mapping[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "erasure.model_action",
            {
                "request_id": op.request_id,
                "model": op.model,
                "version": op.version,
                "revision": op.revision,
                "action": outcome.action,
                "guarantee": outcome.guarantee,
                "evidence_passed": proof.get("passed"),
            }
            | _scheduled_mark(proof),
        )
        for (op, outcome), proof in zip(done, proofs, strict=True)
    ]


def _scheduled_mark(proof: Mapping[str, Any]) -> dict[str, Any]:
    return {"evidence": evidence.SCHEDULED} if proof.get("status") == evidence.SCHEDULED else {}


def _evidence(
    registry: Registry,
    op: ForgetOp,
    outcome: ForgetOutcome,
    policy: evidence.Policy,
    deferred: bool,
) -> dict[str, Any]:
    estimator = registry.estimator(op.model, op.version)
    if estimator is None or outcome.action == PENDING:
        return {"method": "none", "reason": outcome.reason or "model not in memory"}
    if outcome.shards:  # a sharded model serving without them: checked once they are back
        dropped = {"shards_dropped": list(outcome.shards), "parts": parts_of(estimator)}
        if not policy.sampled:
            return {"method": "none", "reason": policy.reason()} | dropped
        return evidence.scheduled() | dropped | {"note": evidence.AFTER_SHARDS}
    if not policy.sampled:
        return {"method": "none", "reason": policy.reason()}
    if deferred:
        return evidence.scheduled()
    return _checked(registry, op, estimator)


def _checked(registry: Registry, op: ForgetOp, estimator: Any) -> dict[str, Any]:
    """The retrain check; a check that cannot run is recorded, never blocks the erasure."""
    mv = registry.get(op.model, op.version)
    try:
        return evidence.retrain_check(registry, mv, estimator)
    except Exception as exc:  # the refit refused the rows (too few for k, one class, ...)
        return evidence.refit_failed(exc)


def record(
    db: Database, registry: Registry, done: Sequence[tuple[ForgetOp, ForgetOutcome]]
) -> None:
    """Record versions' actions that lack a row (stores written before actions committed with
    the deletion, and crashed between the two); replayed models are checked against a retrain.
    """
    proofs = []
    for op, outcome in done:
        est = registry.estimator(op.model, op.version)
        if est is None or outcome.action == PENDING:
            proofs.append({"method": "none", "reason": outcome.reason or "awaits a retrain"})
        elif registry.revision(op.model, op.version) != op.revision:
            proofs.append(
                {"method": "none", "reason": "replayed at open; a later revision is checked"}
            )
        else:
            proofs.append(_checked(registry, op, est))
    with db.atomic():
        at = now()
        for (op, outcome), proof in zip(done, proofs, strict=True):
            registry.record_outcome(op, outcome, audit.canonical(proof), at)
        audit.append_many(db, _action_entries(done, proofs))


def recover(db: Database, registry: Registry) -> int:
    """On open: rebuild models (checkpoint + forget_log) and record actions a crash lost."""
    lacking = db.all(
        "SELECT model, version, revision, request_id, row_ids FROM forget_log "
        "WHERE action IS NULL ORDER BY 1, 2, 3"
    )
    unrecorded = {(m, int(v), int(r)) for m, v, r, _, _ in lacking}
    missing = [
        (op, outcome)
        for op, outcome in registry.load()
        if (op.model, op.version, op.revision) in unrecorded
    ]
    # Versions that were pending before the crash do not load; record their missing actions.
    for m, v, r, q, ids in lacking:
        if registry.estimator(m, v) is None:
            op = ForgetOp(m, int(v), int(r), q, tuple(map(int, ids)))
            missing.append((op, ForgetOutcome(PENDING, None, None, "awaits a retrain")))
    if missing:
        record(db, registry, missing)
        # such requests were recorded as erased before; those that wait for a retrain are not
        db.execute(
            "UPDATE erasure_requests SET status = ? WHERE status = ? AND request_id IN "
            "(SELECT request_id FROM erasure_actions WHERE action = ?)",
            [PENDING_REQUEST, ERASED, PENDING],
        )
    return len(missing)


def pending_purge(db: Database) -> list[str]:
    """Requests whose rows left the datasets but whose bytes were not yet purged."""
    return [
        q
        for (q,) in db.all(
            "SELECT request_id FROM erasure_requests WHERE purged_at IS NULL "
            "AND status <> ? ORDER BY received_at",
            [COMPLETED],
        )
    ]


@dataclass(frozen=True)
class PurgeResult:
    """What :meth:`store.ModelStore.purge` did: requests purged, artifacts rewritten.

    ``requests`` were purged by this call (a ``pending`` one stays pending until its retrain);
    ``retrained`` lists what :func:`store.retrain.retrain_pending` did first, and
    ``shards_retrained`` what :meth:`~store.registry.Registry.retrain_shards` did.
    """

    requests: tuple[str, ...]
    artifacts_written: int
    compacted: bool
    seconds: float
    retrained: tuple[RetrainResult, ...] = ()
    shards_retrained: tuple[ShardRetrain, ...] = ()  # sharded models' dropped shards, retrained


@dataclass(eq=False)
class PurgePlan:
    """Phase 1 of :func:`purge`, taken under the caller's lock: the checkpoint jobs (copies of
    the models whose revision moved) and the requests awaiting a purge then, which the purge
    completes. :meth:`run` (phase 2, without the lock) builds and writes the artifacts;
    :func:`purge_finish` (phase 3, under it) takes them, scrubs, compacts, and completes those
    requests. ``retrained``, ``shards_retrained``: what the store did before (see
    :class:`PurgeResult`)."""

    jobs: list[CheckpointJob]
    waiting: list[str]
    force: bool
    t0: float
    retrained: tuple[RetrainResult, ...] = ()
    shards_retrained: tuple[ShardRetrain, ...] = ()
    since: list[list[list[int] | None]] = field(default_factory=list)

    def run(self) -> None:
        for job in self.jobs:
            job.run()

    def catch_up(self) -> None:
        """Replay onto the compacted models what :meth:`ModelStore.purge_since` handed
        over (``since``: per job, the batches of rows forgotten), without the lock."""
        since, self.since = self.since, []
        for job, rows in zip(self.jobs, since or [[]] * len(self.jobs), strict=True):
            job.catch_up(rows)


def purge(
    db: Database,
    registry: Registry,
    *,
    force: bool = False,
    guard: Callable[[str, int], AbstractContextManager[Any]] | None = None,
) -> PurgeResult:
    """Rewrite changed artifacts, clear the erased rows' ids from the tables that no longer
    need them, compact the database, then mark purged requests completed: :func:`purge_plan`,
    its run, :func:`purge_finish` in one go. ``guard``: see :meth:`Registry.checkpoint_finish`."""
    plan = purge_plan(db, registry, force=force)
    try:
        plan.run()
    finally:
        result = purge_finish(db, registry, plan, guard)
    return result


def purge_plan(db: Database, registry: Registry, *, force: bool = False) -> PurgePlan:
    """Phase 1 of a purge (under the caller's lock; shards dropped are retrained first)."""
    t0 = time.perf_counter()
    jobs = registry.checkpoint_jobs()
    return PurgePlan(jobs, pending_purge(db), force, t0)


def purge_finish(
    db: Database,
    registry: Registry,
    plan: PurgePlan,
    guard: Callable[[str, int], AbstractContextManager[Any]] | None = None,
) -> PurgeResult:
    """Phase 3 of a purge (under the caller's lock): the artifacts the plan's jobs wrote are
    taken, then, when a request was waiting at the plan (or with ``force``), the erased rows'
    ids leave the log and the lineage tables, the database is compacted and those requests
    are completed. A plan whose run failed is finished all the same (its jobs dropped), and
    completes nothing."""
    plan.catch_up()  # what purge_since handed over and no one replayed yet
    written = registry.checkpoint_finish(plan.jobs, guard)
    if any(job.sha is None for job in plan.jobs):  # the run failed: the caller sees why
        return PurgeResult((), written, False, time.perf_counter() - plan.t0)
    waiting = plan.waiting
    compacted = bool(waiting) or plan.force
    if compacted:
        with db.atomic():  # the erased rows' ids leave the log and the lineage tables
            registry.scrub()
        crash_point("purge.before_compact")
        db.compact()
        crash_point("purge.after_compact")
        with db.atomic():
            at = now()
            statuses = dict(
                db.all(
                    "SELECT request_id, status FROM erasure_requests "
                    "WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
                    [waiting],
                )
            )
            if waiting:
                db.execute(
                    "UPDATE erasure_requests SET purged_at = ?, "
                    "status = CASE WHEN status = ? THEN ? ELSE status END, "
                    "completed_at = CASE WHEN status = ? THEN ? ELSE completed_at END "
                    "WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
                    [at, ERASED, COMPLETED, ERASED, at, waiting],
                )
            audit.append_many(
                db,
                [
                    (
                        "erasure.completed" if statuses.get(q) == ERASED else "erasure.purged",
                        {"request_id": q, "purge": "artifacts rewritten, database compacted"},
                    )
                    for q in waiting
                ],
            )
        db.checkpoint()  # leave no WAL behind, even of entries without personal data
    return PurgeResult(
        tuple(waiting),
        written,
        compacted,
        time.perf_counter() - plan.t0,
        plan.retrained,
        plan.shards_retrained,
    )


def resolve(db: Database, at: str) -> list[tuple[str, dict[str, Any]]]:
    """Move pending requests no version keeps waiting any more (inside the retrain's
    transaction): to ``completed`` when already purged, else ``erased``; their audit entries.
    """
    ready = db.all(
        "SELECT r.request_id, r.purged_at IS NOT NULL FROM erasure_requests r "
        "WHERE r.status = ? AND NOT EXISTS (SELECT 1 FROM forget_log f JOIN model_versions m "
        "USING (model, version) WHERE f.request_id = r.request_id AND m.status = ?) "
        "ORDER BY r.received_at",
        [PENDING_REQUEST, PENDING],
    )
    if not ready:
        return []
    db.execute(
        "UPDATE erasure_requests SET "
        "status = CASE WHEN purged_at IS NULL THEN ? ELSE ? END, "
        "completed_at = CASE WHEN purged_at IS NULL THEN NULL ELSE ? END "
        "WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
        [ERASED, COMPLETED, at, [q for q, _ in ready]],
    )
    return [
        (
            "erasure.completed" if purged else "erasure.erased",
            {"request_id": q, "after": "every model version it touched was retrained or retired"},
        )
        for q, purged in ready
    ]


def receipt(db: Database, request_id: str, *, repeat: bool = False) -> ErasureReceipt:
    """The current receipt of a request."""
    return receipts(db, [request_id], repeat=repeat)[request_id]


def receipts(
    db: Database, request_ids: Sequence[str], *, repeat: bool = False
) -> dict[str, ErasureReceipt]:
    """The current receipts of requests, by id, in two statements however many there are."""
    wanted = sorted(set(request_ids))
    if not wanted:
        return {}
    rows = db.all(
        "SELECT request_id, status, subject_key, legal_ground, received_at, erased_at, "
        "completed_at, datasets_json, rows_erased, requested_by, handled_by "
        "FROM erasure_requests WHERE request_id IN (SELECT unnest(?::VARCHAR[]))",
        [wanted],
    )
    if len(rows) < len(wanted):
        raise UnknownRequestError(sorted(set(wanted) - {str(r[0]) for r in rows})[0])
    acts = _actions_of(db, wanted)
    out = {}
    for rid, status, key, ground, received, erased, completed, datasets, n, asked, handled in rows:
        out[rid] = ErasureReceipt(
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
            acts.get(rid, ()),
            repeat,
            asked,
            handled,
        )
    return out


def actions(db: Database, request_id: str) -> tuple[ModelAction, ...]:
    """A request's model actions: forgetting, then any retrain of a version it left pending."""
    return _actions_of(db, [request_id]).get(request_id, ())


def _actions_of(db: Database, request_ids: Sequence[str]) -> dict[str, tuple[ModelAction, ...]]:
    rows = db.all(
        "WITH wanted AS (SELECT unnest(?::VARCHAR[]) AS request_id) "
        "SELECT request_id, model, version, revision, 0 AS step, action, guarantee, "
        "forget_seconds, evidence_json FROM erasure_actions "
        "WHERE request_id IN (SELECT request_id FROM wanted) AND action <> ? "
        "UNION ALL SELECT w.request_id, t.model, t.version, t.revision, 1, "
        "CASE t.outcome WHEN 'retrained' THEN 'retrain' WHEN ? THEN ? ELSE 'retire' END, "
        "CASE WHEN t.outcome IN ('retrained', ?) THEN 'exact' END, t.fit_seconds, "
        "coalesce(f.evidence_json, json_object('method', CASE t.outcome WHEN 'retrained' "
        "THEN 'refit_on_remaining_rows' ELSE 'none' END, 'training_rows', t.training_rows, "
        "'artifact_sha256', t.artifact_sha256, 'reason', t.reason)::VARCHAR) "
        "FROM retrains t JOIN wanted w ON list_contains(t.request_ids, w.request_id) "
        "LEFT JOIN forget_log f ON t.outcome = ? AND f.model = t.model "
        "AND f.version = t.version AND f.revision = t.revision "
        "ORDER BY 1, model, version, step, revision",
        [list(request_ids), SHARDS, SHARDS_RETRAINED, SHARDS, SHARDS_RETRAINED, SHARDS_RETRAINED],
    )
    out: dict[str, list[ModelAction]] = {}
    for q, m, v, r, _, a, g, s, e in rows:
        out.setdefault(q, []).append(ModelAction(m, int(v), int(r), a, g, s, json.loads(e)))
    return {q: tuple(acts) for q, acts in out.items()}
