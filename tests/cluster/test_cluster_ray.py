"""Replicated serving on a local Ray cluster: fan-out, fencing, catch-up (over real HTTP)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ray = pytest.importorskip("ray")

from api.auth import ApiKeys  # noqa: E402
from api.server import BackgroundServer  # noqa: E402
from cluster import Cluster, create_app  # noqa: E402
from forget import KNNRegressor  # noqa: E402
from store import ModelStore  # noqa: E402
from tests.store.helpers import FEATURES, people  # noqa: E402

TOKEN = "cluster-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _rows() -> list[dict]:
    rows = people(40, seed=5)
    for i, r in enumerate(rows):
        r["score"] = float(i)  # unique targets: a 1-NN answers a row with its own target
    return rows


ROWS = _rows()
SUBJECTS = sorted({r["subject_id"] for r in ROWS})


def _query(subject: str) -> list[dict[str, float]]:
    return [{f: r[f] for f in FEATURES} for r in ROWS if r["subject_id"] == subject]


def _targets(subject: str) -> set[float]:
    return {r["score"] for r in ROWS if r["subject_id"] == subject}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    directory: Path = tmp_path_factory.mktemp("cluster-store")
    with ModelStore.open(directory) as st:
        st.ingest("people", ROWS, subject_column="subject_id")
        st.train(
            "knn",
            dataset="people",
            estimator=KNNRegressor(n_neighbors=1),
            label="score",
            features=FEATURES,
        )
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster = Cluster(directory, replicas=2, purge_interval=0, ack_timeout=5.0, evidence_rate=0)
    try:
        app = create_app(cluster, ApiKeys.from_mapping({TOKEN: ["admin"]}))
        with BackgroundServer(app) as url:
            yield cluster, url
    finally:
        if started:
            ray.shutdown()


def _predict(url: str, subject: str, client: httpx.Client | None = None) -> httpx.Response:
    body = {"rows": _query(subject)}
    if client is None:
        return httpx.post(f"{url}/v1/models/knn/predict", json=body, headers=AUTH, timeout=30)
    return client.post(f"{url}/v1/models/knn/predict", json=body, headers=AUTH)


def _erase(url: str, subject: str) -> dict[str, Any]:
    r = httpx.post(
        f"{url}/v1/erasure-requests", json={"subject_id": subject}, headers=AUTH, timeout=60
    )
    assert r.status_code == 202, r.text
    out: dict[str, Any] = r.json()
    return out


def _revision(receipt: dict[str, Any]) -> int:
    (action,) = [a for a in receipt["models"] if a["model"] == "knn"]
    return int(action["revision"])


def test_erasure_reaches_every_replica_before_it_is_answered(served: tuple[Cluster, str]) -> None:
    cluster, url = served
    subject = SUBJECTS[1]
    before = _predict(url, subject)
    assert before.status_code == 200
    assert set(before.json()["predictions"]) == _targets(subject)

    receipt = _erase(url, subject)
    rev = _revision(receipt)
    assert cluster.last_fanout is not None
    assert sorted(cluster.last_fanout.applied) == ["replica-0", "replica-1"]
    assert all(s == {("knn", 1): rev} for s in cluster.states().values())
    with httpx.Client(timeout=30) as client:
        for _ in range(10):  # round robin: both replicas answer
            after = _predict(url, subject, client)
            assert after.status_code == 200
            assert after.json()["revision"] == rev
            assert not set(after.json()["predictions"]) & _targets(subject)

    # the owner's routes: request, report, audit, models
    rid = receipt["request_id"]
    assert httpx.get(f"{url}/v1/erasure-requests/{rid}", headers=AUTH).json()["status"] in (
        "erased",
        "completed",
    )
    assert httpx.get(f"{url}/v1/erasure-requests/{rid}/report", headers=AUTH).status_code == 200
    assert httpx.get(f"{url}/v1/audit/verify", headers=AUTH).json()["ok"] is True
    model = httpx.get(f"{url}/v1/models/knn", headers=AUTH).json()
    assert model["versions"][0]["revision"] == rev
    assert httpx.get(f"{url}/v1/models/nope", headers=AUTH).status_code == 404
    assert (
        httpx.post(f"{url}/v1/models/nope/predict", json={"rows": [{}]}, headers=AUTH).status_code
        == 404
    )
    bad = httpx.post(f"{url}/v1/models/knn/predict", json={"rows": [{"a": 1}]}, headers=AUTH)
    assert bad.status_code == 422 and "missing features" in bad.text
    assert httpx.post(f"{url}/v1/models/knn/predict", json={"rows": [{}]}).status_code == 401
    routed = httpx.post(
        f"{url}/v1/models/knn@champion/predict", json={"rows": _query(SUBJECTS[0])}, headers=AUTH
    )
    assert routed.status_code == 404 and "no alias 'champion'" in routed.text
    purged = httpx.post(f"{url}/v1/admin/purge", headers=AUTH, timeout=60)
    assert purged.status_code == 200 and rid in purged.json()["requests"]
    assert _predict(url, SUBJECTS[0]).json()["revision"] == rev


def test_fencing_under_concurrent_predictions_and_erasures(served: tuple[Cluster, str]) -> None:
    _, url = served
    victims = SUBJECTS[10:16]
    erased: list[tuple[float, str, int]] = []  # (answered at, subject, revision)
    seen: list[tuple[float, int, list[float]]] = []  # (sent at, revision, predictions)
    retried = [0]
    stop = threading.Event()

    def load(k: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = k
            while not stop.is_set():
                sent = time.monotonic()
                r = _predict(url, victims[i % len(victims)], client)
                i += 1
                if r.status_code == 503:
                    assert r.headers["Retry-After"]
                    retried[0] += 1
                    continue
                assert r.status_code == 200, r.text
                seen.append((sent, r.json()["revision"], r.json()["predictions"]))

    threads = [threading.Thread(target=load, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        for subject in victims:
            time.sleep(0.05)
            receipt = _erase(url, subject)
            erased.append((time.monotonic(), subject, _revision(receipt)))
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(seen) > len(victims)
    assert any(sent > erased[-1][0] for sent, _, _ in seen)  # the check below bites
    for sent, revision, predictions in seen:
        done = [(s, rev) for at, s, rev in erased if at < sent]
        for subject, rev in done:  # sent after that receipt: never an older revision
            assert revision >= rev
            assert not set(predictions) & _targets(subject)


def _batches(cluster: Cluster) -> float:
    for line in cluster.metrics.render().splitlines():
        if line.startswith('forget_batches_total{model="knn"}'):
            return float(line.split()[-1])
    return 0.0


def test_concurrent_predictions_leave_for_the_replicas_in_batches(
    served: tuple[Cluster, str],
) -> None:
    cluster, _ = served
    subjects = SUBJECTS[:40]

    async def one_by_one() -> list[dict[str, Any]]:
        return [await cluster.predict_async("knn", _query(s)) for s in subjects]

    async def burst() -> list[dict[str, Any]]:
        return await asyncio.gather(*(cluster.predict_async("knn", _query(s)) for s in subjects))

    alone = asyncio.run(one_by_one())
    before = _batches(cluster)
    answers = asyncio.run(burst())
    sent = _batches(cluster) - before
    # each request gets its own rows' answer (and its own prediction id)
    assert [a | {"prediction_id": None} for a in answers] == [
        a | {"prediction_id": None} for a in alone
    ]
    assert len({a["prediction_id"] for a in answers + alone}) == 2 * len(subjects)
    # max_inflight (2 per replica) go at once, the rest wait and leave together
    assert sent <= cluster.max_inflight + 2 < len(subjects)


def test_a_prediction_waits_for_the_fence_then_gets_503(served: tuple[Cluster, str]) -> None:
    cluster, url = served
    subject = SUBJECTS[30]
    for m in cluster.members:  # both replicas take 1.5 s to apply the next change
        ray.get(m.handle.hold.remote(1.5))
    out: dict[str, Any] = {}
    eraser = threading.Thread(target=lambda: out.update(_erase(url, subject)))
    cluster.fence_wait = 0.2
    try:
        eraser.start()
        time.sleep(0.5)  # committed by the owner, fence published, not yet applied
        r = _predict(url, subject)
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "1"
        assert r.json()["error"]["type"] == "replica_behind"
    finally:
        eraser.join()
        cluster.fence_wait = 2.0
    r = _predict(url, subject)
    assert r.status_code == 200 and r.json()["revision"] == _revision(out)
    assert not set(r.json()["predictions"]) & _targets(subject)


def test_a_replica_killed_mid_erasure_catches_up_before_serving(
    served: tuple[Cluster, str],
) -> None:
    cluster, url = served
    victim = cluster.members[1]
    pid = ray.get(victim.handle.pid.remote())
    ray.get(victim.handle.hold.remote(2.0))  # its next change waits: kill it meanwhile
    subject = SUBJECTS[20]
    out: dict[str, Any] = {}
    eraser = threading.Thread(target=lambda: out.update(_erase(url, subject)))
    eraser.start()
    time.sleep(0.5)
    ray.kill(victim.handle, no_restart=False)
    eraser.join()
    rev = _revision(out)
    assert cluster.last_fanout is not None and cluster.last_fanout.down == ("replica-1",)
    with httpx.Client(timeout=30) as client:  # served meanwhile, at the new revision only
        for _ in range(6):
            r = _predict(url, subject, client)
            assert r.status_code == 200 and r.json()["revision"] == rev
            assert not set(r.json()["predictions"]) & _targets(subject)

    cluster.wait_all_up(timeout=60)  # restarted by Ray, caught up from the owner
    assert ray.get(victim.handle.pid.remote()) != pid
    assert ray.get(victim.handle.state.remote()) == {("knn", 1): rev}
    direct = ray.get(victim.handle.predict.remote(("knn", 1), _query(subject), rev))
    assert not set(direct["predictions"]) & _targets(subject)
    follow = _erase(url, SUBJECTS[21])  # and it follows later erasures again
    assert sorted(cluster.last_fanout.applied) == ["replica-0", "replica-1"]
    assert ray.get(victim.handle.state.remote()) == {("knn", 1): _revision(follow)}
