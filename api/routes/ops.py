"""Operations: health, Prometheus metrics, forcing a purge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest

from api.deps import ServiceDep, require
from api.metrics import CONTENT_TYPE
from api.routes.models import ERRORS
from api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz(svc: ServiceDep) -> dict[str, Any]:
    return svc.health()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(svc: ServiceDep) -> PlainTextResponse:
    """Request counts and latencies, erasures, model revisions, drift, and the process's
    CPU, memory and GC (Prometheus text format, written by prometheus_client)."""
    svc.refresh_drift_metrics()
    return PlainTextResponse(generate_latest(svc.metrics), media_type=CONTENT_TYPE)


@router.post("/v1/admin/purge", responses=ERRORS, dependencies=[Depends(require("admin"))])
def purge(svc: ServiceDep) -> dict[str, Any]:
    """Run the physical purge now instead of at the next background round."""
    return svc.purge()
