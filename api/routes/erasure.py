"""Erasure requests (Art. 17) and their reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api import html
from api.deps import AuthFirst, ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import (
    DateTime,
    ErasureBatch,
    ErasureBatchOut,
    ErasureCreate,
    ErasureOut,
    period_bound,
)

router = APIRouter(prefix="/v1/erasure-requests", tags=["erasure"], route_class=AuthFirst)


@router.post(
    "",
    response_model=ErasureOut,
    status_code=201,
    responses=ERRORS
    | {
        200: {"model": ErasureOut, "description": "a repeated request: the earlier receipt"},
        201: {
            "model": ErasureOut,
            "description": "completed; or no_data: nothing held under this subject id, nothing "
            "erased (the request is recorded)",
        },
        202: {"model": ErasureOut, "description": "erased; physical purge or retrain to follow"},
    },
    dependencies=[Depends(require("erase"))],
)
async def create(
    body: ErasureCreate, svc: ServiceDep, request: Request, response: Response
) -> dict[str, Any]:
    """Erase a subject from every dataset and every model trained on them.

    201: completed, or ``no_data``: the store held no data under this subject id, nothing was
    erased (the request is recorded; check the id). 202: every model forgot the rows (no
    prediction uses them any more) and the request is durable; the rows leave the database with
    its record (every read sees them gone), the physical purge or a retrain follows; poll the
    request. 200: a repeat of an earlier request, answered with its receipt.
    """
    who = getattr(request.state, "principal", None)  # set by the scope check
    receipt = await svc.erase_async(body.subject_id, body.legal_ground, requested_by=who)
    done = receipt["status"] in ("completed", "no_data")
    response.status_code = 200 if receipt["repeat"] else 201 if done else 202
    response.headers["Location"] = f"/v1/erasure-requests/{receipt['request_id']}"
    return receipt


@router.post(
    ":batch",
    response_model=ErasureBatchOut,
    responses=ERRORS,
    dependencies=[Depends(require("erase"))],
)
def create_batch(body: ErasureBatch, svc: ServiceDep, request: Request) -> dict[str, Any]:
    """Erase many subjects (account closures, a backlog): each gets its own request, audit
    entries and receipt, in the order given, carried out in groups that share a transaction.

    Every id and the legal ground are checked first (a malformed one refuses the batch: 422,
    nothing done). A request that fails fails alone and whole, and its entry says why; a
    subject named twice is erased once (its later entries are repeats). Receipts in full:
    ``GET /v1/erasure-requests/{request_id}``.
    """
    who = getattr(request.state, "principal", None)
    done = svc.erase_batch(body.subject_ids, body.legal_ground, requested_by=who)
    by_status: dict[str, int] = {}
    for d in done:
        if "error" not in d:
            key = "repeat" if d["repeat"] else d["status"]
            by_status[key] = by_status.get(key, 0) + 1
    keep = ("index", "request_id", "status", "repeat", "rows_erased", "error")
    return {
        "requests": [{k: d[k] for k in keep if k in d} for d in done],
        "by_status": by_status,
        "failed": sum("error" in d for d in done),
    }


@router.get(
    "/summary",
    responses=ERRORS | {200: {"description": "the period summary (JSON)"}},
    dependencies=[Depends(require("audit"))],
)
def summary(
    svc: ServiceDep,
    since: Annotated[DateTime | None, Query(description="inclusive (UTC if no offset)")] = None,
    until: Annotated[DateTime | None, Query(description="exclusive (UTC if no offset)")] = None,
) -> dict[str, Any]:
    """Requests received in ``[since, until)``: counts by status and legal ground, median /
    p95 completion time, overdue (past the Art. 12(3) deadline) and pending — no subject."""
    return svc.summary(period_bound(since, "since"), period_bound(until, "until"))


@router.get(
    "/{request_id}",
    response_model=ErasureOut,
    responses=ERRORS,
    dependencies=[Depends(require("erase", "audit"))],
)
def get(request_id: str, svc: ServiceDep) -> dict[str, Any]:
    return svc.request(request_id)


@router.get(
    "/{request_id}/report",
    responses=ERRORS
    | {
        200: {
            "description": "the report: JSON, or an HTML page when the client accepts text/html",
            "content": {"application/json": {}, "text/html": {}},
        }
    },
    dependencies=[Depends(require("audit", "erase"))],
)
def report(
    request_id: str,
    svc: ServiceDep,
    accept: Annotated[str | None, Header()] = None,
    format: Annotated[str | None, Query(pattern="^(json|html)$")] = None,
) -> Response:
    """The erasure report: pseudonymous subject, deadline, actions, evidence, audit entries."""
    doc = svc.report(request_id)
    wants_html = format == "html" or (format is None and _prefers_html(accept))
    if wants_html:
        return HTMLResponse(html.erasure_report(doc))
    return JSONResponse(doc)


def _prefers_html(accept: str | None) -> bool:
    """True when text/html comes before any JSON type in the Accept header."""
    if not accept:
        return False
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    for t in types:
        if t == "text/html":
            return True
        if t in ("application/json", "*/*"):
            return False
    return False
