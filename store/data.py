"""Datasets: ingest and append (files, records, frames), subject lookups, deletion, fetching.

Each dataset is a table ``data."<name>"`` with the source's columns plus ``row_id BIGINT``, an
id unique across the store that models use to name their training rows. The subject column
holds the raw subject id (as text); it is the only place the store keeps it. The catalogue of
datasets is read once and kept in memory (``Database.cache``) until a dataset changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import duckdb
import numpy as np

from store import audit, sources
from store._clock import now
from store.db import Database, check_name, quote
from store.errors import (
    DatasetExistsError,
    DatasetInUseError,
    SchemaMismatchError,
    SourceError,
    SubjectColumnError,
    UnknownDatasetError,
)
from store.subjects import Subject

_CATALOG = "data.catalog"
_INTEGERS = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)
_NUMERIC = (*_INTEGERS, "FLOAT", "DOUBLE", "DECIMAL", "BOOLEAN")
ROW_ID = sources.ROW_ID
Records = sources.Records


@dataclass(frozen=True)
class Column:
    name: str
    type: str

    @property
    def numeric(self) -> bool:
        return self.type.split("(")[0] in _NUMERIC


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's name, subject column, columns (without ``row_id``) and size.

    ``n_rows`` counts the rows ingested and appended; erasures do not lower it.
    """

    name: str
    subject_column: str
    columns: tuple[Column, ...]
    n_rows: int
    source_kind: str
    created_at: str

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def table(name: str) -> str:
    return f"data.{quote(check_name(name, 'dataset'))}"


def index_subjects(db: Database, name: str, subject_column: str) -> None:
    """Index the dataset's subject column: an erasure finds a subject's rows in ~1 ms at any
    size (a scan of 1M rows takes ~7). The index holds subject ids as the table does;
    deleted rows leave it, and the purge's compaction rebuilds it from the remaining rows."""
    db.execute(
        f"CREATE INDEX IF NOT EXISTS {quote('subjects_' + name)} "
        f"ON {table(name)}({quote(subject_column)})"
    )


@dataclass(frozen=True)
class Appended:
    """What :func:`append` added: ``rows`` rows with ids ``first_row_id..last_row_id``."""

    dataset: str
    rows: int
    first_row_id: int
    last_row_id: int
    n_rows: int


def ingest(db: Database, name: str, source: object, subject_column: str) -> DatasetInfo:
    """Create dataset ``name`` from ``source``; all or nothing."""
    check_name(name, "dataset")
    if not isinstance(subject_column, str) or not subject_column:
        raise SubjectColumnError(f"subject_column must be a column name, got {subject_column!r}")
    kind = sources.kind_of(source)
    with db.atomic():
        if name in catalog(db):
            raise DatasetExistsError(name)
        base = _next_row_id(db)
        tbl = table(name)
        if kind == "records":
            columns = sources.as_columns(source)  # type: ignore[arg-type]
            sources.check_columns(columns, subject_column)
            if not len(next(iter(columns.values()))):
                raise SourceError(f"source for dataset {name!r} has no rows")
            columns[subject_column] = sources.subject_texts(subject_column, columns[subject_column])
            types = {c: sources.sql_type(c, vals) for c, vals in columns.items()}
            spec = ", ".join(f"{quote(c)} {t}" for c, t in types.items())
            db.execute(f"CREATE TABLE {tbl}({ROW_ID} BIGINT, {spec})")
            sources.insert_records(db, tbl, columns, types, base)
        else:
            staged = sources.stage(db, source, subject_column)
            try:
                db.execute(
                    f"CREATE TABLE {tbl} AS {sources.staged_select(staged, subject_column, base)}"
                )
            except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                raise SourceError(f"cannot read the source of {name!r}: {exc}") from exc
            finally:
                sources.unstage(db)
        n, subjects = _check_subjects(db, name, subject_column, base)
        if n == 0:
            raise SourceError(f"source for dataset {name!r} has no rows")
        index_subjects(db, name, subject_column)
        cols = [Column(c, t) for c, t, *_ in db.all(f"DESCRIBE {tbl}") if c != ROW_ID]
        created = now()
        db.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?)",
            [name, subject_column, json.dumps([[c.name, c.type] for c in cols]), kind, n, created],
        )
        _set_next_row_id(db, base + n)
        audit.append(
            db,
            "dataset.ingested",
            {"dataset": name, "rows": n, "subjects": subjects, "source_kind": kind},
        )
    return DatasetInfo(name, subject_column, tuple(cols), n, kind, created)


