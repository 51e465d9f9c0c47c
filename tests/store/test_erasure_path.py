"""The erasure's fast path: few statements, a failed transaction leaves no trace, sampled
evidence, and the migration that moved model actions onto the forget log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hst

from store import InvalidEvidenceRateError, ModelStore, audit, migrations
from store.db import Database
from store.evidence import Policy
from tests.store.helpers import FEATURES, VICTIM, people, populate

X = np.array([[r[f] for f in FEATURES] for r in people()])


class Counter:
    """Counts the statements a store sends to DuckDB."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sql: list[str] = []
        real = Database.execute

        def execute(db: Database, sql: str, params=None):  # type: ignore[no-untyped-def]
            self.sql.append(sql.split()[0])
            return real(db, sql, params)

        monkeypatch.setattr(Database, "execute", execute)


def test_an_erasure_is_seven_statements(populated: ModelStore, monkeypatch) -> None:
    st = populated
    st.erase("subj-001", legal_ground="art17-1-b", purge=False, verify=False)  # warm the caches
    count = Counter(monkeypatch)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, verify=False)
    assert r.status == "erased" and len(r.models) == 2
    # rows, forget log, request, audit entries, the audit log's sealed head
    assert count.sql == ["BEGIN", "DELETE", "INSERT", "INSERT", "INSERT", "UPDATE", "COMMIT"]
    # the receipt built from memory is the one the database gives back
    assert st.erasure_request(r.request_id) == r


def test_more_datasets_one_lookup(populated: ModelStore, monkeypatch) -> None:
    st = populated
    st.ingest("b", [{"sid": VICTIM, "v": 1.0}, {"sid": "z", "v": 2.0}], subject_column="sid")
    st.ingest("c", [{"sid": "y", "v": 1.0}], subject_column="sid")
    st.erase("subj-001", legal_ground="art17-1-b", purge=False, verify=False)
    count = Counter(monkeypatch)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, verify=False)
    assert r.datasets == {"b": 1, "people": 2}
    # one SELECT finds the datasets holding the subject; only those two get a DELETE
    assert count.sql == [
        "BEGIN",
        "SELECT",
        "DELETE",
        "DELETE",
        "INSERT",
        "INSERT",
        "INSERT",
        "UPDATE",
        "COMMIT",
    ]
    assert st.find_subject(VICTIM) == {}


@pytest.mark.parametrize("where", ["audit", "commit"])
def test_a_failed_transaction_leaves_models_and_caches_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    with ModelStore.open(tmp_path / "ref") as ref:
        populate(ref)
        expected = ref.erase(VICTIM, legal_ground="art17-1-b", purge=False)
        after = {m: ref.predict(m, X) for m in ("risk", "score")}
    with ModelStore.open(tmp_path / "s") as st:
        populate(st)
        before = {m: st.predict(m, X) for m in ("risk", "score")}
        head = st.audit_head()
        real_write, real_execute = audit.write, Database.execute

        def failing_write(db, entries):  # type: ignore[no-untyped-def]
            if any(kind == "erasure.committed" for kind, _ in entries):
                raise OSError("disk full")
            return real_write(db, entries)

        def failing_commit(db, sql, params=None):  # type: ignore[no-untyped-def]
            if sql == "COMMIT":
                raise OSError("disk full")
            return real_execute(db, sql, params)

        if where == "audit":
            monkeypatch.setattr(audit, "write", failing_write)
        else:
            monkeypatch.setattr(Database, "execute", failing_commit)
        with pytest.raises(OSError, match="disk full"):
            st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
        monkeypatch.undo()
        # the models forgot in memory inside the transaction; they were rebuilt from the log
        for m in ("risk", "score"):
            np.testing.assert_array_equal(st.predict(m, X), before[m])
        assert st.find_subject(VICTIM) == {"people": 2}
        assert st.audit_head() == head and st.verify_audit_log().ok
        assert [v.revision for v in st.list_models()] == [0, 0]
        assert st._db.all("SELECT * FROM erasure_requests") == []
        # and the erasure goes through afterwards, to the same models as elsewhere
        r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
        assert [(a.model, a.revision, a.action) for a in r.models] == [
            (a.model, a.revision, a.action) for a in expected.models
        ]
        np.testing.assert_array_equal(st.predict("risk", X), after["risk"])
        np.testing.assert_allclose(st.predict("score", X), after["score"], atol=1e-10)
        assert st.verify_audit_log().ok


