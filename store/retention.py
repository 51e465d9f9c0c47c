"""Retention (Art. 5(1)(e), storage limitation): rows older than their dataset's period expire.

A dataset may declare a *time column* and a *retention period* (an ISO 8601 duration:
``P30D``, ``P6M``, ``P1Y6M``, ``P2W``, ``PT36H``). :func:`due` lists, for a moment ``at``, the
datasets holding rows whose time is before ``at`` minus the period (the *cutoff*), and
:meth:`store.ModelStore.expire` erases them through the erasure path: one request per dataset,
with legal ground :data:`GROUND` and no subject (its ``subject_key`` is ``retention:<dataset>``),
so the rows leave the dataset, every model trained on them forgets them (or awaits a retrain),
the forget log, audit entries, reports and the purge treat them as any erasure's. A server's
purger expires on its schedule (:meth:`api.service.Service.expire`).

What the time column may hold: a ``TIMESTAMP``, ``TIMESTAMP WITH TIME ZONE`` or ``DATE``
column, ISO 8601 text (a ``VARCHAR`` column: ``2024-05-01``, ``2024-05-01T12:00:00+02:00``;
text without an offset is UTC), or numbers (seconds since 1970-01-01 UTC). A row whose time is
NULL never expires (say so in the dataset's documentation); text that is not a time is refused
when the policy is set, and a later append of such text is refused too by the expiry check
(:class:`UnreadableTimeError` names the dataset and how many rows).

>>> p = parse_period("P1M")
>>> p.before("2025-03-31T10:00:00.000000+00:00")
'2025-02-28T10:00:00.000000+00:00'
>>> parse_period("P1Y2M3DT4H").before("2025-05-10T12:00:00.000000+00:00")
'2024-03-07T08:00:00.000000+00:00'
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from store import audit
from store.data import Column, catalog, table
from store.db import Database, quote
from store.errors import DatasetError, UnknownDatasetError

GROUND = "art5-1-e"
GROUND_TEXT = "storage limitation: the dataset's retention period expired (Art. 5(1)(e))"
SUBJECT_PREFIX = "retention:"  # the subject_key of a retention request: no subject is named

_PERIOD = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
_TIMES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "DATE")
_NUMBERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE")


class RetentionError(DatasetError):
    """A retention policy that cannot be set, or a dataset whose times cannot be read."""


class InvalidRetentionPolicyError(RetentionError, ValueError):
    """A period that is not an ISO 8601 duration, or a time column the dataset lacks or that
    holds something other than times."""


class UnreadableTimeError(RetentionError, ValueError):
    """The time column holds text that is not an ISO 8601 time: those rows cannot expire."""


class NoRetentionPolicyError(RetentionError, LookupError):
    """The dataset has no retention policy to remove."""


@dataclass(frozen=True)
class Period:
    """An ISO 8601 duration (``text``) as calendar parts: years and months move the date
    (the day clamped to the month's end), the rest is a fixed span."""

    text: str
    months: int
    span: timedelta

    def before(self, at: str) -> str:
        """The moment this period before ``at`` (ISO 8601 with an offset, as the store's
        clock writes it)."""
        t = datetime.fromisoformat(at)
        month = t.year * 12 + (t.month - 1) - self.months
        year, month = divmod(month, 12)
        day = min(t.day, calendar.monthrange(year, month + 1)[1])
        t = t.replace(year=year, month=month + 1, day=day) - self.span
        return t.isoformat(timespec="microseconds")


def parse_period(text: object) -> Period:
    """An ISO 8601 duration (``P``, then years ``Y``, months ``M``, weeks ``W``, days ``D``,
    and after ``T`` hours ``H``, minutes ``M``, seconds ``S``; integers, at least one part,
    not zero)."""
    m = _PERIOD.match(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidRetentionPolicyError(
            f"retention period {text!r} is not an ISO 8601 duration such as P30D, P6M, P1Y6M, "
            "P2W or PT36H"
        )
    n = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
    months = 12 * n["years"] + n["months"]
    seconds = (((7 * n["weeks"] + n["days"]) * 24 + n["hours"]) * 60 + n["minutes"]) * 60
    seconds += n["seconds"]
    if not months and not seconds:
        raise InvalidRetentionPolicyError(f"retention period {text!r} is zero")
    if months > 12 * 1000 or seconds > 366_000 * 86_400:
        raise InvalidRetentionPolicyError(f"retention period {text!r} is over 1000 years")
    span = timedelta(seconds=seconds)
    return Period(str(text), months, span)


@dataclass(frozen=True)
class Policy:
    """A dataset's retention: rows whose ``time_column`` is before now minus ``period``
    expire."""

    dataset: str
    time_column: str
    period: str
    set_at: str
    set_by: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "time_column": self.time_column,
            "period": self.period,
            "set_at": self.set_at,
            "set_by": self.set_by,
        }


def _time(column: Column) -> str:
    """The column as a ``TIMESTAMP WITH TIME ZONE`` expression (NULL where unreadable)."""
    name, kind = quote(column.name), column.type.split("(")[0].upper()
    if kind in _TIMES:
        return f"{name}::TIMESTAMPTZ"
    if kind in _NUMBERS or kind == "DECIMAL":
        return f"to_timestamp({name}::DOUBLE)"
    return f"TRY_CAST({name} AS TIMESTAMPTZ)"


def _column(db: Database, dataset: str, time_column: object) -> Column:
    info = catalog(db).get(dataset)
    if info is None:
        raise UnknownDatasetError(f"no dataset named {dataset!r}")
    column = info.column(time_column) if isinstance(time_column, str) else None
    if column is None:
        raise InvalidRetentionPolicyError(
            f"dataset {dataset!r} has no column {time_column!r}; its columns: "
            f"{[c.name for c in info.columns]}"
        )
    kind = column.type.split("(")[0].upper()
    if kind not in (*_TIMES, *_NUMBERS, "DECIMAL", "VARCHAR"):
        raise InvalidRetentionPolicyError(
            f"column {column.name!r} of dataset {dataset!r} is {column.type}: a time column "
            "holds timestamps, dates, ISO 8601 text or seconds since 1970"
        )
    return column


def unreadable(db: Database, dataset: str, column: Column) -> int:
    """How many rows hold a time that cannot be read (never NULLs)."""
    row = db.one(
        f"SELECT count(*) FROM {table(dataset)} "
        f"WHERE {quote(column.name)} IS NOT NULL AND {_time(column)} IS NULL"
    )
    return int(row[0]) if row else 0


def set_policy(
    db: Database, dataset: str, time_column: object, period: object, set_by: str | None, at: str
) -> Policy:
    """Set (or replace) a dataset's policy, audited; refused when a row's time is unreadable."""
    parsed = parse_period(period)
    column = _column(db, dataset, time_column)
    bad = unreadable(db, dataset, column)
    if bad:
        raise InvalidRetentionPolicyError(
            f"{bad} rows of dataset {dataset!r} hold a {column.name!r} that is not an ISO 8601 "
            "time: they could never expire"
        )
    policy = Policy(dataset, column.name, parsed.text, at, set_by)
    with db.atomic():
        db.execute("DELETE FROM retention_policies WHERE dataset = ?", [dataset])
        db.execute(
            "INSERT INTO retention_policies VALUES (?, ?, ?, ?, ?)",
            [dataset, column.name, parsed.text, at, set_by],
        )
        audit.append(db, "retention.set", policy.as_dict())
    return policy


def remove_policy(db: Database, dataset: str, removed_by: str | None) -> None:
    with db.atomic():
        gone = db.one("DELETE FROM retention_policies WHERE dataset = ? RETURNING 1", [dataset])
        if gone is None:
            raise NoRetentionPolicyError(f"dataset {dataset!r} has no retention policy")
        audit.append(db, "retention.removed", {"dataset": dataset, "removed_by": removed_by})


def policies(db: Database) -> list[Policy]:
    return [
        Policy(*row)
        for row in db.all(
            "SELECT dataset, time_column, period, set_at, set_by FROM retention_policies "
            "ORDER BY dataset"
        )
    ]


@dataclass(frozen=True)
class Expiry:
    """Rows of ``dataset`` whose ``time_column`` is before ``before`` (an ISO 8601 moment)."""

    dataset: str
    column: Column
    before: str

    @property
    def where(self) -> str:
        """The SQL condition (one parameter: ``before``)."""
        return f"{_time(self.column)} < ?::TIMESTAMPTZ"


def due(db: Database, at: str) -> list[tuple[Expiry, int]]:
    """Each policy's expiry at ``at`` with the rows it would take, those with rows only.

    Raises :class:`UnreadableTimeError` when a dataset's time column holds text that is not a
    time (appended after the policy was set): nothing expires until it is fixed.
    """
    out = []
    for p in policies(db):
        info = catalog(db).get(p.dataset)
        column = None if info is None else info.column(p.time_column)
        if column is None:  # the dataset was dropped: its policy with it
            continue
        bad = unreadable(db, p.dataset, column)
        if bad:
            raise UnreadableTimeError(
                f"{bad} rows of dataset {p.dataset!r} hold a {p.time_column!r} that is not an "
                "ISO 8601 time: retention cannot tell whether they expired"
            )
        e = Expiry(p.dataset, column, parse_period(p.period).before(at))
        row = db.one(f"SELECT count(*) FROM {table(p.dataset)} WHERE {e.where}", [e.before])
        if row and row[0]:
            out.append((e, int(row[0])))
    return out


def expiries(
    db: Database, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """What expired, request by request (received in ``[since, until)``, ISO 8601 moments;
    open where None), oldest first: the dataset, the cutoff, how many rows, the status, and
    what each model version did."""
    rows = db.all(
        "SELECT request_id, subject_key, received_at, expired_before, rows_erased, status "
        "FROM erasure_requests WHERE legal_ground = ? AND (? IS NULL OR received_at >= ?) "
        "AND (? IS NULL OR received_at < ?) ORDER BY received_at, request_id",
        [GROUND, since, since, until, until],
    )
    acts: dict[str, list[dict[str, Any]]] = {}
    for q, model, version, action in db.all(
        "SELECT request_id, model, version, action FROM erasure_actions "
        "WHERE request_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY model, version",
        [[r[0] for r in rows]],
    ):
        acts.setdefault(q, []).append({"model": model, "version": int(version), "action": action})
    return [
        {
            "request_id": q,
            "dataset": key.removeprefix(SUBJECT_PREFIX),
            "expired_at": received,
            "before": before,
            "rows": int(n),
            "status": status,
            "models": acts.get(q, []),
        }
        for q, key, received, before, n, status in rows
    ]
