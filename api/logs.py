"""What the server's logs may say: request paths, with whatever could be a subject id redacted.

uvicorn's access log writes each request's path. A request id is the only free text a path of
this API carries that a person might confuse with a subject id (``GET
/v1/erasure-requests/<subject id>``), so a segment there that is not a request id is logged as
``{redacted}``. Model and dataset names are chosen by admins, not data subjects.

>>> redact_path("/v1/erasure-requests/alice@example.org/report?format=html")
'/v1/erasure-requests/{redacted}/report?format=html'
>>> redact_path("/v1/erasure-requests/er_0123456789abcdef")
'/v1/erasure-requests/er_0123456789abcdef'

The access routes (``/v1/subjects/``) take the subject id in a header or a body, and refuse
it in the query; a query sent there anyway is logged with every value but ``format`` redacted.

>>> redact_path("/v1/subjects/access?subject_id=alice@example.org&format=html")
'/v1/subjects/access?subject_id={redacted}&format=html'
"""

from __future__ import annotations

import logging

from store.erasure import is_request_id

REQUESTS = "/v1/erasure-requests/"
SUBJECTS = "/v1/subjects/"
_SAFE_QUERY = frozenset({"format"})
_NAMED = frozenset({"subject_id", "subject", "id"})  # what a client might call the id
_LITERALS = frozenset({"summary"})


def redact_path(path: str) -> str:
    """``path`` (with its query) as a log line may show it."""
    base, sep, query = path.partition("?")
    if base.startswith(REQUESTS):
        head, slash, rest = base[len(REQUESTS) :].partition("/")
        if head and head not in _LITERALS and not is_request_id(head):
            base = f"{REQUESTS}{{redacted}}{slash}{rest}"
    if base.startswith(SUBJECTS) and query:
        query = "&".join(_redact_pair(pair) for pair in query.split("&"))
    return base + sep + query


def _redact_pair(pair: str) -> str:
    """``format=html`` as is; ``subject_id=...`` with its value redacted; anything else whole
    (a name there could be an id too)."""
    name, eq, _ = pair.partition("=")
    if name in _SAFE_QUERY:
        return pair
    return f"{name}={{redacted}}" if eq and name in _NAMED else "{redacted}"


class RedactPaths(logging.Filter):
    """Rewrites the path argument of uvicorn's access-log records with :func:`redact_path`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


ACCESS_FILTER = RedactPaths()


def install() -> None:
    """Redact uvicorn's access log (idempotent: the filter is one object)."""
    logging.getLogger("uvicorn.access").addFilter(ACCESS_FILTER)
