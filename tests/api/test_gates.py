"""Predictions never wait for the store: the service's gates (see :mod:`api.gates`).

Each test stops an erasure or a purge at a chosen point inside the store (a hook that waits on
an event) and shows what a prediction does meanwhile: goes on (the store is deleting rows,
auditing, compacting the database), or waits (the model it asks is forgetting) and then
answers at the new revision. And a prediction already scoring when an erasure reaches its
model finishes first, at the old revision, and its answer is not cached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.gates import Gate
from api.service import Service
from tests.store.helpers import FEATURES, VICTIM, people, populate

PROBE = [dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))]
FRESH = [dict(zip(FEATURES, (0.4, 0.5, -0.6), strict=True))]  # never cached before its test
WAIT = 10.0  # seconds a step may take on a loaded machine before the test fails
PAUSE = 0.3  # seconds a blocked call is watched, to see that it stays blocked


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    s = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(s.store, people(n_subjects=30, seed=3))
    s.start()  # as the server does
    s.predict("risk", PROBE)  # served, compiled, gate made
    s.predict("score", PROBE)
    yield s
    s.close()


@contextmanager
def background(fn: Callable[[], Any]) -> Iterator[Future]:
    with ThreadPoolExecutor(1) as pool:
        yield pool.submit(fn)


def _stop_erasures_at_forget(svc: Service) -> tuple[threading.Event, threading.Event]:
    """Erasures stop inside the store just after their models' gates close; returns (closed,
    go on)."""
    closed, go_on = threading.Event(), threading.Event()
    real = svc.store.erase_many

    def erase(*args: Any, **kwargs: Any) -> Any:
        close = kwargs["before_forget"]

        def hook(pairs: Any) -> None:
            close(pairs)
            closed.set()
            assert go_on.wait(WAIT)

        return real(*args, **(kwargs | {"before_forget": hook}))

    svc.store.erase_many = erase  # type: ignore[method-assign]
    return closed, go_on


def _stop_erasures_after_forget(
    svc: Service, fail: bool = False
) -> tuple[threading.Event, threading.Event]:
    """Erasures stop inside the store just after their models forgot and their gates opened,
    before the audit and the commit (and then fail, with ``fail``); returns (opened, go on)."""
    opened, go_on = threading.Event(), threading.Event()
    real = svc.store.erase_many

    def erase(*args: Any, **kwargs: Any) -> Any:
        open_gates = kwargs["after_forget"]

        def hook() -> None:
            open_gates()
            opened.set()
            assert go_on.wait(WAIT)
            if fail:
                raise OSError("the disk went away before the commit")

        return real(*args, **(kwargs | {"after_forget": hook}))

    svc.store.erase_many = erase  # type: ignore[method-assign]
    return opened, go_on


def test_a_prediction_waits_only_while_its_model_forgets_and_then_scores_without_the_rows(
    svc: Service,
):
    before = svc.predict("risk", PROBE)
    closed, go_on = _stop_erasures_at_forget(svc)
    with background(lambda: svc.erase(VICTIM, "art17-1-b")) as erasure:
        assert closed.wait(WAIT)  # rows deleted, gates closed, the models about to forget
        with background(lambda: svc.predict("risk", FRESH)) as waiting:
            with pytest.raises(TimeoutError):
                waiting.result(timeout=PAUSE)  # the forest's gate is closed
            go_on.set()
            after = waiting.result(timeout=WAIT)
        receipt = erasure.result(timeout=WAIT)
    revision = {a["model"]: a["revision"] for a in receipt["models"]}["risk"]
    assert revision == before["revision"] + 1
    assert after["revision"] in (before["revision"], revision)  # answered before or after commit
    _, est = svc.store.serving("risk")
    X = np.array([[FRESH[0][f] for f in FEATURES]])
    assert after["probabilities"] == est._node_proba(X).tolist()  # the model that forgot
    assert svc.predict("risk", PROBE)["revision"] == revision


def test_once_the_models_forgot_predictions_go_on_through_the_commit_labelled_the_old_revision(
    svc: Service,
):
    """The gates open as soon as the models forgot (their compiled trees caught up): a
    prediction during the audit and the commit scores without the subject's rows, says the
    revision that still serves, and is not cached past the erasure's answer."""
    before = svc.predict("risk", PROBE)
    _, est = svc.store.serving("risk")
    opened, go_on = _stop_erasures_after_forget(svc)
    with background(lambda: svc.erase(VICTIM, "art17-1-b")) as erasure:
        assert opened.wait(WAIT)
        assert not est._compiled.stale  # caught up before the gate opened
        with background(lambda: svc.predict("risk", FRESH)) as during_:
            during = during_.result(timeout=WAIT)  # answered while the erasure is paused
        assert not erasure.done()
        go_on.set()
        receipt = erasure.result(timeout=WAIT)
    X = np.array([[FRESH[0][f] for f in FEATURES]])
    assert during["revision"] == before["revision"]
    assert during["probabilities"] == est._node_proba(X).tolist()  # the model that forgot
    new = {a["model"]: a["revision"] for a in receipt["models"]}["risk"]
    assert svc.store.serving("risk")[1] is est and new == before["revision"] + 1
    assert all(k[2] == new for k in svc.cache._entries if k[0] == "risk")
    after = svc.predict("risk", FRESH)
    assert after["revision"] == new and after["probabilities"] == during["probabilities"]


