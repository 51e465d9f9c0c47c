"""Versioned models: training, the in-memory models that serve, forgetting and checkpoints.

A *version* is one fit (dataset, parameters, seed, code version, artifact sha256 and the row
ids it trained on, in ``version_rows``). Each erasure that touches a version appends a
*revision* to ``forget_log``; the in-memory model is the artifact of the last checkpointed
revision with the later ``forget_log`` entries replayed. Checkpoints write the artifact of the
current revision and delete the older one, so no retained artifact holds a forgotten row.

A version is ``ready`` (serves), ``pending_retrain`` (could not forget in place; not served
until :mod:`store.retrain` refits it on its remaining rows, which makes it ready again at its
last revision) or ``retired`` (nothing left to refit on: never served again).

A sharded model (SISA, :class:`forget.Sharded`) forgets by dropping the constituents trained on
the rows: it stays ``ready`` and serves without those shards — every constituent it still uses
is the one a retrain without the rows has — and the erasure's action is ``exact_unlearning``
naming them (``ForgetOutcome.shards``). :meth:`Registry.retrain_shards` (a purge's step, off the
answer path, and before any checkpoint) retrains them on a copy and publishes it as a revision
of its own: a ``forget_log`` entry with action ``retrain_shards`` (replayed at open, so a crash
before it leaves shards dropped after the replay, which the next purge retrains) and a
``retrains`` row (outcome ``shards_retrained``) naming the requests that waited for it.

What the erasure path needs — each version's training row ids, last revision and status — is
kept in memory (loaded at open, updated after each commit), so planning an erasure's forget
operations costs no database statement.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Container, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

import forget
from forget.base import ForgetResult, Guarantee
from forget.errors import ForgetError
from store import audit, data
from store._clock import now
from store._faults import crash_point
from store.artifacts import Artifacts
from store.db import Database, check_name
from store.errors import (
    FeatureMismatchError,
    FitError,
    ModelNotServableError,
    UnknownModelError,
)
from store.versions import (
    ACTIONS,
    APPROXIMATE,
    EXACT,
    LEARN,
    PENDING,
    READY,
    RETIRED,
    SHARDS,
    SHARDS_RETRAINED,
    ForgetOp,
    ForgetOutcome,
    ModelVersion,
    Retrain,
    Revision,
    check_columns,
    check_estimator,
    json_params,
    load_class,
)

__all__ = [
    "ACTIONS",
    "CheckpointJob",
    "APPROXIMATE",
    "EXACT",
    "LEARN",
    "PENDING",
    "READY",
    "RETIRED",
    "SHARDS",
    "SHARDS_RETRAINED",
    "ShardJob",
    "ForgetOp",
    "ForgetOutcome",
    "ModelVersion",
    "Registry",
    "Retrain",
    "Revision",
    "ShardRetrain",
    "parts_of",
]

_VERSION_COLUMNS = (
    "model, version, status, dataset, estimator, params_json, seed, code_version, "
    "features_json, label, n_rows, fit_sha256, checkpoint_sha256, checkpoint_revision, created_at"
)
_READ_COLUMNS = _VERSION_COLUMNS + ", purpose, rows_withheld"  # columns migration 11 added


_PLANNED = "registry.planned"  # Database.cache key: revisions planned, not committed

_LOG_COLUMNS = (
    "model, version, revision, request_id, row_ids, rows_forgotten, logged_at, action, "
    "guarantee, forget_seconds, evidence_json, recorded_at"
)


class _Live:
    """A model in memory and the revision it is at; while a checkpoint is built from a copy
    of it (:meth:`Registry.checkpoint_jobs`), ``since`` lists the rows it forgot since the
    copy (or since :meth:`Registry.checkpoint_since` took them), in order (None for rows it
    learned: no replay from ids)."""

    def __init__(self, estimator: Any, revision: int) -> None:
        self.estimator = estimator
        self.revision = revision
        self.since: list[list[int] | None] | None = None

    def moved(self, forgot: list[int] | None) -> None:
        if self.since is not None:
            self.since.append(forgot)


@dataclass(eq=False)
class CheckpointJob:
    """The artifact of one version at ``revision``, built from a copy of its model (``made``:
    the forest's :meth:`~forget.hedgecut.forest.HedgeCutClassifier.compaction`, or
    :class:`_Copied`) by :meth:`run` without the caller's lock, written at the staging path of
    ``rel``; :meth:`Registry.checkpoint_finish` takes it."""

    model: str
    version: int
    revision: int
    rel: str
    old: str | None  # the artifact the version points to now
    live: _Live
    made: Any
    artifacts: Artifacts
    sha: str | None = None  # once written
    replayable: bool = True  # every forget replayed so far onto the compacted model

    def run(self) -> None:
        self.sha = self.artifacts.write(Artifacts.staged(self.rel), self.made.build())
        crash_point("checkpoint.written")

    def catch_up(self, since: Sequence[list[int] | None]) -> None:
        """Replay onto the compacted model (once built) rows its version forgot since the
        copy, as :meth:`Registry.checkpoint_since` handed them over: any thread, the
        version's forgets going on meanwhile."""
        if since and self.replayable and self.made.model is not None:
            self.replayable = _replayed(self.made.model, since)


class _Copied:
    """:meth:`~forget.hedgecut.forest.HedgeCutClassifier.compaction` for any other model: a
    deep copy (their state is small beside a forest's), compacted when it can be."""

    def __init__(self, estimator: Any) -> None:
        self.model = copy.deepcopy(estimator)

    def build(self) -> bytes:
        if hasattr(self.model, "compact"):
            self.model.compact()
        return bytes(self.model.to_bytes())


@dataclass
class _State:
    """What the erasure path needs of a version, mirrored from the database."""

    status: str
    revision: int  # the last revision in forget_log (0: none)
    rows: np.ndarray  # the training row ids, sorted


@dataclass(frozen=True)
class ShardRetrain:
    """What :meth:`Registry.retrain_shards` did to one version: its new ``revision``, the
    ``shards`` retrained, their remaining ``training_rows``, and the ``requests`` that waited."""

    model: str
    version: int
    revision: int
    shards: tuple[int, ...]
    requests: tuple[str, ...]
    training_rows: int
    seconds: float
    retrained_at: str


