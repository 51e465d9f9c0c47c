"""The owner's changes and a replica's updates, in one process (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cluster.errors import ReplicaBehindError
from cluster.owner import StoreOwner
from cluster.replica import Replica
from cluster.state import Change, Failure
from forget import HedgeCutClassifier, KNNRegressor
from store import ModelStore
from store.errors import PredictInputError, UnknownRequestError
from store.registry import PENDING
from tests.store.helpers import FEATURES, budgeted, people


def _rows() -> list[dict]:
    rows = people(12, seed=3)
    for i, r in enumerate(rows):
        r["score"] = float(i)  # unique targets: a 1-NN answers a row with its own target
    return rows


@pytest.fixture
def owner(tmp_path: Path) -> StoreOwner:
    with ModelStore.open(tmp_path) as st:
        st.ingest("people", _rows(), subject_column="subject_id")
        st.train(
            "knn",
            dataset="people",
            estimator=KNNRegressor(n_neighbors=1),
            label="score",
            features=FEATURES,
        )
    o = StoreOwner(tmp_path, evidence_rate=0.0)
    yield o
    o.close()


def _row(r: dict) -> dict[str, float]:
    return {f: r[f] for f in FEATURES}


def test_erasure_is_fanned_out_as_operations(owner: StoreOwner) -> None:
    replicas = [Replica("a"), Replica("b")]
    start = owner.snapshot()
    assert start.fence == {("knn", 1): 0}
    for rep in replicas:
        assert rep.update(start) == {("knn", 1): 0}
    rows = _rows()
    victim = rows[4]
    assert replicas[0].predict(("knn", 1), [_row(victim)], 0)["predictions"] == [4.0]

    receipt, change = owner.erase(victim["subject_id"], "art17-1-b")
    assert receipt["status"] == "erased"
    gone = [i for i, r in enumerate(rows) if r["subject_id"] == victim["subject_id"]]
    assert change.fence == {("knn", 1): 1}
    assert not change.snapshots
    assert [(op.model, op.version, op.revision) for op in change.ops] == [("knn", 1, 1)]
    assert len(change.ops[0].row_ids) == len(gone)

    with pytest.raises(ReplicaBehindError):  # fenced: not applied yet
        replicas[0].predict(("knn", 1), [_row(victim)], 1)
    for rep in replicas:
        assert rep.update(change) == {("knn", 1): 1}
        out = rep.predict(("knn", 1), [_row(r) for r in rows], 1)
        assert out["revision"] == 1
        assert not set(out["predictions"]) & {float(i) for i in gone}
    # the replica's model equals the owner's, prediction for prediction
    X = np.array([[r[f] for f in FEATURES] for r in rows])
    want = owner.service.store.estimator("knn", 1).predict(X)
    assert replicas[1].predict(("knn", 1), [_row(r) for r in rows], 1)["predictions"] == list(want)


def test_a_gap_or_a_restart_drops_the_model_until_a_snapshot(owner: StoreOwner) -> None:
    rep = Replica("a")
    rep.update(owner.snapshot())
    rows = _rows()
    _, first = owner.erase(rows[0]["subject_id"], "art17-1-b")
    _, second = owner.erase(rows[-1]["subject_id"], "art17-1-b")
    assert rep.update(second) == {}  # missed revision 1: nothing to serve from
    with pytest.raises(ReplicaBehindError):
        rep.predict(("knn", 1), [_row(rows[1])], 2)
    assert rep.update(owner.snapshot()) == {("knn", 1): 2}
    assert rep.update(first) == {("knn", 1): 2}  # a late, older change is ignored


def test_train_sends_a_snapshot_and_pending_versions_are_dropped(owner: StoreOwner) -> None:
    rep = Replica("a")
    rep.update(owner.snapshot())
    result, change = owner.train(
        "risk",
        dataset="people",
        kind="LinearRegression",
        params={},
        label="score",
        features=FEATURES,
    )
    assert result["version"] == 1
    assert [s.model for s in change.snapshots] == ["risk"] and not change.ops
    assert rep.update(change) == {("knn", 1): 0, ("risk", 1): 0}

    # a version that cannot forget in place stops serving until it is retrained
    store = owner.service.store
    store.train("logit", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
    rep.update(owner.snapshot())
    _, change = owner.erase(_rows()[2]["subject_id"], "art17-1-b")
    assert ("logit", 1) not in change.fence and change.routes["logit"].statuses[1] == PENDING
    assert ("logit", 1) not in rep.update(change)
    _, change = owner.purge()  # retrains it: a new model object, sent as a snapshot
    assert change.fence[("logit", 1)] == 1
    assert [s.model for s in change.snapshots] == ["logit"]
    assert rep.update(change)[("logit", 1)] == 1


def test_errors_come_back_as_failures(owner: StoreOwner) -> None:
    fail = owner.call("request", "er_0000000000000000")
    assert isinstance(fail, Failure)
    exc = fail.rebuild()
    assert isinstance(exc, UnknownRequestError)
    assert str(exc) == "no erasure request 'er_0000000000000000'"
    with pytest.raises(ValueError, match="cannot be called"):
        owner.call("erase", "x", "art17-1-b")
    rep = Replica("a")
    rep.update(owner.snapshot())
    with pytest.raises(PredictInputError, match="missing features"):
        rep.predict(("knn", 1), [{"a": 1.0}], 0)
    assert Change({}).ops == ()


def test_a_batch_is_one_matrix_and_a_bad_request_fails_alone(owner: StoreOwner) -> None:
    rep = Replica("a")
    rep.update(owner.snapshot())
    rows = _rows()
    good = [[_row(r) for r in rows[:3]], [{"a": 1.0}], [_row(rows[7])]]
    out = rep.predict_many(("knn", 1), good, 0)
    assert out[0] == rep.predict(("knn", 1), good[0], 0)
    assert out[0]["predictions"] == [0.0, 1.0, 2.0] and out[2]["predictions"] == [7.0]
    assert isinstance(out[1], Failure)
    assert isinstance(out[1].rebuild(), PredictInputError)
    with pytest.raises(ReplicaBehindError):  # the fence applies to the whole batch
        rep.predict_many(("knn", 1), good, 1)


def test_a_forest_replica_scores_compiled_trees_refreshed_by_each_erasure(
    owner: StoreOwner,
) -> None:
    store = owner.service.store
    store.train(
        "forest",
        dataset="people",
        estimator=HedgeCutClassifier(n_estimators=20, random_state=3),
        label="label",
        features=FEATURES,
    )
    rep = Replica("a")
    rep.update(owner.snapshot())
    compiled = rep.models[("forest", 1)].compiled
    assert compiled is not None
    rows = _rows()
    X = np.array([[r[f] for f in FEATURES] for r in rows])
    queries = [[_row(r)] for r in rows]
    for victim in rows[:4]:
        _, change = owner.erase(victim["subject_id"], "art17-1-b")
        rep.update(change)
        at = change.fence[("forest", 1)]
        assert rep.state()[("forest", 1)] == at
        assert rep.models[("forest", 1)].compiled is compiled  # refreshed, not rebuilt
        want = store.estimator("forest", 1).predict_proba(X)
        got = rep.predict_many(("forest", 1), queries, at)
        assert np.array_equal([g["probabilities"][0] for g in got], want)  # bitwise


def test_cluster_imports_without_ray() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import cluster\n"
        "from cluster import Cluster, RayMissingError, create_app, serve\n"
        "try:\n"
        "    Cluster('unused')\n"
        "except RayMissingError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "refused: replicated serving needs Ray" in out.stdout