def test_a_commit_that_fails_after_the_gates_opened_serves_the_rebuilt_models(svc: Service):
    """Nothing of a failed erasure happened: predictions after it come from the models
    rebuilt from the database (the rows back in), never from the objects that forgot."""
    before = svc.predict("risk", PROBE)
    _, forgot = svc.store.serving("risk")
    opened, go_on = _stop_erasures_after_forget(svc, fail=True)
    with background(lambda: svc.erase(VICTIM, "art17-1-b")) as erasure:
        assert opened.wait(WAIT)
        go_on.set()
        with pytest.raises(OSError, match="disk went away"):
            erasure.result(timeout=WAIT)
    mv, est = svc.store.serving("risk")
    assert est is not forgot and mv.revision == before["revision"]
    again = svc.predict("risk", PROBE)
    assert again["revision"] == before["revision"]
    assert again["probabilities"] == before["probabilities"]
    counts = svc.access(VICTIM)["counts"]
    assert counts["rows"] > 0 and counts["erasure_requests"] == 0 and counts["models_forgot"] == 0


def test_predictions_go_on_while_the_store_deletes_and_audits(svc: Service):
    """Everything an erasure does before its models forget holds the service lock, not
    the gates: a prediction answers meanwhile, at the revision that still serves."""
    inside, go_on = threading.Event(), threading.Event()
    real = svc.store.erase_many

    def erase(*args: Any, **kwargs: Any) -> Any:
        inside.set()  # the service lock is held from here on
        assert go_on.wait(WAIT)
        return real(*args, **kwargs)

    svc.store.erase_many = erase  # type: ignore[method-assign]
    before = svc.predict("risk", PROBE)
    with background(lambda: svc.erase(VICTIM, "art17-1-b")) as erasure:
        assert inside.wait(WAIT)
        assert not svc.lock.acquire(blocking=False)  # held by the erasure
        during = svc.predict("risk", PROBE)
        health = svc.health()
        go_on.set()
        erasure.result(timeout=WAIT)
    assert during["revision"] == before["revision"]
    assert during["probabilities"] == before["probabilities"]
    assert health["status"] == "ok" and health["models"] == 2


