"""Fuzz every operation of the OpenAPI schema against a real server: never a 5xx.

Schemathesis generates valid (positive) and invalid (negative) requests from
``/openapi.json``; each is sent with an admin token over real HTTP, and each answer must be a
non-5xx that matches the documented schema. The server holds a small populated store.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.api.conftest import Server, auth, populated_server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from populated_server(tmp_path_factory.mktemp("fuzz"))


def test_no_operation_answers_with_a_server_error(fuzz_server: Server) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=auth("admin"),
                checks=[not_a_server_error, response_schema_conformance],
                timeout=60,
            )

        try:
            fuzz()
        except Unsatisfiable:  # no parameters to make invalid
            assert mode is schemathesis.GenerationMode.NEGATIVE


def test_the_schema_documents_every_route(fuzz_server: Server) -> None:
    doc = fuzz_server.client.get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/v1/models/{model}/predict",
        "/v1/models",
        "/v1/models/{model}",
        "/v1/datasets",
        "/v1/erasure-requests",
        "/v1/erasure-requests/{request_id}",
        "/v1/erasure-requests/{request_id}/report",
        "/v1/audit/verify",
        "/healthz",
        "/metrics",
    } <= paths
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert (Path(__file__).parent).exists()
