"""Deferred retrain evidence: scheduled by the erasure, run later in three phases (jobs under a
lock, the refit outside it, the record under it again), with the verdicts inline checks give,
in the audit chain, and surviving a crash between the phases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hst

from forget.base import ForgetResult
from forget.base import Path as ForgetPath
from forget.checks import outputs
from forget.linear import LinearRegression
from store import ModelStore, erasure
from store._faults import ENV, EXIT_CODE
from store.evidence import DEFERRED, INLINE, RECORDED, SCHEDULED
from tests.store.helpers import FEATURES, VICTIM, people, populate
from tests.store.test_erasure_path import Counter

REPO = Path(__file__).resolve().parents[2]
ROWS = people(40, seed=5)
SUBJECTS = sorted({r["subject_id"] for r in ROWS})
COMPARED = ("training_rows", "probe_rows", "identical", "max_abs_diff", "tolerance", "passed")


class Forgetful(LinearRegression):
    """Says it forgot and keeps every row: a retrain check must catch it."""

    def forget(self, row_ids) -> ForgetResult:  # type: ignore[no-untyped-def]
        ids = tuple(int(i) for i in row_ids)
        return ForgetResult(ids, self.guarantee, (ForgetPath.FAST,) * len(ids), 0.0)


def collect(st: ModelStore) -> int:
    """The three phases, as a service holding a lock would run them."""
    return sum(st.record_evidence(job, job.run()) for job in st.evidence_jobs())


def crash(st: ModelStore) -> None:
    """Leave like a crash would: no purge, no checkpoint, no evidence collected."""
    st._closed = True
    st._db.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a forest, a ridge regression and a model that only pretends to forget."""
    directory = tmp_path_factory.mktemp("deferred") / "pristine"
    with ModelStore.open(directory) as st:
        populate(st, ROWS)
        st.train(
            "liar",
            dataset="people",
            estimator=Forgetful(alpha=0.1),
            label="score",
            features=FEATURES,
        )
    return directory


def copy_of(pristine: Path, where: Path) -> Path:
    shutil.copytree(pristine, where)
    return where


def test_a_deferred_erasure_is_seven_statements_and_schedules(
    populated: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = populated
    st.erase("subj-001", legal_ground="art17-1-b", purge=False, verify=False)  # warm the caches
    count = Counter(monkeypatch)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, verify=True, evidence=DEFERRED)
    # rows, forget log, request, audit entries, the audit log's sealed head
    assert count.sql == ["BEGIN", "DELETE", "INSERT", "INSERT", "INSERT", "UPDATE", "COMMIT"]
    monkeypatch.undo()
    assert [a.evidence["status"] for a in r.models] == [SCHEDULED, SCHEDULED]
    assert "passed" not in r.models[0].evidence
    assert st.erasure_request(r.request_id) == r
    assert st.evidence_scheduled() == 2
    entries = st.erasure_report(r.request_id)["audit_entries"]
    actions = [e for e in entries if e["kind"] == "erasure.model_action"]
    assert [e["payload"]["evidence"] for e in actions] == [SCHEDULED, SCHEDULED]


