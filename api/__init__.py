"""forget's HTTP API: FastAPI over the embedded store (see :func:`api.app.create_app`)."""

from api.app import create_app
from api.auth import ApiKeys
from api.service import Service

__all__ = ["ApiKeys", "Service", "create_app"]
