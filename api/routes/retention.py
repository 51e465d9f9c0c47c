"""Retention (Art. 5(1)(e)): datasets' retention policies, what expired, and expiry now; and
how many versions of each model the store keeps.

A server's purger expires rows each round (``--purge-interval``); ``POST /v1/admin/expire``
runs it at once. Each expiry is an erasure request (legal ground ``art5-1-e``, no subject),
so its receipt, report and audit entries are an erasure's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from api.deps import AuthFirst, NamePath, ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import (
    DateTime,
    ExpireOut,
    RetentionOut,
    RetentionPolicyOut,
    RetentionSet,
    VersionRetentionOut,
    VersionRetentionSet,
    period_bound,
)

router = APIRouter(tags=["retention"], route_class=AuthFirst)


@router.put(
    "/v1/datasets/{name}/retention",
    response_model=RetentionPolicyOut,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def set_policy(
    name: NamePath, body: RetentionSet, svc: ServiceDep, request: Request
) -> dict[str, Any]:
    """Let the dataset's rows expire ``period`` after their ``time_column`` (replacing an
    earlier policy; audited). Refused (422) when the column is missing or holds text that is
    not a time, or the period is zero or over 1000 years."""
    who = getattr(request.state, "principal", None)
    return svc.set_retention_policy(name, body.time_column, body.period, who)


@router.delete(
    "/v1/datasets/{name}/retention",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def remove_policy(name: NamePath, svc: ServiceDep, request: Request) -> Response:
    """Remove the dataset's retention policy (audited): its rows no longer expire."""
    svc.remove_retention_policy(name, getattr(request.state, "principal", None))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/v1/retention",
    response_model=RetentionOut,
    responses=ERRORS,
    dependencies=[Depends(require("audit", "admin"))],
)
def retention(
    svc: ServiceDep,
    since: Annotated[DateTime | None, Query(description="expiries from (ISO 8601)")] = None,
    until: Annotated[DateTime | None, Query(description="expiries before (ISO 8601)")] = None,
) -> dict[str, Any]:
    """Every retention policy, and what expired in ``[since, until)``: the periodic report of
    storage limitation (dataset, cutoff, rows, each model version's action)."""
    return svc.retention(period_bound(since, "since"), period_bound(until, "until"))


@router.post(
    "/v1/admin/expire",
    response_model=ExpireOut,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def expire(svc: ServiceDep) -> dict[str, Any]:
    """Expire now what the background purger would at its next round; the purge follows."""
    return {"requests": svc.expire()}


@router.get(
    "/v1/admin/version-retention",
    response_model=VersionRetentionOut,
    responses=ERRORS,
    dependencies=[Depends(require("audit", "admin"))],
)
def version_retention(svc: ServiceDep) -> dict[str, Any]:
    """How many versions of each model the store keeps (null: all)."""
    return svc.version_retention()


@router.put(
    "/v1/admin/version-retention",
    response_model=VersionRetentionOut,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def set_version_retention(
    body: VersionRetentionSet, svc: ServiceDep, request: Request
) -> dict[str, Any]:
    """Keep the last ``keep_last`` versions of each model (audited), now and after each
    training: older versions — not those an alias names, nor the newest ready one — are
    deleted with their artifacts and purged, as ``DELETE /v1/models/{model}/versions/{v}``."""
    who = getattr(request.state, "principal", None)
    return svc.set_version_retention(body.keep_last, by=who)