def append(db: Database, name: str, source: object) -> Appended:
    """Add ``source``'s rows to dataset ``name`` with new row ids; all or nothing.

    The source must have the dataset's columns (any order); a value type may widen to the
    dataset's (integers into a ``DOUBLE`` column) but not change kind. Models are not refitted:
    a version trains on the rows it was fitted on.
    """
    info = get(db, name)
    kind = sources.kind_of(source)
    subject_column = info.subject_column
    with db.atomic():
        base = _next_row_id(db)
        tbl = table(name)
        target = {c.name: c.type for c in info.columns}
        if kind == "records":
            columns = sources.as_columns(source)  # type: ignore[arg-type]
            sources.check_columns(columns, subject_column)
            if not len(next(iter(columns.values()))):
                raise SourceError(f"nothing to append to dataset {name!r}: the source has no rows")
            columns[subject_column] = sources.subject_texts(subject_column, columns[subject_column])
            given = {
                c: sources.sql_type(c, vals) if any(v is not None for v in vals) else target.get(c)
                for c, vals in columns.items()
            }
            _check_schema(info, given)
            try:
                sources.insert_records(db, tbl, columns, target, base)
            except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                raise SchemaMismatchError(f"rows do not fit dataset {name!r}: {exc}") from exc
        else:
            staged = sources.stage(db, source, subject_column)
            try:
                _check_schema(info, dict(staged))
                ordered = [(c, target[c]) for c, _ in staged]
                names = ", ".join(quote(c) for c, _ in staged)
                db.execute(
                    f"INSERT INTO {tbl} ({ROW_ID}, {names}) "
                    + sources.staged_select(ordered, subject_column, base)
                )
            except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                raise SchemaMismatchError(f"rows do not fit dataset {name!r}: {exc}") from exc
            finally:
                sources.unstage(db)
        n, subjects = _check_subjects(db, name, subject_column, base)
        if n == 0:
            raise SourceError(f"nothing to append to dataset {name!r}: the source has no rows")
        db.execute("UPDATE datasets SET n_rows = n_rows + ? WHERE name = ?", [n, name])
        _set_next_row_id(db, base + n)
        audit.append(
            db,
            "dataset.appended",
            # no row ids: once a row is erased, its id must name nothing the store keeps
            {"dataset": name, "rows": n, "subjects": subjects, "source_kind": kind},
        )
    return Appended(name, n, base, base + n - 1, info.n_rows + n)


def drop(db: Database, name: str) -> int:
    """Drop dataset ``name`` (no model version may name it); the number of rows it held."""
    check_name(name, "dataset")
    with db.atomic():
        get(db, name)
        users = db.all(
            "SELECT model, list(version ORDER BY version) FROM model_versions WHERE dataset = ? "
            "GROUP BY model ORDER BY model",
            [name],
        )
        if users:
            used = ", ".join(f"{m!r} v{', v'.join(map(str, vs))}" for m, vs in users)
            raise DatasetInUseError(
                f"dataset {name!r} trained model versions {used}: it cannot be dropped"
            )
        (rows,) = db.one(f"SELECT count(*) FROM {table(name)}") or (0,)
        db.execute(f"DROP TABLE {table(name)}")
        db.execute("DELETE FROM datasets WHERE name = ?", [name])
        db.cache.pop(_CATALOG, None)
        audit.append(db, "dataset.dropped", {"dataset": name, "rows": int(rows)})
    return int(rows)


def _next_row_id(db: Database) -> int:
    row = db.one("SELECT value FROM store_meta WHERE key = 'next_row_id'")
    return int(row[0]) if row else 1


def _set_next_row_id(db: Database, value: int) -> None:
    db.execute("UPDATE store_meta SET value = ? WHERE key = 'next_row_id'", [str(value)])
    db.cache.pop(_CATALOG, None)


def _check_subjects(db: Database, name: str, subject_column: str, base: int) -> tuple[int, int]:
    """Rows with ids from ``base`` and their distinct subjects; none may lack a subject."""
    subj = quote(subject_column)
    n, missing, subjects = db.one(
        f"SELECT count(*), count(*) FILTER (WHERE {subj} IS NULL OR trim({subj}) = ''), "
        f"count(DISTINCT {subj}) FROM {table(name)} WHERE {ROW_ID} >= ?",
        [base],
    ) or (0, 0, 0)
    if missing:
        raise SubjectColumnError(
            f"subject column {subject_column!r} of dataset {name!r} has {missing} empty values"
        )
    return int(n), int(subjects)


def _fits(given: str, target: str) -> bool:
    """Whether a source column of type ``given`` may fill a dataset column of ``target``."""
    g, t = given.split("(")[0], target.split("(")[0]
    if g == t or g in ("NULL", '"NULL"'):
        return True
    if t in ("DOUBLE", "FLOAT", "DECIMAL"):
        return g in _INTEGERS or g in ("FLOAT", "DOUBLE", "DECIMAL")
    return t in _INTEGERS and g in _INTEGERS  # a value out of range fails the cast


