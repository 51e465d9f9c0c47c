"""The whole flow: ingest, train, predict, erase, report, reopen."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

import forget
from store import ErasureReceipt, ModelNotServableError, ModelStore, ModelVersion
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, people, write_csv


def test_full_flow_from_csv(tmp_path: Path, store_dir: Path) -> None:
    rows = people()
    src = write_csv(tmp_path / "people.csv", rows)
    with ModelStore.open(store_dir) as st:
        info = st.ingest("people", src, subject_column="subject_id")
        assert info.n_rows == len(rows) and info.source_kind == "csv"
        assert [c.name for c in info.columns] == list(rows[0])
        v = st.train(
            "risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES
        )
        assert isinstance(v, ModelVersion)
        assert (v.name, v.version, v.revision, v.status) == ("risk", 1, 0, "ready")
        assert v.dataset == "people" and v.code_version == forget.__version__
        assert v.seed == 0 and v.params["n_estimators"] == 5 and len(v.fit_sha256) == 64
        assert st.training_row_ids("risk", 1).size == len(rows)
        before = st.predict("risk", [{"a": 1.0, "b": 2.0, "c": 0.5}, {"a": -3, "b": -3, "c": 0}])
        assert before.shape == (2,) and set(before.tolist()) <= {0, 1}

        r = st.erase(VICTIM, legal_ground="art17-1-b")
        assert isinstance(r, ErasureReceipt)
        assert r.status == "completed" and r.rows_erased == 2 and r.datasets == {"people": 2}
        assert r.subject_key == st.subject_key(VICTIM) and VICTIM not in repr(r)
        assert [(m.model, m.version, m.revision, m.action) for m in r.models] == [
            ("risk", 1, 1, "exact_unlearning")
        ]
        assert st.find_subject(VICTIM) == {}

        mv = st.get_model("risk")
        assert mv.revision == 1 and mv.lineage[0].request_id == r.request_id
        assert mv.lineage[0].rows_forgotten == 2 and mv.artifact_sha256 != mv.fit_sha256

        report = st.erasure_report(r.request_id)
        text = json.dumps(report)  # JSON-able
        assert VICTIM not in text
        assert report["subject_key"] == r.subject_key and report["legal_ground"] == "art17-1-b"
        assert report["deadline_art12_3"] > report["received_at"]
        assert report["datasets"] == [{"dataset": "people", "rows_deleted": 2}]
        (model,) = report["models"]
        assert model["guarantee"] == "exact" and model["new_revision"] == 1
        assert model["evidence"]["passed"] and model["evidence"]["identical"]
        assert report["physical_purge"]["purged_at"] == r.completed_at
        kinds = [e["kind"] for e in report["audit_entries"]]
        assert kinds == ["erasure.committed", "erasure.model_action", "erasure.completed"]
        assert report["audit_chain_head"]["seq"] == st.audit_head().seq
        assert st.verify_audit_log().ok
        head = st.audit_head()

    with ModelStore.open(store_dir) as st:  # state survives a reopen
        assert st.get_model("risk").revision == 1
        assert st.verify_audit_log(expected_head=head).ok
        assert st.erasure_report(r.request_id)["status"] == "completed"
        after = st.predict("risk", np.array([[1.0, 2.0, 0.5], [-3, -3, 0]]))
        assert after.shape == (2,)


def test_erasure_equals_retrain_without_the_rows(populated: ModelStore) -> None:
    st = populated
    rows = people()
    r = st.erase(VICTIM, legal_ground="art17-1-a")
    assert {m.model: m.action for m in r.models} == {
        "risk": "exact_unlearning",
        "score": "exact_unlearning",
    }
    assert all(m.evidence["passed"] for m in r.models)
    # records are given row ids 1, 2, ... in order (the first dataset of the store)
    keep = [i for i, row in enumerate(rows) if row["subject_id"] != VICTIM]
    ids = np.array(keep) + 1
    X = np.array([[rows[i][f] for f in FEATURES] for i in keep])
    ref_risk = hedgecut().fit(X, [rows[i]["label"] for i in keep], row_ids=ids)
    ref_score = linear().fit(X, [rows[i]["score"] for i in keep], row_ids=ids)
    np.testing.assert_array_equal(st.predict("risk", X), ref_risk.predict(X))
    np.testing.assert_allclose(st.predict("score", X), ref_score.predict(X), rtol=1e-8, atol=1e-8)
    # and the same after a reopen (checkpoint artifacts)
    directory = st.directory
    st.close()
    with ModelStore.open(directory) as again:
        np.testing.assert_array_equal(again.predict("risk", X), ref_risk.predict(X))
        np.testing.assert_allclose(again.predict("score", X), ref_score.predict(X), atol=1e-8)


def test_versions_and_lineage(populated: ModelStore) -> None:
    st = populated
    v2 = st.train("score", dataset="people", estimator=linear(), label="score", features=["a", "b"])
    assert v2.version == 2 and st.get_model("score").version == 2
    assert st.get_model("score", 1).features == tuple(FEATURES)
    assert [(m.name, m.version) for m in st.list_models()] == [
        ("risk", 1),
        ("score", 1),
        ("score", 2),
    ]
    r1 = st.erase("subj-003", legal_ground="art17-1-b")
    r2 = st.erase("subj-007", legal_ground="art17-1-c")
    for version in (1, 2):
        lineage = st.get_model("score", version).lineage
        assert [(x.revision, x.request_id) for x in lineage] == [
            (1, r1.request_id),
            (2, r2.request_id),
        ]
    assert st.predict("score", [{"a": 1, "b": 1}]).shape == (1,)  # serving version 2


def test_records_as_columns_and_parquet(tmp_path: Path, st: ModelStore) -> None:
    cols = {
        "sid": ["x1", "x2", "x3", "x4"],
        "f": [1.0, 2.0, 3.0, 4.5],
        "g": [1, 0, 1, 1],
        "t": [2.0, 4.1, 6.0, 9.2],
    }
    info = st.ingest("cols", cols, subject_column="sid")
    assert [(c.name, c.type) for c in info.columns] == [
        ("sid", "VARCHAR"),
        ("f", "DOUBLE"),
        ("g", "BIGINT"),
        ("t", "DOUBLE"),
    ]
    path = tmp_path / "cols.parquet"
    con = duckdb.connect()  # an independent writer of the Parquet file
    con.execute(
        "COPY (SELECT * FROM (VALUES ('x1', 1.0, 1, 2.0), ('x2', 2.0, 0, 4.1), ('x3', 3.0, 1, 6.0),"
        " ('x4', 4.5, 1, 9.2)) v(sid, f, g, t)) TO '" + str(path) + "' (FORMAT parquet)"
    )
    con.close()
    info2 = st.ingest("cols_pq", path, subject_column="sid")
    assert info2.n_rows == 4 and info2.source_kind == "parquet"
    v = st.train("t", dataset="cols_pq", estimator=linear(), label="t", features=["f", "g"])
    assert v.n_rows == 4
    assert st.find_subject("x2") == {"cols": 1, "cols_pq": 1}
    r = st.erase("x2", legal_ground="art17-1-a")
    assert r.datasets == {"cols": 1, "cols_pq": 1} and r.models[0].model == "t"


def test_a_model_left_without_rows_is_retired(st: ModelStore) -> None:
    rows = [
        {"sid": "only", "x": 1.0, "y": 1.0},
        {"sid": "only", "x": 2.0, "y": 3.0},
        {"sid": "only", "x": 3.0, "y": 5.5},
    ]
    st.ingest("tiny", rows, subject_column="sid")
    st.ingest("other", people(5), subject_column="subject_id")
    st.train("tiny_lr", dataset="tiny", estimator=linear(), label="y", features=["x"])
    st.train("ok_lr", dataset="other", estimator=linear(), label="score", features=FEATURES)
    r = st.erase("only", legal_ground="art17-1-b", purge=False)
    (action,) = r.models
    assert r.status == "pending" and r.completed_at is None
    assert action.action == "pending_retrain" and action.evidence["method"] == "none"
    assert "EmptyModelError" in action.evidence["reason"]
    assert st.get_model("tiny_lr").status == "pending_retrain"
    assert st.estimator("tiny_lr", 1) is None
    with pytest.raises(ModelNotServableError):
        st.predict("tiny_lr", [{"x": 1.0}])
    assert st.predict("ok_lr", [{"a": 0, "b": 0, "c": 0}]).shape == (1,)

    result = st.purge()  # retrains first: nothing is left to fit on, so the version retires
    (done,) = result.retrained
    assert (done.model, done.version, done.outcome, done.training_rows) == (
        "tiny_lr",
        1,
        "retired",
        0,
    )
    assert done.requests == (r.request_id,) and done.resolved == (r.request_id,)
    assert result.requests == (r.request_id,)
    after = st.erasure_request(r.request_id)
    assert after.status == "completed"
    assert [(a.action, a.revision) for a in after.models] == [("pending_retrain", 1), ("retire", 1)]
    mv = st.get_model("tiny_lr")
    assert mv.status == "retired" and mv.artifact_sha256 is None  # its artifact held the rows
    assert [(x.outcome, x.request_ids) for x in mv.retrains] == [("retired", (r.request_id,))]
    with pytest.raises(ModelNotServableError, match="retired"):
        st.predict("tiny_lr", [{"x": 1.0}])
    assert not list((st.directory / "artifacts" / "tiny_lr").rglob("*.npz"))
    report = st.erasure_report(r.request_id)
    assert [m["action"] for m in report["models"]] == ["pending_retrain", "retire"]
    assert "model.retired" not in [e["kind"] for e in report["audit_entries"]]  # no request_id
    assert [e["kind"] for e in report["audit_entries"]] == [
        "erasure.committed",
        "model.pending_retrain",
        "erasure.model_action",  # pending_retrain
        "erasure.model_action",  # retire
        "erasure.erased",  # no version keeps it waiting
        "erasure.completed",  # and purged
    ]
    # a later erasure touching nothing but the retired version leaves no model action
    st.append("tiny", [{"sid": "later", "x": 4.0, "y": 7.0}])
    assert st.erase("later", legal_ground="art17-1-b").models == ()
    directory = st.directory
    st.close()
    with ModelStore.open(directory) as again:
        assert again.get_model("tiny_lr").status == "retired"
        assert again.verify_audit_log().ok
