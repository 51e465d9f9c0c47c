"""Datasets: ingest (CSV, Parquet, records), subject lookups, deletion and fetching.

Each dataset is a table ``data."<name>"`` with the source's columns plus ``row_id BIGINT``, an
id unique across the store that models use to name their training rows. The subject column
holds the raw subject id (as text); it is the only place the store keeps it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from store import audit
from store._clock import now
from store.db import Database, check_name, quote
from store.errors import (
    DatasetExistsError,
    SourceError,
    SubjectColumnError,
    UnknownDatasetError,
)
from store.subjects import Subject

ROW_ID = "row_id"
_READERS = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet"}
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
)

Records = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]


@dataclass(frozen=True)
class Column:
    name: str
    type: str

    @property
    def numeric(self) -> bool:
        return self.type.split("(")[0] in _NUMERIC


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's name, subject column, columns (without ``row_id``) and size at ingest."""

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


def ingest(
    db: Database, name: str, source: str | os.PathLike[str] | Records, subject_column: str
) -> DatasetInfo:
    """Create dataset ``name`` from ``source``; all or nothing."""
    check_name(name, "dataset")
    if not isinstance(subject_column, str) or not subject_column:
        raise SubjectColumnError(f"subject_column must be a column name, got {subject_column!r}")
    with db.atomic():
        if db.one("SELECT 1 FROM datasets WHERE name = ?", [name]):
            raise DatasetExistsError(name)
        base = int(db.one("SELECT value FROM store_meta WHERE key = 'next_row_id'")[0])  # type: ignore[index]
        if isinstance(source, str | os.PathLike):
            kind = _from_file(db, name, Path(source), subject_column, base)
        else:
            kind = _from_records(db, name, source, subject_column, base)
        tbl, subj = table(name), quote(subject_column)
        n, missing, subjects = db.one(
            f"SELECT count(*), count(*) FILTER (WHERE {subj} IS NULL OR trim({subj}) = ''), "
            f"count(DISTINCT {subj}) FROM {tbl}"
        ) or (0, 0, 0)
        if n == 0:
            raise SourceError(f"source for dataset {name!r} has no rows")
        if missing:
            raise SubjectColumnError(
                f"subject column {subject_column!r} of dataset {name!r} has {missing} empty values"
            )
        cols = [Column(c, t) for c, t, *_ in db.all(f"DESCRIBE {tbl}") if c != ROW_ID]
        created = now()
        db.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?)",
            [name, subject_column, json.dumps([[c.name, c.type] for c in cols]), kind, n, created],
        )
        db.execute(
            "UPDATE store_meta SET value = ? WHERE key = 'next_row_id'", [str(base + int(n))]
        )
        audit.append(
            db,
            "dataset.ingested",
            {"dataset": name, "rows": int(n), "subjects": int(subjects), "source_kind": kind},
        )
    return DatasetInfo(name, subject_column, tuple(cols), int(n), kind, created)


def _check_columns(names: Iterable[str], subject_column: str) -> None:
    names = list(names)
    lowered = [n.lower() for n in names]
    if ROW_ID in lowered:
        raise SourceError(f"column name {ROW_ID!r} is reserved for the store's row ids")
    if len(set(lowered)) != len(lowered):
        raise SourceError(f"column names must differ in more than case: {names}")
    if any(not isinstance(n, str) or not n for n in names):
        raise SourceError(f"column names must be non-empty strings: {names}")
    if subject_column not in names:
        raise SubjectColumnError(f"subject column {subject_column!r} not in columns {names}")


