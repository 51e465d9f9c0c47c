"""The audit log: verify the hash chain, export its head."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from api.deps import AuthFirst, ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import AuditVerifyOut

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=AuthFirst)


@router.get(
    "/verify",
    response_model=AuditVerifyOut,
    responses=ERRORS,
    dependencies=[Depends(require("audit"))],
)
def verify(svc: ServiceDep) -> dict[str, Any]:
    """Recompute the chain: ``ok`` is false when any entry was edited, removed or reordered.

    Keep ``head`` (the newest entry's hash) outside the store to detect truncation later.
    """
    return svc.verify()
