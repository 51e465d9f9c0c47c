"""Versions that cannot forget in place: pending, not served, then retrained (or retired)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from store import ModelNotServableError, ModelStore, RetrainError
from tests.store.helpers import FEATURES, VICTIM, BudgetedLogistic, budgeted, hedgecut, people

REPO = Path(__file__).resolve().parents[2]
ROWS = people()
X_ALL = np.array([[r[f] for f in FEATURES] for r in ROWS])


def with_logit(st: ModelStore, budget: float = 1e-12) -> None:
    st.ingest("people", ROWS, subject_column="subject_id")
    st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
    st.train(
        "logit", dataset="people", estimator=budgeted(budget), label="label", features=FEATURES
    )


def fresh_fit(gone: set[str], budget: float = 1e-12) -> BudgetedLogistic:
    """The logistic model fitted from scratch on the rows of subjects not in ``gone``."""
    keep = [i for i, r in enumerate(ROWS) if r["subject_id"] not in gone]
    X = X_ALL[keep]
    y = np.array([ROWS[i]["label"] for i in keep])
    return budgeted(budget).fit(X, y, row_ids=np.array(keep) + 1)  # row ids 1, 2, ...


def test_pending_then_retrained_equals_a_fresh_fit(st: ModelStore) -> None:
    with_logit(st)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert r.status == "pending"
    actions = {a.model: a for a in r.models}
    assert actions["logit"].action == "pending_retrain"
    assert actions["logit"].evidence["reason"] == "deletion budget exhausted"
    assert actions["risk"].action == "exact_unlearning"
    assert st.get_model("logit").status == "pending_retrain"
    with pytest.raises(ModelNotServableError):
        st.predict("logit", X_ALL)
    assert st.predict("risk", X_ALL).shape == (len(ROWS),)  # the other model still serves
    report = st.erasure_report(r.request_id)
    assert report["status"] == "pending" and report["completed_at"] is None

    (done,) = st.retrain_pending()
    assert (done.model, done.version, done.revision, done.outcome) == ("logit", 1, 1, "retrained")
    assert done.requests == done.resolved == (r.request_id,)
    assert done.training_rows == len(ROWS) - 2
    assert st.retrain_pending() == ()  # nothing waits any more

    receipt = st.erasure_request(r.request_id)
    assert receipt.status == "erased"  # models done; the bytes await the purge
    assert [(a.model, a.action) for a in receipt.models] == [
        ("logit", "pending_retrain"),
        ("logit", "retrain"),
        ("risk", "exact_unlearning"),
    ]
    retrain = receipt.models[1]
    assert retrain.guarantee == "exact" and retrain.revision == 1
    assert retrain.evidence["method"] == "refit_on_remaining_rows"
    assert retrain.evidence["training_rows"] == len(ROWS) - 2

    mv = st.get_model("logit")
    assert mv.status == "ready" and mv.revision == 1 and mv.checkpoint_revision == 1
    (lineage,) = mv.retrains
    assert lineage.request_ids == (r.request_id,) and lineage.outcome == "retrained"
    assert lineage.artifact_sha256 == mv.artifact_sha256
    files = sorted(p.name for p in (st.directory / "artifacts" / "logit").rglob("*.npz"))
    assert files == ["r1.npz"]  # the old artifact, which held the victim, is gone

    ref = fresh_fit({VICTIM})
    after = st.predict("logit", X_ALL)
    np.testing.assert_array_equal(after, ref.predict(X_ALL))
    est = st.estimator("logit", 1)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(est.predict_proba(X_ALL), ref.predict_proba(X_ALL), atol=1e-12)
    assert not np.allclose(est.coef_, fresh_fit(set()).coef_)  # the victim made a difference

    assert st.purge().requests == (r.request_id,)
    assert st.erasure_request(r.request_id).status == "completed"
    report = st.erasure_report(r.request_id)
    assert [m["action"] for m in report["models"]] == [
        "pending_retrain",
        "retrain",
        "exact_unlearning",
    ]
    assert "retrained from scratch" in report["models"][1]["action_text"]
    assert st.verify_audit_log().ok
    directory = st.directory
    st.close()
    with ModelStore.open(directory) as again:  # the retrained checkpoint serves after a reopen
        np.testing.assert_allclose(again.estimator("logit", 1).coef_, ref.coef_, atol=1e-12)
        assert again.get_model("logit").retrains == mv.retrains


def test_erase_with_purge_retrains_before_it_answers(st: ModelStore) -> None:
    with_logit(st)
    r = st.erase(VICTIM, legal_ground="art17-1-b")
    assert r.status == "completed"
    assert [(a.model, a.action) for a in r.models] == [
        ("logit", "pending_retrain"),
        ("logit", "retrain"),
        ("risk", "exact_unlearning"),
    ]
    np.testing.assert_array_equal(st.predict("logit", X_ALL), fresh_fit({VICTIM}).predict(X_ALL))


def test_one_retrain_serves_every_request_that_waited(st: ModelStore) -> None:
    with_logit(st)
    first = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    second = st.erase("subj-003", legal_ground="art17-1-a", purge=False)
    third = st.erase("subj-009", legal_ground="art17-1-a", purge=False)
    assert [x.status for x in (first, second, third)] == ["pending"] * 3
    assert [a.evidence["reason"] for a in second.models if a.model == "logit"] == [
        "version already awaits a retrain"
    ]
    (done,) = st.retrain_pending()
    assert done.revision == 3 and done.requests == (
        first.request_id,
        second.request_id,
        third.request_id,
    )
    assert {st.erasure_request(q).status for q in done.requests} == {"erased"}
    ref = fresh_fit({VICTIM, "subj-003", "subj-009"})
    np.testing.assert_allclose(st.estimator("logit", 1).coef_, ref.coef_, atol=1e-12)
    # the model forgets again afterwards, until its (spent) budget sends it back
    again = st.erase("subj-011", legal_ground="art17-1-a", purge=False)
    assert {a.model: a.action for a in again.models}["logit"] == "pending_retrain"
    (done,) = st.retrain_pending()
    assert done.revision == 4 and done.requests == (again.request_id,)
    assert [x.revision for x in st.get_model("logit").retrains] == [3, 4]


def test_a_request_waits_for_every_version_it_left_pending(
    st: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_logit(st)
    st.train("logit", dataset="people", estimator=budgeted(), label="label", features=["a", "b"])
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert [a.action for a in r.models if a.model == "logit"] == ["pending_retrain"] * 2
    registry = st._registry
    refit = registry.refit

    def broken(mv, X, y, ids):  # the recorded parameters of v2 no longer build the class
        if mv.version == 2:
            raise TypeError("unexpected keyword argument 'lam'")
        return refit(mv, X, y, ids)

    monkeypatch.setattr(registry, "refit", broken)
    head = st.audit_head()
    with pytest.raises(RetrainError, match="v2"):
        st.retrain_pending()
    assert st.get_model("logit", 1).status == "ready"  # v1 went through before v2 failed
    assert st.get_model("logit", 2).status == "pending_retrain"
    assert st.erasure_request(r.request_id).status == "pending"  # still waits for v2
    assert st.audit_head().seq > head.seq and st.verify_audit_log().ok
    result = st.purge()  # never raises for a failed retrain: reports it, purges the rest
    (failed,) = result.retrained
    assert failed.outcome == "failed" and "lam" in (failed.reason or "")
    assert (
        result.requests == (r.request_id,) and st.erasure_request(r.request_id).status == "pending"
    )
    with pytest.raises(ModelNotServableError):
        st.predict("logit", X_ALL[:, :2], version=2)
    monkeypatch.undo()
    (done,) = st.retrain_pending()
    assert done.version == 2 and done.resolved == (r.request_id,)
    assert st.erasure_request(r.request_id).status == "completed"  # already purged


CHILD = (
    "import sys\n"
    "from store import ModelStore\n"
    "st = ModelStore.open(sys.argv[1])\n"
    "st.retrain_pending()\n"
)


@pytest.mark.parametrize("point", ["retrain.written", "retrain.before_commit"])
def test_a_crash_during_a_retrain_leaves_the_version_pending(tmp_path: Path, point: str) -> None:
    directory = tmp_path / "s"
    with ModelStore.open(directory) as st:
        with_logit(st)
        r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
        st.purge(retrain=False)  # purged, but the version still awaits its retrain
        assert st.erasure_request(r.request_id).status == "pending"
        st._closed = True  # leave without close(), which would retrain
        st._db.close()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory)],
        cwd=REPO,
        env={**os.environ, "FORGET_STORE_CRASH_AT": point},
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == 77, child.stderr
    st = ModelStore.open(directory)
    try:
        assert st.get_model("logit").status == "pending_retrain"
        assert st.erasure_request(r.request_id).status == "pending"
        assert not list((directory / "artifacts" / "logit").rglob("*.npz"))  # orphan swept
        assert st.verify_audit_log().ok
        (done,) = st.retrain_pending()
        assert done.outcome == "retrained"
        assert st.erasure_request(r.request_id).status == "completed"
        np.testing.assert_allclose(
            st.estimator("logit", 1).coef_, fresh_fit({VICTIM}).coef_, atol=1e-12
        )
    finally:
        st.close()


SUBJECTS = sorted({r["subject_id"] for r in ROWS})


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=hst.lists(
        hst.one_of(hst.sampled_from(SUBJECTS), hst.just("retrain"), hst.just("purge")),
        min_size=1,
        max_size=7,
    ),
    budget=hst.sampled_from([1e-12, 1e-3, 10.0]),
)
def test_retrain_invariants(tmp_path_factory: pytest.TempPathFactory, steps, budget) -> None:
    """Whatever the order of erasures, retrains and purges: a request is pending exactly while
    a version it touched awaits a retrain; a ready logistic model equals a fresh fit on the
    remaining rows (within the certified bound when it forgot in place); the log verifies."""
    with ModelStore.open(tmp_path_factory.mktemp("inv") / "s") as st:
        with_logit(st, budget)
        gone: set[str] = set()
        requests = []
        for step in steps:
            if step == "retrain":
                st.retrain_pending()
            elif step == "purge":
                st.purge()
            else:
                r = st.erase(step, legal_ground="art17-1-a", purge=False)
                gone.add(step)
                requests.append(r.request_id)
            waiting = st.get_model("logit").status == "pending_retrain"
            for q in requests:
                status = st.erasure_request(q).status
                touched = any(a.model == "logit" for a in st.erasure_request(q).models)
                assert (status == "pending") == (waiting and touched and q in pending_on(st))
            if not waiting:
                ref = fresh_fit(gone, budget)
                bound = 0.0 if not requests else 0.05
                np.testing.assert_allclose(
                    st.estimator("logit", 1).predict_proba(X_ALL),
                    ref.predict_proba(X_ALL),
                    atol=bound + 1e-12,
                )
        assert st.verify_audit_log().ok
        summary = json.dumps(st.summary_report())
        assert all(s not in summary for s in gone)


def pending_on(st: ModelStore) -> set[str]:
    """Requests with a pending action on logit v1 after its last checkpoint (waiting ones)."""
    mv = st.get_model("logit", 1)
    return {
        q
        for (q,) in st._db.all(
            "SELECT request_id FROM erasure_actions WHERE model = 'logit' AND version = 1 "
            "AND action = 'pending_retrain' AND revision > ?",
            [mv.checkpoint_revision],
        )
    }


def test_a_version_whose_estimator_refuses_the_rows_left_is_retired(
    st: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_logit(st)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)

    def refuses(mv, X, y, ids):  # e.g. one class left
        raise ValueError("y has a single class")

    monkeypatch.setattr(st._registry, "refit", refuses)
    (done,) = st.retrain_pending()
    assert done.outcome == "retired" and "single class" in (done.reason or "")
    assert done.resolved == (r.request_id,) and st.erasure_request(r.request_id).status == "erased"
    assert st.get_model("logit").status == "retired"
    assert st.retrain_pending() == ()  # retired for good
    later = st.erase("subj-004", legal_ground="art17-1-a", purge=False)
    assert [a.model for a in later.models] == ["risk"] and later.status == "erased"
