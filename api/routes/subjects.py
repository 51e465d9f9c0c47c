"""The right of access (Art. 15) and to portability (Art. 20): what the store holds on a subject.

The subject id never travels in the URL, where access logs, proxies and browser histories
would keep it: ``GET /v1/subjects/access`` reads it from the ``Forget-Subject-Id`` header
(printable ASCII), ``POST /v1/subjects/access`` from a JSON body (any id). A request that puts
it in the query anyway is refused (400), and the server's access log redacts the query of
``/v1/subjects/`` paths (:mod:`api.logs`). Answers are JSON, or the HTML page with
``Accept: text/html`` or ``format=html``; they hold personal data, so are never cached.

Objection by purpose (Art. 21) and restriction of processing (Art. 18), scope ``erase``, the
id in a JSON body as well: ``POST /v1/subjects/objections`` (``subject_id``, ``purpose``),
``POST /v1/subjects/restrictions`` and ``POST /v1/subjects/restrictions:lift``
(``subject_id``). 201 when carried out, 200 for a repeat; 404 ``unknown_subject`` or
``unknown_purpose``; 409 ``not_restricted`` for a lift with none in force.
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
from api.schemas import (
    SUBJECT_HEADER,
    SUBJECT_HEADER_PATTERN,
    AccessCreate,
    AccessOut,
    ObjectionCreate,
    ObjectionOut,
    RestrictionCreate,
    RestrictionOut,
)
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


_RIGHTS = [Depends(require("erase")), Depends(not_in_url)]
_UNKNOWN = {
    "model": ERRORS[404]["model"],
    "description": "no rows under this subject id (unknown_subject), or a purpose no model was "
    "trained for and none declared (unknown_purpose)",
}


@router.post(
    "/objections",
    response_model=ObjectionOut,
    status_code=201,
    responses=ERRORS
    | {
        200: {"model": ObjectionOut, "description": "a repeat: the earlier objection"},
        404: _UNKNOWN,
    },
    dependencies=_RIGHTS,
)
def object_to(
    body: ObjectionCreate, svc: ServiceDep, request: Request, response: Response
) -> dict[str, Any]:
    """The subject objects to processing for ``purpose`` (Art. 21): every version of the
    models trained for it forgets the subject's rows, exactly as for an erasure (or awaits a
    retrain, unserved); other purposes and models without one keep them; the data stays;
    training for the purpose leaves them out from now on. Audited by pseudonym."""
    return _recorded(svc.object_to(body.subject_id, body.purpose, by=_who(request)), response)


@router.post(
    "/restrictions",
    response_model=RestrictionOut,
    status_code=201,
    responses=ERRORS
    | {
        200: {"model": RestrictionOut, "description": "a repeat: the restriction in force"},
        404: _UNKNOWN,
    },
    dependencies=_RIGHTS,
)
def restrict(
    body: RestrictionCreate, svc: ServiceDep, request: Request, response: Response
) -> dict[str, Any]:
    """Restrict the processing of the subject's rows (Art. 18): every model version forgets
    them (or awaits a retrain, unserved); the data stays; training leaves them out until the
    restriction is lifted. Audited by pseudonym."""
    return _recorded(svc.restrict(body.subject_id, by=_who(request)), response)


@router.post(
    "/restrictions:lift",
    response_model=RestrictionOut,
    responses=ERRORS
    | {
        409: {
            "model": ERRORS[404]["model"],
            "description": "no restriction in force for this subject (not_restricted)",
        }
    },
    dependencies=_RIGHTS,
)
def lift(
    body: RestrictionCreate, svc: ServiceDep, request: Request, response: Response
) -> dict[str, Any]:
    """Lift the subject's restriction: the versions that forgot the rows for it take them
    back — kNN, linear and naive Bayes models learn them in place, exactly; forests and
    logistic regression are retrained by the purger — except versions of a purpose the
    subject objected to. Audited by pseudonym."""
    receipt = svc.lift_restriction(body.subject_id, by=_who(request))
    response.headers["Cache-Control"] = "no-store"
    return receipt


def _who(request: Request) -> str | None:
    return getattr(request.state, "principal", None)


def _recorded(receipt: dict[str, Any], response: Response) -> dict[str, Any]:
    """A right's receipt: 201 when carried out now, 200 for a repeat; never cached."""
    response.status_code = 200 if receipt["repeat"] else 201
    response.headers["Cache-Control"] = "no-store"
    return receipt
