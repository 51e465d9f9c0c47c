"""Exporting a model over HTTP, and the recipients an erasure's report names (issue 17)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.api.conftest import Server, auth
from tests.store.helpers import FEATURES, VICTIM

ort = pytest.importorskip("onnxruntime")


def test_export_then_erasure_then_re_export(server: Server):
    c = server.client
    r = c.get("/v1/models/risk/export", params={"recipient": "acme-scoring"}, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-export-sha256"] == hashlib.sha256(r.content).hexdigest()
    assert r.headers["x-model-revision"] == "0"
    assert 'filename="risk-v1-r0.onnx"' in r.headers["content-disposition"]
    sess = ort.InferenceSession(r.content, providers=["CPUExecutionProvider"])
    row = dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))
    _, proba = sess.run(None, {"X": np.array([[row[f] for f in FEATURES]], np.float32)})
    got = c.post("/v1/models/risk/predict", json={"rows": [row]}, headers=auth("predict")).json()
    assert proba.tolist() == got["probabilities"]

    r = c.post(
        "/v1/erasure-requests",
        json={"subject_id": VICTIM, "legal_ground": "art17-1-b"},
        headers=auth("erase"),
    )
    rid = r.json()["request_id"]
    stale = c.get("/v1/audit/exports", params={"stale": "true"}, headers=auth("audit")).json()
    assert [(e["recipient"], e["model"], e["revision"]) for e in stale["exports"]] == [
        ("acme-scoring", "risk", 0)
    ]
    report = c.get(f"/v1/erasure-requests/{rid}/report", headers=auth("audit")).json()
    assert [n["recipient"] for n in report["recipients"]] == ["acme-scoring"]
    page = c.get(
        f"/v1/erasure-requests/{rid}/report", headers=auth("audit") | {"Accept": "text/html"}
    ).text
    assert "Copies held by recipients" in page and "to notify: re-export revision 1" in page

    r = c.get("/v1/models/risk/export", params={"recipient": "acme-scoring"}, headers=auth("admin"))
    assert r.headers["x-model-revision"] == "1"
    stale = c.get("/v1/audit/exports", params={"stale": "true"}, headers=auth("audit")).json()
    assert stale["exports"] == []


def test_bad_exports_are_4xx(server: Server):
    c = server.client
    for params, status in (
        ({"recipient": ""}, 422),
        ({"recipient": "acme", "format": "pmml"}, 422),
        ({"recipient": "acme", "version": 9}, 404),
        ({}, 422),
    ):
        r = c.get("/v1/models/risk/export", params=params, headers=auth("admin"))
        assert r.status_code == status, (params, r.text)
    r = c.get("/v1/models/nosuch/export", params={"recipient": "acme"}, headers=auth("admin"))
    assert r.status_code == 404
    r = c.get("/v1/models/risk/export", params={"recipient": "acme"}, headers=auth("predict"))
    assert r.status_code == 403  # a copy of the model leaves the store: an admin's call