def _from_file(db: Database, name: str, path: Path, subject_column: str, base: int) -> str:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"unsupported source {path.name!r}: use .csv, .tsv or .parquet")
    if not path.is_file():
        raise SourceError(f"source file {str(path)!r} does not exist")
    src = f"{reader}(?)"
    try:
        names = [row[0] for row in db.all(f"DESCRIBE SELECT * FROM {src}", [str(path)])]
        _check_columns(names, subject_column)
        subj = quote(subject_column)
        db.execute(
            f"CREATE TABLE {table(name)} AS SELECT (row_number() OVER () + ? - 1)::BIGINT AS "
            f"{ROW_ID}, * REPLACE (CAST({subj} AS VARCHAR) AS {subj}) FROM {src}",
            [base, str(path)],
        )
    except (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise SourceError(f"cannot read {path.name!r}: {exc}") from exc
    return path.suffix.lower().lstrip(".")


def _from_records(db: Database, name: str, source: Records, subject_column: str, base: int) -> str:
    columns = _as_columns(source)
    _check_columns(columns, subject_column)
    n = len(next(iter(columns.values())))
    if n == 0:
        raise SourceError(f"source for dataset {name!r} has no rows")
    columns[subject_column] = [None if v is None else str(v) for v in columns[subject_column]]
    types = {c: _sql_type(c, vals) for c, vals in columns.items()}
    spec = ", ".join(f"{quote(c)} {t}" for c, t in types.items())
    db.execute(f"CREATE TABLE {table(name)}({ROW_ID} BIGINT, {spec})")
    unnests = ", ".join(f"unnest(?::{t}[])" for t in types.values())
    db.execute(
        f"INSERT INTO {table(name)} SELECT unnest(?::BIGINT[]), {unnests}",
        [list(range(base, base + n)), *columns.values()],
    )
    return "records"


def _as_columns(source: Records) -> dict[str, list[Any]]:
    """A list of dicts or a dict of columns, as a dict of equally long lists."""
    if isinstance(source, Mapping):
        cols = {str(k): [_plain(v) for v in vals] for k, vals in source.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise SourceError(f"columns have different lengths: {sorted(lengths)}")
    elif isinstance(source, Sequence) and all(isinstance(r, Mapping) for r in source):
        names: dict[str, None] = {}
        for r in source:
            names.update(dict.fromkeys(map(str, r)))
        cols = {c: [_plain(r.get(c)) for r in source] for c in names}
    else:
        raise SourceError(
            "a source is a .csv/.parquet path, a list of dicts, or a dict of columns; "
            f"got {type(source).__name__}"
        )
    if not cols:
        raise SourceError("source has no columns")
    return cols


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sql_type(column: str, values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present):
        return "BOOLEAN" if present else "VARCHAR"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-(2**63) <= v < 2**63 for v in present):
            return "BIGINT"
        raise SourceError(f"column {column!r} holds integers beyond 64 bits")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "DOUBLE"
    if all(isinstance(v, str) for v in present):
        return "VARCHAR"
    kinds = sorted({type(v).__name__ for v in present})
    raise SourceError(f"column {column!r} mixes value types {kinds}")


def get(db: Database, name: str) -> DatasetInfo:
    check_name(name, "dataset")
    row = db.one(
        "SELECT name, subject_column, columns_json, n_rows, source_kind, created_at "
        "FROM datasets WHERE name = ?",
        [name],
    )
    if row is None:
        raise UnknownDatasetError(name)
    cols = tuple(Column(c, t) for c, t in json.loads(row[2]))
    return DatasetInfo(row[0], row[1], cols, int(row[3]), row[4], row[5])


def names(db: Database) -> list[str]:
    return [n for (n,) in db.all("SELECT name FROM datasets ORDER BY name")]


def subject_rows(db: Database, subject: Subject) -> dict[str, list[int]]:
    """The subject's row ids in every dataset that has any."""
    found = {}
    for name, subject_column in db.all("SELECT name, subject_column FROM datasets ORDER BY name"):
        ids = db.all(
            f"SELECT {ROW_ID} FROM {table(name)} WHERE {quote(subject_column)} = ? "
            f"ORDER BY {ROW_ID}",
            [subject.raw],
        )
        if ids:
            found[name] = [int(i) for (i,) in ids]
    return found


def delete_rows(db: Database, name: str, row_ids: Sequence[int]) -> int:
    """Delete rows by id; the number deleted (DuckDB reports it as the statement's result)."""
    deleted = db.one(
        f"DELETE FROM {table(name)} WHERE {ROW_ID} IN (SELECT unnest(?::BIGINT[]))",
        [list(row_ids)],
    )
    return int(deleted[0]) if deleted else 0


def fetch(
    db: Database, name: str, columns: Sequence[str], trained: tuple[str, int] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Row ids and column arrays (ordered by row id); only a model version's rows if given."""
    cols = ", ".join(quote(c) for c in columns)
    sql = f"SELECT {ROW_ID}, {cols} FROM {table(name)}"
    params: list[Any] = []
    if trained is not None:
        sql += (
            f" WHERE {ROW_ID} IN (SELECT row_id FROM version_rows WHERE model = ? AND version = ?)"
        )
        params = list(trained)
    arrays = db.execute(sql + f" ORDER BY {ROW_ID}", params).fetchnumpy()
    return np.asarray(arrays.pop(ROW_ID), dtype=np.int64), arrays


def count_nulls(db: Database, name: str, columns: Sequence[str]) -> dict[str, int]:
    exprs = ", ".join(f"count(*) FILTER (WHERE {quote(c)} IS NULL)" for c in columns)
    row = db.one(f"SELECT {exprs} FROM {table(name)}") or ()
    return {c: int(n) for c, n in zip(columns, row, strict=True) if n}
