"""Estimated accuracy of served classifiers (``api.accuracy``, issue 18 item 2): built off the
request path, reported with the drift report, dropped at once by an erasure of a row it held
and rebuilt without it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification

from api.accuracy import MAX_HOLDOUT, REFITTING, held_out
from api.metrics import Metrics
from api.service import Service
from forget import HedgeCutClassifier
from store import ModelStore

FEATURES = ["f0", "f1", "f2", "f3"]
SENTINEL = 9137.25  # the victim's f3: a value no other row has


@given(
    n=st.integers(1, 3000),
    seed=st.integers(0, 2**31),
    gone=st.lists(st.integers(0, 2999), max_size=40),
)
@settings(max_examples=60, deadline=None)
def test_held_out_membership_is_a_function_of_the_row_id(n: int, seed: int, gone: list[int]):
    """Removing rows moves no other row in or out (below the cap, which 3000 rows never reach
    at 20 %); a build on the remaining rows holds the same held-out rows."""
    assert n * 0.25 < MAX_HOLDOUT
    ids = np.arange(n, dtype=np.int64) * 7 + 3
    mask = held_out(ids, seed)
    keep = ~np.isin(np.arange(n), gone)
    assert (held_out(ids[keep], seed) == mask[keep]).all()


def _rows() -> tuple[list[dict], int]:
    """make_classification with label noise; the row with id ``victim`` belongs to subject
    ``victim`` and is held out (ingest numbers rows in order from 1)."""
    X, y = make_classification(
        n_samples=1500, n_features=4, n_informative=3, n_redundant=0, flip_y=0.1, random_state=3
    )
    ids = np.arange(1, len(y) + 1)
    pos = int(np.flatnonzero(held_out(ids))[7])
    rows = [
        {"subject_id": f"s{i}", **dict(zip(FEATURES, map(float, x), strict=True)), "y": int(c)}
        for i, (x, c) in enumerate(zip(X.round(6), y, strict=True))
    ]
    rows[pos]["subject_id"], rows[pos]["f3"] = "victim", SENTINEL
    return rows, int(ids[pos])


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[Service, list[dict], int]]:
    rows, victim = _rows()
    store = ModelStore.open(tmp_path / "store")
    store.ingest("people", rows, subject_column="subject_id")
    forest = HedgeCutClassifier(n_estimators=20, random_state=0)
    store.train("risk", dataset="people", estimator=forest, label="y", features=FEATURES)
    svc = Service(
        store,
        metrics=Metrics(runtime=False),
        batching=False,
        purge_interval=0,
        estimate_accuracy=True,
    )
    try:
        yield svc, rows, victim
    finally:
        svc.close()


def _predict(svc: Service, rows: list[dict]) -> None:
    for at in range(0, len(rows), 100):
        svc.predict("risk", [{f: r[f] for f in FEATURES} for r in rows[at : at + 100]])


def test_the_estimate_follows_the_traffic_and_an_erasure_drops_it_at_once(service):
    svc, rows, victim = service
    acc = svc.accuracy
    assert acc is not None
    _predict(svc, rows[:400])
    assert acc.wait_idle()
    clean = svc.drift("risk")["performance"]
    assert clean["status"] == "ready", clean
    assert 0.6 < clean["validation_accuracy"] <= 1.0
    assert abs(clean["estimated_accuracy"] - clean["validation_accuracy"]) < 0.1
    assert clean["regressor"] in ("ridge", "knn")
    text = svc.metrics.render()
    assert 'forget_estimated_accuracy{model="risk",version="1"}' in text

    # a broken pipeline: the most informative feature arrives as a constant
    broken = [{f: (0.0 if f == "f0" else r[f]) for f in FEATURES} for r in rows[400:1400]]
    _predict(svc, broken)
    worse = svc.drift("risk")
    assert worse["performance"]["estimated_accuracy"] < clean["estimated_accuracy"] - 0.05
    assert worse["performance"]["alert"] and any("estimated accuracy" in a for a in worse["alerts"])

    (state,) = acc._states.values()
    pp = state.predictor
    assert pp is not None and victim in pp.row_ids_  # the test bites: the victim is held out
    assert np.isin(SENTINEL, pp._X).any()
    svc.erase("victim", "art17-1-b")
    (state,) = acc._states.values()
    assert state.status == REFITTING and state.predictor is None  # gone before the answer
    assert svc.drift("risk")["performance"]["status"] == REFITTING
    assert acc.wait_idle()
    (state,) = acc._states.values()
    pp = state.predictor
    assert pp is not None and victim not in pp.row_ids_
    assert not np.isin(SENTINEL, pp._X).any()
    # the rebuild is the build on the rows the store holds now: bit for bit
    again = acc._build(*acc._versions[("risk", 1)])
    assert again.predictor is not None and again.predictor.to_bytes() == pp.to_bytes()


def test_feedback_checks_the_estimate(service):
    svc, rows, _ = service
    _predict(svc, rows[:300])
    assert svc.accuracy is not None and svc.accuracy.wait_idle()
    batch = rows[300:500]
    res = svc.predict("risk", [{f: r[f] for f in FEATURES} for r in batch])
    svc.feedback("risk", res["prediction_id"], [r["y"] for r in batch])
    perf = svc.drift("risk")["performance"]
    right = np.mean(np.asarray(res["predictions"]) == [r["y"] for r in batch])
    assert perf["observed_labels"] == 200 and perf["observed_accuracy"] == pytest.approx(right)


def test_over_http_with_estimate_accuracy(tmp_path: Path) -> None:
    """``forget serve --estimate-accuracy``: the drift report and /metrics carry it."""
    import time

    from tests.api.conftest import auth, launch

    rows, _ = _rows()
    with ModelStore.open(tmp_path / "store") as store:
        store.ingest("people", rows, subject_column="subject_id")
        forest = HedgeCutClassifier(n_estimators=10, random_state=0)
        store.train("risk", dataset="people", estimator=forest, label="y", features=FEATURES)
    srv = launch(tmp_path / "store", tmp_path / "server.log", "--estimate-accuracy")
    try:
        c = srv.client
        body = {"rows": [{f: r[f] for f in FEATURES} for r in rows[:300]]}
        assert c.post("/v1/models/risk/predict", json=body, headers=auth("predict")).is_success
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            perf = c.get("/v1/models/risk/drift", headers=auth("audit")).json()["performance"]
            if perf["status"] == "ready":
                break
            time.sleep(0.1)
        assert perf["status"] == "ready" and 0.0 <= perf["estimated_accuracy"] <= 1.0, perf
        text = c.get("/metrics", headers=auth("audit")).text
        assert 'forget_estimated_accuracy{model="risk",version="1"}' in text
    finally:
        srv.stop()
