"""The audit log: verify the hash chain, export its head."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import AuthFirst, ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import AuditVerifyOut, ExportList
from store.db import NAME_RE

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


@router.get(
    "/exports",
    response_model=ExportList,
    responses=ERRORS,
    dependencies=[Depends(require("audit", "admin"))],
)
def exports(
    svc: ServiceDep,
    model: Annotated[str | None, Query(pattern=NAME_RE.pattern, max_length=63)] = None,
    stale: bool = False,
) -> dict[str, Any]:
    """The model copies recipients hold (Art. 19): the latest per recipient and version, each
    ``stale`` when an erasure moved its version on (notify, re-export) or it can no longer
    serve; ``stale=true`` lists only those."""
    return {"exports": svc.exports(model, stale=stale)}