def test_an_erasure_waits_for_predictions_in_flight_which_answer_the_old_revision_uncached(
    svc: Service,
):
    mv, est = svc.store.serving("risk")
    scoring, finish = threading.Event(), threading.Event()
    real = est.predict_proba

    def slow(X: Any) -> Any:
        scoring.set()
        assert finish.wait(WAIT)
        return real(X)

    est.predict_proba = slow  # type: ignore[method-assign]
    with background(lambda: svc.predict("risk", FRESH)) as in_flight:
        assert scoring.wait(WAIT)  # the prediction holds the forest's gate
        with background(lambda: svc.erase(VICTIM, "art17-1-b")) as erasure:
            with pytest.raises(TimeoutError):
                erasure.result(timeout=PAUSE)  # waits for the prediction to finish
            finish.set()
            receipt = erasure.result(timeout=WAIT)
        old = in_flight.result(timeout=WAIT)
    del est.predict_proba
    assert old["revision"] == mv.revision
    new = {a["model"]: a["revision"] for a in receipt["models"]}["risk"]
    assert new == mv.revision + 1
    assert all(k[2] == new for k in svc.cache._entries if k[0] == "risk")
    assert svc.predict("risk", PROBE)["revision"] == new


def test_a_model_the_subject_never_trained_is_not_held_up(tmp_path: Path):
    s = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(s.store, people(n_subjects=30, seed=3))
    others = [r | {"subject_id": "o-" + r["subject_id"]} for r in people(n_subjects=20, seed=9)]
    s.store.ingest("others", others, subject_column="subject_id")
    from tests.store.helpers import linear

    s.store.train("other", dataset="others", estimator=linear(), label="score", features=FEATURES)
    before = s.predict("other", PROBE)
    closed, go_on = _stop_erasures_at_forget(s)
    with background(lambda: s.erase(VICTIM, "art17-1-b")) as erasure:
        assert closed.wait(WAIT)
        during = s.predict("other", PROBE)  # its gate is open: answered at once
        go_on.set()
        erasure.result(timeout=WAIT)
    assert during == before | {"prediction_id": during["prediction_id"]}
    s.close()


def test_a_purge_closes_a_gate_only_around_that_models_compaction(svc: Service):
    svc.erase(VICTIM, "art17-1-b")
    inside, go_on = threading.Event(), threading.Event()
    db = svc.store._db
    real = db.compact

    def compact() -> None:
        inside.set()
        assert go_on.wait(WAIT)
        real()

    db.compact = compact  # type: ignore[method-assign]
    before = svc.predict("risk", PROBE)
    with background(svc.purge) as purge:
        assert inside.wait(WAIT)  # the database is being compacted, under the lock
        during = svc.predict("risk", PROBE)
        go_on.set()
        result = purge.result(timeout=WAIT)
    assert result["compacted"]
    assert during["revision"] == before["revision"]
    assert during["probabilities"] == before["probabilities"]