def _check_schema(info: DatasetInfo, given: Mapping[str, str | None]) -> None:
    have = [c.name for c in info.columns]
    missing = [c for c in have if c not in given]
    extra = [c for c in given if c not in have]
    if missing or extra:
        raise SchemaMismatchError(
            f"rows for dataset {info.name!r} must have its columns {have}: "
            f"missing {missing}, not in the dataset {extra}"
        )
    wrong = [
        f"{c.name} ({given[c.name]}, dataset has {c.type})"
        for c in info.columns
        if c.name != info.subject_column
        and given[c.name] is not None
        and not _fits(str(given[c.name]), c.type)
    ]
    if wrong:
        raise SchemaMismatchError(f"columns of other types than dataset {info.name!r}: {wrong}")


def cached_catalog(db: Database) -> dict[str, DatasetInfo] | None:
    """The catalogue if it was read already (no statement), else None."""
    cached: dict[str, DatasetInfo] | None = db.cache.get(_CATALOG)
    return cached


def catalog(db: Database) -> dict[str, DatasetInfo]:
    """Every dataset by name, read once and cached until a dataset is added or changed."""
    cached = db.cache.get(_CATALOG)
    if cached is None:
        cached = {
            row[0]: DatasetInfo(
                row[0],
                row[1],
                tuple(Column(c, t) for c, t in json.loads(row[2])),
                int(row[3]),
                row[4],
                row[5],
            )
            for row in db.all(
                "SELECT name, subject_column, columns_json, n_rows, source_kind, created_at "
                "FROM datasets ORDER BY name"
            )
        }
        db.cache[_CATALOG] = cached
    return dict(cached)


def get(db: Database, name: str) -> DatasetInfo:
    check_name(name, "dataset")
    info = catalog(db).get(name)
    if info is None:
        raise UnknownDatasetError(name)
    return info


def names(db: Database) -> list[str]:
    return sorted(catalog(db))


def subject_rows(db: Database, subject: Subject) -> dict[str, list[int]]:
    """The subject's row ids in every dataset that has any (one statement for all)."""
    cat = catalog(db)
    if not cat:
        return {}
    union = " UNION ALL ".join(
        f"SELECT '{name}' AS dataset, {ROW_ID} FROM {table(name)} "
        f"WHERE {quote(info.subject_column)} = ?"
        for name, info in cat.items()  # names match ^[a-z][a-z0-9_]*$: safe as literals
    )
    found: dict[str, list[int]] = {}
    for name, row_id in db.all(union + " ORDER BY 1, 2", [subject.raw] * len(cat)):
        found.setdefault(name, []).append(int(row_id))
    return found


class DeletedRows(NamedTuple):
    """The rows an erasure deleted from one dataset, as they were (sorted by row id): every
    column, the subject's own included. Held in memory by the erasure's caller just long enough
    to take them out of derived state (the drift reference) — never written anywhere."""

    row_ids: np.ndarray
    columns: dict[str, np.ndarray]


def take_subjects(db: Database, subjects: Sequence[Subject]) -> dict[str, dict[str, DeletedRows]]:
    """Delete the subjects' rows from every dataset that holds some (in a transaction): the
    deleted rows by subject key, then by dataset.

    One ``DELETE ... RETURNING`` per dataset for all the subjects together; with more than
    two datasets, one statement first finds those that hold any of them, and only those get
    a ``DELETE``.
    """
    if not db.in_transaction:
        raise RuntimeError("take_subjects belongs inside the erasure's transaction")
    return _of_subjects(db.execute, catalog(db), subjects, "DELETE FROM {} WHERE {} RETURNING *")


def read_subjects(
    con: Any, cat: Mapping[str, DatasetInfo], subjects: Sequence[Subject]
) -> dict[str, dict[str, DeletedRows]]:
    """What :func:`take_subjects` would delete, read without deleting through ``con`` (a
    DuckDB connection: :meth:`Database.reader`, on a thread of its own); ``cat`` the
    catalogue (:func:`catalog`, read earlier)."""
    return _of_subjects(con.execute, cat, subjects, "SELECT * FROM {} WHERE {}")


