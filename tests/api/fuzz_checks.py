"""A schemathesis check of our own, loaded by the fuzz run (``SCHEMATHESIS_HOOKS``).

The schema must declare every rule that request validation enforces, and the rules on names,
legal grounds and estimators: a request valid by ``/openapi.json`` may be refused for what the
store holds (404, 409, or a 422 of another error type, where ``schemathesis.toml`` allows
it), never with one of :data:`DECLARED` — that would be a rule the schema keeps quiet about.
"""

from __future__ import annotations

import json

import schemathesis
from schemathesis import Case, Response
from schemathesis.checks import CheckContext

DECLARED = frozenset(
    {"invalid_request", "invalid_name", "invalid_legal_ground", "invalid_estimator"}
)


@schemathesis.check
def schema_declares_every_validated_rule(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code < 400:
        return None
    try:
        kind = json.loads(response.content)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None  # not one of our errors: the built-in checks judge it
    if kind in DECLARED:
        raise AssertionError(
            f"a request valid by the schema was refused as {kind}: the schema does not declare "
            f"a rule the server enforces\n{response.content.decode()[:500]}"
        )
    return None
