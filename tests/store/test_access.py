"""The right of access (Art. 15) and portability (Art. 20): ``ModelStore.access`` (issue 19)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

from store import InvalidSubjectError, ModelStore, StoreReadOnlyError
from store.access import json_value
from store.errors import UnknownSubjectError
from tests.store.helpers import FEATURES, VICTIM, linear, people


def _accesses(st: ModelStore) -> list[dict]:
    rows = st._db.all("SELECT payload_json FROM audit_log WHERE kind = 'subject.access'")
    return [json.loads(p) for (p,) in rows]


def test_access_gives_the_rows_the_models_and_what_serves(populated: ModelStore) -> None:
    st = populated
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    doc = st.access(VICTIM)
    assert doc["found"] and doc["subject_key"] == st.subject_key(VICTIM)
    (ds,) = doc["datasets"]
    mine = [r for r in people() if r["subject_id"] == VICTIM]
    assert ds["dataset"] == "people" and ds["subject_column"] == "subject_id"
    assert ds["records"] == mine and ds["rows"] == 2 and len(ds["row_ids"]) == 2
    models = {(m["model"], m["version"]): m for m in doc["models"]}
    assert set(models) == {("risk", 1), ("score", 1), ("score", 2)}
    assert models[("risk", 1)]["served_by"] == ["default"] and models[("risk", 1)]["served"]
    # the bare name routes to the newest ready version: v1 of score is ready, not served
    assert not models[("score", 1)]["served"] and models[("score", 1)]["status"] == "ready"
    assert models[("score", 2)]["served"] and models[("score", 2)]["rows"] == 2
    st.set_alias("score", "canary", 1)
    again = {(m["model"], m["version"]): m for m in st.access(VICTIM)["models"]}
    assert again[("score", 1)]["served_by"] == ["canary"]
    assert doc["forgotten"] == [] and doc["exports"] == [] and doc["erasure_requests"] == []
    assert doc["counts"] == {
        "datasets": 1,
        "rows": 2,
        "models_trained": 3,
        "models_served": 2,
        "models_forgot": 0,
        "exports": 0,
        "erasure_requests": 0,
        "objections": 0,
        "restrictions": 0,
    }
    json.dumps(doc, allow_nan=False)  # JSON as it is


def test_access_is_audited_by_pseudonym_and_counts(populated: ModelStore) -> None:
    st = populated
    st.access(VICTIM)
    (entry,) = _accesses(st)
    assert entry["subject_key"] == st.subject_key(VICTIM) and entry["found"] is True
    assert entry["rows"] == 2 and entry["models_trained"] == 2
    raw = st._db.all("SELECT payload_json FROM audit_log")
    assert not any(VICTIM in p or "7341.918" in p for (p,) in raw)
    assert st.verify_audit_log().ok


def test_an_unknown_subject_is_refused_but_audited(populated: ModelStore) -> None:
    st = populated
    with pytest.raises(UnknownSubjectError) as err:
        st.access("nobody-9f1e")
    assert isinstance(err.value, LookupError) and "nobody" not in str(err.value)
    (entry,) = _accesses(st)
    assert entry["found"] is False and entry["rows"] == 0
    assert st.verify_audit_log().ok


@pytest.mark.parametrize("bad", ["", None, 17, ["s"], b"subj-001"])
def test_bad_ids_are_refused_and_change_nothing(populated: ModelStore, bad: object) -> None:
    head = populated.audit_head()
    with pytest.raises(InvalidSubjectError):
        populated.access(bad)  # type: ignore[arg-type]
    assert populated.audit_head() == head


def test_a_read_only_store_cannot_audit_an_access(populated: ModelStore, store_dir: Path) -> None:
    populated.close()
    with ModelStore.open(store_dir, read_only=True) as ro, pytest.raises(StoreReadOnlyError):
        ro.access(VICTIM)


def test_after_erasure_the_request_and_the_forgetting_remain(populated: ModelStore) -> None:
    st = populated
    receipt = st.erase(VICTIM, legal_ground="art17-1-b")
    doc = st.access(VICTIM)
    assert doc["found"] and doc["datasets"] == [] and doc["models"] == []
    (req,) = doc["erasure_requests"]
    assert (req["request_id"], req["status"], req["rows_erased"]) == (
        receipt.request_id,
        "completed",
        2,
    )
    forgot = {(f["model"], f["version"], f["revision"], f["request_id"]) for f in doc["forgotten"]}
    assert forgot == {("risk", 1, 1, receipt.request_id), ("score", 1, 1, receipt.request_id)}
    assert doc["counts"]["models_forgot"] == 2 and doc["counts"]["rows"] == 0


def test_exports_that_carry_the_subject(populated: ModelStore) -> None:
    pytest.importorskip("onnxruntime")
    st = populated
    _, rec = st.export("score", recipient="acme-scoring")
    (copy,) = st.access(VICTIM)["exports"]
    assert copy["export_id"] == rec.export_id and copy["reason"] == "trained_on_rows"
    assert not copy["stale"] and copy["revision"] == 0
    assert st.access("subj-001")["exports"][0]["export_id"] == rec.export_id  # everyone's

    receipt = st.erase(VICTIM, legal_ground="art17-1-b")
    (copy,) = st.access(VICTIM)["exports"]
    assert copy["reason"] == "exported_before_erasure" and copy["stale"]
    assert copy["request_id"] == receipt.request_id and copy["replaced_by"] is None
    assert "notify" in copy["action"]
    # the others' rows are still in the model: their copy is stale, and still theirs
    (other,) = st.access("subj-001")["exports"]
    assert other["reason"] == "trained_on_rows" and other["stale"]

    _, fresh = st.export("score", recipient="acme-scoring")
    (copy,) = st.access(VICTIM)["exports"]
    assert copy["replaced_by"] == fresh.export_id and "delete the older copy" in copy["action"]


def test_values_are_json_safe(st: ModelStore) -> None:
    rows = [
        {"sid": "a", "x": 1.0, "note": "é ✓", "flag": True},
        {"sid": "a", "x": float("nan"), "note": None, "flag": False},
        {"sid": "b", "x": float("inf"), "note": "b", "flag": True},
    ]
    st.ingest("odd", rows, subject_column="sid")
    (ds,) = st.access("a")["datasets"]
    assert ds["records"] == [
        {"sid": "a", "x": 1.0, "note": "é ✓", "flag": True},
        {"sid": "a", "x": "NaN", "note": None, "flag": False},
    ]
    assert json_value(float("-inf")) == "-Infinity" and json_value(dt.date(2025, 1, 2)) == (
        "2025-01-02"
    )
    assert json_value(decimal.Decimal("1.10")) == "1.10" and json_value([b"\x01"]) == ["01"]


# ---------------------------------------------------------------------- the property
_ID = st_.text(st_.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1)


@st_.composite
def _stores(draw: st_.DrawFn) -> tuple[list[str], list[list[dict]], str]:
    """Up to 3 datasets of rows spread over a few subjects (one of them the one asked for)."""
    subjects = draw(st_.lists(_ID.filter(str.strip), min_size=1, max_size=4, unique=True))
    tables = []
    for _ in range(draw(st_.integers(1, 3))):
        owners = draw(st_.lists(st_.sampled_from(subjects), min_size=2, max_size=12))
        tables.append(
            [
                {"sid": s, "x": float(i), "y": 2.0 * i + (s == subjects[0])}
                for i, s in enumerate(owners)
            ]
        )
    return subjects, tables, draw(st_.sampled_from(subjects))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stores())
def test_the_rows_given_are_exactly_the_subjects_and_erasure_leaves_none(case) -> None:
    subjects, tables, who = case
    with tempfile.TemporaryDirectory() as d, ModelStore.open(d) as st:
        for k, rows in enumerate(tables):
            st.ingest(f"t{k}", rows, subject_column="sid")
        st.train("m", dataset="t0", estimator=linear(), label="y", features=["x"])
        expected = {
            f"t{k}": [r for r in rows if r["sid"] == who]
            for k, rows in enumerate(tables)
            if any(r["sid"] == who for r in rows)
        }
        if not expected:
            with pytest.raises(UnknownSubjectError):
                st.access(who)
            return
        doc = st.access(who)
        assert {d["dataset"]: d["records"] for d in doc["datasets"]} == expected
        assert [(m["model"], m["rows"]) for m in doc["models"]] == (
            [("m", len(expected["t0"]))] if "t0" in expected else []
        )
        receipt = st.erase(who, legal_ground="art17-1-b")
        after = st.access(who)
        assert after["datasets"] == [] and after["models"] == []
        assert [r["request_id"] for r in after["erasure_requests"]] == [receipt.request_id]
        assert {f["model"] for f in after["forgotten"]} == ({"m"} if "t0" in expected else set())
        for other in set(subjects) - {who}:  # the others keep their rows
            if any(r["sid"] == other for rows in tables for r in rows):
                assert st.access(other)["counts"]["rows"] == sum(
                    r["sid"] == other for rows in tables for r in rows
                )
