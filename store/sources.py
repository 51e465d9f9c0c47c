"""Reading a source into the store: a file, records, or a data frame.

A source is a ``.csv``/``.tsv``/``.parquet`` path, records (a list of dicts or a dict of
columns), or a data frame: anything DuckDB scans directly (a pandas or polars ``DataFrame``, a
pyarrow ``Table``), recognised by its shape (``columns`` and ``dtypes``, ``schema`` and
``num_rows``, or the Arrow stream protocol) so that neither pandas nor pyarrow is needed.

Files and frames are first copied into a temporary *staging* table, whose ``rowid`` keeps the
source's row order; the dataset's row ids number the rows in that order from a store-wide
counter.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from store.db import Database, quote
from store.errors import SourceError, SubjectColumnError

ROW_ID = "row_id"
STAGING = "forget_staging"
_FRAME_VIEW = "forget_source_frame"
_READERS = {".csv": "read_csv_auto", ".tsv": "read_csv_auto", ".parquet": "read_parquet"}
_READ_ERRORS = (
    duckdb.IOException,
    duckdb.InvalidInputException,
    duckdb.ConversionException,
    duckdb.NotImplementedException,
    duckdb.BinderException,
)

Records = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]


def is_frame(source: object) -> bool:
    """Whether ``source`` looks like a data frame or an Arrow table (duck typing)."""
    if isinstance(source, str | bytes | os.PathLike | Mapping | Sequence):
        return False
    return (
        hasattr(source, "__arrow_c_stream__")
        or (hasattr(source, "columns") and hasattr(source, "dtypes"))
        or (hasattr(source, "schema") and hasattr(source, "num_rows"))
    )


def kind_of(source: object) -> str:
    """``csv``/``tsv``/``parquet``, ``records`` or ``frame``; :class:`SourceError` otherwise."""
    if isinstance(source, str | os.PathLike):
        suffix = Path(source).suffix.lower()
        if suffix not in _READERS:
            raise SourceError(
                f"unsupported source {Path(source).name!r}: use .csv, .tsv or .parquet"
            )
        return suffix.lstrip(".")
    if is_frame(source):
        return "frame"
    if isinstance(source, Mapping) or (
        isinstance(source, Sequence) and all(isinstance(r, Mapping) for r in source)
    ):
        return "records"
    raise SourceError(
        "a source is a .csv/.parquet path, a list of dicts, a dict of columns, or a data frame "
        f"(pandas, polars, pyarrow); got {type(source).__name__}"
    )


def stage(db: Database, source: object, subject_column: str) -> list[tuple[str, str]]:
    """Copy a file or frame source into the temporary staging table; its (name, type) columns.

    Call inside a transaction, and :func:`unstage` when done (the staging table holds rows).
    """
    unstage(db)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        kind_of(path)
        if not path.is_file():
            raise SourceError(f"source file {str(path)!r} does not exist")
        reader = _READERS[path.suffix.lower()]
        sql, params, what = f"SELECT * FROM {reader}(?)", [str(path)], repr(path.name)
    else:
        sql, params, what = f"SELECT * FROM {_FRAME_VIEW}", [], type(source).__name__
        own = _frame_columns(source)
        if own is not None:  # DuckDB would rename clashing columns ("v" -> "v_1"); refuse them
            check_columns(own, subject_column)
        try:
            db.con.register(_FRAME_VIEW, source)
        except (duckdb.Error, TypeError, ValueError) as exc:
            raise SourceError(f"cannot scan the {what} source: {exc}") from exc
    try:
        names = [row[0] for row in db.all(f"DESCRIBE {sql}", params)]
        check_columns(names, subject_column)
        with db.parallel():
            db.execute(f"CREATE TEMP TABLE {STAGING} AS {sql}", params)
    except _READ_ERRORS as exc:
        raise SourceError(f"cannot read {what}: {exc}") from exc
    finally:
        if not isinstance(source, str | os.PathLike):
            db.con.unregister(_FRAME_VIEW)
    return [(c, t) for c, t, *_ in db.all(f"DESCRIBE {STAGING}")]


def _frame_columns(source: object) -> list[str] | None:
    """A frame's own column names, where it tells them (pandas, polars, pyarrow)."""
    for attr in ("column_names", "columns"):
        names = getattr(source, attr, None)
        if names is not None and not callable(names):
            try:
                return [str(n) if not isinstance(n, str) else n for n in names]
            except TypeError:  # pragma: no cover - an unusual frame
                return None
    return None


def unstage(db: Database) -> None:
    db.execute(f"DROP TABLE IF EXISTS temp.{STAGING}")


def staged_select(columns: Sequence[tuple[str, str]], subject_column: str, base: int) -> str:
    """``SELECT`` of the staged rows with row ids from ``base``, cast to ``columns``' types."""
    casts = ", ".join(
        f"CAST({quote(c)} AS {'VARCHAR' if c == subject_column else t}) AS {quote(c)}"
        for c, t in columns
    )
    # rowid follows the source's order, but rows created in this transaction have rowids
    # offset by DuckDB (transaction-local storage): number them from ``base`` instead.
    return (
        f"SELECT (row_number() OVER (ORDER BY rowid) + {int(base) - 1})::BIGINT AS {ROW_ID}, "
        f"{casts} FROM temp.{STAGING} ORDER BY rowid"
    )


def check_columns(names: Iterable[str], subject_column: str) -> None:
    names = list(names)
    if any(not isinstance(n, str) or not n for n in names):
        raise SourceError(f"column names must be non-empty strings: {names}")
    lowered = [n.lower() for n in names]
    if ROW_ID in lowered:
        raise SourceError(f"column name {ROW_ID!r} is reserved for the store's row ids")
    if len(set(lowered)) != len(lowered):
        raise SourceError(f"column names must differ in more than case: {names}")
    if subject_column not in names:
        raise SubjectColumnError(f"subject column {subject_column!r} not in columns {names}")


def as_columns(source: Records) -> dict[str, list[Any]]:
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
            "a source is a .csv/.parquet path, a list of dicts, a dict of columns, or a data "
            f"frame; got {type(source).__name__}"
        )
    if not cols:
        raise SourceError("source has no columns")
    return cols


def insert_records(
    db: Database, target: str, columns: Mapping[str, list[Any]], types: Mapping[str, str], base: int
) -> None:
    """Insert columns of values into ``target`` (cast to ``types``) with row ids from ``base``."""
    n = len(next(iter(columns.values())))
    names = ", ".join(quote(c) for c in columns)
    unnests = ", ".join(f"unnest(?::{types[c]}[])" for c in columns)
    db.execute(
        f"INSERT INTO {target} ({ROW_ID}, {names}) SELECT unnest(?::BIGINT[]), {unnests}",
        [list(range(base, base + n)), *columns.values()],
    )


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def sql_type(column: str, values: list[Any]) -> str:
    """The column type records' values call for (``SourceError`` when they disagree)."""
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
