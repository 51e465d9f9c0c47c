"""Fuzz every operation of the OpenAPI schema against a real server, with every check.

``schemathesis run`` generates requests from ``/openapi.json`` — valid ones and invalid ones,
boundary values, methods the schema does not list, sequences of calls — and sends them with
an admin token over real HTTP to a server holding a small populated store. All of its checks
run (``--checks all``): no 5xx, answers as documented, invalid requests refused, valid ones
accepted, 405s whose ``Allow`` lists the methods that exist, ... plus ours in
``fuzz_checks.py``. ``schemathesis.toml`` says which operations may refuse a valid request for
what the store holds, and why. The run must report no failure.

A failure prints schemathesis's report: each failing request as a curl command, and the seed
(rerun with ``FORGET_FUZZ_SEED=<seed>`` to draw the same requests).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from api.schemas import KINDS, PARAMS, LegalGround, Params
from api.service import ESTIMATORS
from store.erasure import LEGAL_GROUNDS
from tests.api.conftest import TOKENS, Server, populated_server

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXAMPLES = 100  # per operation and phase: ~30 s on 2 cores


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from populated_server(tmp_path_factory.mktemp("fuzz"))


def test_schemathesis_with_every_check_finds_nothing(fuzz_server: Server) -> None:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        fuzz_server.url + "/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--header",
        f"Authorization: Bearer {TOKENS['admin']}",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--no-color",
    ]
    if seed := os.environ.get("FORGET_FUZZ_SEED"):
        command += ["--seed", seed]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "tests.api.fuzz_checks", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-30_000:]
    operations = len(
        [m for p in fuzz_server.client.get("/openapi.json").json()["paths"].values() for m in p]
    )
    tested = re.search(r"Tested: (\d+)", report)
    assert tested is not None and int(tested.group(1)) == operations, report[-5_000:]


def test_the_schema_documents_every_route(fuzz_server: Server) -> None:
    doc = fuzz_server.client.get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {
        "/v1/models/{model}/predict",
        "/v1/models",
        "/v1/models/{model}",
        "/v1/datasets",
        "/v1/datasets/{name}/rows",
        "/v1/erasure-requests",
        "/v1/erasure-requests/{request_id}",
        "/v1/erasure-requests/{request_id}/report",
        "/v1/audit/verify",
        "/healthz",
        "/metrics",
    } <= paths
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_the_schema_declares_what_the_server_enforces(fuzz_server: Server) -> None:
    """The rules schemathesis found unstated: name patterns, grounds, estimators, instants,
    rows or csv."""
    doc = fuzz_server.client.get("/openapi.json").json()
    schemas, paths = doc["components"]["schemas"], doc["paths"]

    def parameter(path: str, method: str, name: str) -> dict:
        params = paths[path][method]["parameters"]
        return next(p["schema"] for p in params if p["name"] == name)

    for path, method, name in [
        ("/v1/models/{model}/predict", "post", "model"),
        ("/v1/models/{model}", "get", "model"),
        ("/v1/models/{model}/drift", "get", "model"),
        ("/v1/datasets/{name}", "get", "name"),
        ("/v1/datasets/{name}/rows", "post", "name"),
    ]:
        assert parameter(path, method, name)["pattern"] == "^[a-z][a-z0-9_]{0,62}$", path
    assert schemas["TrainRequest"]["properties"]["name"]["pattern"] == "^[a-z][a-z0-9_]{0,62}$"
    assert schemas["ErasureCreate"]["properties"]["legal_ground"]["enum"] == sorted(LEGAL_GROUNDS)
    since = parameter("/v1/erasure-requests/summary", "get", "since")
    assert {"type": "string", "format": "date-time"} in since["anyOf"]
    estimator = schemas["TrainRequest"]["properties"]["estimator"]
    assert estimator["discriminator"]["propertyName"] == "kind"
    assert sorted(estimator["discriminator"]["mapping"]) == sorted(ESTIMATORS)
    seed = schemas["HedgeCutClassifierParams"]["properties"]["random_state"]["anyOf"][0]
    assert seed["maximum"] < 2**63 and seed["minimum"] == 0
    for body in ("/v1/datasets", "/v1/datasets/{name}/rows"):
        upload = paths[body]["post"]["requestBody"]["content"]["application/json"]["schema"]
        branches = [schemas[b["$ref"].rpartition("/")[2]] for b in upload["oneOf"]]
        assert [sorted({"rows", "csv"} & set(b["required"])) for b in branches] == [
            ["rows"],
            ["csv"],
        ]
        assert all(b["additionalProperties"] is False for b in branches)


def test_the_schema_and_the_server_name_the_same_grounds_and_estimators() -> None:
    assert sorted(get_args(LegalGround)) == sorted(LEGAL_GROUNDS)
    assert sorted(KINDS) == sorted(ESTIMATORS)


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: p.estimator)
def test_each_estimators_parameters_are_those_it_takes_with_its_defaults(
    params: type[Params],
) -> None:
    signature = inspect.signature(ESTIMATORS[params.estimator])
    taken = {n: p.default for n, p in signature.parameters.items() if n != "self"}
    declared = {name: field.get_default() for name, field in params.model_fields.items()}
    assert declared == taken
