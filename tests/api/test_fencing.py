"""No prediction is ever served by a model revision that still holds erased rows.

Predictions run on several connections while a burst of erasures goes through. Each erasure
receipt names the revision every model reached; any prediction *sent after* that receipt came
back must come from that revision or a later one. A 1-nearest-neighbour regressor makes the
check about content, not bookkeeping: asked for an erased subject's own row, it answers with
that row's target (distance 0) until, and never after, the erasure.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from forget import KNNRegressor
from store import ModelStore
from tests.api.conftest import auth, launch
from tests.store.helpers import FEATURES, people, populate


def test_predictions_during_an_erasure_burst_never_use_an_erased_revision(tmp_path: Path):
    rows = people(n_subjects=60, seed=3)
    first_row: dict[str, dict] = {}
    for r in rows:
        first_row.setdefault(r["subject_id"], r)
    victims = sorted(first_row)[::4][:15]
    probe = [{f: first_row[v][f] for f in FEATURES} for v in victims]
    truth = [first_row[v]["score"] for v in victims]
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        populate(st, rows)
        st.train(
            "nn",
            dataset="people",
            estimator=KNNRegressor(n_neighbors=1),
            label="score",
            features=FEATURES,
        )
    srv = launch(directory, tmp_path / "server.log", "--purge-interval", "0.5")
    # (sent, answered, model, revision, predictions)
    log: list[tuple[float, float, str, int, list[float]]] = []
    errors: list[str] = []
    stop = threading.Event()

    def traffic(model: str) -> None:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            while not stop.is_set():
                sent = time.monotonic()
                r = c.post(
                    f"/v1/models/{model}/predict", json={"rows": probe}, headers=auth("predict")
                )
                if r.status_code != 200:
                    errors.append(r.text)
                    continue
                body = r.json()
                log.append((sent, time.monotonic(), model, body["revision"], body["predictions"]))

    workers = [threading.Thread(target=traffic, args=(m,)) for m in ("nn", "risk", "nn")]
    erased_at = []
    receipts = []
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + 60
        while len({m for _, _, m, _, _ in log}) < 2 or len(log) < 20:  # traffic is flowing
            assert time.monotonic() < deadline and not errors, errors[:3]
            time.sleep(0.05)
        for v in victims:
            sent = time.monotonic()
            r = srv.client.post(
                "/v1/erasure-requests", json={"subject_id": v}, headers=auth("erase")
            )
            assert r.status_code == 202, r.text
            erased_at.append((sent, time.monotonic()))
            receipts.append(r.json())
            time.sleep(0.02)
        time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join()
        srv.stop()
    assert not errors, errors[:3]
    nn = [(sent, done, rev, preds) for sent, done, m, rev, preds in log if m == "nn"]
    assert len(nn) > 30 and len([1 for *_, m, _, _ in log if m == "risk"]) > 10

    for i, ((sent_erase, answered), receipt) in enumerate(zip(erased_at, receipts, strict=True)):
        revision = {a["model"]: a["revision"] for a in receipt["models"]}
        after = [(rev, preds) for sent, _, rev, preds in nn if sent > answered]
        before = [(rev, preds) for _, done, rev, preds in nn if done < sent_erase]
        # after the receipt: the new revision, and the victim's own row is gone
        assert all(rev >= revision["nn"] for rev, _ in after)
        assert all(preds[i] != truth[i] for _, preds in after), victims[i]
        # answered before the request was sent: the row was still there (the check can fail)
        assert before and all(preds[i] == truth[i] for _, preds in before)
        risk_after = [rev for sent, _, m, rev, _ in log if m == "risk" and sent > answered]
        assert all(rev >= revision["risk"] for rev in risk_after)
