"""What the owner sends to replicas: forget operations, model snapshots, the fence.

All plain frozen dataclasses of builtins and bytes, so they travel through Ray's object store
without pickling any store or estimator object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# model name -> (version, revision) of the version that serves it, or None when none can
Fence = dict[str, tuple[int, int] | None]


@dataclass(frozen=True)
class Op:
    """One committed forget operation of one model version (a ``forget_log`` entry)."""

    model: str
    version: int
    revision: int
    row_ids: tuple[int, ...]


@dataclass(frozen=True)
class Snapshot:
    """A serving version's model as bytes (``to_bytes()``) at a revision."""

    model: str
    version: int
    revision: int
    estimator: str  # "module:qualname", as the registry records it
    features: tuple[str, ...]
    blob: bytes


@dataclass(frozen=True)
class Change:
    """What replicas must do to reach ``fence``: apply ``ops`` in order, load ``snapshots``
    (versions they do not hold: new trainings, retrains), drop ``drops`` (unservable)."""

    fence: Fence
    ops: tuple[Op, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    drops: tuple[str, ...] = ()


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
