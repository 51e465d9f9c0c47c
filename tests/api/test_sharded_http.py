"""forget.Sharded over real HTTP (issue 20, slice 2): trained by POST /v1/models around a
scikit-learn learner, served at once after an erasure (without the dropped shards), its shards
retrained by the purger and named in the erasure report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Server, auth, people_server
from tests.store.helpers import FEATURES, VICTIM

INNER = {"kind": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 10}}
TRAIN = {
    "name": "sisa",
    "dataset": "people",
    "estimator": {
        "kind": "Sharded",
        "params": {"estimator": INNER, "n_shards": 6, "random_state": 0},
    },
    "label": "label",
    "features": FEATURES,
}
ROWS = [{"a": 0.1, "b": -0.2, "c": 0.3}, {"a": -1.0, "b": 1.0, "c": 0.0}]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    yield from people_server(tmp_path, "--purge-interval", "0.2")


def test_train_erase_predict_and_report(srv: Server) -> None:
    c = srv.client
    r = c.post("/v1/models", json=TRAIN, headers=auth("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["guarantee"] == "exact" and r.json()["params"]["estimator"] == INNER
    erased = c.post("/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase"))
    assert erased.status_code in (201, 202), erased.text
    (action,) = erased.json()["models"]
    assert action["action"] == "exact_unlearning" and action["evidence"]["shards_dropped"]
    p = c.post("/v1/models/sisa/predict", json={"rows": ROWS}, headers=auth("predict"))
    assert p.status_code == 200, p.text  # served at once, without the dropped shards
    assert p.json()["revision"] == action["revision"]
    request_id = erased.json()["request_id"]
    deadline, steps = time.monotonic() + 60, []
    while time.monotonic() < deadline:  # the purger retrains the shards
        doc = c.get(f"/v1/erasure-requests/{request_id}/report", headers=auth("audit")).json()
        steps = [m for m in doc["models"] if m["action"] == "retrain_shards"]
        if steps and doc["status"] == "completed":
            break
        time.sleep(0.2)
    (step,) = steps
    assert step["shards_retrained"] == action["evidence"]["shards_dropped"]
    assert step["retrained_at"] and step["new_revision"] == action["revision"] + 1
    html = c.get(
        f"/v1/erasure-requests/{request_id}/report",
        params={"format": "html"},
        headers=auth("audit"),
    ).text
    assert "shards retrained" in html and step["retrained_at"][:10] in html
    p = c.post("/v1/models/sisa/predict", json={"rows": ROWS}, headers=auth("predict"))
    assert p.status_code == 200 and p.json()["revision"] == step["new_revision"]
    model = c.get("/v1/models/sisa", headers=auth("audit")).json()
    assert all(v["status"] == "ready" for v in model["versions"])


def test_an_inner_learner_that_is_not_scikit_learn_is_refused(srv: Server) -> None:
    for inner, fragment, kind in [
        ({"kind": "os.system", "params": {}}, "not a scikit-learn class", "invalid_request"),
        ({"kind": "sklearn.nope.Thing"}, "unknown scikit-learn estimator", "unknown_learner"),
        (
            {"kind": "sklearn.tree.DecisionTreeClassifier", "params": {"nope": 1}},
            "does not take",
            "unknown_learner",
        ),
    ]:
        body = TRAIN | {"estimator": {"kind": "Sharded", "params": {"estimator": inner}}}
        r = srv.client.post("/v1/models", json=body, headers=auth("admin"))
        error = r.json()["error"]
        assert r.status_code == 422 and fragment in error["message"], r.text
        assert error["type"] == kind, r.text