def test_inline_stays_the_default(populated: ModelStore) -> None:
    r = populated.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert all(a.evidence["passed"] and "status" not in a.evidence for a in r.models)
    assert populated.evidence_scheduled() == 0
    assert populated.erasure_report(r.request_id)["evidence_status"] is None
    with pytest.raises(ValueError, match="'inline' or 'deferred'"):
        populated.erase("subj-001", legal_ground="art17-1-b", evidence="later")
    assert populated.find_subject("subj-001") != {}


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(rate=1.0, subjects=SUBJECTS[:6], collect_after=[True, False, False, True, False, False])
@given(
    rate=hst.sampled_from([0.3, 0.7, 1.0]),
    subjects=hst.permutations(SUBJECTS).map(lambda p: p[:6]),
    collect_after=hst.lists(hst.booleans(), min_size=6, max_size=6),
)
def test_deferred_verdicts_equal_inline(
    pristine: Path, tmp_path: Path, rate: float, subjects: list[str], collect_after: list[bool]
) -> None:
    """The same requests (same ids, so the same keyed sample) erased with inline and with
    deferred checks, collected after some erasures only: the same requests are checked, with
    the same verdicts (the model that keeps the rows fails either way); a check made at the
    erasure's own revision gives the very same figures."""
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    ids = [f"er_{i:016x}" for i in range(len(subjects))]
    seen: dict[str, dict[tuple[str, str], dict]] = {}
    for mode in (INLINE, DEFERRED):
        directory = copy_of(pristine, root / mode)
        with (
            ModelStore.open(directory, evidence_rate=rate) as st,
            patch.object(erasure, "new_request_id", side_effect=ids),
        ):
            for subject, now in zip(subjects, collect_after, strict=True):
                st.erase(subject, legal_ground="art17-1-b", purge=False, evidence=mode)
                if now and mode == DEFERRED:
                    collect(st)
            if mode == DEFERRED:
                collect(st)
                assert st.evidence_scheduled() == 0
            seen[mode] = {
                (q, a.model): dict(a.evidence) | {"revision": a.revision}
                for q in ids
                for a in st.erasure_request(q).models
            }
            assert st.verify_audit_log().ok
    assert seen[INLINE].keys() == seen[DEFERRED].keys()
    for key, inline in seen[INLINE].items():
        deferred = seen[DEFERRED][key]
        assert inline["method"] == deferred["method"], key
        if inline["method"] == "none":
            assert "status" not in deferred
            continue
        assert deferred["status"] == RECORDED and inline.get("passed") == deferred["passed"]
        assert deferred["passed"] is (key[1] != "liar"), key
        if deferred["checked_revision"] == deferred["revision"]:
            assert {k: inline[k] for k in COMPARED} == {k: deferred[k] for k in COMPARED}
            assert "note" not in deferred
        else:
            assert deferred["checked_revision"] > deferred["revision"]
            assert "later than this request's" in deferred["note"]


