"""A serving replica: models in memory, built from the owner's bytes, kept current by the
forget operations fanned out after each erasure commits.

It holds every ready version of every model, keyed by (model, version): the router routes
(bare names, aliases, splits, pinned versions, shadows) and asks for one version each call.

A replica never opens the store (the owner holds the DuckDB file). It answers a prediction
only at or past the revision the router asks for (the *fence*): a replica that has not applied
an erasure refuses with :class:`~cluster.errors.ReplicaBehindError` instead of answering from
a revision that still holds the erased rows. A replica that lost its models (it restarted) or
missed an operation holds nothing for that model until the router catches it up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluster.errors import ReplicaBehindError
from cluster.state import Change, Failure, Snapshot, Target
from forget.scoring import CompiledForest
from forget.warm import rehearse
from store import stages
from store.errors import PredictInputError
from store.versions import load_class

State = dict[Target, int]  # each held (model, version) -> its revision
_WARMED: set[type] = set()  # estimator classes whose kernels this process compiled


@dataclass
class _Model:
    version: int
    revision: int
    features: tuple[str, ...]
    estimator: Any
    compiled: CompiledForest | None = None  # tree ensembles score through their compiled form
    structures: list[np.ndarray] | None = None  # the trees it was compiled from

    @classmethod
    def load(cls, snap: Snapshot) -> _Model:
        model = cls(
            snap.version,
            snap.revision,
            snap.features,
            load_class(snap.estimator).from_bytes(snap.blob),
        )
        est = model.estimator
        if hasattr(est, "tree_structures"):
            model.structures = est.tree_structures()
            model.compiled = CompiledForest(
                model.structures,
                int(est.classes_.size),
                int(est.n_features_in_),
                classes=est.classes_,
            )
        model.warm()
        return model

    def warm(self) -> None:
        """Compile (or load from numba's cache) every kernel this model's predictions and
        erasures will run, before it serves, as ``forget serve`` does before ``/healthz``
        answers ok: a rehearsal on a small twin (:func:`forget.warm.rehearse`), one row
        scored and one tree refreshed in the compiled form. Once per estimator class in a
        process; the model itself is untouched."""
        kind = type(self.estimator)
        if kind in _WARMED:
            return
        rehearse(self.estimator)
        if self.compiled is not None and self.structures:
            self.compiled.predict_proba(np.zeros((1, len(self.features)), np.float32))
            self.compiled.refresh({0: self.structures[0]})  # the same tree: nothing changes
        _WARMED.add(kind)

    def forget(self, row_ids: Sequence[int]) -> None:
        """Forget rows, and recompile the trees that changed (before anything is scored)."""
        self.estimator.forget(list(row_ids))
        if self.compiled is not None and self.structures is not None:
            self.structures = self.compiled.update(self.estimator, self.structures)

    def score(self, X: np.ndarray) -> dict[str, Any]:
        est = self.estimator
        out: dict[str, Any] = {}
        if hasattr(est, "predict_proba") and hasattr(est, "classes_"):
            scorer = self.compiled if self.compiled is not None else est
            proba = np.asarray(scorer.predict_proba(X))
            classes = np.asarray(est.classes_)
            out["predictions"] = classes[np.argmax(proba, axis=1)].tolist()
            out["probabilities"] = proba.tolist()
            out["classes"] = classes.tolist()
        else:
            out["predictions"] = np.asarray(est.predict(X)).tolist()
        return out


class Replica:
    """Plain Python; :mod:`cluster.router` makes it a Ray actor (one call at a time)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.models: dict[Target, _Model] = {}
        self._hold = 0.0

    def state(self) -> State:
        """Each held version's revision."""
        return {t: m.revision for t, m in sorted(self.models.items())}

    def pid(self) -> int:
        return os.getpid()

    def hold(self, seconds: float) -> None:
        """Test hook: the next :meth:`update` waits ``seconds`` first (to kill it meanwhile)."""
        self._hold = seconds

    def update(self, change: Change) -> State:
        """Load newer snapshots, apply operations in revision order, drop what the fence
        does not name (a version awaiting a retrain, retired or deleted).

        An operation that does not follow the held revision (a gap: this replica missed one)
        drops the version, so that it cannot serve until it is caught up with a snapshot.
        """
        if self._hold:
            time.sleep(self._hold)
            self._hold = 0.0
        for snap in change.snapshots:
            target = (snap.model, snap.version)
            have = self.models.get(target)
            if have is None or have.revision <= snap.revision:
                self.models[target] = _Model.load(snap)
        for op in change.ops:
            target = (op.model, op.version)
            have = self.models.get(target)
            if have is None or have.revision >= op.revision:
                continue  # nothing held, or a snapshot already past it
            if have.revision != op.revision - 1:
                del self.models[target]  # a gap: wait for a snapshot
                continue
            have.forget(op.row_ids)
            have.revision = op.revision
        for target, have in list(self.models.items()):  # unservable, or moved on without us
            at = change.fence.get(target)
            if at is None or have.revision < at:
                del self.models[target]
        return self.state()

    def predict(
        self, target: Target, rows: Sequence[Mapping[str, float]], at: int
    ) -> dict[str, Any]:
        """Score ``rows`` with the held version ``target``, if it is at revision ``at`` or later."""
        (out,) = self.predict_many(target, [rows], at)
        if isinstance(out, Failure):
            raise out.rebuild()
        return out

    def predict_many(
        self, target: Target, batch: Sequence[Sequence[Mapping[str, float]]], at: int
    ) -> list[dict[str, Any] | Failure]:
        """Score several requests' rows as one matrix (the router's micro-batch), all with
        one version: a batch never mixes versions.

        Raises :class:`ReplicaBehindError` for the whole batch when the held version is behind
        revision ``at`` (or not held); a request with bad rows gets its error (a
        :class:`Failure`) in its place.
        """
        name, version = target
        have = self.models.get((name, version))
        if have is None or have.revision < at:
            held = None if have is None else have.revision
            raise ReplicaBehindError(
                f"replica {self.name} holds model {name!r} v{version} at revision {held}, "
                f"behind {at}"
            )
        results: list[dict[str, Any] | Failure] = []
        parts: list[np.ndarray] = []
        for rows in batch:
            try:
                parts.append(matrix(rows, have.features))
                results.append({})
            except PredictInputError as exc:
                results.append(Failure.of(exc))
        if parts:
            scored = have.score(np.concatenate(parts) if len(parts) > 1 else parts[0])
            head = {"model": name, "version": have.version, "revision": have.revision}
            start = 0
            for i, r in enumerate(results):
                if isinstance(r, Failure):
                    continue
                stop = start + len(batch[i])
                results[i] = head | {
                    k: (v[start:stop] if k != "classes" else v) for k, v in scored.items()
                }
                start = stop
        return results

    def predict_models(
        self, targets: Sequence[tuple[Target, int]], rows: Sequence[Mapping[str, float]]
    ) -> list[dict[str, Any]]:
        """The same rows scored by several versions, each at least at its revision: one
        call, so every answer comes from the state this replica holds at one moment; the rows
        read once, one matrix per distinct feature list (:mod:`store.stages`).

        Raises :class:`ReplicaBehindError` when a version is behind (or not held), and the
        rows' :class:`PredictInputError` as it is."""
        held = []
        for (name, version), at in targets:
            have = self.models.get((name, version))
            if have is None or have.revision < at:
                revision = None if have is None else have.revision
                raise ReplicaBehindError(
                    f"replica {self.name} holds model {name!r} v{version} at revision "
                    f"{revision}, behind {at}"
                )
            held.append((name, have))
        p = stages.plan([have.features for _, have in held])
        by_features = p.split(matrix(rows, p.union))
        return [
            {"model": name, "version": have.version, "revision": have.revision}
            | have.score(by_features[have.features])
            for name, have in held
        ]


def matrix(rows: Sequence[Mapping[str, float]], features: Sequence[str]) -> np.ndarray:
    """Rows keyed by feature name as a float matrix in ``features`` order."""
    want = set(features)
    for i, row in enumerate(rows):
        if row.keys() != want:
            missing, extra = sorted(want - row.keys()), sorted(row.keys() - want)
            raise PredictInputError(
                f"row {i}: missing features {missing}, unknown features {extra} "
                f"(the model uses {list(features)})"
            )
    return np.array([[row[f] for f in features] for row in rows], dtype=np.float64)


__all__ = ["Replica", "State", "matrix"]
