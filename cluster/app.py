"""The HTTP app over a cluster (the ``api`` app, its routes, tokens and errors), and ``serve``."""

from __future__ import annotations

import os
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.app import MAX_BODY_BYTES
from api.app import create_app as create_api_app
from api.auth import ApiKeys
from api.errors import error_response
from cluster.errors import ReplicaBehindError, import_ray
from cluster.router import Cluster


async def _behind(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReplicaBehindError)
    return error_response(
        503,
        "replica_behind",
        f"{exc}; retry shortly",
        headers={"Retry-After": str(ReplicaBehindError.retry_after)},
    )


def create_app(
    cluster: Cluster,
    keys: ApiKeys,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    owns: bool = True,
    freeze_heap: bool = False,
) -> FastAPI:
    """The ``api`` app with ``cluster`` in place of the embedded service.

    The routes call the same methods; :class:`~cluster.router.Cluster` offers them (drift and
    feedback through the owner's monitors, fed by the router). With ``owns`` the app closes
    the cluster (and the store) when it shuts down.
    """
    app = create_api_app(
        cast(Any, cluster), keys, max_body_bytes=max_body_bytes, owns=owns, freeze_heap=freeze_heap
    )
    app.add_exception_handler(ReplicaBehindError, _behind)
    return app


def serve(
    directory: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    keys: ApiKeys,
    replicas: int = 2,
    purge_interval: float = 30.0,
    evidence_rate: float = 0.1,
    monitoring: bool = True,
    retrain_on_drift: bool = False,
    estimate_accuracy: bool = False,
    log_level: str = "info",
    ray_address: str | None = None,
) -> None:
    """Serve the store in ``directory`` with ``replicas`` Ray replicas until interrupted.

    Joins the Ray cluster at ``ray_address`` (``RAY_ADDRESS``), or starts a local one.
    """
    import uvicorn

    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=ray_address or os.environ.get("RAY_ADDRESS"))
    cluster = Cluster(
        directory,
        replicas=replicas,
        purge_interval=purge_interval,
        evidence_rate=evidence_rate,
        monitoring=monitoring,
        retrain_on_drift=retrain_on_drift,
        estimate_accuracy=estimate_accuracy,
    )
    app = create_app(cluster, keys, freeze_heap=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
