"""Dependencies shared by the routes: the service, and bearer-token scopes."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import ApiKeys, allows
from api.errors import ApiError
from api.service import Service

bearer = HTTPBearer(auto_error=False, description="a token from FORGET_API_KEYS")


async def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def require(*scopes: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency admitting tokens that hold any of ``scopes`` (or ``admin``).

    It is async (hashing a token blocks nothing) so that auth costs no thread hop.
    """

    async def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        authorize(request, scopes)

    return check


def authorize(request: Request, scopes: tuple[str, ...]) -> None:
    """Raise 401 unless the request's bearer token is known, 403 unless it holds a scope."""
    keys: ApiKeys = request.app.state.keys
    granted = keys.scopes(request.headers.get("authorization"))
    if granted is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or unknown bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not any(allows(granted, s) for s in scopes):
        raise ApiError(
            403, "forbidden", f"this token lacks the scope {' or '.join(scopes)} (or admin)"
        )


ServiceDep = Annotated[Service, Depends(service)]
