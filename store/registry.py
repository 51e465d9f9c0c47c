"""Versioned models: training, the in-memory models that serve, forgetting and checkpoints.

A *version* is one fit (dataset, parameters, seed, code version, artifact sha256 and the row
ids it trained on, in ``version_rows``). Each erasure that touches a version appends a
*revision* to ``forget_log``; the in-memory model is the artifact of the last checkpointed
revision with the later ``forget_log`` entries replayed. Checkpoints write the artifact of the
current revision and delete the older one, so no retained artifact holds a forgotten row.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

import forget
from forget.base import ForgetResult, Guarantee, Unlearnable
from forget.errors import ForgetError
from store import audit, data
from store._clock import now
from store._faults import crash_point
from store.artifacts import Artifacts
from store.db import Database, check_name
from store.errors import (
    EstimatorError,
    FeatureMismatchError,
    FitError,
    ModelNotServableError,
    UnknownModelError,
)

READY = "ready"
PENDING = "pending_retrain"
_VERSION_COLUMNS = (
    "model, version, status, dataset, estimator, params_json, seed, code_version, "
    "features_json, label, n_rows, fit_sha256, checkpoint_sha256, checkpoint_revision, created_at"
)


@dataclass(frozen=True)
class Revision:
    """One forget operation on a version, and the erasure request that made it."""

    revision: int
    request_id: str
    rows_forgotten: int
    logged_at: str


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version and its lineage of revisions."""

    name: str
    version: int
    revision: int
    status: str
    dataset: str
    estimator: str
    params: Mapping[str, Any]
    seed: int | None
    code_version: str
    features: tuple[str, ...]
    label: str
    n_rows: int
    fit_sha256: str
    artifact_sha256: str | None
    checkpoint_revision: int
    created_at: str
    lineage: tuple[Revision, ...]


@dataclass(frozen=True)
class ForgetOp:
    model: str
    version: int
    revision: int
    request_id: str
    row_ids: tuple[int, ...]


@dataclass(frozen=True)
class ForgetOutcome:
    """How a version took a forget operation: ``action`` is one of ``ACTIONS``."""

    action: str
    guarantee: str | None
    seconds: float | None
    reason: str | None = None


EXACT, APPROXIMATE = "exact_unlearning", "approximate_unlearning"
ACTIONS = (EXACT, APPROXIMATE, PENDING)


class _Live:
    """A model in memory and the revision it is at."""

    def __init__(self, estimator: Any, revision: int) -> None:
        self.estimator = estimator
        self.revision = revision


