"""forget.Sharded (SISA) inside the store (issue 20, slice 2): an erasure drops the shards the
subject's rows trained, the version keeps serving without them, and the purge retrains them as
a revision of its own; after it the version is the store's fresh ``train`` on the remaining
rows, bit for bit (predictions and artifact)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier

from forget import Sharded
from store import ModelStore
from store.registry import READY
from tests.store.helpers import FEATURES, people

N_SUBJECTS = 24
SUBJECTS = [f"subj-{s:03d}" for s in range(N_SUBJECTS)]
PROBE = np.random.default_rng(5).normal(size=(40, 3))
TRAIN = {"dataset": "people", "label": "label", "features": FEATURES}


def sharded(n_shards: int = 8) -> Sharded:
    tree = DecisionTreeClassifier(max_depth=3, random_state=0)
    return Sharded(tree, n_shards=n_shards, random_state=3)


def _store(directory: Path, erased: list[str] = (), n_shards: int = 8) -> ModelStore:
    """A store with ``people`` and model ``sh`` (Sharded): trained after ``erased`` left."""
    s = ModelStore.open(directory)
    s.ingest("people", people(N_SUBJECTS, seed=2), subject_column="subject_id")
    for subject in erased:
        s.erase(subject, legal_ground="art17-1-b")
    s.train("sh", estimator=sharded(n_shards), **TRAIN)
    return s


def _same_as_fresh(s: ModelStore, directory: Path, erased: list[str], n_shards: int = 8) -> None:
    """The served version equals a fresh store's train on the remaining rows (same row ids)."""
    est = s.estimator("sh", 1)
    assert est.pending_ == ()
    with _store(directory, erased, n_shards) as fresh:
        ref = fresh.estimator("sh", 1)
        np.testing.assert_array_equal(est.predict_proba(PROBE), ref.predict_proba(PROBE))
        assert est.to_bytes() == ref.to_bytes()


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(  # at most 2 subjects (6 rows) between purges: a shard of 8 stays
        st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=2, unique=True),
        min_size=1,
        max_size=3,
    )
)
def test_erase_then_purge_equals_a_fresh_train(tmp_path_factory, batches) -> None:
    d = tmp_path_factory.mktemp("p")
    erased: list[str] = []
    with _store(d / "store") as s:
        for batch in batches:
            for subject in batch:
                r = s.erase(subject, legal_ground="art17-1-b", purge=False)
                if r.repeat or not r.rows_erased:
                    continue
                erased.append(subject)
                (a,) = r.models
                assert a.action == "exact_unlearning" and a.evidence["shards_dropped"]
                assert r.status == "erased"  # not pending: no version awaits a retrain
                mv = s.get_model("sh")
                assert mv.status == READY and mv.revision == a.revision
                served = s.estimator("sh", 1)
                assert set(a.evidence["shards_dropped"]) <= set(served.pending_)
                s.predict("sh", PROBE)  # serves at once, without the dropped shards
            done = s.purge()
            assert all(x.model == "sh" for x in done.shards_retrained)
        assert s.shards_pending() == []
        _same_as_fresh(s, d / "fresh", erased)


def test_a_model_left_with_no_shard_awaits_a_whole_retrain(tmp_path: Path) -> None:
    """One shard: dropping it leaves nothing to serve, so the version awaits a retrain (as any
    model that cannot forget in place) and the purge refits it: the fresh train all the same."""
    with _store(tmp_path / "s", n_shards=1) as s:
        r = s.erase("subj-005", legal_ground="art17-1-b", purge=False)
        assert [a.action for a in r.models] == ["pending_retrain"] and r.status == "pending"
        assert s.get_model("sh").status == "pending_retrain" and s.shards_pending() == []
        s.purge()
        assert s.get_model("sh").status == READY
        _same_as_fresh(s, tmp_path / "fresh", ["subj-005"], n_shards=1)


def test_the_report_names_the_shards_dropped_and_retrained(tmp_path: Path) -> None:
    with _store(tmp_path / "s") as s:
        r = s.erase("subj-004", legal_ground="art17-1-b", purge=False)
        (a,) = r.models
        dropped = a.evidence["shards_dropped"]
        report = s.erasure_report(r.request_id)
        (m,) = report["models"]
        assert m["shards_dropped"] == dropped and "dropping shard" in m["action_text"]
        assert m["evidence_state"] == "scheduled"  # checked once the shards are back
        before = s.get_model("sh").revision
        result = s.purge()
        (done,) = result.shards_retrained
        assert list(done.shards) == dropped and done.requests == (r.request_id,)
        assert done.revision == before + 1 == s.get_model("sh").revision
        forget_step, shard_step = s.erasure_report(r.request_id)["models"]
        assert forget_step["evidence_state"] == "passed"  # the check ran after the retrain
        assert forget_step["evidence"]["shards_dropped"] == dropped
        assert shard_step["action"] == "retrain_shards"
        assert shard_step["shards_retrained"] == dropped
        assert shard_step["retrained_at"] == done.retrained_at
        assert shard_step["new_revision"] == done.revision
        assert str(done.revision) in shard_step["evidence_text"]
        mv = s.get_model("sh")
        assert [x.outcome for x in mv.retrains] == ["shards_retrained"]
        assert mv.lineage[-1].rows_forgotten == 0
        kinds = [e["kind"] for e in s.erasure_report(r.request_id)["audit_entries"]]
        assert kinds.count("erasure.model_action") == 2
        assert s.verify_audit_log().ok
        assert s.erasure_request(r.request_id).status == "completed"


