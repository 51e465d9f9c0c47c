"""forget's HTTP API: FastAPI over the embedded store (see :func:`api.app.create_app`).

Loaded on first use, so that commands which only need a module of it (``api.auth``'s errors,
``api.html``) do not import FastAPI and the serving machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.app import create_app
    from api.auth import ApiKeys
    from api.service import Service

_HOME = {"ApiKeys": "api.auth", "Service": "api.service", "create_app": "api.app"}
__all__ = ["ApiKeys", "Service", "create_app"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'api' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value
