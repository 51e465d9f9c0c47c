"""Deleting model versions, by hand and by retention: refused while aliased, gone from disk."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from forget.linear import LinearRegression
from store import ModelStore, UnknownModelError
from store.aliases import InvalidRetentionError, VersionInUseError
from store.errors import StoreReadOnlyError
from tests.store.helpers import FEATURES, VICTIM, budgeted, linear, people, populate, scan


def _train_score(st: ModelStore, dataset: str = "people") -> int:
    mv = st.train("score", dataset=dataset, estimator=linear(), label="score", features=FEATURES)
    return mv.version


def _kinds(st: ModelStore, kind: str) -> list[str]:
    return [p for (p,) in st._db.all("SELECT payload_json FROM audit_log WHERE kind = ?", [kind])]


def test_delete_removes_the_version_and_keeps_its_number(populated: ModelStore, store_dir: Path):
    st = populated
    _train_score(st)
    assert (store_dir / "artifacts" / "score" / "v2").is_dir()
    mv = st.delete_version("score", 2, by="ops")
    assert mv.version == 2
    assert [(m.name, m.version) for m in st.list_models()] == [("risk", 1), ("score", 1)]
    assert not (store_dir / "artifacts" / "score" / "v2").exists()
    assert st._db.all("SELECT * FROM version_rows WHERE model = 'score' AND version = 2") == []
    with pytest.raises(UnknownModelError, match=r"'score' v2"):
        st.get_model("score", 2)
    assert st.estimator("score", 2) is None
    assert _train_score(st) == 3  # never 2 again: logs and the audit chain name the old one
    (entry,) = _kinds(st, "model.version_deleted")
    assert '"by":"ops"' in entry and '"version":2' in entry
    assert st.verify_audit_log().ok
    assert st.resolve("score").version == 3


def test_delete_refused_while_an_alias_names_it(populated: ModelStore):
    st = populated
    _train_score(st)
    _train_score(st)
    st.set_alias("score", "champion", 1)
    st.set_alias("score", "canary", {1: 0.5, 2: 0.5})
    st.set_alias("score", "shadowed", 1, shadow=3)
    for version, names in ((1, "canary', 'champion', 'shadowed"), (2, "canary"), (3, "shadowed")):
        with pytest.raises(VersionInUseError, match=f"aliases \\['{names}'\\]"):
            st.delete_version("score", version)
    assert len([m for m in st.list_models() if m.name == "score"]) == 3
    st.delete_alias("score", "shadowed")
    st.delete_version("score", 3)
    assert [m.version for m in st.list_models() if m.name == "score"] == [1, 2]


def test_delete_unknown_and_read_only(populated: ModelStore, store_dir: Path):
    st = populated
    with pytest.raises(UnknownModelError, match=r"'score' v7"):
        st.delete_version("score", 7)
    with pytest.raises(UnknownModelError, match="no model 'nope'"):
        st.delete_version("nope", 1)
    st.close()
    with ModelStore.open(store_dir, read_only=True) as ro, pytest.raises(StoreReadOnlyError):
        ro.delete_version("score", 1)


def test_deleted_version_leaves_no_byte_on_disk(st: ModelStore, store_dir: Path):
    st.ingest("people", people(), subject_column="subject_id")
    _train_score(st)
    st.ingest("other", people(n_subjects=25, seed=7), subject_column="subject_id")
    alpha = 0.7316284951  # in the version's row (params) and nowhere else in the database
    est = LinearRegression(alpha=alpha)
    v = st.train("score", dataset="other", estimator=est, label="score", features=FEATURES).version
    est = st.estimator("score", v)
    assert est is not None
    coef = [*map(float, est.coef_.ravel()), float(est.intercept_)]
    marks = {f"coef {c!r}": struct.pack("<d", c) for c in coef}
    marks["params"] = repr(alpha).encode()
    st.close()
    before = scan(store_dir, marks)
    assert any("store.duckdb: params" in hit for hit in before), before
    assert any("artifacts" in hit and "coef" in hit for hit in before), before
    with ModelStore.open(store_dir) as st2:
        st2.delete_version("score", v)
    assert scan(store_dir, marks) == []
    with ModelStore.open(store_dir) as st3:  # and the store still opens, serves, verifies
        assert st3.resolve("score").version == 1
        assert st3.verify_audit_log().ok


def test_deleting_the_version_a_request_waits_for_releases_it(st: ModelStore):
    populate(st)
    st.train("bud", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
    receipt = st.erase(VICTIM, legal_ground="art17-1-b", purge=False)
    assert receipt.status == "pending"
    st.delete_version("bud", 1, by="ops")
    assert st.erasure_request(receipt.request_id).status in ("erased", "completed")
    assert st.find_subject(VICTIM) == {}
    assert st.verify_audit_log().ok


def test_retention_keeps_the_last_n_and_aliased_versions(store_dir: Path):
    with ModelStore.open(store_dir) as st:
        populate(st)  # score v1
        assert st.retention is None
        for _ in range(3):
            _train_score(st)  # v2..v4: nothing deleted while retention is off
        st.set_alias("score", "champion", 1)
        deleted = st.set_retention(2, by="ops")
        assert [(m.name, m.version) for m in deleted] == [("score", 2)]
        assert [m.version for m in st.list_models() if m.name == "score"] == [1, 3, 4]
        _train_score(st)  # v5: v3 expires; v1 stays aliased
        assert [m.version for m in st.list_models() if m.name == "score"] == [1, 4, 5]
        assert [m.version for m in st.list_models() if m.name == "risk"] == [1]
    with ModelStore.open(store_dir) as st:
        assert st.retention == 2  # a store setting: it persists
        st.delete_alias("score", "champion")
        _train_score(st)  # v6: v1 (no longer aliased) and v4 expire
        assert [m.version for m in st.list_models() if m.name == "score"] == [5, 6]
        assert st.set_retention(None) == []
        _train_score(st)
        assert [m.version for m in st.list_models() if m.name == "score"] == [5, 6, 7]
        assert st.verify_audit_log().ok
        assert len(_kinds(st, "store.retention_set")) == 2


def test_retention_keeps_the_newest_ready_version(st: ModelStore):
    populate(st)
    st.train("bud", dataset="people", estimator=linear(), label="score", features=FEATURES)
    st.train("bud", dataset="people", estimator=budgeted(), label="label", features=FEATURES)
    st.erase(VICTIM, legal_ground="art17-1-b", purge=False)  # bud v2 pending, v1 ready
    assert st.get_model("bud", 2).status == "pending_retrain"
    st.set_retention(1)
    assert [m.version for m in st.list_models() if m.name == "bud"] == [1, 2]
    assert st.resolve("bud").version == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_retention_is_refused(populated: ModelStore, bad):
    with pytest.raises(InvalidRetentionError):
        populated.set_retention(bad)
    assert populated.retention is None
