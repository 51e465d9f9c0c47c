"""Retraining the model versions that could not forget in place.

A version goes ``pending_retrain`` when its model raises ``ForgetError`` or reports
``needs_retrain`` (a deletion budget spent); it is not served, and the requests that touched
it are ``pending``. :func:`retrain_pending` refits each such version — a fresh estimator of the
recorded class and parameters — on the version's training rows still in its dataset, which is
what the model would be had it forgotten every logged row exactly. Then, in one transaction:
the version points at the new artifact as its checkpoint of its last revision and is ``ready``
again (serving resumes); a ``retrains`` row records the refit and the requests that waited for
it (lineage); and every request no version keeps waiting any more moves to ``erased`` (or
``completed`` when already purged). The old artifact is deleted after the commit.

A version with no rows left, or whose estimator refuses the rows left (a single class, say),
is ``retired`` instead: never served again, and its requests move on all the same.

Crash safety: the new artifact is written before the transaction (a crash leaves an orphan that
:meth:`~store.registry.Registry.sweep` deletes on open, and the version still pending); the
old one is deleted after it (a crash leaves it unreferenced, and swept).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from forget.errors import ForgetError
from store import audit, erasure
from store._clock import now
from store._faults import crash_point
from store.artifacts import Artifacts
from store.db import Database
from store.errors import RetrainError
from store.registry import PENDING, Registry

RETRAINED, RETIRED, FAILED = "retrained", "retired", "failed"
RETRAIN_ACTION, RETIRE_ACTION = "retrain", "retire"


@dataclass(frozen=True)
class RetrainResult:
    """What one pending version became: ``outcome`` ``retrained``, ``retired`` or ``failed``.

    ``requests`` waited for it; ``resolved`` left ``pending`` as a result (a request that also
    touched another pending version waits for that one too).
    """

    model: str
    version: int
    revision: int
    outcome: str
    requests: tuple[str, ...]
    resolved: tuple[str, ...]
    training_rows: int
    seconds: float
    reason: str | None = None


def retrain_pending(
    db: Database, registry: Registry, *, raise_errors: bool = True
) -> tuple[RetrainResult, ...]:
    """Refit (or retire) every pending version, oldest first; what each became.

    A version whose recorded parameters no longer build its estimator raises
    :class:`~store.errors.RetrainError`, or with ``raise_errors=False`` is reported
    ``failed`` and stays pending.
    """
    results = []
    for name, version in registry.pending():
        try:
            results.append(_retrain(db, registry, name, version))
        except RetrainError as exc:
            if raise_errors:
                raise
            with db.atomic():
                audit.append(
                    db,
                    "model.retrain_failed",
                    {"model": name, "version": version, "reason": str(exc)},
                )
            revision = registry.revision(name, version)
            results.append(RetrainResult(name, version, revision, FAILED, (), (), 0, 0.0, str(exc)))
    return tuple(results)


def _retrain(db: Database, registry: Registry, name: str, version: int) -> RetrainResult:
    mv = registry.get(name, version)
    revision = registry.revision(name, version)
    t0 = time.perf_counter()
    ids, X, y = registry.training_data(mv)
    est, reason = None, None
    if ids.size == 0:
        reason = "no training rows remain"
    else:
        try:
            est = registry.refit(mv, X, y, ids)
        except (TypeError, ImportError, AttributeError) as exc:
            # before ValueError: scikit-learn's invalid-parameter error is both; a version is
            # retired only for its rows, never for parameters that a fix could restore
            raise RetrainError(
                f"model {name!r} v{version}: its recorded class and parameters do not build "
                f"an estimator ({mv.estimator}): {exc}"
            ) from exc
        except (ValueError, ForgetError) as exc:
            reason = f"the estimator refused the remaining rows: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - t0
    old = db.one(
        "SELECT checkpoint_path FROM model_versions WHERE model = ? AND version = ?",
        [name, version],
    )
    rel = sha = None
    if est is not None:
        rel = Artifacts.relpath(name, version, revision)
        sha = registry.artifacts.write(rel, est.to_bytes())
        crash_point("retrain.written")
    outcome = RETRAINED if est is not None else RETIRED
    action = RETRAIN_ACTION if est is not None else RETIRE_ACTION
    try:
        with db.atomic():
            waiting = tuple(
                q
                for (q,) in db.all(
                    "SELECT request_id FROM erasure_actions WHERE model = ? AND version = ? "
                    "AND action = ? AND revision > ? ORDER BY revision",
                    [name, version, PENDING, mv.checkpoint_revision],
                )
            )
            registry.set_retrained(name, version, revision, rel, sha)
            at = now()
            db.execute(
                "INSERT INTO retrains VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, version, revision, outcome, list(waiting), int(ids.size), sha, seconds,
                 reason, at],
            )  # fmt: skip
            resolved = erasure.resolve(db, at)
            audit.append_many(
                db,
                [
                    (
                        f"model.{outcome}",
                        {
                            "model": name,
                            "version": version,
                            "revision": revision,
                            "training_rows": int(ids.size),
                            "sha256": sha,
                            "requests": list(waiting),
                            "reason": reason,
                        },
                    ),
                    *(
                        (
                            "erasure.model_action",
                            {
                                "request_id": q,
                                "model": name,
                                "version": version,
                                "revision": revision,
                                "action": action,
                                "guarantee": "exact" if est is not None else None,
                                "evidence_passed": None,
                            },
                        )
                        for q in waiting
                    ),
                    *resolved,
                ],
            )
            crash_point("retrain.before_commit")
    except BaseException:
        if rel is not None:
            registry.artifacts.delete(rel)
        raise
    if old is not None and old[0] and old[0] != rel:
        registry.artifacts.delete(old[0])
    if est is not None:
        registry.serve(name, version, est, revision)
    return RetrainResult(
        name,
        version,
        revision,
        outcome,
        waiting,
        tuple(p["request_id"] for _, p in resolved),
        int(ids.size),
        seconds,
        reason,
    )
