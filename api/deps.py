"""Dependencies shared by the routes: the service, bearer-token scopes, path parameters.

Authentication comes first on every route: :class:`AuthFirst` checks the token before FastAPI
reads the body or validates a parameter, so a caller without a valid token learns nothing of
a route's input rules (a malformed body without a token is a 401, not a 400).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import ApiKeys, allows
from api.errors import ApiError
from api.service import Service
from store.db import NAME_RE

bearer = HTTPBearer(auto_error=False, description="a token from FORGET_API_KEYS")


async def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def require(*scopes: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency admitting tokens that hold any of ``scopes`` (or ``admin``).

    It is async (hashing a token blocks nothing) so that auth costs no thread hop. On a
    router whose routes are :class:`AuthFirst` the same check has run already, before the
    body was read; the dependency declares the scheme in OpenAPI and guards routes of other
    routers.
    """

    async def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        authorize(request, scopes)

    check.scopes = scopes  # type: ignore[attr-defined]  # read by AuthFirst
    return check


def authorize(request: Request, scopes: tuple[str, ...]) -> None:
    """Raise 401 unless the request's bearer token is known, 403 unless it holds a scope."""
    keys: ApiKeys = request.app.state.keys
    found = keys.principal(request.headers.get("authorization"))
    if found is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or unknown bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    name, granted = found
    request.state.principal = name  # who asked: recorded with an erasure request
    if not any(allows(granted, s) for s in scopes):
        raise ApiError(
            403, "forbidden", f"this token lacks the scope {' or '.join(scopes)} (or admin)"
        )


class AuthFirst(APIRoute):
    """A route that checks the bearer token of its :func:`require` dependency first.

    FastAPI parses a JSON body before it resolves any dependency, and answers a malformed one
    with 400 at once; this route's handler authorizes before handing the request on.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = tuple(
            scope for dep in self.dependencies for scope in getattr(dep.dependency, "scopes", ())
        )
        if not scopes:
            return handler

        async def authorized_first(request: Request) -> Response:
            authorize(request, scopes)
            return await handler(request)

        return authorized_first


ServiceDep = Annotated[Service, Depends(service)]
NamePath = Annotated[str, Path(pattern=NAME_RE.pattern, max_length=63)]
