"""Migrations, pseudonyms, timestamps, and the doctests of the store modules."""

from __future__ import annotations

import doctest
import importlib
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from store import ModelStore, migrations
from store._clock import add_month
from store.subjects import KEY_FILE

MODULES = [
    "_clock",
    "audit",
    "evidence",
    "migrations",
    "purposes",
    "retention",
    "stages",
    "store",
    "subjects",
    "versions",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"store.{name}"))
    assert result.failed == 0 and result.attempted > 0


def test_migrations_are_recorded_once(st: ModelStore) -> None:
    recorded = st._db.all("SELECT number, name FROM schema_migrations ORDER BY number")
    assert [n for n, _ in recorded] == sorted(migrations.MIGRATIONS)
    assert migrations.apply(st._db) == []  # nothing left to apply
    with pytest.raises(ValueError, match="twice"):
        migrations.migration(1, "again")(lambda db: None)


def test_pseudonyms_are_keyed_and_stable(store_dir: Path, tmp_path: Path) -> None:
    with ModelStore.open(store_dir) as st:
        key = st.subject_key("alice")
    assert stat.S_IMODE((store_dir / KEY_FILE).stat().st_mode) == 0o600
    with ModelStore.open(store_dir) as st:
        assert st.subject_key("alice") == key and st.subject_key("bob") != key
    with ModelStore.open(tmp_path / "other") as other:  # another store, another key
        assert other.subject_key("alice") != key


def test_deadline_is_one_calendar_month() -> None:
    assert add_month("2024-01-31T00:00:00.000000+00:00").startswith("2024-02-29")
    assert add_month("2024-12-15T08:30:00.000000+00:00").startswith("2025-01-15T08:30")


@settings(max_examples=25, deadline=None)
@given(
    rows=st_.lists(
        st_.tuples(
            st_.text(max_size=5),
            st_.one_of(st_.none(), st_.integers(-(2**62), 2**62)),
            st_.lists(st_.integers(0, 2**40), max_size=3),
            st_.one_of(st_.none(), st_.floats(allow_nan=False)),
        ),
        max_size=40,
    ),
    constant=st_.sets(st_.integers(0, 3)),
)
def test_insert_stores_what_values_would(
    tmp_path_factory: pytest.TempPathFactory, rows, constant
) -> None:
    """Database.insert binds a few rows as VALUES and more as unnested column lists (from
    _UNNEST_FROM rows), a column of one value as one parameter: either way the table holds
    exactly the rows, NULLs and lists included (``constant``: columns given the first row's
    value throughout)."""
    from store.db import Database

    rows = [tuple(rows[0][c] if c in constant else v for c, v in enumerate(r)) for r in rows]
    db = Database.open(tmp_path_factory.mktemp("db"))
    try:
        db.execute("CREATE TABLE t (i INTEGER, a VARCHAR, b BIGINT, c BIGINT[], d DOUBLE)")
        db.insert("t", ["i", "a", "b", "c", "d"], [(i, *r) for i, r in enumerate(rows)])
        got = db.all("SELECT a, b, c, d FROM t ORDER BY i")
        assert got == [tuple(r) for r in rows]
    finally:
        db.close()


def test_commits_never_checkpoint_behind_the_servers_back_purges_and_close_do(tmp_path: Path):
    """A checkpoint made by a commit stops every other connection's statements while it
    writes (the serving loop's erasure read waited 70 ms for one): past DuckDB's own 16 MB
    the WAL stays, until a purge or close checkpoints where waiting is harmless."""
    from store.db import Database

    db = Database.open(tmp_path)
    wal = db.path.with_name(db.path.name + ".wal")
    db.execute("CREATE TABLE scratch (a VARCHAR)")
    for k in range(6):  # commits of ~5 MB, each too small to bypass the WAL
        db.execute("INSERT INTO scratch SELECT repeat(?, 500) FROM range(10_000)", [str(k)])
    assert wal.exists() and wal.stat().st_size > 24 * 2**20
    db.checkpoint()
    assert not wal.exists() or wal.stat().st_size == 0
    db.execute("INSERT INTO scratch SELECT 'x' FROM range(1000)")
    db.close()
    assert not wal.exists()
