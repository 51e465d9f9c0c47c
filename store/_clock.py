"""Timestamps: ISO 8601 strings in UTC, so that they hash and compare the same everywhere."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime


def now() -> str:
    """The current time, e.g. ``'2025-01-31T12:00:00.000000+00:00'``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def add_month(iso: str) -> str:
    """One calendar month later, the day clamped to the month's end (Art. 12(3) deadlines).

    >>> add_month("2025-01-31T10:00:00.000000+00:00")
    '2025-02-28T10:00:00.000000+00:00'
    """
    t = datetime.fromisoformat(iso)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    day = min(t.day, calendar.monthrange(year, month)[1])
    return t.replace(year=year, month=month, day=day).isoformat(timespec="microseconds")
