"""The rights endpoints in Ray mode: access, exported copies and retention answer as on a single
server, and an expiry reaches every replica before it is answered (over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("onnx")

from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from api.auth import ApiKeys  # noqa: E402
from api.server import BackgroundServer  # noqa: E402
from cluster import Cluster, create_app  # noqa: E402
from forget import KNNRegressor, Sharded  # noqa: E402
from store import ModelStore  # noqa: E402
from tests.store.helpers import FEATURES, VICTIM, hedgecut, people  # noqa: E402

TOKEN = "cluster-rights-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime.now(UTC)
ROWS = [
    r
    | {"score": float(i)}  # unique targets: a 1-NN answers a row with its own target
    | {"seen": (NOW - timedelta(days=3 * 365 if r["subject_id"] == VICTIM else 1)).isoformat()}
    for i, r in enumerate(people(seed=3))
]
VICTIM_ROWS = [{f: r[f] for f in FEATURES} for r in ROWS if r["subject_id"] == VICTIM]
VICTIM_TARGETS = {r["score"] for r in ROWS if r["subject_id"] == VICTIM}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory: Path = tmp_path_factory.mktemp("cluster-rights")
    with ModelStore.open(directory) as st:
        st.ingest("people", ROWS, subject_column="subject_id")
        st.train(
            "knn",
            dataset="people",
            estimator=KNNRegressor(n_neighbors=1),
            label="score",
            features=FEATURES,
        )
        st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
        sisa = Sharded(DecisionTreeClassifier(random_state=0), n_shards=3, random_state=0)
        st.train("sisa", dataset="people", estimator=sisa, label="label", features=FEATURES)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster = Cluster(directory, replicas=2, purge_interval=0, ack_timeout=5.0, evidence_rate=0)
    try:
        app = create_app(cluster, ApiKeys.from_mapping({TOKEN: ["admin", "audit", "predict"]}))
        with BackgroundServer(app) as served:
            yield served
    finally:
        if started:
            ray.shutdown()


def _victim_answers(url: str) -> set[float]:
    """The 1-NN's answers for the victim's rows, asked of both replicas (round robin)."""
    out: set[float] = set()
    for _ in range(4):
        r = httpx.post(
            f"{url}/v1/models/knn/predict", json={"rows": VICTIM_ROWS}, headers=AUTH, timeout=30
        )
        assert r.status_code == 200, r.text
        out |= set(r.json()["predictions"])
    return out


def test_access_answers_from_the_owner(url: str) -> None:
    r = httpx.post(f"{url}/v1/subjects/access", json={"subject_id": VICTIM}, headers=AUTH)
    assert r.status_code == 200, r.text
    doc = r.json()
    (ds,) = doc["datasets"]
    assert (ds["dataset"], ds["rows"]) == ("people", len(VICTIM_ROWS))
    assert {m["model"] for m in doc["models"]} == {"knn", "risk", "sisa"}
    unknown = httpx.post(f"{url}/v1/subjects/access", json={"subject_id": "nobody"}, headers=AUTH)
    assert unknown.status_code == 404, unknown.text


def test_an_export_is_made_and_recorded_by_the_owner(url: str) -> None:
    r = httpx.get(
        f"{url}/v1/models/risk/export", params={"recipient": "partner"}, headers=AUTH, timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.content[:2] and r.headers["content-type"] == "application/octet-stream"
    copies = httpx.get(f"{url}/v1/audit/exports", headers=AUTH).json()["exports"]
    assert [(c["model"], c["recipient"]) for c in copies] == [("risk", "partner")]
    refused = httpx.get(f"{url}/v1/models/knn/export", params={"recipient": "p"}, headers=AUTH)
    assert refused.status_code == 422, refused.text


def test_an_expiry_reaches_every_replica_before_it_is_answered(url: str) -> None:
    assert _victim_answers(url) == VICTIM_TARGETS  # the 1-NN holds the victim's rows
    r = httpx.put(
        f"{url}/v1/datasets/people/retention",
        json={"time_column": "seen", "period": "P2Y"},
        headers=AUTH,
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/v1/admin/expire", headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    (receipt,) = r.json()["requests"]
    assert receipt["rows_erased"] == len(VICTIM_ROWS)
    assert {m["model"] for m in receipt["models"]} == {"knn", "risk", "sisa"}
    assert not _victim_answers(url) & VICTIM_TARGETS  # no replica answers with their rows
    report = httpx.get(f"{url}/v1/retention", headers=AUTH).json()
    assert [(p["dataset"], p["period"]) for p in report["policies"]] == [("people", "P2Y")]
    assert [e["rows"] for e in report["expiries"]] == [len(VICTIM_ROWS)]
    again = httpx.post(f"{url}/v1/admin/expire", headers=AUTH, timeout=60).json()
    assert again == {"requests": []}
    r = httpx.delete(f"{url}/v1/datasets/people/retention", headers=AUTH)
    assert r.status_code == 204, r.text


def test_a_restriction_and_its_lift_reach_every_replica(url: str) -> None:
    subject = next(s for s in sorted({r["subject_id"] for r in ROWS}) if s != VICTIM)
    rows = [{f: r[f] for f in FEATURES} for r in ROWS if r["subject_id"] == subject]
    targets = [r["score"] for r in ROWS if r["subject_id"] == subject]

    def answers() -> list[list[float]]:  # both replicas (round robin)
        out = []
        for _ in range(4):
            r = httpx.post(
                f"{url}/v1/models/knn/predict", json={"rows": rows}, headers=AUTH, timeout=30
            )
            assert r.status_code == 200, r.text
            out.append(r.json()["predictions"])
        return out

    assert all(a == targets for a in answers())
    body = {"subject_id": subject}
    r = httpx.post(f"{url}/v1/subjects/restrictions", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 201, r.text
    assert all(p != t for a in answers() for p, t in zip(a, targets, strict=True))
    r = httpx.post(f"{url}/v1/subjects/restrictions:lift", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    assert all(a == targets for a in answers())  # the 1-NN learnt the rows back, everywhere
    r = httpx.post(
        f"{url}/v1/subjects/objections", json=body | {"purpose": "nothing_trained"}, headers=AUTH
    )
    assert r.status_code in (404, 422), (
        r.text
    )  # no model has that purpose: refused as on one server


def test_a_sharded_model_serves_without_dropped_shards_then_retrained_everywhere(url: str) -> None:
    """SISA in Ray mode: after the erasure every replica answers at the revision without the
    shards; after the purge, at the retrained revision (a snapshot: the replicas refit)."""
    subject = sorted({r["subject_id"] for r in ROWS} - {VICTIM})[2]
    rows = {"rows": [{f: r[f] for f in FEATURES} for r in ROWS[:20]]}

    def answers() -> list[tuple[int, list[list[float]]]]:
        out = []
        for _ in range(4):  # both replicas (round robin)
            r = httpx.post(f"{url}/v1/models/sisa/predict", json=rows, headers=AUTH, timeout=60)
            assert r.status_code == 200, r.text
            out.append((r.json()["revision"], r.json()["probabilities"]))
        return out

    # the lift before left it awaiting a whole retrain (no learn): the purge refits it
    assert httpx.post(f"{url}/v1/admin/purge", headers=AUTH, timeout=120).status_code == 200
    (before, _), *_ = answers()
    body = {"subject_id": subject, "legal_ground": "art17-1-b"}
    r = httpx.post(f"{url}/v1/erasure-requests", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 202, r.text
    (action,) = [m for m in r.json()["models"] if m["model"] == "sisa"]
    assert action["action"] == "exact_unlearning", action
    dropped = answers()
    assert {rev for rev, _ in dropped} == {before + 1}
    assert all(p == dropped[0][1] for _, p in dropped)
    assert httpx.post(f"{url}/v1/admin/purge", headers=AUTH, timeout=120).status_code == 200
    retrained = answers()
    assert {rev for rev, _ in retrained} == {before + 2}
    assert all(p == retrained[0][1] for _, p in retrained)
