"""The period summary report: counts, completion times, overdue and pending requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from store import InvalidPeriodError, ModelStore
from store._clock import add_month
from tests.store.helpers import VICTIM, budgeted

GROUNDS = ["art17-1-a", "art17-1-b", "art17-1-c", "art17-1-d", "art17-1-e", "art17-1-f"]


def backdate(st: ModelStore, request_id: str, received: str) -> None:
    """Pretend a request arrived at ``received`` (tests cannot wait a month)."""
    st._db.execute(
        "UPDATE erasure_requests SET received_at = ? WHERE request_id = ?", [received, request_id]
    )


def test_summary_counts_times_and_overdue(populated: ModelStore) -> None:
    st = populated
    st.train("logit", dataset="people", estimator=budgeted(), label="label", features=["a", "b"])
    done = st.erase(VICTIM, legal_ground="art17-1-b")  # completed (retrained inside the purge)
    erased = st.erase("subj-001", legal_ground="art17-1-a", purge=False)
    st.retrain_pending()  # logit ready again: this one is erased, awaiting the purge
    pending = st.erase("subj-002", legal_ground="art17-1-c", purge=False)  # logit pending again
    noop = st.erase("nobody", legal_ground="art17-1-a")
    old = "2024-01-31T09:00:00.000000+00:00"
    backdate(st, pending.request_id, old)  # received long ago and still pending: overdue

    s = st.summary_report()
    text = json.dumps(s)  # JSON-able
    assert "sk_" not in text and "subj-" not in text and VICTIM not in text and "nobody" not in text
    assert s["requests"] == 4
    assert s["by_status"] == {"pending": 1, "erased": 1, "completed": 1, "no_data": 1}
    assert noop.status == "no_data" and noop.rows_erased == 0
    assert s["by_legal_ground"] == {
        "art17-1-a": 2,
        "art17-1-b": 1,
        "art17-1-c": 1,
        "art17-1-d": 0,
        "art17-1-e": 0,
        "art17-1-f": 0,
    }
    assert s["pending"] == 1 and s["awaiting_purge"] == 1 and s["open"] == 2
    assert s["overdue"] == {"count": 1, "request_ids": [pending.request_id]}
    assert s["no_op"] == 1 and s["rows_erased"] == 2 + erased.rows_erased + pending.rows_erased
    c = s["completion_seconds"]
    assert c["count"] == 1 and 0 <= c["median"] <= c["p95"] <= c["max"] < 600
    assert s["period"]["since"] is None and s["period"]["as_of"] > old

    # a period: only what was received in [since, until)
    only_old = st.summary_report(until="2025-01-01T00:00:00+00:00")
    assert only_old["requests"] == 1 and only_old["by_status"]["pending"] == 1
    recent = st.summary_report(since=datetime(2025, 1, 1))  # naive: read as UTC
    assert recent["requests"] == 3 and recent["overdue"]["count"] == 0
    # as_of decides what is overdue: a month and a day after now, the open ones are
    later = (datetime.now(UTC) + timedelta(days=32)).isoformat()
    assert st.summary_report(as_of=later)["overdue"]["count"] == 2
    assert {noop.request_id, done.request_id}.isdisjoint(
        st.summary_report(as_of=later)["overdue"]["request_ids"]
    )


def test_completed_late_is_counted(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b")
    backdate(st, r.request_id, "2020-03-01T00:00:00.000000+00:00")
    s = st.summary_report()
    assert s["completed_late"] == 1 and s["overdue"]["count"] == 0
    assert s["completion_seconds"]["median"] > 86400 * 365


def test_bad_periods_are_refused(populated: ModelStore) -> None:
    st = populated
    head = st.audit_head()
    with pytest.raises(InvalidPeriodError, match="ISO 8601"):
        st.summary_report(since="last tuesday")
    with pytest.raises(InvalidPeriodError, match="after"):
        st.summary_report(since="2025-02-01", until="2025-01-01")
    with pytest.raises(InvalidPeriodError):
        st.summary_report(until=20250101)
    with pytest.raises(InvalidPeriodError):
        st.summary_report(as_of="soon")
    assert st.audit_head() == head


def test_empty_store_summary(st: ModelStore) -> None:
    s = st.summary_report()
    assert s["requests"] == 0 and s["completion_seconds"]["median"] is None
    assert s["overdue"] == {"count": 0, "request_ids": []}


STAMPS = hst.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31), timezones=hst.just(UTC)
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    received=hst.lists(STAMPS, min_size=1, max_size=6),
    grounds=hst.lists(hst.sampled_from(GROUNDS), min_size=6, max_size=6),
    since=hst.none() | STAMPS,
    until=hst.none() | STAMPS,
    as_of=STAMPS,
)
def test_summary_partitions_the_period(
    populated: ModelStore, received, grounds, since, until, as_of
) -> None:
    """Counts by status and by ground each add up to the requests received in the period, and
    a request is overdue exactly when open past its deadline."""
    st = populated
    st._db.execute("DELETE FROM erasure_requests")
    rows = []
    for i, t in enumerate(received):
        at = t.isoformat(timespec="microseconds")
        status = ["pending", "erased", "completed"][i % 3]
        done = (t + timedelta(hours=i)).isoformat(timespec="microseconds")
        st._db.execute(
            "INSERT INTO erasure_requests (request_id, subject_key, legal_ground, status, "
            "received_at, erased_at, completed_at, datasets_json, rows_erased) "
            "VALUES (?, 'sk_x', ?, ?, ?, ?, ?, '{}', 1)",
            [f"er_{i}", grounds[i], status, at, at, done if status == "completed" else None],
        )
        rows.append((f"er_{i}", status, at))
    if since is not None and until is not None and since > until:
        since, until = until, since
    s = st.summary_report(since, until, as_of=as_of)
    lo = since.isoformat(timespec="microseconds") if since else ""
    hi = until.isoformat(timespec="microseconds") if until else "~"
    inside = [r for r in rows if lo <= r[2] < hi]
    assert s["requests"] == len(inside)
    assert sum(s["by_status"].values()) == sum(s["by_legal_ground"].values()) == len(inside)
    now = as_of.isoformat(timespec="microseconds")
    overdue = [q for q, status, at in inside if status != "completed" and now > add_month(at)]
    assert sorted(s["overdue"]["request_ids"]) == sorted(overdue)  # (listed by receipt time)
    assert s["completion_seconds"]["count"] == s["by_status"]["completed"]
