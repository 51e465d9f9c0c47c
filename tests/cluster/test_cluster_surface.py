"""Ray mode serves the single server's routes: every service method a route calls exists on
the router, and every owner read it forwards is allowed through (no ray needed)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import api
from api.service import Service
from cluster.owner import PASSTHROUGH, StoreOwner
from cluster.router import Cluster

ROUTES = Path(api.__file__).parent / "routes"


def _called(tree: ast.AST, receiver: str) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == receiver
    }


def test_every_service_method_a_route_calls_is_on_the_router() -> None:
    called = set().union(*(_called(ast.parse(p.read_text()), "svc") for p in ROUTES.glob("*.py")))
    scanned = {"predict_async", "erase_async", "access", "expire", "export"}
    assert scanned <= called  # the scan works
    missing = sorted(m for m in called if not callable(getattr(Cluster, m, None)))
    assert missing == [], f"Ray mode would answer 500 for routes calling {missing}"


def test_every_owner_call_the_router_makes_is_served_by_the_owner() -> None:
    tree = ast.parse(inspect.getsource(Cluster))
    reads = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("_read", "_write")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    writes = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "_write"
        and isinstance(node.args[0], ast.Constant)
    }
    assert not (reads - writes) - PASSTHROUGH, "reads the owner refuses"
    assert all(callable(getattr(StoreOwner, w, None)) for w in writes), "writes it lacks"
    assert all(callable(getattr(Service, r, None)) for r in PASSTHROUGH)