class Registry:
    def __init__(self, db: Database, artifacts: Artifacts) -> None:
        self.db = db
        self.artifacts = artifacts
        self._live: dict[tuple[str, int], _Live] = {}

    # ------------------------------------------------------------------ training
    def train(
        self,
        name: str,
        info: data.DatasetInfo,
        estimator: Any,
        label: str,
        features: Sequence[str],
    ) -> ModelVersion:
        check_name(name, "model")
        _check_estimator(estimator)
        feats = _check_columns(info, label, features)
        nulls = data.count_nulls(self.db, info.name, [*feats, label])
        if nulls:
            raise FeatureMismatchError(f"dataset {info.name!r} has nulls in columns {nulls}")
        ids, X, y = self._matrix(info.name, feats, label)
        est = clone(estimator) if hasattr(estimator, "get_params") else estimator
        try:
            est.fit(X, y, row_ids=ids)
        except (ValueError, ForgetError) as exc:
            raise FitError(f"{type(est).__name__} refused dataset {info.name!r}: {exc}") from exc
        blob = est.to_bytes()
        params = _json_params(est)
        seed = params.get("random_state")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        kind = f"{type(est).__module__}:{type(est).__qualname__}"
        rel = None
        try:
            with self.db.atomic():
                row = self.db.one("SELECT max(version) FROM model_versions WHERE model = ?", [name])
                version = int(row[0] or 0) + 1 if row else 1
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
                    },
                )
        except BaseException:
            if rel is not None:
                self.artifacts.delete(rel)
            raise
        self._live[(name, version)] = _Live(est, 0)
        return self.get(name, version)

    def _matrix(
        self,
        dataset: str,
        features: Sequence[str],
        label: str,
        trained: tuple[str, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, arrays = data.fetch(self.db, dataset, [*features, label], trained)
        X = np.column_stack([np.asarray(arrays[f], dtype=np.float64) for f in features])
        y = np.asarray(arrays[label])
        if y.dtype == object:
            y = y.astype(str)
        return ids, X.reshape(ids.size, len(features)), y

    def training_data(self, mv: ModelVersion) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row ids, features and labels of the version's rows still in its dataset."""
        return self._matrix(mv.dataset, mv.features, mv.label, (mv.name, mv.version))

    # ------------------------------------------------------------------ lookup
    def get(self, name: str, version: int | None = None) -> ModelVersion:
        check_name(name, "model")
        sql = f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE model = ?"
        params: list[Any] = [name]
        if version is not None:
            sql += " AND version = ?"
            params.append(int(version))
        row = self.db.one(sql + " ORDER BY version DESC LIMIT 1", params)
        if row is None:
            raise UnknownModelError(name, version)
        return self._version(row)

    def versions(self) -> list[ModelVersion]:
        rows = self.db.all(f"SELECT {_VERSION_COLUMNS} FROM model_versions ORDER BY model, version")
        return [self._version(r) for r in rows]

    def _version(self, row: tuple[Any, ...]) -> ModelVersion:
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
        ) = row
        lineage = tuple(
            Revision(int(r), q, int(k), t)
            for r, q, k, t in self.db.all(
                "SELECT revision, request_id, len(row_ids), logged_at FROM forget_log "
                "WHERE model = ? AND version = ? ORDER BY revision",
                [name, version],
            )
        )
        return ModelVersion(
            name,
            int(version),
            lineage[-1].revision if lineage else 0,
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
            lineage,
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
            raise ModelNotServableError(f"every version of model {name!r} awaits a retrain")
        mv = self.get(name, int(row[0]))
        return mv, self._live[(name, mv.version)].estimator

    def estimator(self, name: str, version: int) -> Any | None:
        live = self._live.get((name, version))
        return None if live is None else live.estimator

    def training_row_ids(self, name: str, version: int) -> np.ndarray:
        self.get(name, version)
        rows = self.db.all(
            "SELECT row_id FROM version_rows WHERE model = ? AND version = ? ORDER BY row_id",
            [name, version],
        )
        return np.array([r for (r,) in rows], dtype=np.int64)

    # ------------------------------------------------------------------ forgetting
    def log_forget(self, request_id: str, row_ids: Sequence[int]) -> list[ForgetOp]:
        """Append a forget operation for every version trained on any of ``row_ids``."""
        if not self.db.in_transaction:
            raise RuntimeError("log_forget belongs inside the erasure's transaction")
        hits = self.db.all(
            "SELECT v.model, v.version, list(v.row_id ORDER BY v.row_id), "
            "coalesce((SELECT max(f.revision) FROM forget_log f "
            "WHERE f.model = v.model AND f.version = v.version), 0) "
            "FROM version_rows v WHERE v.row_id IN (SELECT unnest(?::BIGINT[])) "
            "GROUP BY v.model, v.version ORDER BY v.model, v.version",
            [list(row_ids)],
        )
        ops = [
            ForgetOp(model, int(version), int(last) + 1, request_id, tuple(map(int, ids)))
            for model, version, ids, last in hits
        ]
        if ops:  # one statement for all versions: each statement costs ~1 ms in DuckDB
            at = now()
            self.db.execute(
                "INSERT INTO forget_log VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(ops)),
                [
                    x
                    for op in ops
                    for x in (op.model, op.version, op.revision, request_id, list(op.row_ids), at)
                ],
            )
        return ops

    def forget(self, op: ForgetOp) -> ForgetOutcome:
        """Tell the in-memory model to forget; a model that cannot is marked pending retrain."""
        live = self._live.get((op.model, op.version))
        if live is None:
            return ForgetOutcome(PENDING, None, None, "version already awaits a retrain")
        est = live.estimator
        try:
            result: ForgetResult = est.forget(list(op.row_ids))
        except ForgetError as exc:
            self._mark_pending(op, f"{type(exc).__name__}: {exc}")
            return ForgetOutcome(PENDING, str(est.guarantee), None, f"{type(exc).__name__}: {exc}")
        live.revision = op.revision
        if result.needs_retrain:
            self._mark_pending(op, "deletion budget exhausted")
            return ForgetOutcome(PENDING, str(result.guarantee), result.seconds, "budget exhausted")
        action = APPROXIMATE if result.guarantee is Guarantee.APPROXIMATE else EXACT
        return ForgetOutcome(action, str(result.guarantee), result.seconds)

    def _mark_pending(self, op: ForgetOp, reason: str) -> None:
        self._live.pop((op.model, op.version), None)
        with self.db.atomic():
            self.db.execute(
                "UPDATE model_versions SET status = ? WHERE model = ? AND version = ?",
                [PENDING, op.model, op.version],
            )
            audit.append(
                self.db,
                "model.pending_retrain",
                {
                    "model": op.model,
                    "version": op.version,
                    "revision": op.revision,
                    "request_id": op.request_id,
                    "reason": reason,
                },
            )

    # ------------------------------------------------------------------ loading, checkpoints
    def load(self) -> list[tuple[ForgetOp, ForgetOutcome]]:
        """Load every ready version from its checkpoint and replay later forget operations."""
        self._live.clear()
        replayed = []
        rows = self.db.all(
            "SELECT model, version, estimator, checkpoint_revision, checkpoint_path, "
            "checkpoint_sha256 FROM model_versions WHERE status = ? ORDER BY model, version",
            [READY],
        )
        for name, version, kind, ckpt, rel, sha in rows:
            est = _load_class(kind).from_bytes(self.artifacts.read(rel, sha))
            self._live[(name, version)] = _Live(est, int(ckpt))
            for rev, request_id, ids in self.db.all(
                "SELECT revision, request_id, row_ids FROM forget_log "
                "WHERE model = ? AND version = ? AND revision > ? ORDER BY revision",
                [name, version, ckpt],
            ):
                op = ForgetOp(name, int(version), int(rev), request_id, tuple(map(int, ids)))
                replayed.append((op, self.forget(op)))
        return replayed

    def checkpoint(self) -> int:
        """Write artifacts of versions whose revision moved; drop those of pending versions."""
        written = 0
        for (name, version), live in sorted(self._live.items()):
            ckpt, old = self.db.one(
                "SELECT checkpoint_revision, checkpoint_path FROM model_versions "
                "WHERE model = ? AND version = ?",
                [name, version],
            ) or (0, None)
            if live.revision == ckpt:
                continue
            rel = Artifacts.relpath(name, version, live.revision)
            sha = self.artifacts.write(rel, live.estimator.to_bytes())
            crash_point("checkpoint.written")
            with self.db.atomic():
                self._set_checkpoint(name, version, live.revision, rel, sha)
            if old and old != rel:
                self.artifacts.delete(old)
            written += 1
        for name, version, rel in self.db.all(
            "SELECT model, version, checkpoint_path FROM model_versions "
            "WHERE status = ? AND checkpoint_path IS NOT NULL",
            [PENDING],
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

    def sweep(self) -> list[str]:
        """Delete artifact files the database does not point to (crash leftovers)."""
        keep = [
            p
            for (p,) in self.db.all(
                "SELECT checkpoint_path FROM model_versions WHERE checkpoint_path IS NOT NULL"
            )
        ]
        return self.artifacts.sweep(keep)


def _check_estimator(estimator: Any) -> None:
    if isinstance(estimator, type) or not isinstance(estimator, Unlearnable):
        raise EstimatorError(
            f"{estimator!r} does not follow forget.Unlearnable "
            "(fit with row_ids, predict, forget, to_bytes, guarantee)"
        )
    if not callable(getattr(type(estimator), "from_bytes", None)):
        raise EstimatorError(f"{type(estimator).__name__} has no classmethod from_bytes")


def _check_columns(info: data.DatasetInfo, label: str, features: Sequence[str]) -> list[str]:
    if isinstance(features, str) or not features:
        raise FeatureMismatchError("features must be a non-empty list of column names")
    feats = list(features)
    if len(set(feats)) != len(feats):
        raise FeatureMismatchError(f"features name a column twice: {feats}")
    unknown = [f for f in [*feats, label] if info.column(f) is None]
    if unknown:
        names = [c.name for c in info.columns]
        raise FeatureMismatchError(
            f"{len(unknown)} columns not in dataset {info.name!r}: {unknown} (it has {names})"
        )
    if label in feats:
        raise FeatureMismatchError(f"label {label!r} is also a feature")
    if info.subject_column in [*feats, label]:
        raise FeatureMismatchError(f"the subject column {info.subject_column!r} cannot be used")
    cols = [(f, info.column(f)) for f in feats]
    bad = [f"{f} ({c.type})" for f, c in cols if c is not None and not c.numeric]
    if bad:
        raise FeatureMismatchError(f"features must be numeric columns; not numeric: {bad}")
    return feats


def _json_params(est: Any) -> dict[str, Any]:
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    out = {}
    for key, value in params.items():
        value = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
        try:
            json.dumps(value)
        except TypeError:
            value = repr(value)
        out[key] = value
    return out


def _load_class(kind: str) -> Any:
    """The estimator class recorded as ``module:qualname`` (the store trusts its database)."""
    module, _, qualname = kind.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
