"""Aliases, canaries, shadows, pinned versions and version deletion over HTTP (issue 22)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.api.conftest import TOKENS, Server, auth
from tests.store.helpers import FEATURES, VICTIM, needles, scan

ROW = {"rows": [dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))]}
RISK_V2 = {
    "name": "risk",
    "dataset": "people",
    "estimator": {"kind": "HedgeCutClassifier", "params": {"n_estimators": 5, "random_state": 9}},
    "label": "label",
    "features": FEATURES,
}


def _predict(srv: Server, path: str = "risk", **body: object) -> dict:
    r = srv.client.post(f"/v1/models/{path}/predict", json=ROW | body, headers=auth("predict"))
    assert r.status_code == 200, r.text
    return r.json()


def _refused(srv: Server, path: str, status: int, **body: object) -> str:
    r = srv.client.post(f"/v1/models/{path}/predict", json=ROW | body, headers=auth("predict"))
    assert r.status_code == status, r.text
    return r.json()["error"]["message"]


def _alias(srv: Server, alias: str, body: dict, status: int = 200, model: str = "risk") -> dict:
    r = srv.client.put(f"/v1/models/{model}/aliases/{alias}", json=body, headers=auth("admin"))
    assert r.status_code == status, r.text
    return r.json()


def _metric(srv: Server, name: str, **labels: str) -> float:
    text = srv.client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


@pytest.fixture
def two(server: Server) -> Server:
    """The populated server with a second version of ``risk``."""
    r = server.client.post("/v1/models", json=RISK_V2, headers=auth("admin"))
    assert r.status_code == 201, r.text
    return server


def test_promotion_rollback_and_pinned_versions(two: Server):
    assert _predict(two)["version"] == 2  # the bare name: the newest ready version
    assert _predict(two)["alias"] == "default"
    set_ = _alias(two, "default", {"version": 1})  # a rollback of the bare name
    assert set_["split"] == {"1": 1.0}
    assert set_["set_by"] and TOKENS["admin"] not in set_["set_by"]  # who, never the token
    assert _predict(two)["version"] == 1
    _alias(two, "champion", {"version": 2})
    got = _predict(two, "risk@champion")
    assert (got["version"], got["alias"]) == (2, "champion")
    pinned = _predict(two, version=1)
    assert (pinned["version"], pinned["alias"]) == (1, None)
    doc = two.client.get("/v1/models/risk", headers=auth("audit")).json()
    assert doc["serving_version"] == 1
    assert set(doc["aliases"]) == {"default", "champion"}
    assert doc["aliases"]["champion"]["split"] == {"2": 1.0}
    r = two.client.delete("/v1/models/risk/aliases/default", headers=auth("admin"))
    assert r.status_code == 204
    assert _predict(two)["version"] == 2  # unpinned: the newest again
    entries = two.client.get("/v1/audit/verify", headers=auth("audit")).json()
    assert entries["ok"]


def test_bad_routes_are_4xx_with_a_message(two: Server):
    assert "no alias" in _refused(two, "risk@nosuch", 404)
    assert _refused(two, "risk@Bad-Alias", 422)
    assert "version" in _refused(two, "risk@champion", 422, version=1)  # an alias, or a pin
    assert _refused(two, "risk", 404, version=9)
    assert _refused(two, "nosuch", 404)
    for body in (
        {"split": {"1": 0.5, "2": 0.4}},  # does not sum to 1
        {"split": {"1": -0.5, "2": 1.5}},  # a negative share
        {"version": 1, "split": {"1": 1.0}},  # both
        {},  # neither
        {"version": 1, "shadow": 1},  # answers and shadows
        {"version": "one"},
    ):
        _alias(two, "canary", body, 422)
    _alias(two, "canary", {"version": 7}, 404)  # no such version
    _alias(two, "canary", {"version": 1}, 404, model="nosuch")
    r = two.client.delete("/v1/models/risk/aliases/canary", headers=auth("admin"))
    assert r.status_code == 404
    r = two.client.put("/v1/models/risk/aliases/x", json={"version": 1}, headers=auth("predict"))
    assert r.status_code == 403  # moving an alias is an admin's


def test_a_split_sticks_each_key_to_one_version_and_a_shadow_is_scored_not_answered(two: Server):
    _alias(two, "canary", {"split": {"1": 0.5, "2": 0.5}})
    seen: dict[str, set[int]] = {}
    for k in range(40):
        for _ in range(2):
            got = _predict(two, "risk@canary", routing_key=f"user-{k}")
            seen.setdefault(f"user-{k}", set()).add(got["version"])
    assert all(len(v) == 1 for v in seen.values())  # sticky
    assert {v for vs in seen.values() for v in vs} == {1, 2}  # both answer someone
    keyless = {_predict(two, "risk@canary")["version"] for _ in range(5)}
    assert len(keyless) == 1  # without a key: one version, always the same
    _alias(two, "champion", {"version": 2, "shadow": 1})
    for _ in range(5):
        assert _predict(two, "risk@champion")["version"] == 2
    deadline = time.monotonic() + 10
    while _metric(two, "forget_shadow_rows_total", model="risk", version="1") < 5:
        assert time.monotonic() < deadline, "the shadow never scored"
        time.sleep(0.05)
    # scored once (then answered from the cache), counted under its version
    assert _metric(two, "forget_predicted_rows_total", model="risk", version="2") >= 1
    r = two.client.get("/v1/models/risk/drift", params={"version": 1}, headers=auth("audit"))
    assert r.status_code == 200 and r.json()["version"] == 1


def test_deleting_a_version_is_refused_while_aliased_then_leaves_nothing(two: Server):
    _alias(two, "old", {"version": 1})
    r = two.client.delete("/v1/models/risk/versions/1", headers=auth("admin"))
    assert r.status_code == 409 and "old" in r.json()["error"]["message"]
    assert (
        two.client.delete("/v1/models/risk/aliases/old", headers=auth("admin")).status_code == 204
    )
    before = _predict(two, version=1)
    assert before["version"] == 1
    r = two.client.delete("/v1/models/risk/versions/1", headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json() == {"model": "risk", "version": 1, "deleted": True}
    _refused(two, "risk", 404, version=1)
    assert _predict(two)["version"] == 2
    versions = two.client.get("/v1/models/risk", headers=auth("audit")).json()["versions"]
    assert [v["version"] for v in versions] == [2]
    r = two.client.delete("/v1/models/risk/versions/1", headers=auth("admin"))
    assert r.status_code == 404


def test_version_retention_over_http(two: Server):
    """``PUT /v1/admin/version-retention``: older versions go now and after each training;
    an aliased one stays; bad values are refused with a message."""
    c, path = two.client, "/v1/admin/version-retention"
    assert c.get(path, headers=auth("audit")).json() == {"keep_last": None, "deleted": []}
    bad = ({"keep_last": 0}, {"keep_last": "2"}, {"keep_last": True}, {}, {"keep_last": 1, "x": 1})
    for body in bad:
        r = c.put(path, json=body, headers=auth("admin"))
        assert r.status_code == 422 and r.json()["error"]["message"], (body, r.text)
    assert c.put(path, json={"keep_last": 1}, headers=auth("audit")).status_code == 403
    assert _predict(two, version=1)["version"] == 1  # served, pinned: then deleted
    r = c.put(path, json={"keep_last": 1}, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json() == {"keep_last": 1, "deleted": [{"model": "risk", "version": 1}]}
    _refused(two, "risk", 404, version=1)
    assert _predict(two)["version"] == 2
    _alias(two, "champion", {"version": 2})
    assert c.post("/v1/models", json=RISK_V2, headers=auth("admin")).status_code == 201
    versions = c.get("/v1/models/risk", headers=auth("audit")).json()["versions"]
    assert [v["version"] for v in versions] == [2, 3]  # v2 stays: an alias names it
    assert c.put(path, json={"keep_last": None}, headers=auth("admin")).json()["deleted"] == []
    assert c.get(path, headers=auth("audit")).json()["keep_last"] is None
    assert c.get("/v1/audit/verify", headers=auth("audit")).json()["ok"]


def test_an_erasure_reaches_every_version_aliased_or_not(two: Server, tmp_path: Path):
    _alias(two, "champion", {"version": 2, "shadow": 1})
    _alias(two, "canary", {"split": {"1": 0.9, "2": 0.1}})
    r = two.client.post(
        "/v1/erasure-requests",
        json={"subject_id": VICTIM, "legal_ground": "art17-1-b"},
        headers=auth("erase"),
    )
    assert r.status_code == 202, r.text  # accepted: erased, the purge completes it
    forgot = {(m["model"], m["version"]) for m in r.json()["models"]}
    assert {("risk", 1), ("risk", 2), ("score", 1)} <= forgot
    for path, body in (("risk@champion", {}), ("risk@canary", {"routing_key": "k"}), ("risk", {})):
        got = _predict(two, path, **body)
        assert got["revision"] == 1  # every version answers with its revision after forgetting
    assert two.client.post("/v1/admin/purge", headers=auth("admin")).status_code == 200
    assert scan(two.directory, needles()) == []
