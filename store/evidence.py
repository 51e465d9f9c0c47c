"""Evidence that an unlearned model equals a retrain from scratch on the remaining rows.

After a forget, the store refits a fresh model (same parameters and seed; fitted choices such
as the label set and the forest's cut-off distribution pinned, see
:func:`forget.checks.refit_on_remaining`) on the version's rows still in its dataset, and
compares the outputs of both on a probe set of up to ``PROBE_ROWS`` of those rows.

The check costs a refit, so it runs for a *sample* of requests: :class:`Policy` draws each
request in with probability ``rate`` (the store's ``evidence_rate``, or ``erase(verify=...)``),
keyed by the store's secret and the request id, so the sample is reproducible by the store yet
neither predictable nor steerable by whoever files the request. ``rate`` 1 checks every
request (the default), 0 none.

>>> [Policy.of(rate, draw).sampled for rate, draw in [(0.25, 0.1), (0.25, 0.3), (1.0, 0.99)]]
[True, False, True]

A check runs *inline*, inside the erasure's transaction, or is *deferred*: the erasure then
records it as ``scheduled`` (the same draw, no refit) and commits at its usual speed, and the
check runs later in three phases, so that a caller holding a lock around the store holds it
only for the reads and the writes:

1. :func:`jobs` (under the lock): one :class:`EvidenceJob` per model version with scheduled
   checks, holding what the check needs, read now: the ids, features and labels of the
   version's remaining rows, the model's outputs on the probe rows at its current revision,
   and an unfitted twin (its parameters and pinned choices) — no copy of the model, whose
   working arrays can be large (a 100-tree forest on 300,000 rows: ~680 MB, ~5 s to copy);
2. :meth:`EvidenceJob.run` (no store, no lock): the refit and the comparison;
3. :func:`record` (under the lock): the result goes into each scheduled check's evidence and
   into an ``erasure.evidence_recorded`` audit entry that carries it whole.

A check run at a revision later than its request's is evidence all the same: the rows the
request erased are not among the rows the refit used, and the model equalled that refit. A
version that moved on between phases 1 and 3 gets the result of the revision its job copied,
which the evidence names (``checked_revision``) and, where the version is elsewhere by then,
says so (``note``); checks no longer scheduled by then (another collector recorded them) are
left alone. Scheduled checks are rows of the database, so a crash between the phases loses
none: the next :func:`jobs` finds them again. A version that awaits a retrain gets no job
until it is retrained (its check then compares the retrained model), nor does a sharded model
serving without shards an erasure dropped, until they are retrained (it would be compared,
without them, with a retrain that has them; an erasure schedules its check even when inline);
a retired one gets a job that records why no check can run. A recorded check keeps the
``shards_dropped`` its scheduled evidence named.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from forget.base import Guarantee
from store import audit
from store._clock import now
from store._faults import crash_point
from store.db import Database
from store.errors import InvalidEvidenceRateError
from store.registry import PENDING, RETIRED, ModelVersion, Registry, dropped_shards

PROBE_ROWS = 256
METHOD = "retrain_from_scratch"
INLINE, DEFERRED = "inline", "deferred"
SCHEDULED, RECORDED = "scheduled", "recorded"
AFTER_SHARDS = (
    "sampled; the model serves without the shards it dropped until they are retrained: the "
    "retrain check runs after that, even for an inline erasure"
)
_SCHEDULED_CHECKS = (
    "SELECT f.model, f.version, f.revision, f.request_id FROM forget_log f "
    "JOIN erasure_requests r USING (request_id) WHERE r.evidence_status = ? "
    "AND json_extract_string(f.evidence_json, '$.status') = ?"
)


def check_rate(rate: object) -> float:
    """``rate`` as a float in [0, 1]; ``True``/``False`` mean 1 and 0."""
    if isinstance(rate, bool):
        return 1.0 if rate else 0.0
    if not isinstance(rate, int | float) or not math.isfinite(rate) or not 0 <= rate <= 1:
        raise InvalidEvidenceRateError(
            f"an evidence rate is a number in [0, 1] (or True/False), got {rate!r}"
        )
    return float(rate)


def check_mode(mode: object) -> str:
    """``mode`` when it is ``"inline"`` or ``"deferred"``."""
    if mode not in (INLINE, DEFERRED):
        raise ValueError(f"evidence is {INLINE!r} or {DEFERRED!r}, got {mode!r}")
    return str(mode)


@dataclass(frozen=True)
class Policy:
    """Whether one request gets retrain checks: ``rate`` and the keyed ``draw`` in [0, 1)."""

    rate: float
    sampled: bool

    @classmethod
    def of(cls, rate: float, draw: float) -> Policy:
        return cls(rate, rate >= 1.0 or draw < rate)

    def reason(self) -> str:
        """Why a request was not checked (for its report)."""
        if self.rate <= 0:
            return "verification skipped (evidence rate 0)"
        return f"not sampled: evidence rate {self.rate:g} (keyed random sample of requests)"

    def describe(self) -> str:
        if self.rate >= 1:
            return "every request is checked"
        if self.rate <= 0:
            return "no request is checked"
        return f"a keyed random {self.rate:.0%} of requests is checked"


def compare(estimator: Any, ids: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Compare ``estimator`` with a refit on rows ``ids, X, y``; JSON-able result."""
    # imported here: the checks load scikit-learn and every model, which the read-only
    # commands (report, verify, models) never need
    from forget.checks import unfitted_twin

    return judge(_served(estimator, X, ids.size), estimator.guarantee, unfitted_twin(estimator),
                 ids, X, y)  # fmt: skip


