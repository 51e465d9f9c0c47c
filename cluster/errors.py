"""Errors of the replicated cluster.

::

    ClusterError
    ├── ReplicaBehindError   no live replica holds the model's current revision yet (503, retry)
    └── RayMissingError      the ``ray`` extra is not installed
"""

from __future__ import annotations

from typing import Any


class ClusterError(Exception):
    """Base class of the errors raised by :mod:`cluster`."""


class ReplicaBehindError(ClusterError):
    """A replica's model is behind the published revision (fenced); retry shortly.

    Raised by a replica asked for a revision it has not applied, and by the router when no
    replica reaches the model's current revision within its wait.
    """

    retry_after = 1


class RayMissingError(ClusterError, ImportError):
    """``ray`` is not installed: ``pip install 'forget[ray]'``."""


def import_ray() -> Any:
    """Ray, imported on first use so that :mod:`cluster` imports without it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RayMissingError("replicated serving needs Ray: pip install 'forget[ray]'") from exc
    return ray
