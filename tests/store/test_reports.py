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


def test_the_erasure_report_verifies_the_chain(populated: ModelStore) -> None:
    st = populated
    r = st.erase(VICTIM, legal_ground="art17-1-b")
    report = st.erasure_report(r.request_id)
    v = report["audit_verification"]
    assert v["verified"] is True and v["problems"] == [] and v["first_bad_seq"] is None
    head = {"seq": st.audit_head().seq, "entry_hash": st.audit_head().entry_hash}
    assert v["head"] == report["audit_chain_head"] == head
    assert v["text"].startswith(f"all {v['entries']} entries recomputed")
    assert all(e["verified"] for e in report["audit_entries"])

    # an entry edited in the database: the report says so, and which entries it cannot vouch for
    first = report["audit_entries"][0]["seq"]
    st._db.execute(
        "UPDATE audit_log SET ts = '2020-01-01T00:00:00.000000+00:00' WHERE seq = ?", [first]
    )
    bad = st.erasure_report(r.request_id)["audit_verification"]
    assert bad["verified"] is False and bad["first_bad_seq"] == first
    assert f"seq {first}" in bad["text"] and "cannot be relied on" in bad["text"]
    assert not any(e["verified"] for e in st.erasure_report(r.request_id)["audit_entries"])


def test_the_erasure_report_says_each_action_and_its_evidence_in_words(
    populated: ModelStore,
) -> None:
    st = populated
    st.train("logit", dataset="people", estimator=budgeted(), label="label", features=["a", "b"])
    r = st.erase(VICTIM, legal_ground="art17-1-b")  # logit: pending, then retrained in the purge
    report = st.erasure_report(r.request_id)
    assert report["legal_ground_article"] == "Art. 17(1)(b)"
    assert report["status_label"] == "completed"
    assert report["requested_by"].startswith("not given: filed through forget's Python API")
    assert report["handled_by"].startswith("forget ") and "(python)" in report["handled_by"]
    words = {(m["model"], m["action"]): m for m in report["models"]}
    assert {k: (m["action_label"], m["evidence_state"]) for k, m in words.items()} == {
        ("logit", "pending_retrain"): ("pending retrain", "pending"),
        ("logit", "retrain"): ("retrained", "retrained"),
        ("risk", "exact_unlearning"): ("exact unlearning", "passed"),
        ("score", "exact_unlearning"): ("exact unlearning", "passed"),
    }
    risk, ev = words["risk", "exact_unlearning"], words["risk", "exact_unlearning"]["evidence"]
    assert risk["evidence_text"] == (
        "retrain check passed: outputs identical to a retrain without the rows (revision 1; "
        f"{ev['probe_rows']} of {ev['training_rows']} training rows probed)"
    )
    assert "deletion budget" in words["logit", "pending_retrain"]["evidence_text"]
    assert "refitted from scratch" in words["logit", "retrain"]["evidence_text"]
    assert VICTIM not in json.dumps(report)


def test_evidence_that_failed_or_was_not_run_says_so() -> None:
    from store.reports import _in_words

    failed = {"method": "retrain_from_scratch", "passed": False, "max_abs_diff": 0.5,
              "tolerance": 1e-9, "probe_rows": 3, "training_rows": 9}  # fmt: skip
    state, text = _in_words("exact_unlearning", 2, failed, {}).values()
    assert state == "failed" and text.startswith("RETRAIN CHECK FAILED: outputs differ by up to")
    refit = {"method": "retrain_from_scratch", "passed": None, "error": "too few rows"}
    assert _in_words("exact_unlearning", 2, refit, {}) == {
        "evidence_state": "not_checked",
        "evidence_text": "no retrain check: too few rows",
    }
    passed = failed | {"passed": True, "identical": True, "status": "recorded",
                       "checked_revision": 3}  # fmt: skip
    where = {"evidence_audit": {"seq": 9, "matches": False}}
    edited = _in_words("exact_unlearning", 2, passed, where)
    assert edited["evidence_state"] == "failed" and "(revision 3;" in edited["evidence_text"]
    assert "DIFFERS FROM ITS AUDIT ENTRY" in edited["evidence_text"]
