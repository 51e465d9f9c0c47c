"""A serving replica: models in memory, built from the owner's bytes, kept current by the
forget operations fanned out after each erasure commits.

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
from cluster.state import Change
from store.errors import PredictInputError
from store.versions import load_class

State = dict[str, tuple[int, int]]


@dataclass
class _Model:
    version: int
    revision: int
    features: tuple[str, ...]
    estimator: Any


class Replica:
    """Plain Python; :mod:`cluster.router` makes it a Ray actor (one call at a time)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.models: dict[str, _Model] = {}
        self._hold = 0.0

    def state(self) -> State:
        """Each held model's (version, revision)."""
        return {n: (m.version, m.revision) for n, m in self.models.items()}

    def pid(self) -> int:
        return os.getpid()

    def hold(self, seconds: float) -> None:
        """Test hook: the next :meth:`update` waits ``seconds`` first (to kill it meanwhile)."""
        self._hold = seconds

    def update(self, change: Change) -> State:
        """Apply operations in revision order, load newer snapshots, drop unservable models.

        An operation that does not follow the held revision (a gap: this replica missed one)
        drops the model, so that it cannot serve until it is caught up with a snapshot.
        """
        if self._hold:
            time.sleep(self._hold)
            self._hold = 0.0
        for snap in change.snapshots:
            have = self.models.get(snap.model)
            if have is None or (have.version, have.revision) <= (snap.version, snap.revision):
                est = load_class(snap.estimator).from_bytes(snap.blob)
                self.models[snap.model] = _Model(snap.version, snap.revision, snap.features, est)
        for op in change.ops:
            have = self.models.get(op.model)
            if have is None or have.version != op.version or have.revision >= op.revision:
                continue  # nothing held, another version, or a snapshot already past it
            if have.revision != op.revision - 1:
                del self.models[op.model]  # a gap: wait for a snapshot
                continue
            have.estimator.forget(list(op.row_ids))
            have.revision = op.revision
        for name in change.drops:
            self.models.pop(name, None)
        for name, at in change.fence.items():  # a model whose version moved on without us
            have = self.models.get(name)
            if have is not None and (at is None or (have.version, have.revision) < at):
                del self.models[name]
        return self.state()

    def predict(
        self, name: str, rows: Sequence[Mapping[str, float]], at: tuple[int, int]
    ) -> dict[str, Any]:
        """Score ``rows`` with the held model, if it is at revision ``at`` or later."""
        have = self.models.get(name)
        if have is None or (have.version, have.revision) < tuple(at):
            held = None if have is None else (have.version, have.revision)
            raise ReplicaBehindError(
                f"replica {self.name} holds model {name!r} at {held}, behind {tuple(at)}"
            )
        X = matrix(rows, have.features)
        est = have.estimator
        out: dict[str, Any] = {"model": name, "version": have.version, "revision": have.revision}
        if hasattr(est, "predict_proba") and hasattr(est, "classes_"):
            proba = np.asarray(est.predict_proba(X))
            classes = np.asarray(est.classes_)
            out["predictions"] = classes[np.argmax(proba, axis=1)].tolist()
            out["probabilities"] = proba.tolist()
            out["classes"] = classes.tolist()
        else:
            out["predictions"] = np.asarray(est.predict(X)).tolist()
        return out


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
