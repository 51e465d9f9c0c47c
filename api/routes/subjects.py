"""The right of access (Art. 15) and to portability (Art. 20): what the store holds on a subject.

The subject id never travels in the URL, where access logs, proxies and browser histories
would keep it: ``GET /v1/subjects/access`` reads it from the ``Forget-Subject-Id`` header
(printable ASCII), ``POST /v1/subjects/access`` from a JSON body (any id). A request that puts
it in the query anyway is refused (400), and the server's access log redacts the query of
``/v1/subjects/`` paths (:mod:`api.logs`). Answers are JSON, or the HTML page with
``Accept: text/html`` or ``format=html``; they hold personal data, so are never cached.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from api import html
from api.deps import AuthFirst, ServiceDep, require
from api.errors import ApiError
from api.routes.erasure import _prefers_html
from api.routes.models import ERRORS
from api.schemas import SUBJECT_HEADER, SUBJECT_HEADER_PATTERN, AccessCreate, AccessOut
from api.service import Service

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], route_class=AuthFirst)

_IN_URL = ("subject_id", "subject", "id")
_ANSWER = ERRORS | {
    200: {
        "model": AccessOut,
        "description": "what the store holds on the subject: JSON, or an HTML page when the "
        "client accepts text/html (or asks format=html)",
        "content": {"text/html": {}},
    },
    404: {
        "model": ERRORS[404]["model"],
        "description": "no rows and no erasure request under this subject id (unknown_subject)",
    },
}
Accept = Annotated[str | None, Header()]
Format = Annotated[str | None, Query(pattern="^(json|html)$")]


async def not_in_url(request: Request) -> None:
    """Refuse a subject id in the query (400), before any other parameter is read: the
    answer then says where the id belongs, whatever else the request lacks."""
    if any(k in request.query_params for k in _IN_URL):
        raise ApiError(
            400,
            "subject_id_in_url",
            "a subject id must not travel in the URL (logs and histories keep URLs): send it "
            f"in the {SUBJECT_HEADER} header, or POST it as JSON to /v1/subjects/access",
        )


_GUARDS = [Depends(require("audit")), Depends(not_in_url)]


@router.get(
    "/access",
    response_model=None,
    responses=_ANSWER,
    dependencies=_GUARDS,
)
def access_by_header(
    svc: ServiceDep,
    subject_id: Annotated[
        str,
        Header(
            alias=SUBJECT_HEADER,
            pattern=SUBJECT_HEADER_PATTERN,
            max_length=256,
            description="the subject's id (printable ASCII; POST others in a JSON body)",
        ),
    ],
    accept: Accept = None,
    format: Format = None,
) -> Response:
    """What the store holds on the subject named in the ``Forget-Subject-Id`` header: the rows
    in each dataset (every column), the model versions trained on them and whether they serve,
    what each version did for the subject's erasure requests, the exported copies that carry
    their influence, and the requests. Audited (by pseudonym)."""
    return _answer(svc, subject_id, accept, format)


@router.post(
    "/access",
    response_model=None,
    responses=_ANSWER,
    dependencies=_GUARDS,
)
def access(
    body: AccessCreate,
    svc: ServiceDep,
    accept: Accept = None,
    format: Format = None,
) -> Response:
    """The same as ``GET /v1/subjects/access``, for the subject id in the JSON body."""
    return _answer(svc, body.subject_id, accept, format)


def _answer(svc: Service, subject_id: str, accept: str | None, format: str | None) -> Response:
    doc: dict[str, Any] = svc.access(subject_id)
    headers = {"Cache-Control": "no-store", "Vary": f"Accept, {SUBJECT_HEADER}"}
    if format == "html" or (format is None and _prefers_html(accept)):
        return HTMLResponse(html.access_report(doc), headers=headers)
    return JSONResponse(doc, headers=headers)