def _of_subjects(
    execute: Callable[[str, list[Any]], Any],
    cat: Mapping[str, DatasetInfo],
    subjects: Sequence[Subject],
    template: str,
) -> dict[str, dict[str, DeletedRows]]:
    """The subjects' rows by subject key, then by dataset, through ``template`` (a statement
    with the table and the condition left open) per dataset that holds any."""
    raws = sorted({s.raw for s in subjects})
    names = list(cat)
    if len(cat) > 2:
        union = " UNION ALL ".join(
            f"SELECT DISTINCT '{name}' FROM {table(name)} "
            f"WHERE {quote(info.subject_column)} IN ({', '.join(['?'] * len(raws))})"
            for name, info in cat.items()  # names match ^[a-z][a-z0-9_]*$: safe as literals
        )
        names = sorted(str(n) for (n,) in execute(union, raws * len(cat)).fetchall())
    key_of = {s.raw: s.key for s in subjects}
    taken: dict[str, dict[str, DeletedRows]] = {}
    params: list[Any]
    if len(raws) <= _LISTED:  # a list of constants: the subject index serves it
        listed, params = ", ".join(["?"] * len(raws)), list(raws)
    else:  # one list parameter, joined (1,000 subjects of 24,000 rows: 6 ms against 31)
        listed, params = "SELECT unnest(?::VARCHAR[])", [raws]
    for name in names:
        column = cat[name].subject_column
        where = f"{quote(column)} IN ({listed})"
        arrays = execute(template.format(table(name), where), params).fetchnumpy()
        ids = np.asarray(arrays.pop(ROW_ID), dtype=np.int64)
        if not ids.size:
            continue
        owners = np.asarray(arrays[column]).astype(str)
        order = np.lexsort((ids, owners))  # by subject, then row id
        ids, owners = ids[order], owners[order]
        cols = {c: np.asarray(v)[order] for c, v in arrays.items()}
        cuts = np.flatnonzero(owners[1:] != owners[:-1]) + 1
        for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), ids.size], strict=True):
            taken.setdefault(key_of[str(owners[a])], {})[name] = DeletedRows(
                ids[a:b], {c: v[a:b] for c, v in cols.items()}
            )
    return taken


def delete_rows(db: Database, name: str, row_ids: np.ndarray) -> int:
    """Delete the dataset's rows ``row_ids`` (in a transaction); how many there were."""
    if not db.in_transaction:
        raise RuntimeError("delete_rows belongs inside the erasure's transaction")
    got = db.one(  # DuckDB answers a DELETE with the count of rows deleted
        f"DELETE FROM {table(name)} WHERE {ROW_ID} IN (SELECT unnest(?::BIGINT[]))",
        [np.asarray(row_ids, dtype=np.int64).tolist()],
    )
    return int(got[0]) if got else 0


_LISTED = 16  # the most subjects ``take_subjects`` names as constants


def take_rows(db: Database, name: str, where: str, params: Sequence[Any]) -> DeletedRows:
    """Delete the dataset's rows that ``where`` selects (in a transaction): the deleted rows,
    by row id. For retention (:mod:`store.retention`), which names rows by time, not subject.
    """
    if not db.in_transaction:
        raise RuntimeError("take_rows belongs inside the erasure's transaction")
    arrays = db.execute(f"DELETE FROM {table(name)} WHERE {where} RETURNING *", params).fetchnumpy()
    ids = np.asarray(arrays.pop(ROW_ID), dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    return DeletedRows(ids[order], {c: np.asarray(v)[order] for c, v in arrays.items()})


def fetch(
    db: Database,
    name: str,
    columns: Sequence[str],
    trained: tuple[str, int] | None = None,
    row_ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row ids and column arrays (ordered by row id); only a model version's rows if given,
    or only ``row_ids`` (those still there)."""
    cols = ", ".join(quote(c) for c in columns)
    sql = f"SELECT {ROW_ID}, {cols} FROM {table(name)}"
    params: list[Any] = []
    if trained is not None:
        sql += (
            f" WHERE {ROW_ID} IN (SELECT row_id FROM version_rows WHERE model = ? AND version = ?)"
        )
        params = list(trained)
    elif row_ids is not None:
        sql += f" WHERE {ROW_ID} IN (SELECT unnest(?::BIGINT[]))"
        params = [[int(i) for i in row_ids]]
    with db.parallel():
        arrays = db.execute(sql + f" ORDER BY {ROW_ID}", params).fetchnumpy()
    return np.asarray(arrays.pop(ROW_ID), dtype=np.int64), arrays


def count_nulls(db: Database, name: str, columns: Sequence[str]) -> dict[str, int]:
    exprs = ", ".join(f"count(*) FILTER (WHERE {quote(c)} IS NULL)" for c in columns)
    row = db.one(f"SELECT {exprs} FROM {table(name)}") or ()
    return {c: int(n) for c, n in zip(columns, row, strict=True) if n}