def test_a_purge_builds_a_forests_compacted_form_while_it_serves_and_forgets(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The canonical form (and its compiled trees) is built from a copy of the forest without
    the service lock and with the forest's gate open: a prediction meanwhile answers at once,
    as before, and so does an erasure (its forget is replayed onto the compacted copy before
    the forest takes it); the gate closes only while the forest takes the new form. The
    erasure made meanwhile waits for the next purge; a training that purges the store itself
    waits for this one."""
    from forget.hedgecut import forest as forest_module

    svc.set_version_retention(1)  # a new version deletes the old one, and purges
    first = svc.erase(VICTIM, "art17-1-b")
    before = svc.predict("risk", PROBE)
    inside, go_on = threading.Event(), threading.Event()
    real = forest_module._canon_from

    def canonical(inputs: Any) -> Any:
        inside.set()
        assert go_on.wait(WAIT)
        return real(inputs)

    monkeypatch.setattr(forest_module, "_canon_from", canonical)
    trainer = ThreadPoolExecutor(1)
    other = next(
        p["subject_id"] for p in people(n_subjects=30, seed=3) if p["subject_id"] != VICTIM
    )
    with background(svc.purge) as purge:
        assert inside.wait(WAIT)  # the purge is building the forest's canonical form
        try:
            with background(lambda: svc.predict("risk", FRESH)) as predicting:
                during = predicting.result(timeout=WAIT)  # not cached: the model scores it
            with background(lambda: svc.erase(other, "art17-1-b")) as erasing:
                erased = erasing.result(timeout=WAIT)  # answered, the purge still building
            # a training that purges the store itself (its version retention) waits
            training = trainer.submit(
                svc.train, "score", dataset="people", kind="LinearRegression",
                params={}, label="score", features=FEATURES,
            )  # fmt: skip
            with pytest.raises(TimeoutError):
                training.result(timeout=0.5)
        finally:
            go_on.set()
        done = purge.result(timeout=WAIT)
    assert done["compacted"] and done["requests"] == [first["request_id"]]
    assert training.result(timeout=WAIT)["version"] == 2  # after the purge: no refusal
    assert during["revision"] == before["revision"]
    after = svc.predict("risk", FRESH)
    (risk,) = [m for m in erased["models"] if m["model"] == "risk"]
    assert after["revision"] == risk["revision"] == before["revision"] + 1
    # not this purge's (its copies were made before it): the training's, deleting score v1
    assert svc.request(erased["request_id"])["status"] == "completed"


def test_a_purge_whose_build_fails_leaves_its_requests_to_the_next_round(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build raising (a full disk, say) fails the purge, completing nothing and keeping
    the models as they serve; the purger's next round sees the requests still waiting and
    completes them."""
    from forget.hedgecut import forest as forest_module

    r = svc.erase(VICTIM, "art17-1-b")
    before = svc.predict("risk", PROBE)
    with monkeypatch.context() as m:
        m.setattr(forest_module.Compaction, "build", lambda self: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            svc.purge()
    assert svc.request(r["request_id"])["status"] == "erased"
    assert svc.predict("risk", PROBE)["probabilities"] == before["probabilities"]
    assert svc._awaiting_purge  # what the purger's loop checks
    assert svc.purge()["requests"] == [r["request_id"]]


def test_a_failed_erasure_drops_the_entries_of_models_that_forgot(svc: Service):
    """The store rebuilds those models from what committed (new objects): the service
    serves those, at the revision they had, with the same answers."""
    before = svc.predict("risk", PROBE)
    _, forgot = svc.store.serving("risk")
    registry = svc.store._registry

    def log(*args: Any, **kwargs: Any) -> None:  # after the models forgot, before the commit
        raise OSError("disk full")

    registry.log = log  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        svc.erase(VICTIM, "art17-1-b")
    del registry.log
    assert svc.store.serving("risk")[1] is not forgot  # rebuilt from what committed
    again = svc.predict("risk", PROBE)
    assert (again["revision"], again["probabilities"]) == (
        before["revision"],
        before["probabilities"],
    )
    assert svc.erase(VICTIM, "art17-1-b")["rows_erased"] == 2


def test_gate_writers_go_first_and_readers_share():
    g = Gate()
    assert g.acquire_shared()
    got: list[str] = []
    with background(lambda: (g.acquire(), got.append("writer"), g.release())) as writer:
        with pytest.raises(TimeoutError):
            writer.result(timeout=PAUSE)  # a reader holds it
        assert g.acquire_shared(blocking=False) is False  # a writer waits: readers queue
        g.release_shared()
        writer.result(timeout=WAIT)
    assert got == ["writer"]
    assert g.acquire_shared(blocking=False) and g.acquire_shared(blocking=False)


# ---------------------------------------------------------------------- group commit


def test_concurrent_erasures_share_transactions_and_each_gets_its_own_receipt(tmp_path: Path):
    rows = people(n_subjects=40, seed=4)
    s = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(s.store, rows)
    s.start()
    subjects = sorted({r["subject_id"] for r in rows})[:24]
    held = {subj: sum(r["subject_id"] == subj for r in rows) for subj in subjects}
    groups: list[int] = []
    real = s.store.erase_many

    def erase_many(calls: Any, **kwargs: Any) -> Any:
        groups.append(len(calls))
        return real(calls, **kwargs)

    s.store.erase_many = erase_many  # type: ignore[method-assign]
    first = threading.Event()
    real_hook_calls = s._erase_group

    def slow_group(group: Any) -> None:  # the first group waits, so that others queue
        if not first.is_set():
            first.set()
            threading.Event().wait(PAUSE)
        real_hook_calls(group)

    s._erase_group = slow_group  # type: ignore[method-assign]
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda subj: s.erase(subj, "art17-1-b"), subjects))
    assert sum(groups) == len(subjects) and len(groups) < len(subjects)
    assert [r["rows_erased"] for r in receipts] == [held[x] for x in subjects]
    assert len({r["request_id"] for r in receipts}) == len(subjects)
    revisions = sorted(a["revision"] for r in receipts for a in r["models"] if a["model"] == "risk")
    assert revisions == list(range(1, len(subjects) + 1))  # one each, none shared
    assert s.predict("risk", PROBE)["revision"] == len(subjects)
    assert s.store.verify_audit_log().ok
    s.close()