@dataclass
class ShardJob:
    """A copy of a sharded model to retrain its dropped ``shards`` on (:meth:`run`, no lock
    needed), made at the version's ``revision``; :meth:`Registry.publish_shards` publishes it."""

    model: str
    version: int
    revision: int
    copy: Any
    shards: tuple[int, ...]
    rows: int = -1  # the rows the retrained shards trained on, once run
    seconds: float = 0.0
    error: str | None = None  # why the learner refused a shard's rows

    def run(self) -> ShardJob:
        t0 = time.perf_counter()
        try:
            self.rows = int(self.copy.retrain_pending().rows)
        except (ValueError, ForgetError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        self.seconds = time.perf_counter() - t0
        return self


def dropped_shards(estimator: Any) -> tuple[int, ...]:
    """The shards a sharded model left out of its predictions until retrained, when it still
    serves without them (SISA: :class:`forget.Sharded`); ``()`` for any other model, and for
    one with no constituent left (that one awaits a whole retrain)."""
    if not callable(getattr(estimator, "retrain_pending", None)):
        return ()
    pending = tuple(getattr(estimator, "pending_", ()))
    return pending if pending and getattr(estimator, "served_", ()) else ()


def parts_of(estimator: Any) -> str:
    """What the parts a model leaves out until retrained are: a forest deferring rebuilds
    (``defer_rows``) leaves out ``trees``, a sharded model ``shards``."""
    return "trees" if hasattr(estimator, "defer_rows") else "shards"


def _defers(estimator: Any) -> bool:
    """Whether the model's ``forget`` may leave parts of it to retrain later (a sharded model
    retraining in the background, a forest deferring big rebuilds: ``defer_rows``)."""
    if not callable(getattr(estimator, "retrain_pending", None)):
        return False
    return getattr(estimator, "defer_rows", True) is not None


class Registry:
    def __init__(self, db: Database, artifacts: Artifacts) -> None:
        self.db = db
        self.artifacts = artifacts
        self._live: dict[tuple[str, int], _Live] = {}
        self._state: dict[tuple[str, int], _State] | None = None

    # ------------------------------------------------------------------ training
    def train(
        self,
        name: str,
        info: data.DatasetInfo,
        estimator: Any,
        label: str,
        features: Sequence[str],
        purpose: str | None = None,
        withheld: np.ndarray | None = None,
    ) -> ModelVersion:
        """Fit a clone of ``estimator`` on the dataset's rows but ``withheld`` (row ids of
        objecting or restricted subjects, see :mod:`store.purposes`); record ``purpose``."""
        check_name(name, "model")
        check_estimator(estimator)
        feats = check_columns(info, label, features)
        nulls = data.count_nulls(self.db, info.name, [*feats, label])
        if nulls:
            raise FeatureMismatchError(f"dataset {info.name!r} has nulls in columns {nulls}")
        ids, X, y = self._matrix(info.name, feats, label)
        n_withheld = 0
        if withheld is not None and withheld.size:
            keep = ~np.isin(ids, withheld)
            n_withheld = int(ids.size - np.count_nonzero(keep))
            ids, X, y = ids[keep], X[keep], y[keep]
        from sklearn.base import clone  # here: read-only commands never load scikit-learn

        est = clone(estimator) if hasattr(estimator, "get_params") else estimator
        try:
            est.fit(X, y, row_ids=ids)
        except (ValueError, ForgetError) as exc:
            raise FitError(f"{type(est).__name__} refused dataset {info.name!r}: {exc}") from exc
        blob = est.to_bytes()
        params = json_params(est)
        seed = params.get("random_state")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        kind = f"{type(est).__module__}:{type(est).__qualname__}"
        rel = None
        try:
            with self.db.atomic():
                version = self._next_version(name)
                rel = Artifacts.relpath(name, version, 0)
                sha = self.artifacts.write(rel, blob)
                self.db.execute(
                    f"INSERT INTO model_versions ({_VERSION_COLUMNS}, checkpoint_path) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    [
                        name,
                        version,
                        READY,
                        info.name,
                        kind,
                        json.dumps(params, sort_keys=True),
                        seed,
                        forget.__version__,
                        json.dumps(feats),
                        label,
                        int(ids.size),
                        sha,
                        sha,
                        now(),
                        rel,
                    ],
                )
                self.db.execute(
                    "INSERT INTO version_rows SELECT ?, ?, unnest(?::BIGINT[])",
                    [name, version, ids.tolist()],
                )
                self.db.execute(
                    "UPDATE model_versions SET purpose = ?, rows_withheld = ? "
                    "WHERE model = ? AND version = ?",
                    [purpose, n_withheld, name, version],
                )
                audit.append(
                    self.db,
                    "model.trained",
                    {
                        "model": name,
                        "version": version,
                        "dataset": info.name,
                        "rows": int(ids.size),
                        "estimator": kind,
                        "fit_sha256": sha,
                        "code_version": forget.__version__,
                        "guarantee": str(est.guarantee),
                    }
                    | ({"purpose": purpose} if purpose is not None else {})
                    | ({"rows_withheld": n_withheld} if n_withheld else {}),
                )
                key = (name, version)
                rows = np.sort(np.asarray(ids, dtype=np.int64))
                self.db.on_commit(lambda: self._states().__setitem__(key, _State(READY, 0, rows)))
        except BaseException:
            if rel is not None:
                self.artifacts.delete(rel)
            raise
        self._live[(name, version)] = _Live(est, 0)
        return self.get(name, version)

    def _next_version(self, name: str) -> int:
        """The number of the model's next version: never one a deleted version had (its
        lineage, forget_log and audit entries keep naming it)."""
        row = self.db.one(
            "SELECT greatest((SELECT max(version) FROM model_versions WHERE model = ?), "
            "(SELECT max(version) FROM deleted_versions WHERE model = ?))",
            [name, name],
        )
        return int(row[0] or 0) + 1 if row else 1

    def _matrix(
        self,
        dataset: str,
        features: Sequence[str],
        label: str,
        trained: tuple[str, int] | None = None,
        row_ids: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, arrays = data.fetch(self.db, dataset, [*features, label], trained, row_ids)
        X = np.column_stack([np.asarray(arrays[f], dtype=np.float64) for f in features])
        y = np.asarray(arrays[label])
        if y.dtype == object:
            y = y.astype(str)
        return ids, X.reshape(ids.size, len(features)), y

    def training_data(self, mv: ModelVersion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row ids, features and labels of the version's rows still in its dataset."""
        return self._matrix(mv.dataset, mv.features, mv.label, (mv.name, mv.version))

    def refit(self, mv: ModelVersion, X: np.ndarray, y: np.ndarray, ids: np.ndarray) -> Any:
        """A fresh model of the version's class and recorded parameters, fitted on ``X, y``.

        Raises ``TypeError`` when the recorded parameters do not rebuild the estimator, and the
        estimator's own ``ValueError`` / ``ForgetError`` when it refuses the rows.
        """
        est = load_class(mv.estimator)(**dict(mv.params))
        est.fit(X, y, row_ids=ids)
        return est

    # ------------------------------------------------------------------ lookup
    def get(self, name: str, version: int | None = None) -> ModelVersion:
        check_name(name, "model")
        sql = f"SELECT {_READ_COLUMNS} FROM model_versions WHERE model = ?"
        params: list[Any] = [name]
        if version is not None:
            sql += " AND version = ?"
            params.append(int(version))
        row = self.db.one(sql + " ORDER BY version DESC LIMIT 1", params)
        if row is None:
            raise UnknownModelError(name, version)
        return self._versions([row])[0]

    def versions(self) -> list[ModelVersion]:
        rows = self.db.all(f"SELECT {_READ_COLUMNS} FROM model_versions ORDER BY model, version")
        return self._versions(rows)

    def _versions(self, rows: list[tuple[Any, ...]]) -> list[ModelVersion]:
        """Model versions from ``model_versions`` rows, with lineage and retrains (2 reads)."""
        if not rows:
            return []
        keys = [f"{r[0]}\x00{r[1]}" for r in rows]
        lineage: dict[tuple[str, int], list[Revision]] = {}
        for m, v, r, q, k, t in self.db.all(
            "SELECT model, version, revision, request_id, rows_forgotten, logged_at "
            "FROM forget_log WHERE model || chr(0) || version::VARCHAR "
            "IN (SELECT unnest(?::VARCHAR[])) ORDER BY model, version, revision",
            [keys],
        ):
            lineage.setdefault((m, int(v)), []).append(Revision(int(r), q, int(k), t))
        retrains: dict[tuple[str, int], list[Retrain]] = {}
        for m, v, r, outcome, qs, n, sha, secs, reason, at in self.db.all(
            "SELECT model, version, revision, outcome, request_ids, training_rows, "
            "artifact_sha256, fit_seconds, reason, retrained_at FROM retrains "
            "WHERE model || chr(0) || version::VARCHAR IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY model, version, revision",
            [keys],
        ):
            retrains.setdefault((m, int(v)), []).append(
                Retrain(
                    int(r), outcome, tuple(qs), None if n is None else int(n), sha, secs, reason, at
                )
            )
        return [self._version(r, lineage, retrains) for r in rows]

    @staticmethod
    def _version(
        row: tuple[Any, ...],
        lineage: Mapping[tuple[str, int], list[Revision]],
        retrains: Mapping[tuple[str, int], list[Retrain]],
    ) -> ModelVersion:
        (
            name,
            version,
            status,
            dataset,
            kind,
            params,
            seed,
            code,
            feats,
            label,
            n,
            fit_sha,
            sha,
            ckpt,
            created,
            purpose,
            withheld,
        ) = row
        revisions = tuple(lineage.get((name, int(version)), ()))
        return ModelVersion(
            name,
            int(version),
            revisions[-1].revision if revisions else 0,
            status,
            dataset,
            kind,
            json.loads(params),
            seed,
            code,
            tuple(json.loads(feats)),
            label,
            int(n),
            fit_sha,
            sha,
            int(ckpt),
            created,
            revisions,
            tuple(retrains.get((name, int(version)), ())),
            purpose,
            int(withheld or 0),
        )

    def serving(self, name: str) -> tuple[ModelVersion, Any]:
        """The newest version that can serve, and its in-memory model."""
        check_name(name, "model")
        row = self.db.one(
            "SELECT max(version) FILTER (WHERE status = ?), count(*) FROM model_versions "
            "WHERE model = ?",
            [READY, name],
        )
        if row is None or not row[1]:
            raise UnknownModelError(name)
        if row[0] is None:
            raise ModelNotServableError(
                f"no version of model {name!r} can serve: each awaits a retrain or is retired"
            )
        mv = self.get(name, int(row[0]))
        return mv, self._live[(name, mv.version)].estimator

    def estimator(self, name: str, version: int) -> Any | None:
        live = self._live.get((name, version))
        return None if live is None else live.estimator

    def training_row_ids(self, name: str, version: int) -> np.ndarray:
        self.get(name, version)
        state = self._states().get((name, int(version)))
        if state is not None:
            return state.rows.copy()
        rows = self.db.all(  # pragma: no cover - every version has a state
            "SELECT row_id FROM version_rows WHERE model = ? AND version = ? ORDER BY row_id",
            [name, version],
        )
        return np.array([r for (r,) in rows], dtype=np.int64)  # pragma: no cover

    def status(self, name: str, version: int) -> str | None:
        state = self._states().get((name, version))
        return None if state is None else state.status

    def pending(self) -> list[tuple[str, int]]:
        """The versions that await a retrain, in (model, version) order."""
        return sorted(k for k, s in self._states().items() if s.status == PENDING)

    def revision(self, name: str, version: int) -> int:
        """The version's last logged revision."""
        return self._states()[(name, version)].revision

    # ------------------------------------------------------------------ in-memory state
    @property
    def states_loaded(self) -> bool:
        """Whether the versions' states are in memory (else the next use reads them)."""
        return self._state is not None

    def _states(self) -> dict[tuple[str, int], _State]:
        if self._state is None:
            self._state = self._read_states()
        return self._state

    def _read_states(self) -> dict[tuple[str, int], _State]:
        states = {
            (m, int(v)): _State(status, int(last), np.empty(0, dtype=np.int64))
            for m, v, status, last in self.db.all(
                "SELECT v.model, v.version, v.status, coalesce(max(f.revision), 0) "
                "FROM model_versions v LEFT JOIN forget_log f USING (model, version) "
                "GROUP BY ALL"
            )
        }
        cols = self.db.execute(
            "SELECT model, version, row_id FROM version_rows ORDER BY model, version, row_id"
        ).fetchnumpy()
        models, versions = np.asarray(cols["model"]), np.asarray(cols["version"], dtype=np.int64)
        row_ids = np.asarray(cols["row_id"], dtype=np.int64)
        if row_ids.size:
            change = np.flatnonzero((models[1:] != models[:-1]) | (versions[1:] != versions[:-1]))
            starts = np.concatenate([[0], change + 1])
            ends = np.concatenate([change + 1, [row_ids.size]])
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                state = states.get((str(models[a]), int(versions[a])))
                if state is not None:
                    state.rows = row_ids[a:b]
        return states

    # ------------------------------------------------------------------ forgetting
    def plan_forget(
        self,
        request_id: str,
        row_ids: Sequence[int],
        only: Container[tuple[str, int]] | None = None,
    ) -> list[ForgetOp]:
        """A forget operation for every ready or pending version trained on any of ``row_ids``
        (of the versions in ``only``, when given: an objection's purpose).

        Read from memory: no statement. Each operation takes the version's next revision.
        """
        return self.plan_forget_many([(request_id, row_ids)], only)[0]

    def plan_forget_many(
        self,
        wanted: Sequence[tuple[str, Sequence[int]]],
        only: Container[tuple[str, int]] | None = None,
        *,
        planned: dict[tuple[str, int], int] | None = None,
    ) -> list[list[ForgetOp]]:
        """:meth:`plan_forget` for each (request id, row ids) in turn — a group of requests:
        their revisions follow one another in that order — with one search per version.

        Revisions follow those already planned: in the open transaction, or in ``planned``
        when given (groups carried out in memory and not yet recorded: it is updated)."""
        lengths = [len(ids) for _, ids in wanted]
        flat = np.fromiter(
            (i for _, ids in wanted for i in ids), dtype=np.int64, count=sum(lengths)
        )
        owner = np.repeat(np.arange(len(wanted)), lengths)
        if planned is None:
            planned = self._planned()
        out: list[list[ForgetOp]] = [[] for _ in wanted]
        for (name, version), state in sorted(self._states().items()):
            if state.status == RETIRED or not state.rows.size or not flat.size:
                continue
            if only is not None and (name, version) not in only:
                continue
            pos = np.minimum(np.searchsorted(state.rows, flat), state.rows.size - 1)
            hit = state.rows[pos] == flat
            if not hit.any():
                continue
            ids, who = flat[hit], owner[hit]
            order = np.lexsort((ids, who))  # by request, then row id
            ids, who = ids[order], who[order]
            fresh = np.ones(ids.size, dtype=bool)  # a row named twice by one request: once
            fresh[1:] = (ids[1:] != ids[:-1]) | (who[1:] != who[:-1])
            ids, who = ids[fresh], who[fresh]
            cuts = np.flatnonzero(who[1:] != who[:-1]) + 1
            revision = planned.get((name, version), state.revision)
            for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), ids.size], strict=True):
                q = int(who[a])
                revision += 1
                out[q].append(
                    ForgetOp(name, version, revision, wanted[q][0], tuple(ids[a:b].tolist()))
                )
            planned[(name, version)] = revision
        return out

    def _planned(self) -> dict[tuple[str, int], int]:
        """Revisions planned in the open transaction and not yet committed (a group of
        requests plans one after another before any commits); forgotten on commit or
        rollback."""
        if not self.db.in_transaction:
            return {}
        planned = self.db.cache.get(_PLANNED)
        if planned is None:
            planned = self.db.cache[_PLANNED] = {}
            self.db.on_commit(lambda: self.db.cache.pop(_PLANNED, None))
        return planned

    def log(
        self,
        done: Sequence[tuple[ForgetOp, ForgetOutcome]],
        evidence: Sequence[str],
        at: str | Sequence[str],
    ) -> None:
        """Append the operations and their outcomes to ``forget_log`` (one statement, inside
        the erasure's transaction); ``evidence`` is each one's canonical JSON, ``at`` the
        time logged (one for all, or each one's)."""
        if not self.db.in_transaction:
            raise RuntimeError("forget operations are logged inside the erasure's transaction")
        if not done:
            return
        ats = [at] * len(done) if isinstance(at, str) else list(at)
        self.db.insert(
            "forget_log",
            _LOG_COLUMNS.split(", "),
            [
                (
                    op.model,
                    op.version,
                    op.revision,
                    op.request_id,
                    list(op.row_ids),
                    0 if outcome.action == LEARN else len(op.row_ids),
                    when,
                    outcome.action,
                    outcome.guarantee,
                    outcome.seconds,
                    text,
                    when,
                )
                for (op, outcome), text, when in zip(done, evidence, ats, strict=True)
            ],
        )
        ops = [op for op, _ in done]

        def advance() -> None:
            states = self._states()
            for op in ops:
                states[(op.model, op.version)].revision = op.revision

        self.db.on_commit(advance)

    def record_outcome(self, op: ForgetOp, outcome: ForgetOutcome, evidence: str, at: str) -> None:
        """Fill in the outcome of a logged operation that lacks one (stores written by older
        code, which recorded outcomes after the commit, and crashed in between)."""
        self.db.execute(
            "UPDATE forget_log SET action = ?, guarantee = ?, forget_seconds = ?, "
            "evidence_json = ?, recorded_at = ? WHERE model = ? AND version = ? AND revision = ?",
            [
                outcome.action,
                outcome.guarantee,
                outcome.seconds,
                evidence,
                at,
                op.model,
                op.version,
                op.revision,
            ],
        )

    def forget(self, op: ForgetOp) -> ForgetOutcome:
        """Tell the in-memory model to forget (memory only: the caller records the outcome).

        A model that cannot forget in place (``ForgetError``, or a result that needs a retrain)
        leaves memory; :meth:`mark_pending` records that in the same transaction.
        """
        live = self._live.get((op.model, op.version))
        if live is None:
            return ForgetOutcome(PENDING, None, None, "version already awaits a retrain")
        est = live.estimator
        try:
            result: ForgetResult = est.forget(list(op.row_ids))
        except ForgetError as exc:
            self._live.pop((op.model, op.version), None)
            return ForgetOutcome(PENDING, str(est.guarantee), None, f"{type(exc).__name__}: {exc}")
        live.revision = op.revision
        live.moved(list(op.row_ids))
        shards = dropped_shards(est) if result.needs_retrain else ()
        if shards:  # SISA (or a forest's deferred rebuilds): served without them until
            names = ", ".join(map(str, shards))  # retrain_shards
            return ForgetOutcome(
                EXACT,
                str(result.guarantee),
                result.seconds,
                f"{parts_of(est)} {names} dropped: served without them until they are retrained",
                shards,
            )
        if result.needs_retrain:
            self._live.pop((op.model, op.version), None)
            return ForgetOutcome(
                PENDING, str(result.guarantee), result.seconds, "deletion budget exhausted"
            )
        action = APPROXIMATE if result.guarantee is Guarantee.APPROXIMATE else EXACT
        return ForgetOutcome(action, str(result.guarantee), result.seconds)

    def forget_many(self, ops: Sequence[ForgetOp]) -> list[ForgetOutcome]:
        """:meth:`forget` for each operation, in order (a group of erasure requests): the
        operations of one version whose model forgets exactly call its ``forget`` once for
        all their rows — the model ``forget`` of each in turn would give (exactness: both are
        the fit on the remaining rows), for one call's overhead, and a forest may then refit
        instead (``forget.hedgecut.forest.REFIT_SHARE``). Each operation keeps its revision
        and outcome; its seconds are its rows' share of the call's. Models that forget
        approximately or drop shards, and a call that refuses the rows (changing nothing),
        go operation by operation, as alone."""
        of: dict[tuple[str, int], list[int]] = {}
        for i, op in enumerate(ops):
            of.setdefault((op.model, op.version), []).append(i)
        out: list[ForgetOutcome | None] = [None] * len(ops)
        for idx in of.values():
            together = self._forget_together([ops[i] for i in idx]) if len(idx) > 1 else None
            outcomes = together or [self.forget(ops[i]) for i in idx]
            for i, outcome in zip(idx, outcomes, strict=True):
                out[i] = outcome
        return [o for o in out if o is not None]

    def _forget_together(self, ops: Sequence[ForgetOp]) -> list[ForgetOutcome] | None:
        """One ``forget`` for the operations of one version; None, changing nothing, when
        they are to go one by one."""
        live = self._live.get((ops[0].model, ops[0].version))
        if live is None:
            return None
        est = live.estimator
        if est.guarantee is not Guarantee.EXACT or _defers(est):
            return None  # approximate (a bound per call), or parts dropped per call
        rows = [r for op in ops for r in op.row_ids]
        try:
            result: ForgetResult = est.forget(rows)
        except ForgetError:  # refused whole: each alone says which one fails, and how
            return None
        live.revision = ops[-1].revision
        live.moved(rows)
        share = result.seconds / max(1, len(rows))
        return [ForgetOutcome(EXACT, str(result.guarantee), share * len(op.row_ids)) for op in ops]

    def mark_pending(
        self, done: Sequence[tuple[ForgetOp, ForgetOutcome]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Mark versions that just went pending (inside the transaction); their audit entries."""
        seen: set[tuple[str, int]] = set()  # a group of requests may hold two ops of one
        newly = []
        for op, outcome in done:
            key = (op.model, op.version)
            if outcome.action == PENDING and key not in seen and self.status(*key) == READY:
                seen.add(key)
                newly.append((op, outcome))
        if not newly:
            return []
        self.db.execute(
            "UPDATE model_versions SET status = ? "
            "WHERE model || chr(0) || version::VARCHAR IN (SELECT unnest(?::VARCHAR[]))",
            [PENDING, [f"{op.model}\x00{op.version}" for op, _ in newly]],
        )

        def flag() -> None:
            for op, _ in newly:
                self._states()[(op.model, op.version)].status = PENDING

        self.db.on_commit(flag)
        return [
            (
                "model.pending_retrain",
                {
                    "model": op.model,
                    "version": op.version,
                    "revision": op.revision,
                    "request_id": op.request_id,
                    "reason": outcome.reason,
                },
            )
            for op, outcome in newly
        ]

    # ------------------------------------------------------------------ setting rows aside
    def set_aside(self, ops: Sequence[ForgetOp]) -> None:
        """Take the rows of ``ops`` out of their versions' training rows, inside the
        transaction that forgot them, while the data stays (an objection, a restriction):
        retrains, later erasures and access reports no longer count them. Memory follows
        the commit."""
        self._move_rows(
            ops,
            "DELETE FROM version_rows WHERE model = ? AND version = ? "
            "AND row_id IN (SELECT unnest(?::BIGINT[]))",
            np.setdiff1d,
        )

    def take_back(self, ops: Sequence[ForgetOp]) -> None:
        """The inverse of :meth:`set_aside` (a restriction lifted): the rows count as the
        versions' training rows again."""
        insert = "INSERT INTO version_rows SELECT ?, ?, unnest(?::BIGINT[])"
        self._move_rows(ops, insert, np.union1d)

    def _move_rows(
        self,
        ops: Sequence[ForgetOp],
        sql: str,
        combine: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        """``sql`` (model, version, row ids) per op; after the commit each version's training
        rows in memory become ``combine(rows, op's ids)``."""
        for op in ops:
            self.db.execute(sql, [op.model, op.version, list(op.row_ids)])
        moved = [((op.model, op.version), np.asarray(op.row_ids, dtype=np.int64)) for op in ops]

        def follow() -> None:
            for key, ids in moved:
                state = self._states().get(key)
                if state is not None:
                    state.rows = combine(state.rows, ids)

        self.db.on_commit(follow)

    def rows(self, name: str, version: int, row_ids: Sequence[int]) -> tuple[np.ndarray, ...]:
        """Row ids, features and labels of ``row_ids`` still in the version's dataset, in
        the order given (a row no longer there is left out)."""
        mv = self.get(name, version)
        ids, X, y = self._matrix(mv.dataset, mv.features, mv.label, None, row_ids)
        order = {int(i): k for k, i in enumerate(row_ids)}
        pos = np.argsort([order[int(i)] for i in ids], kind="stable")
        return ids[pos], X[pos], y[pos]

    def learn(self, op: ForgetOp) -> ForgetOutcome:
        """Tell the in-memory model to learn the op's rows again (memory only, as
        :meth:`forget`); they must be in the dataset. A model that cannot (no ``learn``:
        forests, logistic regression; or a row gone) leaves memory and awaits a retrain on
        its training rows, which :meth:`take_back` restored: the same model, refitted."""
        key = (op.model, op.version)
        live = self._live.get(key)
        if live is None:
            return ForgetOutcome(PENDING, None, None, "version awaits a retrain")
        est = live.estimator
        learn = getattr(est, "learn", None)
        if learn is None:
            self._live.pop(key, None)
            return ForgetOutcome(
                PENDING, str(est.guarantee), None, f"{type(est).__name__} cannot learn rows"
            )
        ids, X, y = self.rows(op.model, op.version, op.row_ids)
        t0 = time.perf_counter()
        try:
            if ids.size != len(op.row_ids):
                raise ValueError(f"{len(op.row_ids) - ids.size} rows left the dataset")
            learn(X, y, row_ids=ids)
        except (ValueError, ForgetError) as exc:
            self._live.pop(key, None)
            return ForgetOutcome(PENDING, str(est.guarantee), None, f"{type(exc).__name__}: {exc}")
        live.revision = op.revision
        live.moved(None)
        return ForgetOutcome(LEARN, "exact", time.perf_counter() - t0)

    # ------------------------------------------------------------------ retraining
    def set_retrained(
        self, name: str, version: int, revision: int, rel: str | None, sha: str | None
    ) -> None:
        """Point a pending version at its retrained artifact, or retire it (``rel`` None).

        Inside the retrain's transaction; memory follows after the commit.
        """
        status = READY if rel is not None else RETIRED
        self.db.execute(
            "UPDATE model_versions SET status = ?, checkpoint_revision = ?, checkpoint_path = ?, "
            "checkpoint_sha256 = ? WHERE model = ? AND version = ?",
            [status, revision, rel, sha, name, version],
        )

        def follow() -> None:
            self._states()[(name, version)].status = status

        self.db.on_commit(follow)

    def serve(self, name: str, version: int, estimator: Any, revision: int) -> None:
        """Put a retrained model in memory (after its transaction committed)."""
        self._live[(name, version)] = _Live(estimator, revision)

    # ------------------------------------------------------------------ sharded models
    def shards_pending(self) -> list[tuple[str, int]]:
        """The versions in memory that serve without shards an erasure dropped (SISA)."""
        return sorted(k for k, live in self._live.items() if dropped_shards(live.estimator))

    def shard_jobs(self) -> list[ShardJob]:
        """A copy of each version that serves without shards erasures dropped, to retrain
        them (:meth:`ShardJob.run`) without the caller's lock; :meth:`publish_shards` then
        publishes each whose version did not move meanwhile."""
        jobs = []
        for name, version in self.shards_pending():
            live = self._live[(name, version)]
            model = copy.deepcopy(live.estimator)
            jobs.append(ShardJob(name, version, live.revision, model, dropped_shards(model)))
        return jobs

    def publish_shards(self, jobs: Sequence[ShardJob]) -> tuple[ShardRetrain, ...]:
        """Publish retrained copies, each as a new revision (see :meth:`retrain_shards`). A
        job whose version moved since its copy (another erasure) is dropped: the next purge
        retrains from the current model."""
        out = []
        for job in jobs:
            live = self._live.get((job.model, job.version))
            if live is None or live.revision != job.revision:
                continue
            if job.error is not None:  # the version then awaits a whole retrain
                self._shards_refused(job.model, job.version, job.shards, job.error)
                continue
            if job.rows < 0:  # not run
                continue
            out.append(
                self._shards_retrained(
                    job.model, job.version, job.copy, job.shards, job.rows, job.seconds
                )
            )
        return tuple(out)

    def retrain_shards(self) -> tuple[ShardRetrain, ...]:
        """Retrain the shards erasures dropped, version by version, each as a new revision.

        The retrain runs on a copy (the model in memory serves on meanwhile); then one
        transaction appends a ``forget_log`` entry (action ``retrain_shards``, no rows, its
        evidence naming the shards, the rows they trained on and the requests that waited),
        a ``retrains`` row (outcome ``shards_retrained``) and the audit entries; after the
        commit the copy serves at the new revision. A crash before the commit leaves the
        shards dropped after the replay at open, for the next call. A learner that refuses a
        shard's remaining rows sends the version to ``pending_retrain`` (unserved; see
        :mod:`store.retrain`), as any model that cannot forget in place.
        """
        return self.publish_shards([job.run() for job in self.shard_jobs()])

    def _shards_refused(
        self, name: str, version: int, shards: tuple[int, ...], reason: str
    ) -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE model_versions SET status = ? WHERE model = ? AND version = ?",
                [PENDING, name, version],
            )
            audit.append(
                self.db,
                "model.pending_retrain",
                {
                    "model": name,
                    "version": version,
                    "revision": self.revision(name, version),
                    "request_id": None,
                    "reason": f"shards {list(shards)} could not be retrained: {reason}",
                },
            )

            def flag() -> None:
                self._states()[(name, version)].status = PENDING

            self.db.on_commit(flag)
        self._live.pop((name, version), None)

    def _shards_retrained(
        self, name: str, version: int, model: Any, shards: tuple[int, ...], rows: int, secs: float
    ) -> ShardRetrain:
        revision = self.revision(name, version) + 1
        with self.db.atomic():
            since = self.db.one(
                "SELECT coalesce(max(revision), 0) FROM forget_log "
                "WHERE model = ? AND version = ? AND action = ?",
                [name, version, SHARDS],
            )
            waiting = tuple(
                str(q)
                for (q,) in self.db.all(
                    "SELECT request_id FROM forget_log WHERE model = ? AND version = ? "
                    "AND revision > ? AND action IN (?, ?) ORDER BY revision",
                    [name, version, int(since[0]) if since else 0, EXACT, APPROXIMATE],
                )
            )
            at = now()
            doc = {
                "method": "retrain_shards",
                "shards": list(shards),
                "parts": parts_of(model),
                "training_rows": rows,
                "requests": list(waiting),
                "retrained_at": at,
            }
            self.db.insert(
                "forget_log",
                _LOG_COLUMNS.split(", "),
                [(name, version, revision, waiting[-1] if waiting else "", [], 0, at, SHARDS,
                  "exact", secs, audit.canonical(doc), at)],
            )  # fmt: skip
            reason = f"shards {', '.join(map(str, shards))} retrained on their remaining rows"
            self.db.execute(
                "INSERT INTO retrains VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [name, version, revision, SHARDS_RETRAINED, list(waiting), rows, None, secs,
                 reason, at],
            )  # fmt: skip
            payload = {"model": name, "version": version, "revision": revision}
            done = {"shards": list(shards), "training_rows": rows, "requests": list(waiting)}
            step = {"action": SHARDS, "guarantee": "exact", "shards": list(shards)}
            audit.append_many(
                self.db,
                [
                    ("model.shards_retrained", payload | done),
                    *(
                        ("erasure.model_action", {"request_id": q} | payload | step)
                        for q in waiting
                    ),
                ],
            )

            def advance() -> None:
                self._states()[(name, version)].revision = revision

            self.db.on_commit(advance)
            crash_point("shards.before_commit")
        self._live[(name, version)] = _Live(model, revision)
        return ShardRetrain(name, version, revision, shards, waiting, rows, secs, at)

    # ------------------------------------------------------------------ deleting versions
    def statuses(self, name: str) -> dict[int, str]:
        """Each version of model ``name`` and its status, from memory (no statement)."""
        return {v: s.status for (m, v), s in self._states().items() if m == name}

    def delete(self, name: str, version: int, at: str, by: str | None) -> None:
        """Delete a version's rows (inside the caller's transaction): its ``model_versions``
        row, its training rows' link (``version_rows``) and the erased row ids its
        ``forget_log`` entries still hold (the entries stay, as the record of what it did for
        each erasure request); a tombstone keeps its number from being reused. Memory and the
        artifact files follow the commit; the caller compacts the database afterwards, so
        that the deleted rows' bytes leave the file.
        """
        if not self.db.in_transaction:
            raise RuntimeError("a version is deleted inside a transaction")
        key = (name, int(version))
        for sql in (
            "DELETE FROM version_rows WHERE model = ? AND version = ?",
            "UPDATE forget_log SET row_ids = []::BIGINT[] WHERE model = ? AND version = ?",
            "DELETE FROM model_versions WHERE model = ? AND version = ?",
        ):
            self.db.execute(sql, list(key))
        self.db.execute("INSERT INTO deleted_versions VALUES (?, ?, ?, ?)", [*key, at, by])

        def drop() -> None:
            self._live.pop(key, None)
            self._states().pop(key, None)
            folder = self.artifacts.root / Artifacts.relpath(name, key[1], 0)
            for path in sorted(folder.parent.glob("*")):
                path.unlink(missing_ok=True)
            if folder.parent.is_dir():
                folder.parent.rmdir()

        self.db.on_commit(drop)

    # ------------------------------------------------------------------ loading, checkpoints
    def load(self) -> list[tuple[ForgetOp, ForgetOutcome]]:
        """Load every ready version from its checkpoint and replay later forget operations."""
        self._live.clear()
        self._state = self._read_states()
        return self.reload(sorted(self._state))

    def reload(self, keys: Sequence[tuple[str, int]]) -> list[tuple[ForgetOp, ForgetOutcome]]:
        """Rebuild the given versions from the database: checkpoint plus ``forget_log``.

        Used at open, and after an erasure whose transaction failed once its models forgot.
        """
        replayed = []
        self._state = self._read_states()
        for name, version in sorted(set(keys)):
            self._live.pop((name, version), None)
            row = self.db.one(
                "SELECT estimator, checkpoint_revision, checkpoint_path, checkpoint_sha256 "
                "FROM model_versions WHERE model = ? AND version = ? AND status = ?",
                [name, version, READY],
            )
            if row is None:
                continue
            kind, ckpt, rel, sha = row
            est = load_class(kind).from_bytes(self.artifacts.read(rel, sha))
            self._live[(name, version)] = _Live(est, int(ckpt))
            for rev, request_id, ids, action in self.db.all(
                "SELECT revision, request_id, row_ids, action FROM forget_log "
                "WHERE model = ? AND version = ? AND revision > ? ORDER BY revision",
                [name, version, ckpt],
            ):
                op = ForgetOp(name, int(version), int(rev), request_id, tuple(map(int, ids)))
                live = self._live.get((name, version))
                if action == SHARDS:  # deterministic: the shards the entries before dropped
                    if live is not None:
                        live.estimator.retrain_pending()
                        live.revision = int(rev)
                    continue
                replayed.append((op, self.learn(op) if action == LEARN else self.forget(op)))
        gone = [(op, o) for op, o in replayed if o.action == PENDING]
        if gone:  # replay is deterministic; this only meets stores written by older code
            with self.db.atomic():
                audit.append_many(self.db, self.mark_pending(gone))
        return replayed

    def checkpoint(
        self, guard: Callable[[str, int], AbstractContextManager[Any]] | None = None
    ) -> int:
        """Write artifacts of versions whose revision moved; drop those of pending versions:
        :meth:`checkpoint_jobs`, each job run, :meth:`checkpoint_finish` (``guard``: see
        there). How many artifacts were written."""
        jobs = self.checkpoint_jobs()
        for job in jobs:
            job.run()
        return self.checkpoint_finish(jobs, guard)

    def checkpoint_jobs(self) -> list[CheckpointJob]:
        """Phase 1 of :meth:`checkpoint` (under the caller's lock): a job for each version
        whose revision moved since its artifact, holding a copy of its model (a forest's
        node slots and rows in use: ~0.2-1 s on 300,000 rows; any other model a deep copy).
        :meth:`CheckpointJob.run` builds the compacted model and its artifact from the copy
        without the lock, while the version serves and forgets on; memory keeps the rows it
        forgets meanwhile. Shards that erasures dropped are retrained first
        (:meth:`retrain_shards`): no artifact is written at a revision that served without
        them (loading an artifact trains every shard)."""
        self.retrain_shards()
        jobs: list[CheckpointJob] = []
        try:
            for (name, version), live in sorted(self._live.items()):
                ckpt, old = self.db.one(
                    "SELECT checkpoint_revision, checkpoint_path FROM model_versions "
                    "WHERE model = ? AND version = ?",
                    [name, version],
                ) or (0, None)
                if live.revision == ckpt:
                    continue
                if live.since is not None:  # its forgets would go to two jobs' lists
                    raise RuntimeError("a checkpoint of this store is already being built")
                est = live.estimator
                made = est.compaction() if hasattr(est, "compaction") else _Copied(est)
                live.since = []
                rel = Artifacts.relpath(name, version, live.revision)
                jobs.append(
                    CheckpointJob(
                        name, version, live.revision, rel, old, live, made, self.artifacts
                    )
                )
        except BaseException:  # no job made is finished: the versions record nothing more
            for job in jobs:
                job.live.since = None
            raise
        return jobs

    def checkpoint_since(self, jobs: Sequence[CheckpointJob]) -> list[list[list[int] | None]]:
        """For each job (under the caller's lock), the rows its version forgot since the
        copy or the last call, taken from what the version keeps recording: the caller
        replays them without the lock (:meth:`CheckpointJob.catch_up`), and
        :meth:`checkpoint_finish` only what came after."""
        out: list[list[list[int] | None]] = []
        for job in jobs:
            since = job.live.since
            if since is not None:
                job.live.since = []
            out.append(since or [])
        return out

    def checkpoint_finish(
        self,
        jobs: Sequence[CheckpointJob],
        guard: Callable[[str, int], AbstractContextManager[Any]] | None = None,
    ) -> int:
        """Phase 3 of :meth:`checkpoint` (under the caller's lock): each job's compacted
        model, made to forget the rows its version forgot since the copy (those
        :meth:`CheckpointJob.catch_up` has not replayed yet), is taken by the
        model in memory (``guard(model, version)`` is entered for that step of attribute
        assignments: a server keeps that model's predictions out meanwhile, microseconds),
        and its artifact becomes the version's checkpoint (at the job's revision: later
        forgets replay onto it at open). A version whose model learned rows since (a lifted
        restriction), or whose compacted copy cannot replay the forgets, is compacted in
        place instead; one that left memory or was replaced meanwhile (a retrain, a reload)
        keeps its artifact, the job's is deleted. Artifacts of versions no longer ready are
        deleted. How many artifacts were written."""
        written = 0
        for job in jobs:
            live, staged = self._live.get((job.model, job.version)), Artifacts.staged(job.rel)
            since, job.live.since = job.live.since, None
            if live is not job.live or job.sha is None:  # replaced, gone, or never run
                self.artifacts.delete(staged)
                continue
            swap = guard(job.model, job.version) if guard is not None else None
            twin = job.made.model
            if since is not None and job.replayable and _replayed(twin, since):
                with swap if swap is not None else nullcontext():
                    live.estimator.__dict__.update(twin.__dict__)
            elif hasattr(live.estimator, "compact"):
                live.estimator.compact(swap)
            self.artifacts.promote(staged, job.rel)
            with self.db.atomic():
                self._set_checkpoint(job.model, job.version, job.revision, job.rel, job.sha)
            if job.old and job.old != job.rel:
                self.artifacts.delete(job.old)
            written += 1
        for name, version, rel in self.db.all(
            "SELECT model, version, checkpoint_path FROM model_versions "
            "WHERE status <> ? AND checkpoint_path IS NOT NULL",
            [READY],
        ):
            with self.db.atomic():
                self._set_checkpoint(name, version, None, None, None)
            self.artifacts.delete(rel)
        self.sweep()
        return written

    def _set_checkpoint(
        self, name: str, version: int, revision: int | None, rel: str | None, sha: str | None
    ) -> None:
        if revision is None:
            self.db.execute(
                "UPDATE model_versions SET checkpoint_path = NULL, checkpoint_sha256 = NULL "
                "WHERE model = ? AND version = ?",
                [name, version],
            )
        else:
            self.db.execute(
                "UPDATE model_versions SET checkpoint_revision = ?, checkpoint_path = ?, "
                "checkpoint_sha256 = ? WHERE model = ? AND version = ?",
                [revision, rel, sha, name, version],
            )
        audit.append(
            self.db,
            "model.checkpointed" if revision is not None else "model.artifact_deleted",
            {"model": name, "version": version, "revision": revision, "sha256": sha},
        )

    def scrub(self) -> None:
        """Forget the ids of erased rows where nothing needs them any more (at a purge, in a
        transaction, after :meth:`checkpoint`).

        A ``forget_log`` entry's row ids are needed only to replay it onto a checkpoint that
        precedes it; once the version's checkpoint includes it (or the version no longer
        loads: pending, retired) they are linkage to erased people, and are cleared (the
        entry keeps the count). ``version_rows`` loses the rows no longer in the dataset.
        """
        self.db.execute(
            "UPDATE forget_log f SET row_ids = []::BIGINT[] FROM model_versions m "
            "WHERE f.model = m.model AND f.version = m.version AND len(f.row_ids) > 0 "
            "AND f.action IS NOT NULL AND (m.status <> ? OR f.revision <= m.checkpoint_revision)",
            [READY],
        )
        for (dataset,) in self.db.all("SELECT DISTINCT dataset FROM model_versions ORDER BY 1"):
            self.db.execute(
                "DELETE FROM version_rows v USING model_versions m WHERE v.model = m.model "
                "AND v.version = m.version AND m.dataset = ? AND NOT EXISTS (SELECT 1 FROM "
                f"{data.table(dataset)} d WHERE d.{data.ROW_ID} = v.row_id)",
                [dataset],
            )
            self.db.execute(  # an erased subject's restricted rows: nothing to give back
                "DELETE FROM restricted_rows r WHERE r.dataset = ? AND NOT EXISTS (SELECT 1 "
                f"FROM {data.table(dataset)} d WHERE d.{data.ROW_ID} = r.row_id)",
                [dataset],
            )

        def reread() -> None:
            self._state = None  # the training rows in memory lose the erased ones too

        self.db.on_commit(reread)

    def sweep(self) -> list[str]:
        """Delete artifact files the database does not point to (crash leftovers)."""
        keep = [
            p
            for (p,) in self.db.all(
                "SELECT checkpoint_path FROM model_versions WHERE checkpoint_path IS NOT NULL"
            )
        ]
        return self.artifacts.sweep(keep)


def _replayed(model: Any, since: Sequence[list[int] | None]) -> bool:
    """Make ``model`` forget each batch of rows in turn, as the model it stands in for did;
    False (``model`` then unusable) where a batch was learned, not forgotten, or the model
    refuses or defers one."""
    for rows in since:
        if rows is None:
            return False
        try:
            if model.forget(rows).needs_retrain:
                return False
        except ForgetError:
            return False
    return True