def test_sampled_evidence(tmp_path: Path) -> None:
    rows = people(60, seed=2)
    subjects = sorted({r["subject_id"] for r in rows})
    with ModelStore.open(tmp_path / "s", evidence_rate=0.3) as st:
        populate(st, rows)
        assert st.evidence_rate == 0.3
        sampled = []
        for s in subjects[:40]:
            r = st.erase(s, legal_ground="art17-1-a", purge=False)
            report = st.erasure_report(r.request_id)
            draw = st._keys.draw("evidence\x00" + r.request_id)  # the keyed sample, reproduced
            assert report["evidence_sampled"] == (draw < 0.3) and report["evidence_rate"] == 0.3
            methods = {a.evidence["method"] for a in r.models}
            if report["evidence_sampled"]:
                assert methods == {"retrain_from_scratch"}
                assert all(a.evidence["passed"] for a in r.models)
                assert "was sampled" in report["evidence_policy"]
            else:
                assert methods == {"none"}
                assert {a.evidence["reason"] for a in r.models} == {
                    "not sampled: evidence rate 0.3 (keyed random sample of requests)"
                }
                assert "not sampled" in report["evidence_policy"]
            sampled.append(report["evidence_sampled"])
        assert 3 <= sum(sampled) <= 25  # 40 draws at 30%: 12 expected
        # per call: a rate, or True / False, overrides the store's
        everyone = st.erase(subjects[40], legal_ground="art17-1-a", verify=True)
        assert {a.evidence["method"] for a in everyone.models} == {"retrain_from_scratch"}
        nobody = st.erase(subjects[41], legal_ground="art17-1-a", verify=0.0)
        assert {a.evidence["reason"] for a in nobody.models} == {
            "verification skipped (evidence rate 0)"
        }
        report = st.erasure_report(nobody.request_id)
        assert (
            not report["evidence_sampled"] and "no request is checked" in report["evidence_policy"]
        )


def test_bad_evidence_rates_change_nothing(populated: ModelStore, tmp_path: Path) -> None:
    st = populated
    head = st.audit_head()
    for bad in (1.5, -0.1, float("nan"), "yes", [0.5]):
        with pytest.raises(InvalidEvidenceRateError, match=r"\[0, 1\]"):
            st.erase(VICTIM, legal_ground="art17-1-b", verify=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidEvidenceRateError):
        st.evidence_rate = 3
    assert st.evidence_rate == 1.0
    assert st.audit_head() == head and st.find_subject(VICTIM) == {"people": 2}
    with pytest.raises(InvalidEvidenceRateError):
        ModelStore.open(tmp_path / "other", evidence_rate=2)
    assert not (tmp_path / "other").exists()


@given(rate=hst.floats(0, 1), draw=hst.floats(0, 1, exclude_max=True))
def test_policy_samples_below_the_rate(rate: float, draw: float) -> None:
    policy = Policy.of(rate, draw)
    assert policy.sampled == (rate >= 1 or draw < rate)
    assert policy.rate == rate
    if not policy.sampled:
        assert policy.reason()


@given(labels=hst.lists(hst.text(min_size=1), min_size=1, max_size=20, unique=True))
def test_keyed_draws_are_reproducible_and_in_range(labels: list[str]) -> None:
    from store.subjects import SubjectKeys

    a, b = SubjectKeys(b"k" * 32), SubjectKeys(b"q" * 32)
    for label in labels:
        assert 0 <= a.draw(label) < 1 and a.draw(label) == a.draw(label)
    assert [a.draw(x) for x in labels] != [b.draw(x) for x in labels]  # another key, others


