"""Data frames and Arrow tables as sources; appending rows; dropping a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from store import (
    DatasetInUseError,
    ModelStore,
    SchemaMismatchError,
    SourceError,
    SubjectColumnError,
    UnknownDatasetError,
)
from store.data import fetch
from tests.store.helpers import FEATURES, VICTIM, linear, needles, people, populate, scan, write_csv


def snapshot(st: ModelStore) -> tuple:
    return (
        st.audit_head(),
        [(d.name, d.n_rows) for d in st.datasets()],
        st._db.one("SELECT value FROM store_meta WHERE key = 'next_row_id'"),
        st._db.one("SELECT count(*) FROM data.people"),
    )


def test_pandas_frame_ingest_train_erase(st: ModelStore) -> None:
    pd = pytest.importorskip("pandas")
    rows = people()
    df = pd.DataFrame(rows)
    info = st.ingest("people", df, subject_column="subject_id")
    assert info.source_kind == "frame" and info.n_rows == len(rows)
    assert [(c.name, c.type) for c in info.columns] == [
        ("subject_id", "VARCHAR"),
        ("a", "DOUBLE"),
        ("b", "DOUBLE"),
        ("c", "DOUBLE"),
        ("label", "BIGINT"),
        ("score", "DOUBLE"),
    ]
    ids, cols = fetch(st._db, "people", ["subject_id", "a"])
    np.testing.assert_array_equal(ids, np.arange(1, len(rows) + 1))  # the frame's row order
    np.testing.assert_array_equal(cols["a"], df["a"].to_numpy())
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
    assert st.find_subject(VICTIM) == {"people": 2}
    r = st.erase(VICTIM, legal_ground="art17-1-b")
    assert r.rows_erased == 2 and r.models[0].evidence["passed"]


def test_arrow_table_ingest_and_append(st: ModelStore) -> None:
    pa = pytest.importorskip("pyarrow")
    rows = people(6)
    st.ingest("people", pa.Table.from_pylist(rows), subject_column="subject_id")
    more = people(4, seed=9)
    done = st.append("people", pa.Table.from_pylist(more))
    assert done.rows == len(more) and done.first_row_id == len(rows) + 1
    assert st.dataset("people").n_rows == len(rows) + len(more)


def test_bad_frames_change_nothing(st: ModelStore) -> None:
    pd = pytest.importorskip("pandas")
    before = st.audit_head()
    with pytest.raises(SourceError, match="reserved"):
        st.ingest("bad", pd.DataFrame({"sid": ["a"], "row_id": [7]}), subject_column="sid")
    with pytest.raises(SourceError, match="case"):
        st.ingest("bad", pd.DataFrame({"sid": ["a"], "V": [1.0], "v": [2.0]}), subject_column="sid")
    with pytest.raises(SubjectColumnError, match="1 empty"):
        st.ingest("bad", pd.DataFrame({"sid": ["a", None], "v": [1.0, 2.0]}), subject_column="sid")
    with pytest.raises(SourceError, match="no rows"):
        st.ingest("empty", pd.DataFrame({"sid": [], "v": []}), subject_column="sid")
    with pytest.raises(SubjectColumnError):
        st.ingest("nosubj", pd.DataFrame({"x": [1.0]}), subject_column="sid")
    assert st.datasets() == [] and st.audit_head() == before
    assert not st._db.all("SELECT * FROM duckdb_tables() WHERE temporary")  # no staging left
    # DuckDB reads a column of mixed Python objects as text: a column a model cannot use
    mixed = st.ingest(
        "mixed", pd.DataFrame({"sid": ["a", "b"], "v": [1.0, object()]}), subject_column="sid"
    )
    assert mixed.column("v").type == "VARCHAR"


def test_append_records_and_csv(tmp_path: Path, populated: ModelStore) -> None:
    st = populated
    n0 = st.dataset("people").n_rows
    extra = [
        {"subject_id": "new-1", "a": 1, "b": 2.5, "c": 0.0, "label": 1, "score": 1.0},  # int a
        {"subject_id": "new-2", "a": 0.5, "b": -1.0, "c": 2.0, "label": 0, "score": -2.0},
    ]
    done = st.append("people", extra)
    assert (done.rows, done.first_row_id, done.last_row_id) == (2, n0 + 1, n0 + 2)
    csv_rows = [dict(r, subject_id=f"csv-{i}") for i, r in enumerate(people(3, seed=4))]
    # columns in another order are fine
    reordered = [dict(reversed(list(r.items()))) for r in csv_rows]
    done2 = st.append("people", write_csv(tmp_path / "more.csv", reordered))
    assert done2.first_row_id == n0 + 3 and done2.rows == len(csv_rows)
    assert st.find_subject("new-1") == {"people": 1} and st.find_subject("csv-0") == {"people": 1}
    # new ids never collide with another dataset's
    other = st.ingest("other", [{"sid": "x", "v": 1.0}], subject_column="sid")
    assert other.n_rows == 1
    ids, _ = fetch(st._db, "other", ["v"])
    assert ids.tolist() == [done2.last_row_id + 1]
    # models keep their rows: a version does not train on appended ones
    assert st.training_row_ids("score", 1).size == n0
    r = st.erase("new-1", legal_ground="art17-1-a")
    assert r.rows_erased == 1 and r.models == ()


def test_append_refuses_what_does_not_fit(tmp_path: Path, populated: ModelStore) -> None:
    st = populated
    before = snapshot(st)
    good = people(2, seed=5)
    with pytest.raises(SchemaMismatchError, match=r"missing \['score'\]"):
        st.append("people", [{k: v for k, v in r.items() if k != "score"} for r in good])
    with pytest.raises(SchemaMismatchError, match=r"not in the dataset \['z'\]"):
        st.append("people", [dict(r, z=1.0) for r in good])
    with pytest.raises(SchemaMismatchError, match="label"):
        st.append("people", [dict(r, label="yes") for r in good])
    with pytest.raises(SchemaMismatchError, match="label"):  # DOUBLE into a BIGINT column
        st.append("people", [dict(r, label=0.5) for r in good])
    text = write_csv(tmp_path / "t.csv", [dict(r, a="x") for r in good])
    with pytest.raises(SchemaMismatchError, match="a"):
        st.append("people", text)
    with pytest.raises(SubjectColumnError):
        st.append("people", [dict(good[0], subject_id=None)])
    with pytest.raises(SourceError, match="no rows"):
        st.append("people", {"subject_id": [], "a": [], "b": [], "c": [], "label": [], "score": []})
    with pytest.raises(SourceError):
        st.append("people", tmp_path / "missing.csv")
    with pytest.raises(UnknownDatasetError):
        st.append("nope", good)
    assert snapshot(st) == before


def test_drop_dataset(tmp_path: Path, populated: ModelStore) -> None:
    st = populated
    with pytest.raises(DatasetInUseError, match="'risk' v1"):
        st.drop_dataset("people")
    with pytest.raises(UnknownDatasetError):
        st.drop_dataset("nope")
    st.ingest("extra", [{"sid": "dropped-1", "v": 9182.736451928}], subject_column="sid")
    head = st.audit_head()
    assert st.drop_dataset("extra") == 1
    assert [d.name for d in st.datasets()] == ["people"]
    assert st.audit_head().seq == head.seq + 1 and st.verify_audit_log().ok
    with pytest.raises(UnknownDatasetError):
        st.dataset("extra")
    assert st.find_subject("dropped-1") == {} and st.find_subject(VICTIM) == {"people": 2}
    # the dropped rows left the file: the drop compacts the database
    assert scan(st.directory, {"id": b"dropped-1", "v": np.float64(9182.736451928).tobytes()}) == []


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=hst.lists(
        hst.lists(
            hst.tuples(
                hst.text("abcxyz", min_size=1, max_size=4),
                hst.floats(-1e6, 1e6, allow_nan=False),
                hst.integers(-(2**40), 2**40),
            ),
            min_size=1,
            max_size=5,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_appends_round_trip(tmp_path_factory: pytest.TempPathFactory, batches) -> None:
    """Rows appended in batches come back as written, under fresh consecutive row ids."""
    with ModelStore.open(tmp_path_factory.mktemp("app") / "s") as st:
        st.ingest("d", [{"sid": "s0", "x": 0.0, "k": 0}], subject_column="sid")
        expected = [("s0", 0.0, 0)]
        for batch in batches:
            st.append("d", [{"sid": s, "x": x, "k": k} for s, x, k in batch])
            expected += batch
        ids, cols = fetch(st._db, "d", ["sid", "x", "k"])
        assert ids.tolist() == list(range(1, len(expected) + 1))
        got = list(zip(cols["sid"].tolist(), cols["x"].tolist(), cols["k"].tolist(), strict=True))
        assert got == [(s, float(x), k) for s, x, k in expected]
        assert st.dataset("d").n_rows == len(expected)


def test_populate_helper_still_works(st: ModelStore) -> None:
    populate(st)
    assert scan(st.directory, needles())  # sanity: the scanner sees the victim before erasure
