"""What the owner sends to replicas: forget operations, model snapshots, the fence, routing.

All plain frozen dataclasses of builtins and bytes, so they travel through Ray's object store
without pickling any store or estimator object.

Replicas hold every *ready* version of every model, not only the ones a bare name or an alias
routes to: a request may pin any ready version, and an alias move then needs no model sent
anywhere — only the routing table changes, and it lives in the router. The cost is memory:
each replica holds as many versions as the store has ready ones (a retention policy bounds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from store.aliases import AliasTarget

Target = tuple[str, int]  # (model, version)

# every ready version -> the revision it serves at: what a replica must hold to take traffic
Fence = dict[Target, int]


@dataclass(frozen=True)
class Routes:
    """A model's routing table, as the owner's store has it: each version's status and the
    model's aliases (what :func:`store.aliases.route` reads)."""

    statuses: Mapping[int, str]
    aliases: Mapping[str, AliasTarget]
    datasets: Mapping[int, str] = field(default_factory=dict)  # each version's dataset


@dataclass(frozen=True)
class Op:
    """One committed forget operation of one model version (a ``forget_log`` entry)."""

    model: str
    version: int
    revision: int
    row_ids: tuple[int, ...]


@dataclass(frozen=True)
class Snapshot:
    """A ready version's model as bytes (``to_bytes()``) at a revision."""

    model: str
    version: int
    revision: int
    estimator: str  # "module:qualname", as the registry records it
    features: tuple[str, ...]
    blob: bytes


@dataclass(frozen=True)
class Change:
    """What replicas must do to reach ``fence``: apply ``ops`` in order and load ``snapshots``
    (versions they do not hold: new trainings, retrains); a version the fence does not name
    (awaiting a retrain, retired, deleted) is dropped. ``routes`` (every model's routing
    table) is for the router, which routes; replicas ignore it."""

    fence: Fence
    ops: tuple[Op, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    routes: dict[str, Routes] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A store error raised in the owner, carried back by class path and message.

    Store errors with their own ``__init__`` do not survive pickling (their message would be
    wrapped twice), so the router rebuilds them from this.
    """

    kind: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        return cls(f"{type(exc).__module__}:{type(exc).__qualname__}", str(exc))

    def rebuild(self) -> Exception:
        from store.versions import load_class

        try:
            kind: Any = load_class(self.kind)
        except (ImportError, AttributeError):  # pragma: no cover - a class of another build
            return RuntimeError(self.message)
        exc: Exception = kind.__new__(kind)
        exc.args = (self.message,)
        return exc
