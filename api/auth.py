"""Bearer tokens with scopes, read from ``FORGET_API_KEYS``.

``FORGET_API_KEYS`` is a JSON object mapping each token to its scopes, for example
``{"s3cret-admin": ["admin"], "s3cret-app": ["predict"]}``, or to a name and scopes,
``{"s3cret-dpo": {"name": "dpo-portal", "scopes": ["erase", "audit"]}}``. The name is who the
key's holder is: an erasure request records it as ``requested_by`` (in the request, its audit
entry and its report). A key without a name is named ``key-`` and the first 8 hex digits of
its token's SHA-256 (a fingerprint that does not reveal the token). Only the SHA-256 of each
token is kept in memory, and a presented token is compared with every known hash in constant
time, so neither the tokens nor the timing of a comparison tell an attacker anything.

>>> keys = ApiKeys.from_json('{"t0k3n": ["predict"], "k3y2": {"name": "dpo", "scopes": ["erase"]}}')
>>> keys.scopes("Bearer t0k3n"), keys.scopes("Bearer nope"), keys.scopes(None)
(frozenset({'predict'}), None, None)
>>> keys.principal("Bearer k3y2")
('dpo', frozenset({'erase'}))
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SCOPES = ("predict", "erase", "audit", "admin")
ENV = "FORGET_API_KEYS"
NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
OPEN_NAME = "local-demo"  # the principal of an unauthenticated loopback demo


class ApiKeyConfigError(ValueError):
    """``FORGET_API_KEYS`` is missing or malformed; the server refuses to start."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKeys:
    """Token hashes, their scopes and names; ``open`` means no authentication (local demo)."""

    hashes: tuple[tuple[bytes, frozenset[str]], ...]
    names: tuple[str, ...] = ()  # one per hash
    open: bool = False

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ApiKeys:
        if not isinstance(mapping, Mapping) or not mapping:
            raise ApiKeyConfigError(f"{ENV} must be a non-empty JSON object of token -> scopes")
        hashes, names = [], []
        for token, spec in mapping.items():
            if not isinstance(token, str) or len(token) < 4:
                raise ApiKeyConfigError(f"{ENV}: tokens must be strings of 4 characters or more")
            name, scopes = _named(token, spec)
            if isinstance(scopes, str) or not isinstance(scopes, Iterable):
                raise ApiKeyConfigError(f'{ENV}: scopes must be a list, e.g. ["predict"]')
            granted = frozenset(scopes)
            unknown = sorted(map(str, granted - set(SCOPES)))
            if not granted or unknown:
                raise ApiKeyConfigError(
                    f"{ENV}: unknown or empty scopes {unknown}; use some of {list(SCOPES)}"
                )
            hashes.append((_digest(token), granted))
            names.append(name)
        if len(set(names)) != len(names):
            raise ApiKeyConfigError(f"{ENV}: two keys have the same name")
        return cls(tuple(hashes), tuple(names))

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
        found = self.principal(authorization)
        return None if found is None else found[1]

    def principal(self, authorization: str | None) -> tuple[str, frozenset[str]] | None:
        """The key's name and scopes for an ``Authorization: Bearer <token>`` header; None
        when not valid."""
        if self.open:
            return OPEN_NAME, frozenset({"admin"})
        if not authorization:
            return None
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None
        presented = _digest(token.strip())
        found: tuple[str, frozenset[str]] | None = None
        for (digest, granted), name in zip(self.hashes, self.names, strict=True):
            if hmac.compare_digest(digest, presented):  # no early exit: every one is compared
                found = name, granted
        return found


def _named(token: str, spec: Any) -> tuple[str, Any]:
    """A key's name and scopes from its entry: a list of scopes, or {"name", "scopes"}."""
    if not isinstance(spec, Mapping):
        return "key-" + _digest(token).hex()[:8], spec
    unknown = sorted(set(spec) - {"name", "scopes"})
    if unknown or "scopes" not in spec:
        raise ApiKeyConfigError(
            f'{ENV}: a key is a list of scopes or {{"name": ..., "scopes": [...]}}; '
            f"got the fields {sorted(spec)}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiKeyConfigError(
            f"{ENV}: a key's name is 1 to 64 letters, digits or _ . @ : - (got {name!r})"
        )
    return name, spec["scopes"]


def allows(granted: frozenset[str], scope: str) -> bool:
    return "admin" in granted or scope in granted
