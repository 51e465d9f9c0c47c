"""Aliases, splits, pinned versions and shadows on a local Ray cluster, side by side with the
single-process server on a copy of the same store: the same requests get the same answers
(version, revision, alias, predictions) or the same errors, alias moves are seen by the next
request, and an erasure reaches every version that trained on the subject, served or idle."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ray = pytest.importorskip("ray")

from api.app import create_app as create_single_app  # noqa: E402
from api.auth import ApiKeys  # noqa: E402
from api.server import BackgroundServer  # noqa: E402
from api.service import Service  # noqa: E402
from cluster import Cluster, create_app  # noqa: E402
from forget import KNNRegressor  # noqa: E402
from store import ModelStore  # noqa: E402
from tests.store.helpers import FEATURES, budgeted, people  # noqa: E402

TOKEN = "cluster-alias-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OFFSET = {1: 0.0, 2: 1000.0, 3: 2000.0}  # version v of "knn" answers a row with OFFSET[v] + i


def _rows() -> list[dict]:
    rows = people(30, seed=7)
    for i, r in enumerate(rows):  # unique targets: a 1-NN answers a row with its own target
        r["score"], r["score2"], r["score3"] = float(i), 1000.0 + i, 2000.0 + i
    return rows


ROWS = _rows()
SUBJECTS = sorted({r["subject_id"] for r in ROWS})


def _query(subject: str) -> list[dict[str, float]]:
    return [{f: r[f] for f in FEATURES} for r in ROWS if r["subject_id"] == subject]


def _targets(subject: str, version: int) -> set[float]:
    return {OFFSET[version] + i for i, r in enumerate(ROWS) if r["subject_id"] == subject}


@dataclass
class Both:
    """The cluster and a single-process server over copies of one store."""

    cluster: Cluster
    ray_url: str
    single_url: str
    client: httpx.Client

    def send(self, method: str, path: str, body: Any = None) -> tuple[httpx.Response, ...]:
        """The same request to each server: (cluster's answer, single server's answer)."""
        return tuple(
            self.client.request(method, url + path, json=body, headers=AUTH)
            for url in (self.ray_url, self.single_url)
        )

    def predict(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One prediction on each server: both 200 and equal (the prediction id aside)."""
        ray_r, single_r = self.send("POST", path, body)
        assert ray_r.status_code == single_r.status_code == 200, (ray_r.text, single_r.text)
        got, want = ray_r.json(), single_r.json()
        got.pop("prediction_id", None)
        want.pop("prediction_id", None)
        assert got == want, (path, body)
        out: dict[str, Any] = got
        return out

    def refuse(self, path: str, body: dict[str, Any], status: int) -> None:
        """Both refuse with ``status`` and the same error type."""
        ray_r, single_r = self.send("POST", path, body)
        assert ray_r.status_code == single_r.status_code == status, (ray_r.text, single_r.text)
        assert ray_r.json()["error"]["type"] == single_r.json()["error"]["type"]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    directory: Path = tmp_path_factory.mktemp("cluster-alias-store")
    with ModelStore.open(directory) as st:
        st.ingest("people", ROWS, subject_column="subject_id")
        for label in ("score", "score2", "score3"):  # knn v1, v2, v3
            est = KNNRegressor(n_neighbors=1)
            st.train("knn", dataset="people", estimator=est, label=label, features=FEATURES)
        # any erasure leaves it awaiting a retrain: a version that cannot serve
        st.train("logit", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
    copy = tmp_path_factory.mktemp("single-store") / "store"
    shutil.copytree(directory, copy)
    keys = ApiKeys.from_mapping({TOKEN: ["admin"]})
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster = Cluster(directory, replicas=2, purge_interval=0, ack_timeout=5.0, evidence_rate=0)
    service = Service.open(copy, evidence_rate=0, purge_interval=0)
    try:
        with (
            BackgroundServer(create_app(cluster, keys)) as ray_url,
            BackgroundServer(create_single_app(service, keys)) as single_url,
            httpx.Client(timeout=60) as client,
        ):
            yield Both(cluster, ray_url, single_url, client)
    finally:
        if started:
            ray.shutdown()


def _shadow_rows(cluster: Cluster, version: int) -> float:
    want = f'forget_shadow_rows_total{{model="knn",version="{version}"}}'
    for line in cluster.metrics.render().splitlines():
        if line.startswith(want):
            return float(line.split()[-1])
    return 0.0


def _put_alias(both: Both, alias: str, body: dict[str, Any]) -> None:
    for r in both.send("PUT", f"/v1/models/knn/aliases/{alias}", body):
        assert r.status_code == 200, r.text


def test_aliases_splits_and_pins_route_as_on_a_single_server(both: Both) -> None:
    # every ready version is on every replica, so none of this sends a model anywhere
    assert all(len(s) == 4 for s in both.cluster.states().values())
    _put_alias(both, "champion", {"version": 1})
    _put_alias(both, "canary", {"split": {"1": 0.5, "3": 0.5}, "shadow": 2})
    _put_alias(both, "default", {"split": {"2": 0.7, "3": 0.3}})
    versions: dict[str, set[int]] = {"bare": set(), "canary": set()}
    v2_answered = 0  # rows version 2 answered
    for i, subject in enumerate(SUBJECTS):
        rows, key = _query(subject), f"user-{i}"
        bare = both.predict("/v1/models/knn/predict", {"rows": rows, "routing_key": key})
        assert bare["alias"] == "default"
        versions["bare"].add(bare["version"])
        v2_answered += len(rows) if bare["version"] == 2 else 0
        canary = both.predict("/v1/models/knn@canary/predict", {"rows": rows, "routing_key": key})
        assert canary["alias"] == "canary"
        versions["canary"].add(canary["version"])
        # the answer is the routed version's own, whole: never a mix of versions
        assert set(canary["predictions"]) == _targets(subject, canary["version"])
        pinned = both.predict("/v1/models/knn/predict", {"rows": rows, "version": 2})
        assert (pinned["version"], pinned["alias"]) == (2, None)
        v2_answered += len(rows)
    assert versions == {"bare": {2, 3}, "canary": {1, 3}}  # the splits split
    keyless = both.predict("/v1/models/knn@canary/predict", {"rows": _query(SUBJECTS[0])})
    assert keyless["version"] == 1  # the heaviest version, the lower on a tie
    champion = both.predict("/v1/models/knn@champion/predict", {"rows": _query(SUBJECTS[0])})
    assert (champion["version"], champion["alias"]) == (1, "champion")
    # the canary's shadow, v2, scored every answered canary request's rows (not answering)
    deadline = time.monotonic() + 10
    while _shadow_rows(both.cluster, 2) < sum(len(_query(s)) for s in SUBJECTS):
        assert time.monotonic() < deadline, both.cluster.metrics.render()
        time.sleep(0.05)
    # and v2's drift monitor saw them beside the rows it answered (as on a single server)
    want = v2_answered + _shadow_rows(both.cluster, 2)
    while True:
        r = both.client.get(f"{both.ray_url}/v1/models/knn/drift?version=2", headers=AUTH)
        assert r.status_code == 200, r.text
        if r.json()["window"]["seen"] == want:
            break
        assert time.monotonic() < deadline, (r.json()["window"], want)
        time.sleep(0.05)


def test_an_alias_move_is_seen_by_the_next_request(both: Both) -> None:
    body = {"rows": _query(SUBJECTS[3])}
    for version in (3, 1, 2):
        _put_alias(both, "champion", {"version": version})
        got = both.predict("/v1/models/knn@champion/predict", body)
        assert got["version"] == version
        assert set(got["predictions"]) == _targets(SUBJECTS[3], version)
    for r in both.send("DELETE", "/v1/models/knn/aliases/default"):
        assert r.status_code == 204, r.text
    assert both.predict("/v1/models/knn/predict", body)["version"] == 3  # the newest ready
    for r in both.send("DELETE", "/v1/models/knn/aliases/champion"):
        assert r.status_code == 204, r.text
    both.refuse("/v1/models/knn@champion/predict", body, 404)


def test_a_multi_model_request_answers_as_on_a_single_server(both: Both) -> None:
    subject = SUBJECTS[4]
    body = {
        "rows": _query(subject),
        "models": ["knn", "logit", {"model": "knn", "version": 1}],
        "routing_key": "user-4",
    }
    ray_r, single_r = both.send("POST", "/v1/datasets/people/predict", body)
    assert ray_r.status_code == single_r.status_code == 200, (ray_r.text, single_r.text)
    got, want = ray_r.json(), single_r.json()
    for doc in (got, want):
        for answer in doc["answers"]:
            assert answer.pop("prediction_id")
    assert got == want
    knn, logit, pinned = got["answers"]
    assert (knn["model"], logit["model"], pinned["version"]) == ("knn", "logit", 1)
    assert set(pinned["predictions"]) == _targets(subject, 1)
    assert set(knn["predictions"]) == _targets(subject, knn["version"])
    both.refuse("/v1/datasets/people/predict", body | {"models": ["knn", "knn"]}, 422)
    both.refuse("/v1/datasets/nowhere/predict", body, 404)


def test_an_erasure_reaches_every_version_served_aliased_shadowing_or_idle(both: Both) -> None:
    # "canary" splits between v1 and v3, v3 is also the bare name's; v2 is idle (pinned only)
    _put_alias(both, "canary", {"split": {"1": 0.5, "3": 0.5}})
    subject = SUBJECTS[5]
    for version in (1, 2, 3):
        body = {"rows": _query(subject), "version": version}
        before = both.predict("/v1/models/knn/predict", body)
        assert set(before["predictions"]) == _targets(subject, version)
    ray_r, single_r = both.send("POST", "/v1/erasure-requests", {"subject_id": subject})
    assert ray_r.status_code == single_r.status_code == 202, (ray_r.text, single_r.text)
    receipt = ray_r.json()
    revisions = {a["version"]: a["revision"] for a in receipt["models"] if a["model"] == "knn"}
    assert sorted(revisions) == [1, 2, 3] and all(r == 1 for r in revisions.values())
    fan = both.cluster.last_fanout
    assert fan is not None and sorted(fan.applied) == ["replica-0", "replica-1"]
    want = {("knn", v): rev for v, rev in revisions.items()}  # logit v1 awaits a retrain
    assert all(s == want for s in both.cluster.states().values())
    everyone = [s for s in SUBJECTS if s != subject]
    for version in (1, 2, 3):  # pinned: each version at its new revision, the subject gone
        got = both.predict("/v1/models/knn/predict", {"rows": _query(subject), "version": version})
        assert got["revision"] == revisions[version]
        assert not set(got["predictions"]) & _targets(subject, version)
        others = both.predict(
            "/v1/models/knn/predict", {"rows": _query(everyone[0]), "version": version}
        )
        assert set(others["predictions"]) == _targets(everyone[0], version)
    for i in range(8):  # routed by the canary split: whichever version, forgotten
        keyed: dict[str, Any] = {"rows": _query(subject), "routing_key": f"user-{i}"}
        got = both.predict("/v1/models/knn@canary/predict", keyed)
        assert got["revision"] == revisions[got["version"]]
        assert not set(got["predictions"]) & _targets(subject, got["version"])


def test_bad_requests_are_refused_as_on_a_single_server(both: Both) -> None:
    body = {"rows": _query(SUBJECTS[0])}
    for r in both.send("POST", "/v1/erasure-requests", {"subject_id": SUBJECTS[6]}):
        assert r.status_code == 202, r.text
    both.refuse("/v1/models/knn@nope/predict", body, 404)  # unknown alias
    both.refuse("/v1/models/knn/predict", body | {"version": 9}, 404)  # unknown version
    both.refuse("/v1/models/nope/predict", body, 404)  # unknown model
    # logit v1 awaits a retrain since an erasure: pinned or by its bare name, 409
    assert both.cluster.routes["logit"].statuses == {1: "pending_retrain"}
    both.refuse("/v1/models/logit/predict", body | {"version": 1}, 409)
    both.refuse("/v1/models/logit/predict", body, 409)
    for r in both.send("PUT", "/v1/models/logit/aliases/champion", {"version": 1}):
        assert r.status_code == 409, r.text  # an alias cannot point at it either
    both.refuse("/v1/models/knn/predict", {"rows": [{"a": 1.0}], "version": 2}, 422)


def test_a_deleted_version_leaves_the_replicas(both: Both) -> None:
    _put_alias(both, "canary", {"split": {"1": 0.5, "3": 0.5}})
    for r in both.send("DELETE", "/v1/models/knn/versions/1"):
        assert r.status_code == 409, r.text  # an alias routes to it
    for r in both.send("DELETE", "/v1/models/knn/versions/2"):
        assert r.status_code == 200, r.text
    assert all(("knn", 2) not in s for s in both.cluster.states().values())
    both.refuse("/v1/models/knn/predict", {"rows": _query(SUBJECTS[0]), "version": 2}, 404)
    assert both.predict("/v1/models/knn/predict", {"rows": _query(SUBJECTS[0])})["version"] == 3
