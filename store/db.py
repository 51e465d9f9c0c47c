"""The DuckDB connection: opening (one writer), ``atomic()`` transactions, and compaction.

DuckDB's ``DELETE`` only marks rows deleted; their bytes stay in the file until the block is
reused. :meth:`Database.compact` copies the live contents into a fresh file and swaps it in, so
erased values leave the disk image of the store.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from store._faults import crash_point
from store.errors import InvalidNameError, StoreClosedError, StoreLockedError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# DuckDB lets one process hold a database file for writing; within a process a second
# connection would silently share it, so the store keeps its own register of open files.
# Across processes DuckDB's own file lock is not enough: compaction closes the connection
# while it swaps the fresh file in, and in that moment another process could open the store.
# So a store open for writing also holds an exclusive flock on ``store.lock`` (an empty file)
# for as long as it is open, and a read-only open a shared one.
_open_paths: set[str] = set()
_UNNEST_FROM = 12  # rows from which Database.insert binds lists of columns
_SCALAR = (str, int, float, bool, type(None))


def _one_value(column: list[Any]) -> bool:
    """Whether every value of the column is the same scalar, of the same type (True and 1,
    or a NaN, are not taken for equal)."""
    first = column[0]
    kind = type(first)
    if kind not in _SCALAR or first != first:  # noqa: PLR0124 - NaN is not equal to itself
        return False
    return all(type(v) is kind and v == first for v in column)


_open_lock = threading.Lock()


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid identifier, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidNameError(f"{what} name {name!r} must match {NAME_RE.pattern}")
    return name


def quote(identifier: str) -> str:
    """Quote a column identifier for SQL (identifiers cannot be bound as parameters)."""
    return '"' + identifier.replace('"', '""') + '"'


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory entry, to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Database:
    """One DuckDB connection to ``<dir>/store.duckdb``: read-write, or read-only.

    Not thread-safe: a :class:`~store.ModelStore` is used from one thread at a time.
    """

    FILE = "store.duckdb"

    def __init__(
        self, path: Path, con: duckdb.DuckDBPyConnection, *, read_only: bool = False
    ) -> None:
        self.path = path
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = con
        # The audit chain's key (a store.audit.AuditKey), set by the store once it has read
        # the key file: every writer of audit entries reaches it through the connection.
        self.audit_key: Any = None
        self._depth = 0
        # Values read once and kept in memory (the audit head, the dataset catalogue): each
        # DuckDB statement costs ~0.5-1 ms, so the erasure path reads none it can remember.
        # A rollback clears the cache: what a rolled-back block cached may never have existed.
        self.cache: dict[str, Any] = {}
        self._types: dict[str, dict[str, str]] = {}  # column types of tables inserted into
        self._on_commit: list[Callable[[], None]] = []
        self._parallel = 0
        self._held: int | None = None  # the flock on store.lock (see _hold)
        self._reader: duckdb.DuckDBPyConnection | None = None

    @classmethod
    def open(cls, directory: Path, *, read_only: bool = False) -> Database:
        """Open (or create) the database; ``read_only`` opens an existing one and writes
        nothing at all (DuckDB's read-only mode: no cleanup, no WAL replay into the file)."""
        path = (directory / cls.FILE).resolve()
        with _open_lock:
            if str(path) in _open_paths:
                raise StoreLockedError(f"store {directory} is already open in this process")
            held = _hold(path, read_only=read_only)
            try:
                # takes DuckDB's file lock first: only then is cleanup safe
                con = _connect(path, read_only=read_only)
            except BaseException:
                if held is not None:
                    os.close(held)
                raise
            if not read_only:
                for leftover in (_compact_path(path), _wal(_compact_path(path))):
                    leftover.unlink(missing_ok=True)  # a compaction cut short: the original stands
            _open_paths.add(str(path))
        db = cls(path, con, read_only=read_only)
        db._held = held
        return db

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreClosedError("the store is closed")
        return self._con

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (values in ``columns`` order) into the store's own ``table`` (not a
        dataset's) in one statement.

        A few rows go as ``VALUES`` lists; more go as one list per column, unnested by DuckDB
        (bound as ``len(columns)`` parameters, not one per value): 256 rows of five columns
        take 2.3 ms that way against 10 ms as ``VALUES`` (1 row: 0.8 against 0.6 ms).
        """
        if not rows:
            return
        names = ", ".join(columns)
        if len(rows) < _UNNEST_FROM:
            marks = "(" + ", ".join(["?"] * len(columns)) + ")"
            self.execute(
                f"INSERT INTO {table} ({names}) VALUES " + ", ".join([marks] * len(rows)),
                [x for row in rows for x in row],
            )
            return
        types = self._types.get(table)
        if types is None:
            types = self._types[table] = dict(
                self.all(
                    "SELECT column_name, data_type FROM duckdb_columns() "
                    "WHERE schema_name = 'main' AND table_name = ?",
                    [table],
                )
            )
        values = [list(c) for c in zip(*rows, strict=True)]
        # a column of one value (a batch's time, legal ground, action) is bound once
        same = [_one_value(v) for v in values]
        lists = ", ".join(
            f"?::{types[c]}" if one else f"unnest(?::{types[c]}[])"
            for c, one in zip(columns, same, strict=True)
        )
        self.execute(
            f"INSERT INTO {table} ({names}) SELECT {lists}",
            [v[0] if one else v for v, one in zip(values, same, strict=True)],
        )

    def all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        return self.execute(sql, params).fetchone()

    @contextmanager
    def parallel(self) -> Iterator[None]:
        """Let DuckDB use every core for the block (scans, copies, compaction).

        The connection otherwise runs on one thread: the store's many small statements each
        pay ~0.1-0.2 ms more for DuckDB's task scheduling on more (measured on 2 cores).
        """
        if self._parallel == 0:
            self.execute(f"SET threads TO {_THREADS}")
        self._parallel += 1
        try:
            yield
        finally:
            self._parallel -= 1
            if self._parallel == 0 and self._con is not None:
                self.execute("SET threads TO 1")

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the current (outermost) transaction commits; now if there is none.

        In-memory state that mirrors the database is updated this way, so that it never runs
        ahead of what is durable: on a rollback the callbacks are dropped.
        """
        if self._depth:
            self._on_commit.append(fn)
        else:
            fn()

    @contextmanager
    def atomic(self) -> Iterator[Database]:
        """Run the block in one transaction; nested blocks join the outer one.

        DuckDB has no savepoints, so an error anywhere rolls back the outermost transaction
        (and clears :attr:`cache`); callbacks given to :meth:`on_commit` run after the commit.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self.cache.clear()
            self._on_commit.clear()
            self.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self.execute("COMMIT")
        except BaseException:
            self.cache.clear()
            self._on_commit.clear()
            # DuckDB aborts a transaction whose commit failed; make sure none is left open
            with suppress(duckdb.Error):
                self.execute("ROLLBACK")
            raise
        callbacks, self._on_commit = self._on_commit, []
        for fn in callbacks:
            fn()

    def compact(self) -> None:
        """Rewrite the database into a fresh file and swap it in atomically.

        Copy live contents (``COPY FROM DATABASE``) into ``store.duckdb.compact``, close,
        ``fsync`` and ``os.replace`` it over the original. A crash before the replace leaves the
        original (the copy is removed on open); after it, the new file, which has no WAL.
        """
        if self._depth:
            raise RuntimeError("compact() inside a transaction")
        fresh = _compact_path(self.path)
        for leftover in (fresh, _wal(fresh)):
            leftover.unlink(missing_ok=True)
        con = self.con
        con.execute("CHECKPOINT")
        (catalog,) = con.execute("SELECT current_database()").fetchone() or ("",)
        con.execute("ATTACH ? AS fresh", [str(fresh)])
        con.execute(f"SET threads TO {_THREADS}")  # this connection closes below
        con.execute(f"COPY FROM DATABASE {quote(catalog)} TO fresh")
        con.execute("DETACH fresh")
        crash_point("compact.copied")
        self._close_reader()
        con.close()
        self._con = None
        if _wal(self.path).exists() or _wal(fresh).exists():  # pragma: no cover - defensive
            self._con = _connect(self.path)
            raise RuntimeError("DuckDB left a WAL after checkpoint; compaction skipped")
        fsync_path(fresh)
        os.replace(fresh, self.path)
        fsync_path(self.path.parent)
        crash_point("compact.swapped")
        self._con = _connect(self.path)

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the database, for reads on another thread while this one
        may be inside a transaction: DuckDB gives each connection its own transaction, and a
        read sees what was committed when it began. Made once (and again after a
        compaction, which reconnects)."""
        if self._reader is None:
            self._reader = self.con.cursor()
        return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            with suppress(duckdb.Error):
                self._reader.close()
            self._reader = None

    def checkpoint(self) -> None:
        """Fold the WAL into the database file."""
        self.execute("CHECKPOINT")

    def close(self) -> None:
        if self._con is None:
            return
        try:
            self._close_reader()
            self._con.close()
        finally:
            self._con = None
            if self._held is not None:
                os.close(self._held)  # releases the flock
                self._held = None
            with _open_lock:
                _open_paths.discard(str(self.path))


LOCK_FILE = "store.lock"


def _hold(path: Path, *, read_only: bool) -> int | None:
    """Take the store's flock (exclusive for writing, shared for reading) and return its file
    descriptor, kept open while the store is; :class:`StoreLockedError` when another process
    holds it. A read-only open of a store without the file (never opened for writing by this
    version) takes none: it writes nothing, and DuckDB's lock still applies."""
    lock = path.with_name(LOCK_FILE)
    try:
        fd = os.open(lock, os.O_RDONLY if read_only else os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        if read_only:
            return None
        raise
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if read_only else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StoreLockedError(
            f"store {path.parent} is open in another process (a running forget serve? "
            f"read through it with --server URL)"
        ) from exc
    return fd


def _compact_path(path: Path) -> Path:
    return path.with_name(path.name + ".compact")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


_THREADS = max(1, os.cpu_count() or 1)


# DuckDB checkpoints by itself whenever the WAL passes 16 MB, in the commit that passes it,
# and every other connection's statements wait while it writes: on a server, the settler's
# commit made the serving loop's one-subject read wait 70 ms (an erasure storm beside
# predictions, bench.api_erasure: every prediction waited behind it). The store checkpoints
# where waiting is harmless instead: each purge (after its compaction: no WAL is left) and
# close; this threshold only bounds a WAL that no purge empties.
CHECKPOINT_THRESHOLD = "1GB"


def _connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": 1,
        "checkpoint_threshold": CHECKPOINT_THRESHOLD,
    }
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLockedError(
                f"store {path.parent} is open in another process (a running forget serve? "
                f"read through it with --server URL): {exc}"
            ) from exc
        raise