def test_report_shows_scheduled_then_recorded_in_the_audit_chain(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    before = st.erasure_report(r.request_id)
    assert before["evidence_status"] == SCHEDULED
    assert [m["evidence"]["status"] for m in before["models"]] == [SCHEDULED, SCHEDULED]
    assert "2 still scheduled" in before["evidence_policy"]
    assert all("evidence_audit" not in m for m in before["models"])

    jobs = st.evidence_jobs()
    assert [(j.model, j.revision, j.checks) for j in jobs] == [
        ("risk", 1, ((r.request_id, 1),)),
        ("score", 1, ((r.request_id, 1),)),
    ]
    assert all(j.X.shape == (len(j.row_ids), len(FEATURES)) for j in jobs)
    for j in jobs:  # the model's answers at the job's revision and an unfitted twin: no copy
        model = st.estimator(j.model, 1)
        assert len(j.served) == len(j.row_ids)  # (fewer rows than probes: all of them)
        np.testing.assert_array_equal(j.served, outputs(model, j.X))
        assert type(j.twin) is type(model) and not hasattr(j.twin, "n_features_in_")
    assert [st.record_evidence(j, j.run()) for j in jobs] == [1, 1]
    assert st.evidence_scheduled() == 0

    after = st.erasure_report(r.request_id)
    assert after["evidence_status"] == RECORDED and "ran after" in after["evidence_policy"]
    for m in after["models"]:
        ev = m["evidence"]
        assert ev["status"] == RECORDED and ev["passed"] is True
        assert ev["checked_revision"] == m["new_revision"] == 1 and "note" not in ev
        assert m["evidence_audit"]["matches"] is True
    entries = [e for e in after["audit_entries"] if e["kind"] == "erasure.evidence_recorded"]
    assert [e["payload"]["model"] for e in entries] == ["risk", "score"]
    assert entries[0]["payload"]["evidence"] == after["models"][0]["evidence"]
    assert st.verify_audit_log().ok

    # the stored evidence edited: the report shows it no longer matches its audit entry
    st._db.execute(
        "UPDATE forget_log SET evidence_json = replace(evidence_json, '\"passed\":true', "
        "'\"passed\":false') WHERE model = 'risk'"
    )
    edited = st.erasure_report(r.request_id)["models"][0]
    assert edited["evidence"]["passed"] is False and edited["evidence_audit"]["matches"] is False
    # the audit entry edited to match: the chain breaks at that entry
    seq = entries[0]["seq"]
    st._db.execute(
        "UPDATE audit_log SET payload_json = replace(payload_json, '\"passed\":true', "
        "'\"passed\":false') WHERE seq = ?",
        [seq],
    )
    check = st.verify_audit_log()
    assert not check.ok and check.first_bad_seq == seq


def test_a_version_that_moved_on_between_phases_says_so(populated: ModelStore) -> None:
    st = populated
    first = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    second = st.erase("subj-001", legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    jobs = st.evidence_jobs()  # both requests' checks, at revision 2
    assert {j.checks for j in jobs} == {((first.request_id, 1), (second.request_id, 2))}
    third = st.erase("subj-002", legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    assert [st.record_evidence(j, j.run()) for j in jobs] == [2, 2]

    ev = st.erasure_request(first.request_id).models[0].evidence
    assert ev["passed"] is True and ev["checked_revision"] == 2
    assert "later than this request's 1" in ev["note"]
    assert "moved on to revision 3 since" in ev["note"]
    assert "later than" not in st.erasure_request(second.request_id).models[0].evidence["note"]
    # the erasure made meanwhile is left for the next round, checked at its own revision
    assert st.evidence_scheduled() == 2
    assert {a.evidence["status"] for a in st.erasure_request(third.request_id).models} == {
        SCHEDULED
    }
    assert collect(st) == 2
    ev = st.erasure_request(third.request_id).models[0].evidence
    assert ev["checked_revision"] == 3 and "note" not in ev
    assert st.verify_audit_log().ok


def test_a_job_recorded_twice_records_once(populated: ModelStore) -> None:
    st = populated
    st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    one, two = st.evidence_jobs(limit=1), st.evidence_jobs(limit=1)
    assert len(one) == 1 and one[0].model == "risk"
    head = st.audit_head()
    assert st.record_evidence(one[0], one[0].run()) == 1
    after = st.audit_head()
    assert after.seq == head.seq + 1
    assert st.record_evidence(two[0], two[0].run()) == 0  # no longer scheduled: left alone
    assert st.audit_head() == after and st.evidence_scheduled() == 1


def test_a_refit_that_fails_is_recorded_not_raised(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    for job in st.evidence_jobs():
        no_rows = replace(job, row_ids=job.row_ids[:0], X=job.X[:0], y=job.y[:0])
        st.record_evidence(job, no_rows.run())
    for a in st.erasure_request(r.request_id).models:
        assert a.evidence["status"] == RECORDED and a.evidence["passed"] is None
        assert a.evidence["error"].startswith("the reference refit failed")


def test_a_model_that_cannot_score_its_probe_rows_is_recorded_not_raised(
    populated: ModelStore,
) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    model = st.estimator("risk", 1)
    with patch.object(type(model), "predict_proba", side_effect=RuntimeError("no scorer")):
        jobs = st.evidence_jobs()  # phase 1 scores the probe rows: its failure is a result
    assert [st.record_evidence(j, j.run()) for j in jobs] == [1, 1]
    risk, score = st.erasure_request(r.request_id).models
    assert risk.evidence["passed"] is None and "could not score" in risk.evidence["error"]
    assert score.evidence["passed"] is True


def test_purge_and_close_collect_what_is_scheduled(store_dir: Path) -> None:
    with ModelStore.open(store_dir) as st:
        populate(st)
        r = st.erase(VICTIM, legal_ground="art17-1-b", evidence=DEFERRED)  # purge=True
        assert r.status == "completed"
        assert {a.evidence["status"] for a in r.models} == {RECORDED}
        q = st.erase("subj-001", legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
        st.purge(evidence=False)
        assert st.evidence_scheduled() == 2
    with ModelStore.open(store_dir) as st:
        assert st.evidence_scheduled() == 0  # close() collected them
        assert all(a.evidence["passed"] for a in st.erasure_request(q.request_id).models)


def set_status(st: ModelStore, model: str, status: str) -> None:
    """Move a version's status behind the store's back, then load memory as an open would."""
    with st._db.atomic():
        st._db.execute("UPDATE model_versions SET status = ? WHERE model = ?", [status, model])
    st._registry.load()


def test_versions_awaiting_a_retrain_wait_and_retired_ones_say_why(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    set_status(st, "risk", "pending_retrain")
    assert [j.model for j in st.evidence_jobs()] == ["score"]  # the forest's check waits
    st.retrain_pending()
    assert [j.model for j in st.evidence_jobs()] == ["risk", "score"]  # the retrained one
    set_status(st, "score", "retired")
    assert collect(st) == 2
    by_model = {a.model: a.evidence for a in st.erasure_request(r.request_id).models}
    assert by_model["risk"]["passed"] is True and by_model["risk"]["checked_revision"] == 1
    assert by_model["score"]["passed"] is None and "retired" in by_model["score"]["reason"]
    assert st.verify_audit_log().ok


def test_scheduled_checks_survive_a_crash_between_phases(pristine: Path, tmp_path: Path) -> None:
    directory = copy_of(pristine, tmp_path / "s")
    st = ModelStore.open(directory)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
    st.purge(evidence=False)  # completed, its checks still scheduled
    jobs = st.evidence_jobs()  # phase 1 ... and the process dies
    assert len(jobs) == 3
    crash(st)
    with ModelStore.open(directory) as again:
        assert again.erasure_request(r.request_id).status == "completed"
        assert again.evidence_scheduled() == 3
        assert collect(again) == 3
        verdicts = {
            a.model: a.evidence["passed"] for a in again.erasure_request(r.request_id).models
        }
        assert verdicts == {"liar": False, "risk": True, "score": True}
        assert again.verify_audit_log().ok


CHILD = (
    "import sys\n"
    "from store import ModelStore\n"
    "st = ModelStore.open(sys.argv[1])\n"
    "jobs = st.evidence_jobs()\n"
    "results = [j.run() for j in jobs]\n"
    "print('phase 2 done', len(jobs), flush=True)\n"
    "sys.stdin.readline()\n"
    "for j, res in zip(jobs, results):\n"
    "    st.record_evidence(j, res)\n"
    "st.close()\n"
)


@pytest.mark.parametrize("how", ["sigkill", "evidence.before_commit", "evidence.after_commit"])
def test_a_killed_collector_loses_no_check(pristine: Path, tmp_path: Path, how: str) -> None:
    directory = copy_of(pristine, tmp_path / "s")
    with ModelStore.open(directory) as st:
        r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, evidence=DEFERRED)
        st.purge(evidence=False)
        crash(st)  # leave the checks scheduled (close() would collect them)
    env = {**os.environ} | ({} if how == "sigkill" else {ENV: how})
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().split() == ["phase", "2", "done", "3"]
    if how == "sigkill":
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
    else:
        child.stdin.write("go\n")
        child.stdin.flush()
        child.communicate(timeout=120)
        assert child.returncode == EXIT_CODE
    with ModelStore.open(directory) as again:
        assert again.verify_audit_log().ok
        recorded = {
            a.model: a.evidence["status"] for a in again.erasure_request(r.request_id).models
        }
        if how == "evidence.after_commit":  # the first version's record committed
            assert sorted(recorded.values()) == [RECORDED, SCHEDULED, SCHEDULED]
        else:
            assert set(recorded.values()) == {SCHEDULED}
        again.collect_evidence()
        report = again.erasure_report(r.request_id)
        assert report["evidence_status"] == RECORDED
        assert all(m["evidence_audit"]["matches"] for m in report["models"])
        kinds = [e["kind"] for e in report["audit_entries"]]
        assert kinds.count("erasure.evidence_recorded") == 3
    assert json.loads(json.dumps(report)) == report
    assert np.isfinite([m["evidence"]["max_abs_diff"] for m in report["models"]]).all()