def judge(
    served: np.ndarray, guarantee: Guarantee, twin: Any, ids: np.ndarray, X: np.ndarray,
    y: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Fit ``twin`` (unfitted: :func:`forget.checks.unfitted_twin`) on rows ``ids, X, y`` and
    compare its outputs on the probe rows with ``served``, the unlearned model's there, as
    ``guarantee`` asks; JSON-able result."""
    from forget.checks import APPROX_ATOL, RTOL, outputs

    ref = twin.fit(X, y, row_ids=ids)
    probe = _probe(ids.size)
    a, b = served, outputs(ref, X[probe])
    diff = float(np.abs(a - b).max()) if a.size else 0.0
    identical = bool(np.array_equal(a, b))
    if guarantee is Guarantee.APPROXIMATE:
        passed, tolerance = diff <= APPROX_ATOL, APPROX_ATOL
    else:
        passed = identical or bool(np.allclose(a, b, rtol=RTOL, atol=RTOL))
        tolerance = RTOL
    return {
        "method": METHOD,
        "training_rows": int(ids.size),
        "probe_rows": int(probe.size),
        "identical": identical,
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": bool(passed),
    }


def _served(estimator: Any, X: np.ndarray, n: int) -> np.ndarray:
    """The unlearned model's outputs on the probe rows of its ``n`` remaining rows ``X``
    (none without rows: the refit then fails, and says so)."""
    from forget.checks import outputs

    return outputs(estimator, X[_probe(n)]) if n else np.empty(0)


def _probe(n: int) -> np.ndarray:
    """The probe rows among ``n``: up to ``PROBE_ROWS``, evenly spread."""
    return np.unique(np.linspace(0, n - 1, min(PROBE_ROWS, n)).astype(np.int64))


def retrain_check(registry: Registry, mv: ModelVersion, estimator: Any) -> dict[str, Any]:
    """Compare ``estimator`` with a refit on the version's remaining rows; JSON-able result."""
    ids, X, y = registry.training_data(mv)
    return compare(estimator, ids, X, y)


def refit_failed(exc: Exception, what: str = "the reference refit failed") -> dict[str, Any]:
    """The evidence of a check whose reference refit raised (too few rows for k, one class),
    or whatever ``what`` says raised."""
    return {"method": METHOD, "passed": None, "error": f"{what}: {type(exc).__name__}: {exc}"}


def scheduled() -> dict[str, Any]:
    """The evidence a deferred check holds until :func:`record` replaces it."""
    return {
        "method": METHOD,
        "status": SCHEDULED,
        "note": "sampled; deferred: the retrain check runs after the erasure committed",
    }


# ---------------------------------------------------------------------- deferred checks
@dataclass(frozen=True, eq=False)
class EvidenceJob:
    """The scheduled checks of one model version, and all their refit needs (phase 2).

    ``checks`` are the (request id, revision) pairs it answers; ``revision`` is the version's
    revision when the job was made, at which the model answered ``served`` on the probe rows
    (or raised it, recorded as the check's result); ``twin`` is an unfitted model with its
    parameters and pinned choices, fitted by :meth:`run` on ``row_ids``, ``X``, ``y``: the
    version's rows still in its dataset then. With no ``twin`` (a retired version) ``reason``
    says why nothing can be checked.
    """

    model: str
    version: int
    revision: int
    checks: tuple[tuple[str, int], ...]
    twin: Any | None
    served: np.ndarray | Exception
    guarantee: Guarantee | None
    row_ids: np.ndarray
    X: np.ndarray
    y: np.ndarray
    reason: str | None = None

    def run(self) -> dict[str, Any]:
        """The refit and comparison (JSON-able): pure computation on the job's own copies,
        safe on another thread without the store's lock. A refit that raises is a result."""
        if self.twin is None or self.guarantee is None:
            return {"method": "none", "passed": None, "reason": self.reason}
        if isinstance(self.served, Exception):
            return refit_failed(self.served, "the model could not score its probe rows")
        t0 = time.perf_counter()
        try:
            twin = copy.deepcopy(self.twin)  # unfitted: cheap; the job can run again
            result = judge(self.served, self.guarantee, twin, self.row_ids, self.X, self.y)
        except Exception as exc:  # the refit refused the rows: recorded, as inline
            result = refit_failed(exc)
        return result | {"check_seconds": time.perf_counter() - t0}


def outstanding(db: Database) -> int:
    """How many deferred checks are scheduled and not yet recorded."""
    row = db.one(f"SELECT count(*) FROM ({_SCHEDULED_CHECKS})", [SCHEDULED, SCHEDULED])
    return int(row[0]) if row else 0


def jobs(db: Database, registry: Registry, limit: int | None = None) -> list[EvidenceJob]:
    """Phase 1: a job for each version with scheduled checks (oldest first, at most
    ``limit``); versions awaiting a retrain are left for after it. Reads, and a prediction
    on the probe rows per version; nothing is changed."""
    from forget.checks import unfitted_twin

    by_version: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for m, v, r, q in db.all(_SCHEDULED_CHECKS + " ORDER BY f.logged_at, 1, 2, 3", [SCHEDULED] * 2):
        by_version.setdefault((str(m), int(v)), []).append((str(q), int(r)))
    out: list[EvidenceJob] = []
    for (name, version), checks in by_version.items():
        if limit is not None and len(out) >= limit:
            break
        status = registry.status(name, version)
        estimator = registry.estimator(name, version)
        revision = registry.revision(name, version)
        if status == RETIRED:
            reason = "the version was retired before its check ran; it is never served again"
            none = np.empty(0, dtype=np.int64)
            out.append(
                EvidenceJob(name, version, revision, tuple(checks), None, none, None, none, none,
                            none, reason)
            )  # fmt: skip
        elif status != PENDING and estimator is not None and not dropped_shards(estimator):
            ids, X, y = registry.training_data(registry.get(name, version))
            try:  # the model's answers now (a prediction), not a copy of the model
                served: np.ndarray | Exception = _served(estimator, X, ids.size)
            except Exception as exc:  # recorded as the check's result
                served = exc
            twin, guarantee = unfitted_twin(estimator), estimator.guarantee
            out.append(
                EvidenceJob(name, version, revision, tuple(checks), twin, served, guarantee,
                            ids, X, y)
            )  # fmt: skip
    return out


def record(db: Database, registry: Registry, job: EvidenceJob, result: Mapping[str, Any]) -> int:
    """Phase 3: write ``result`` into the job's checks that are still scheduled, with an audit
    entry each; how many were recorded."""
    with db.atomic():
        checks = set(job.checks)
        still, dropped = [], {}
        for r, q, text in db.all(
            "SELECT revision, request_id, evidence_json FROM forget_log WHERE model = ? "
            "AND version = ? AND json_extract_string(evidence_json, '$.status') = ? "
            "ORDER BY revision",
            [job.model, job.version, SCHEDULED],
        ):
            if (str(q), int(r)) in checks:
                still.append((str(q), int(r)))
                shards = json.loads(text).get("shards_dropped")
                if shards is not None:
                    dropped[int(r)] = {"shards_dropped": shards}
        if not still:
            return 0
        at = now()
        moved = _moved(registry, job)
        docs = [
            _recorded(job, result, revision, moved, at) | dropped.get(revision, {})
            for _, revision in still
        ]
        texts = [audit.canonical(d) for d in docs]
        db.execute(
            "UPDATE forget_log f SET evidence_json = u.doc FROM (SELECT unnest(?::INTEGER[]) AS "
            "revision, unnest(?::VARCHAR[]) AS doc) u WHERE f.model = ? AND f.version = ? "
            "AND f.revision = u.revision",
            [[r for _, r in still], texts, job.model, job.version],
        )
        requests = sorted({q for q, _ in still})
        db.execute(
            "UPDATE erasure_requests r SET evidence_status = ? "
            "WHERE r.request_id IN (SELECT unnest(?::VARCHAR[])) AND NOT EXISTS (SELECT 1 "
            "FROM forget_log f WHERE f.request_id = r.request_id "
            "AND json_extract_string(f.evidence_json, '$.status') = ?)",
            [RECORDED, requests, SCHEDULED],
        )
        audit.append_many(
            db,
            [
                (
                    "erasure.evidence_recorded",
                    {
                        "request_id": q,
                        "model": job.model,
                        "version": job.version,
                        "revision": revision,
                        "evidence": json.loads(text),
                    },
                )
                for (q, revision), text in zip(still, texts, strict=True)
            ],
        )
        crash_point("evidence.before_commit")
    crash_point("evidence.after_commit")
    return len(still)


def _moved(registry: Registry, job: EvidenceJob) -> str | None:
    """How the version left the state the job copied, if it did."""
    status = registry.status(job.model, job.version)
    if status == RETIRED and job.twin is not None:
        return "the version has been retired since"
    if status == PENDING:
        return "the version has gone to await a retrain since"
    now_at = registry.revision(job.model, job.version)
    if now_at != job.revision:
        return f"the version has moved on to revision {now_at} since"
    return None


def _recorded(
    job: EvidenceJob, result: Mapping[str, Any], revision: int, moved: str | None, at: str
) -> dict[str, Any]:
    doc = dict(result) | {"status": RECORDED, "checked_revision": job.revision, "recorded_at": at}
    notes = []
    if job.twin is not None and job.revision > revision:
        notes.append(
            f"checked at revision {job.revision}, later than this request's {revision}: the "
            "rows it erased are not among the rows the reference was refitted on, so a pass "
            "shows them absent from the model"
        )
    if moved is not None:
        notes.append(f"{moved}; the check holds for revision {job.revision}")
    if notes:
        doc["note"] = "; ".join(notes)
    return doc
