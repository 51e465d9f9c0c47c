"""Processing purposes (Art. 21): what model versions are processed for, so that a subject
can object to one. A purpose is known once a version is trained for it (``"purpose"`` in
``POST /v1/models``) or once declared here; an objection to any other is refused (404
``unknown_purpose``) rather than recorded as honoured."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from api.deps import AuthFirst, ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import PURPOSE_PATTERN, PurposeDeclared, PurposesOut

router = APIRouter(prefix="/v1/purposes", tags=["subjects"], route_class=AuthFirst)

PurposePath = Annotated[str, Path(pattern=PURPOSE_PATTERN, max_length=63)]


@router.put(
    "/{purpose}",
    response_model=PurposeDeclared,
    status_code=201,
    responses=ERRORS | {200: {"model": PurposeDeclared, "description": "known already"}},
    dependencies=[Depends(require("admin"))],
)
def declare(
    purpose: PurposePath, svc: ServiceDep, request: Request, response: Response
) -> dict[str, Any]:
    """Declare a processing purpose (audited, ``purpose.declared``): objections to it are
    taken from now on, before any model is trained for it. 200 when it was known already."""
    doc = svc.declare_purpose(purpose, by=getattr(request.state, "principal", None))
    response.status_code = 201 if doc["created"] else 200
    return doc


@router.get(
    "",
    response_model=PurposesOut,
    responses=ERRORS,
    dependencies=[Depends(require("audit", "admin"))],
)
def purposes(svc: ServiceDep) -> dict[str, Any]:
    """Every known purpose, the model versions processed for it, and how many subjects
    objected to it."""
    return svc.purposes()