def test_a_reopen_before_the_shard_retrain_ends_exact(tmp_path: Path) -> None:
    """A crash between the erasure and the shard retrain: the replay drops the shards again,
    the open's purge retrains them, and the model is the fresh train's."""
    directory = tmp_path / "s"
    s = _store(directory)
    r = s.erase("subj-007", legal_ground="art17-1-b", purge=False)
    s.erase("subj-011", legal_ground="art17-1-b", purge=False)
    assert s.shards_pending() == [("sh", 1)]
    s._closed = True  # a crash: no purge, no checkpoint
    s._db.close()
    with ModelStore.open(directory) as s:
        assert s.shards_pending() == []
        mv = s.get_model("sh")
        assert mv.status == READY and mv.revision == 3 and mv.retrains[-1].revision == 3
        assert mv.retrains[-1].request_ids[0] == r.request_id
        _same_as_fresh(s, tmp_path / "fresh", ["subj-007", "subj-011"])
        assert s.verify_audit_log().ok


def test_the_shard_retrain_replays_after_a_crash_before_the_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    s = _store(directory)
    s.erase("subj-009", legal_ground="art17-1-b", purge=False)
    (done,) = s._registry.retrain_shards()  # recorded; no checkpoint written after it
    expected = s.estimator("sh", 1).predict_proba(PROBE)
    s._closed = True
    s._db.close()
    with ModelStore.open(directory) as s:
        assert s.get_model("sh").revision == done.revision
        np.testing.assert_array_equal(s.estimator("sh", 1).predict_proba(PROBE), expected)
        assert [x.revision for x in s.get_model("sh").retrains] == [done.revision]


def test_trained_parameters_rebuild_the_model(tmp_path: Path) -> None:
    """The recorded params name the learner as a spec that Sharded takes back."""
    with _store(tmp_path / "s") as s:
        mv = s.get_model("sh")
        inner = mv.params["estimator"]
        assert inner["kind"].startswith("sklearn.tree.") and inner["params"]["max_depth"] == 3
        json.dumps(dict(mv.params))
        ids, X, y = s.training_data("sh", 1)
        again = Sharded(**mv.params).fit(X, y, row_ids=ids)
        np.testing.assert_array_equal(
            again.predict_proba(PROBE), s.estimator("sh", 1).predict_proba(PROBE)
        )


def test_a_spec_names_scikit_learn_classes_only() -> None:
    from forget.sharded import learner

    with pytest.raises(ValueError, match="not a scikit-learn estimator class"):
        learner({"kind": "os.system", "params": {}})
    with pytest.raises(ValueError, match="unknown scikit-learn estimator"):
        learner({"kind": "sklearn.tree.NoSuchTree"})
    with pytest.raises(ValueError, match="does not take"):
        learner({"kind": "sklearn.tree.DecisionTreeClassifier", "params": {"nope": 1}})


def test_a_server_retrains_shards_without_its_lock(tmp_path: Path, monkeypatch) -> None:
    """Service.purge retrains the dropped shards on a copy outside the service lock: an
    erasure arriving meanwhile is answered at once; the copy it outdated is not published,
    and the purge still ends with the exact model."""
    import threading

    from api.metrics import Metrics
    from api.service import Service

    s = _store(tmp_path / "s")
    svc = Service(s, metrics=Metrics(runtime=False), batching=False, purge_interval=0)
    try:
        svc.erase(SUBJECTS[0], "art17-1-b")
        assert s.shards_pending() == [("sh", 1)]
        started, go = threading.Event(), threading.Event()
        real = Sharded.retrain_pending

        def slow(self: Sharded):  # the first retrain (the purge's copy) waits for the test
            if not started.is_set():
                started.set()
                assert go.wait(30)
            return real(self)

        monkeypatch.setattr(Sharded, "retrain_pending", slow)
        purge = threading.Thread(target=svc.purge)
        purge.start()
        assert started.wait(30)
        svc.erase(SUBJECTS[1], "art17-1-b")  # answered while the copy retrains
        revision = s.get_model("sh", 1).revision
        go.set()
        purge.join(60)
        assert not purge.is_alive()
        assert s.shards_pending() == [] and s.get_model("sh", 1).revision == revision + 1
        _same_as_fresh(s, tmp_path / "fresh", SUBJECTS[:2])
    finally:
        svc.close()
