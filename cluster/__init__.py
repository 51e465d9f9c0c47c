"""Replicated serving on Ray: one store owner, N replicas, erasure fan-out and fencing.

The embedded single-process server (:mod:`api`) stays the default; this package is the
optional scale-out mode (``pip install 'forget[ray]'``). It imports without Ray: Ray is
imported when a :class:`Cluster` is made.

- :mod:`cluster.owner` — the actor that holds the store (the one DuckDB writer);
- :mod:`cluster.replica` — actors holding the models in memory, fenced by revision;
- :mod:`cluster.router` — routing, the fence, fan-out of forget operations, catch-up;
- :mod:`cluster.app` — the ``api`` app over a cluster, and :func:`serve`;
- :mod:`cluster.training` — a forest's trees fitted as Ray tasks (:func:`on_ray`).
"""

from __future__ import annotations

from typing import Any

from cluster.errors import ClusterError, RayMissingError, ReplicaBehindError
from cluster.state import Change, Fence, Op, Routes, Snapshot

__all__ = [
    "Change",
    "Cluster",
    "ClusterError",
    "Fence",
    "Op",
    "RayMissingError",
    "RayTreeFitter",
    "ReplicaBehindError",
    "Routes",
    "Snapshot",
    "create_app",
    "on_ray",
    "serve",
]


def __getattr__(name: str) -> Any:
    # the router and app import fastapi and uvicorn, training the forest kernels: load on use
    if name == "Cluster":
        from cluster.router import Cluster

        return Cluster
    if name in ("create_app", "serve"):
        from cluster import app

        return getattr(app, name)
    if name in ("RayTreeFitter", "on_ray"):
        from cluster import training

        return getattr(training, name)
    raise AttributeError(f"module 'cluster' has no attribute {name!r}")
