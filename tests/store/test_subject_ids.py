"""Subject ids are text exactly as written, whatever the source: no type sniffing of the
subject column, typed sources refused unless cast, one person one id across sources."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from store import ModelStore, SubjectColumnError
from store.data import fetch

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pd = pytest.importorskip("pandas")

# What DuckDB's CSV sniffing turned into numbers, times and hex before: each must stay as is.
AWKWARD = [
    "1.50",
    "1e3",
    "0x1F",
    "2024-01-05T10:00:00",
    "2024-01-05",
    "10:00:00",
    "007",
    " 42",
    "42 ",
    "-0",
    "+1",
    "1_000",
    "true",
    "NaN",
    "inf",
    "NULL",
    "1,5",
    '"quoted"',
    "'quoted'",
    "a;b",
    "\\N",
]
_digits = hst.text("0123456789", min_size=1, max_size=6)
ids = hst.one_of(
    hst.sampled_from(AWKWARD),
    hst.integers(-(10**12), 10**12).map(lambda i: f"{i:08d}"),  # leading zeros
    hst.integers(0, 2**64).map(lambda i: hex(i) if i % 2 else hex(i).upper()),
    hst.floats(allow_nan=False, allow_infinity=False).map(repr),
    hst.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    hst.datetimes().map(lambda d: d.isoformat(sep="T" if d.second % 2 else " ")),
    hst.tuples(hst.sampled_from(["", " ", "  "]), _digits, hst.sampled_from(["", " ", ".0"])).map(
        "".join
    ),
    hst.text(hst.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8),
).filter(lambda s: s.strip() != "")
KINDS = ["csv", "stream", "parquet", "records", "pandas", "arrow"]
_names = (f"d{i}" for i in itertools.count())


def source(kind: str, rows: list[dict[str, Any]], tmp: Path) -> Any:
    """``rows`` ({"sid": text, "x": float}) as a source of ``kind``, the ids as text."""
    if kind in ("csv", "stream"):
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=["sid", "x"])
        w.writeheader()
        w.writerows(rows)
        if kind == "stream":
            return io.StringIO(buf.getvalue())
        path = tmp / f"{next(_names)}.csv"
        path.write_text(buf.getvalue(), encoding="utf-8", newline="")
        return path
    table = pa.table({"sid": [r["sid"] for r in rows], "x": [r["x"] for r in rows]})
    if kind == "parquet":
        path = tmp / f"{next(_names)}.parquet"
        pq.write_table(table, path)
        return path
    if kind == "pandas":
        return table.to_pandas()
    if kind == "arrow":
        return table
    return rows


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelStore, Path]]:
    tmp = tmp_path_factory.mktemp("ids")
    st = ModelStore.open(tmp / "store")
    try:
        yield st, tmp
    finally:
        st.close()


@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(people=hst.lists(ids, min_size=1, max_size=6, unique=True), data=hst.data())
def test_ids_come_back_and_go_exactly_as_written(
    shared: tuple[ModelStore, Path], kind: str, people: list[str], data: hst.DataObject
) -> None:
    st, tmp = shared
    rows = [{"sid": s, "x": float(i)} for i, s in enumerate(people) for _ in range(1 + i % 2)]
    name = next(_names)
    st.ingest(name, source(kind, rows, tmp), subject_column="sid")
    assert st.dataset(name).column("sid").type == "VARCHAR"  # type: ignore[union-attr]
    _, cols = fetch(st._db, name, ["sid", "x"])
    assert sorted(cols["sid"].tolist()) == sorted(str(r["sid"]) for r in rows)
    assert st.dataset(name).column("x").numeric  # type: ignore[union-attr]  # still sniffed
    for i, s in enumerate(people):  # (earlier examples' datasets may hold the same ids)
        assert st.find_subject(s).get(name) == 1 + i % 2, s
    victim = data.draw(hst.sampled_from(people))
    held = st.find_subject(victim)
    r = st.erase(victim, legal_ground="art17-1-b", purge=False)
    assert r.datasets == held and held[name] == 1 + people.index(victim) % 2
    assert st.find_subject(victim) == {}
    for s in people:
        if s != victim:
            assert st.find_subject(s).get(name) == 1 + people.index(s) % 2


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(person=ids, data=hst.data())
def test_one_person_one_id_across_mixed_sources(
    shared: tuple[ModelStore, Path], person: str, data: hst.DataObject
) -> None:
    """Records, then appended CSV, stream, Parquet and frames: the same text is one person."""
    st, tmp = shared
    name = next(_names)
    st.ingest(name, [{"sid": person, "x": 0.0}, {"sid": "other", "x": 1.0}], subject_column="sid")
    later = data.draw(hst.lists(hst.sampled_from(KINDS), min_size=1, max_size=4))
    for k, kind in enumerate(later):
        st.append(name, source(kind, [{"sid": person, "x": float(k)}], tmp))
    held = st.find_subject(person)
    assert held.get(name) == 1 + len(later)
    r = st.erase(person, legal_ground="art17-1-b", purge=False)
    assert r.datasets == held and st.find_subject(person) == {}
    assert st.find_subject("other").get(name) == 1


def test_the_issue_examples_erase_their_rows(tmp_path: Path, st: ModelStore) -> None:
    """``erase("1.50")`` once reported completed with 0 rows: CSV had read it as 1.5."""
    rows = [{"sid": s, "x": float(i)} for i, s in enumerate(AWKWARD[:4])]
    st.ingest("people", source("csv", rows, tmp_path), subject_column="sid")
    for s in AWKWARD[:4]:
        r = st.erase(s, legal_ground="art17-1-b")
        assert (r.status, r.rows_erased) == ("completed", 1), s
    _, cols = fetch(st._db, "people", ["sid"])
    assert cols["sid"].size == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: pd.DataFrame({"sid": [7, 8], "x": [1.0, 2.0]}),
        lambda tmp: pd.DataFrame({"sid": [1.5, 2.0], "x": [1.0, 2.0]}),
        lambda tmp: pd.DataFrame({"sid": [7, "a"], "x": [1.0, 2.0]}),  # object column
        lambda tmp: pa.table({"sid": [7, 8], "x": [1.0, 2.0]}),
        lambda tmp: pa.table({"sid": pa.array([0, 1], pa.timestamp("s")), "x": [1.0, 2.0]}),
        lambda tmp: [{"sid": 7, "x": 1.0}],
        lambda tmp: {"sid": [1.5, "a"], "x": [1.0, 2.0]},
        lambda tmp: [{"sid": True, "x": 1.0}],
    ],
    ids=["pandas-int", "pandas-float", "pandas-object", "arrow-int", "arrow-time", "records-int",
         "columns-float", "records-bool"],
)  # fmt: skip
def test_a_typed_subject_column_is_refused_unless_cast(st: ModelStore, make: Any) -> None:
    before = st.audit_head()
    with pytest.raises(SubjectColumnError, match="not (text|strings)"):
        st.ingest("typed", make(None), subject_column="sid")
    assert st.datasets() == [] and st.audit_head() == before


def test_a_typed_parquet_file_is_refused_and_its_cast_accepted(
    tmp_path: Path, st: ModelStore
) -> None:
    path = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"sid": [10, 7], "x": [1.0, 2.0]}), path)
    with pytest.raises(SubjectColumnError, match=r"'sid' of 'typed.parquet' is BIGINT.*CAST"):
        st.ingest("typed", path, subject_column="sid")
    table = pq.read_table(path)
    cast = table.set_column(0, "sid", table["sid"].cast(pa.string()))  # the caller's cast
    st.ingest("typed", cast, subject_column="sid")
    with pytest.raises(SubjectColumnError):  # appends are held to the same rule
        st.append("typed", path)
    assert st.find_subject("7") == {"typed": 1} and st.find_subject("7.0") == {}
    frame = pd.DataFrame({"sid": [7], "x": [3.0]})
    st.append("typed", frame.astype({"sid": str}))
    assert st.find_subject("7") == {"typed": 2}
