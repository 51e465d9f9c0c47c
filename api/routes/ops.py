"""Operations: health, Prometheus metrics, forcing a purge."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from api.deps import ServiceDep, require
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
    """Request counts and latencies, erasures, model revisions, drift (Prometheus text)."""
    svc.refresh_drift_metrics()
    return PlainTextResponse(
        svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@router.post("/v1/admin/purge", responses=ERRORS, dependencies=[Depends(require("admin"))])
def purge(svc: ServiceDep) -> dict[str, Any]:
    """Run the physical purge now instead of at the next background round."""
    return svc.purge()