def test_callers_of_a_group_answer_without_the_service_lock(tmp_path: Path):
    """Group commit's callers wait on their group, not on the service lock: once it is
    carried out they answer, even while the lock stays held (here by the group's leader, as
    it would be by the next group's transaction or a purge). Before, each had to take the
    lock to see it was done, queued behind whatever held it."""
    rows = people(n_subjects=12, seed=5)
    s = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(s.store, rows)
    s.start()
    subj = sorted({r["subject_id"] for r in rows})
    entered, release = threading.Event(), threading.Event()
    answered: set[str] = set()
    seen: list[bool] = []
    real = s._erase_group

    def held_group(group: Any) -> None:
        names = {t.call["subject_id"] for t in group}
        if not entered.is_set():  # the first group waits, so that the others queue
            entered.set()
            assert release.wait(30)
            real(group)
            return
        real(group)
        if len(names) > 1:  # still holding the lock: the others of this group answer
            t0 = threading.Event()
            for _ in range(500):
                if len(answered & names) >= len(names) - 1:  # all but the leader itself
                    break
                t0.wait(0.01)
            seen.append(len(answered & names) >= len(names) - 1)

    def erase(x: str) -> dict[str, Any]:
        r = s.erase(x, "art17-1-b")
        answered.add(x)
        return r

    s._erase_group = held_group  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(8) as pool:
            first = pool.submit(erase, subj[0])
            assert entered.wait(10)
            rest = [pool.submit(erase, x) for x in subj[1:5]]
            while len(s._queue) < 4:  # they queue behind the first group
                threading.Event().wait(0.01)
            release.set()
            done = [f.result(timeout=30) for f in (first, *rest)]
        assert all(r["rows_erased"] > 0 for r in done)
        assert seen == [True], "callers of a carried-out group waited for the service lock"
    finally:
        release.set()
        s.close()


def test_a_failed_group_is_tried_request_by_request(svc: Service):
    real = svc.store.erase_many

    def erase_many(calls: Any, **kwargs: Any) -> Any:
        if len(calls) > 1:
            raise OSError("disk full")
        if calls[0]["subject_id"] == "subj-001":
            raise OSError("this one fails")
        return real(calls, **kwargs)

    svc.store.erase_many = erase_many  # type: ignore[method-assign]
    from api.service import _Erasure

    group = [_Erasure({"subject_id": x, "legal_ground": "art17-1-b"}) for x in
             ("subj-000", "subj-001", VICTIM)]  # fmt: skip
    with svc.lock:
        svc._erase_group(group)
    assert all(t.done for t in group)
    assert group[0].receipt.rows_erased > 0 and group[2].receipt.rows_erased == 2
    assert isinstance(group[1].error, OSError) and group[1].receipt is None
    assert svc.predict("risk", PROBE)["revision"] == 2


def test_a_new_version_is_published_to_predictions_that_take_no_lock(svc: Service):
    from forget import HedgeCutClassifier

    before = svc.predict("risk", PROBE)
    svc.train(
        "risk",
        dataset="people",
        kind="HedgeCutClassifier",
        params=HedgeCutClassifier(n_estimators=7, random_state=1).get_params(),
        label="label",
        features=FEATURES,
    )
    # the lock held elsewhere: a prediction that needed it would wait for ever
    with svc.lock, background(lambda: svc.predict("risk", PROBE)) as after:
        res = after.result(timeout=WAIT)
    assert res["version"] == before["version"] + 1 and res["revision"] == 0
    assert svc.cache.current("risk", res["version"]) == 0
