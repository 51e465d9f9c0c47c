"""Domain errors to HTTP, in one place.

Every error leaves as ``{"error": {"type", "message", "details"?}}`` with a 4xx status, except
a genuine fault of the server (a corrupt store, a bug), which is a 500 whose body says only
that — its traceback goes to the server log, never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from api.batching import Overloaded
from api.service import MonitoringOffError, ScoringError
from store import aliases, exports, retention
from store import errors as se

log = logging.getLogger("forget.api")

# Most specific first: the first class an error is an instance of decides its status.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (se.UnknownDatasetError, 404),
    (se.UnknownModelError, 404),
    (se.UnknownRequestError, 404),
    (retention.NoRetentionPolicyError, 404),
    (retention.UnreadableTimeError, 409),  # the dataset's state, not the request, is at fault
    (se.DatasetExistsError, 409),
    (se.ModelNotServableError, 409),
    (se.NotRestrictedError, 409),  # lifting a restriction not in force
    (aliases.UnservableTargetError, 409),  # an alias moved to a version that cannot serve
    (aliases.VersionInUseError, 409),  # a version an alias names cannot be deleted
    (exports.ExportError, 422),  # a model with no exported form, a bad recipient or format
    (se.StoreLockedError, 503),
    (se.StoreClosedError, 503),
    (se.StoreCorruptError, 500),
    (ScoringError, 503),
    (MonitoringOffError, 409),
    (LookupError, 404),  # other unknown things: predictions, ...
    (se.StoreError, 422),  # the rest are bad input: names, columns, features, grounds
)


class ApiError(Exception):
    """An error the HTTP layer raises itself (auth, sizes, content types)."""

    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers


def error_response(
    status: int,
    kind: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


_kind = se.kind


def status_of(exc: BaseException) -> int:
    return next((code for cls, code in STATUS if isinstance(exc, cls)), 500)


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("store fault on %s: %s", request.url.path, exc)
    message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    return error_response(status, _kind(exc), message)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.kind, exc.message, headers=exc.headers)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type")}
        for e in exc.errors()
    ]
    if any(d["type"] == "json_invalid" for d in details):
        return error_response(400, "malformed_json", "the request body is not valid JSON", details)
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"][1:] if first["loc"][:1] == ["body"] else first["loc"]) or "body"
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", details)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """The methods the app routes at the request's path.

    Starlette answers 405 with the methods of the first route whose path matched, but a path
    served by several routes (GET and POST ``/v1/models``) allows all of theirs: each method is
    tried against the routes, as the router itself would.
    """
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kinds = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
    headers = dict(getattr(exc, "headers", None) or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
        message = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return error_response(
        exc.status_code, kinds.get(exc.status_code, "http_error"), message, headers=headers or None
    )


async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        503,
        "overloaded",
        f"too many rows waiting to be scored ({exc}); retry shortly",
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(se.StoreError, _store_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(Exception, _unexpected)
