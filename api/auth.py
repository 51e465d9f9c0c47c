"""Bearer tokens with scopes, read from ``FORGET_API_KEYS``.

``FORGET_API_KEYS`` is a JSON object mapping each token to its scopes, for example
``{"s3cret-admin": ["admin"], "s3cret-app": ["predict"]}``. Only the SHA-256 of each token is
kept in memory, and a presented token is compared with every known hash in constant time, so
neither the tokens nor the timing of a comparison tell an attacker anything.

>>> keys = ApiKeys.from_json('{"t0k3n": ["predict"]}')
>>> keys.scopes("Bearer t0k3n"), keys.scopes("Bearer nope"), keys.scopes(None)
(frozenset({'predict'}), None, None)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SCOPES = ("predict", "erase", "audit", "admin")
ENV = "FORGET_API_KEYS"


class ApiKeyConfigError(ValueError):
    """``FORGET_API_KEYS`` is missing or malformed; the server refuses to start."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """Token hashes and their scopes; ``open`` means no authentication (local demo only)."""

    hashes: tuple[tuple[bytes, frozenset[str]], ...]
    open: bool = False

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Iterable[str]]) -> ApiKeys:
        if not isinstance(mapping, Mapping) or not mapping:
            raise ApiKeyConfigError(f"{ENV} must be a non-empty JSON object of token -> scopes")
        hashes = []
        for token, scopes in mapping.items():
            if not isinstance(token, str) or len(token) < 4:
                raise ApiKeyConfigError(f"{ENV}: tokens must be strings of 4 characters or more")
            if isinstance(scopes, str) or not isinstance(scopes, Iterable):
                raise ApiKeyConfigError(f'{ENV}: scopes must be a list, e.g. ["predict"]')
            granted = frozenset(scopes)
            unknown = sorted(map(str, granted - set(SCOPES)))
            if not granted or unknown:
                raise ApiKeyConfigError(
                    f"{ENV}: unknown or empty scopes {unknown}; use some of {list(SCOPES)}"
                )
            hashes.append((_digest(token), granted))
        return cls(tuple(hashes))

    @classmethod
    def from_json(cls, text: str) -> ApiKeys:
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiKeyConfigError(f"{ENV} is not valid JSON: {exc}") from exc
        return cls.from_mapping(mapping)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ApiKeys:
        text = environ.get(ENV)
        if not text:
            raise ApiKeyConfigError(
                f"{ENV} is not set: give it a JSON object of token -> scopes "
                f'(e.g. \'{{"<token>": ["admin"]}}\'), or serve a local demo without keys'
            )
        return cls.from_json(text)

    @classmethod
    def unauthenticated(cls) -> ApiKeys:
        """Every request is admin: for a demo on a loopback address only."""
        return cls((), open=True)

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(24)

    def scopes(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes of an ``Authorization: Bearer <token>`` header; None when not valid."""
        if self.open:
            return frozenset({"admin"})
        if not authorization:
            return None
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None
        presented = _digest(token.strip())
        found: frozenset[str] | None = None
        for digest, granted in self.hashes:  # no early exit: every comparison is made
            if hmac.compare_digest(digest, presented):
                found = granted
        return found


def allows(granted: frozenset[str], scope: str) -> bool:
    return "admin" in granted or scope in granted