def test_migration_moves_actions_onto_the_forget_log(tmp_path: Path, monkeypatch) -> None:
    """A store written before migration 2 keeps its actions (now on forget_log) and marks its
    completed requests purged."""
    first = {1: migrations.MIGRATIONS[1]}
    db = Database.open(tmp_path)
    try:
        monkeypatch.setattr(migrations, "MIGRATIONS", first)
        migrations.apply(db)
        monkeypatch.undo()
        db.execute(
            "INSERT INTO forget_log VALUES ('m', 1, 1, 'er_1', [5, 6], 't0'), "
            "('m', 1, 2, 'er_2', [7], 't1')"
        )
        db.execute(
            "INSERT INTO erasure_actions VALUES ('er_1', 'm', 1, 1, 'exact_unlearning', 'exact', "
            "0.001, '{\"method\":\"none\"}', 't0')"
        )
        db.execute(
            "INSERT INTO erasure_requests VALUES ('er_1', 'sk_a', 'art17-1-b', 'completed', "
            "'t0', 't0', 't2', '{}', 2), ('er_2', 'sk_b', 'art17-1-b', 'erased', 't1', 't1', "
            "NULL, '{}', 1)"
        )
        assert migrations.apply(db) == sorted(migrations.MIGRATIONS)[1:]
        assert db.all("SELECT * FROM erasure_actions") == [
            ("er_1", "m", 1, 1, "exact_unlearning", "exact", 0.001, '{"method":"none"}', "t0")
        ]
        assert db.all("SELECT revision FROM forget_log WHERE action IS NULL") == [(2,)]
        assert db.all("SELECT request_id, purged_at FROM erasure_requests ORDER BY 1") == [
            ("er_1", "t2"),
            ("er_2", None),
        ]
        assert json.loads(db.one("SELECT evidence_json FROM erasure_actions")[0]) == {  # type: ignore[index]
            "method": "none"
        }
    finally:
        db.close()


def test_open_records_outcomes_an_older_store_lost(tmp_path: Path) -> None:
    """Older code recorded model actions in a second transaction after the commit; a crash in
    between left forget_log entries without an outcome. Opening such a store replays them and
    records what the models did, with a retrain check."""
    directory = tmp_path / "s"
    st = ModelStore.open(directory)
    populate(st)
    r = st.erase(VICTIM, legal_ground="art17-1-b", purge=False, verify=False)
    st._db.execute(
        "UPDATE forget_log SET action = NULL, guarantee = NULL, forget_seconds = NULL, "
        "evidence_json = NULL, recorded_at = NULL WHERE request_id = ?",
        [r.request_id],
    )
    st._closed = True  # a crash: no close(), no purge, no checkpoint
    st._db.close()
    with ModelStore.open(directory) as again:
        receipt = again.erasure_request(r.request_id)
        assert receipt.status == "completed"  # recovered, then purged by the open
        assert [(a.model, a.action) for a in receipt.models] == [
            ("risk", "exact_unlearning"),
            ("score", "exact_unlearning"),
        ]
        assert all(a.evidence["passed"] for a in receipt.models)
        assert again._db.all("SELECT * FROM forget_log WHERE action IS NULL") == []
        assert again.verify_audit_log().ok


def test_a_retrain_check_that_cannot_run_never_blocks_the_erasure(
    populated: ModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from store import evidence

    def broken(registry, mv, estimator):  # type: ignore[no-untyped-def]
        raise ValueError("Expected n_neighbors <= n_samples")

    monkeypatch.setattr(evidence, "retrain_check", broken)
    r = populated.erase(VICTIM, legal_ground="art17-1-b", verify=True)
    assert r.status == "completed" and populated.find_subject(VICTIM) == {}
    for a in r.models:
        assert a.evidence["passed"] is None and "n_neighbors" in a.evidence["error"]
