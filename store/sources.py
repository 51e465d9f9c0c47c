"""Reading a source into the store: a file, CSV text in memory, records, or a data frame.

A source is a ``.csv``/``.tsv``/``.parquet`` path, CSV in memory (a file-like object such as
``io.StringIO``, read by DuckDB without touching the disk), records (a list of dicts or a dict
of columns), or a data frame: anything DuckDB scans directly (a pandas or polars
``DataFrame``, a pyarrow ``Table``), recognised by its shape (``columns`` and ``dtypes``,
``schema`` and ``num_rows``, or the Arrow stream protocol) so that neither pandas nor pyarrow
is needed.

Subject ids are text exactly as written. CSV subject columns are read as ``VARCHAR`` (DuckDB
would otherwise read ``1.50``, ``1e3``, ``0x1F`` or ``2024-01-05T10:00:00`` as numbers and
times, and ``erase("1.50")`` would find nothing); a typed source (Parquet, frame, records)
whose subject column holds anything but text is refused (:class:`SubjectColumnError`): there
is no one way to write ``1.5`` or a timestamp, so the caller casts, and erases with that text.

Files and frames are first copied into a temporary *staging* table, whose ``rowid`` keeps the
source's row order; the dataset's row ids number the rows in that order from a store-wide
counter.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from store.db import Database, fsync_path, quote
from store.errors import SourceError, SubjectColumnError

ROW_ID = "row_id"
STAGING = "forget_staging"
_FRAME_VIEW = "forget_source_frame"
_SUFFIXES = (".csv", ".tsv", ".parquet")
# CSV has a header, and quotes as RFC 4180 says: DuckDB would otherwise guess, and read the
# id 'q' (quotes included) as q. The delimiter is still sniffed (",", ";", tab ...).
_CSV = "header = true, quote = '\"', escape = '\"'"
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


def is_stream(source: object) -> bool:
    """Whether ``source`` is a file-like object (CSV text or bytes in memory)."""
    return callable(getattr(source, "read", None)) and callable(getattr(source, "seek", None))


def kind_of(source: object) -> str:
    """``csv``/``tsv``/``parquet``, ``records`` or ``frame``; :class:`SourceError` otherwise.

    A file-like object is ``csv``.
    """
    if isinstance(source, str | os.PathLike):
        suffix = Path(source).suffix.lower()
        if suffix not in _SUFFIXES:
            raise SourceError(
                f"unsupported source {Path(source).name!r}: use .csv, .tsv or .parquet"
            )
        return suffix.lstrip(".")
    if is_stream(source):
        return "csv"
    if is_frame(source):
        return "frame"
    if isinstance(source, Mapping) or (
        isinstance(source, Sequence) and all(isinstance(r, Mapping) for r in source)
    ):
        return "records"
    raise SourceError(
        "a source is a .csv/.parquet path, CSV in a file-like object, a list of dicts, a dict of "
        f"columns, or a data frame (pandas, polars, pyarrow); got {type(source).__name__}"
    )


def stage(db: Database, source: object, subject_column: str) -> list[tuple[str, str]]:
    """Copy a file, stream or frame source into the temporary staging table; its (name, type)
    columns. The subject column is text, or the source is refused.

    Call inside a transaction, and :func:`unstage` when done (the staging table holds rows).
    """
    unstage(db)
    registered = False
    params: list[Any] = []
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        kind = kind_of(path)
        if not path.is_file():
            raise SourceError(f"source file {str(path)!r} does not exist")
        what = repr(path.name)
        if kind == "parquet":
            sql, params = "SELECT * FROM read_parquet(?)", [str(path)]
        else:
            names = _columns_of(db, f"SELECT * FROM read_csv(?, {_CSV})", [str(path)], what)
            check_columns(names, subject_column)
            sql = f"SELECT * FROM read_csv(?, {_CSV}, types = ?)"
            params = [str(path), {subject_column: "VARCHAR"}]
    else:
        sql, what = f"SELECT * FROM {_FRAME_VIEW}", type(source).__name__
        if is_stream(source):
            relation = _csv_stream(db, source, subject_column)
        else:
            relation = source
            own = _frame_columns(source)
            if own is not None:  # DuckDB would rename clashing columns ("v" -> "v_1"): refuse
                check_columns(own, subject_column)
            _check_objects(source, subject_column)
        try:
            db.con.register(_FRAME_VIEW, relation)
            registered = True
        except (duckdb.Error, TypeError, ValueError) as exc:
            raise SourceError(f"cannot scan the {what} source: {exc}") from exc
    try:
        columns = [(row[0], row[1]) for row in db.all(f"DESCRIBE {sql}", params)]
        check_columns([c for c, _ in columns], subject_column)
        subject_type = dict(columns)[subject_column]
        if not is_text(subject_type) and db.all(f"SELECT 1 FROM ({sql}) LIMIT 1", params):
            refuse_subject_type(subject_type, subject_column, what)  # (no rows: said later)
        with db.parallel():
            db.execute(f"CREATE TEMP TABLE {STAGING} AS {sql}", params)
    except _READ_ERRORS as exc:
        raise SourceError(f"cannot read {what}: {exc}") from exc
    finally:
        if registered:
            db.con.unregister(_FRAME_VIEW)
    return [(c, t) for c, t, *_ in db.all(f"DESCRIBE {STAGING}")]


def _columns_of(db: Database, sql: str, params: list[Any], what: str) -> list[str]:
    try:
        return [row[0] for row in db.all(f"DESCRIBE {sql}", params)]
    except _READ_ERRORS as exc:
        raise SourceError(f"cannot read {what}: {exc}") from exc


def _csv_stream(db: Database, stream: Any, subject_column: str) -> Any:
    """A DuckDB relation over CSV held in a file-like object (read in memory, never written
    to a file), its subject column as text. Reads the header first to check the columns."""
    start = stream.tell()
    try:
        names = db.con.read_csv(stream, header=True, quotechar='"', escapechar='"').columns
        stream.seek(start)
        check_columns(names, subject_column)
        return db.con.read_csv(
            stream, header=True, quotechar='"', escapechar='"', dtype={subject_column: "VARCHAR"}
        )
    except _READ_ERRORS as exc:
        if "fsspec" in str(exc):  # DuckDB reads file-like objects through fsspec's memory fs
            raise SourceError(f"reading CSV from memory needs the fsspec package: {exc}") from exc
        raise SourceError(f"cannot read the CSV text: {exc}") from exc


def is_text(sql_type: str) -> bool:
    """Whether a column of ``sql_type`` holds text (an ENUM of texts does)."""
    return sql_type == "VARCHAR" or sql_type.startswith("ENUM(")


def refuse_subject_type(sql_type: str, subject_column: str, what: str) -> None:
    raise SubjectColumnError(
        f"subject column {subject_column!r} of {what} is {sql_type}, not text: subject ids are "
        "kept exactly as written, and a number or a time has no one way to be written. Cast "
        "the column to text where you make the source (pandas: .astype(str); pyarrow: "
        "pc.cast(column, pa.string()); SQL: CAST(... AS VARCHAR)) and erase with that text"
    )


def subject_texts(subject_column: str, values: Sequence[Any]) -> list[str | None]:
    """Subject values (of records, or a frame's object column) as they are: strings, or None
    for a missing one; :class:`SubjectColumnError` for any other value."""
    out: list[str | None] = []
    bad = []
    for v in values:
        if isinstance(v, str) or v is None:
            out.append(v)
        elif isinstance(v, float) and math.isnan(v):  # pandas' missing value
            out.append(None)
        else:
            bad.append(v)
    if bad:
        kinds = sorted({type(v).__name__ for v in bad})
        raise SubjectColumnError(
            f"subject column {subject_column!r} holds {len(bad)} values that are not strings "
            f"({', '.join(kinds)}; e.g. {bad[0]!r}): subject ids are kept exactly as written, "
            "so give them as text, formatted as you will erase them"
        )
    return out


def _check_objects(frame: Any, subject_column: str) -> None:
    # DuckDB turns a pandas object column of mixed values into text by itself (7 -> "7"):
    # the caller, not the store, decides how an id is written
    column = frame.get(subject_column) if callable(getattr(frame, "get", None)) else None
    if column is not None and str(getattr(column, "dtype", "")) == "object":
        subject_texts(subject_column, list(column))


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


# Older versions of the HTTP upload wrote CSV text to ``tempfile.mkstemp(suffix=".csv",
# dir=<store>)`` while DuckDB read it; a crash left the raw copy there for good.
_UPLOAD_LEFTOVER = re.compile(r"^tmp[a-z0-9_]{8}\.csv$")


def sweep_uploads(directory: Path) -> int:
    """Delete upload copies older versions left in the store directory; how many."""
    removed = 0
    for path in sorted(directory.iterdir()):
        if path.is_file() and _UPLOAD_LEFTOVER.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        fsync_path(directory)
    return removed
