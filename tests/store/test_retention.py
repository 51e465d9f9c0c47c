"""Retention (Art. 5(1)(e)): rows past their dataset's period expire through the erasure path.

The clock is the ``at`` of :meth:`ModelStore.expire` (a server's purger passes none: now).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from store import ModelStore
from store.errors import UnknownDatasetError
from store.retention import (
    GROUND,
    InvalidRetentionPolicyError,
    NoRetentionPolicyError,
    UnreadableTimeError,
    parse_period,
)
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, needles, people, scan

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def dated(rows: list[dict], days: list[int]) -> list[dict]:
    """Each row seen ``days[i]`` days after T0, as ISO 8601 text; the victim's rows oldest."""
    out = []
    for row, d in zip(rows, days, strict=True):
        day = -400 if row["subject_id"] == VICTIM else d
        out.append(row | {"seen": (T0 + timedelta(days=day)).isoformat()})
    return out


def at(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat()


def make(st: ModelStore, rows: list[dict]) -> None:
    st.ingest("people", rows, subject_column="subject_id")
    st.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
    st.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)


def remaining(st: ModelStore) -> list[str]:
    return sorted(str(s) for (s,) in st._db.all('SELECT seen FROM data."people"'))


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    days=hs.lists(hs.integers(-60, 60), min_size=80, max_size=80),
    period_days=hs.integers(1, 90),
    now=hs.integers(0, 120),
)
def test_expiry_equals_never_having_had_the_rows(
    tmp_path_factory: pytest.TempPathFactory, days: list[int], period_days: int, now: int
) -> None:
    """After expire(at): the dataset holds exactly the rows seen at or after the cutoff, and
    every model answers as a model trained on those rows alone (same parameters, same seed)."""
    rows = people(30)
    rows = dated(rows, (days * 2)[: len(rows)])
    cutoff = T0 + timedelta(days=now - period_days)
    kept = [r for r in rows if datetime.fromisoformat(r["seen"]) >= cutoff]
    with ModelStore.open(tmp_path_factory.mktemp("s"), evidence_rate=0) as st:
        make(st, rows)
        st.set_retention_policy("people", "seen", f"P{period_days}D")
        receipts = st.expire(at=at(now))
        assert remaining(st) == sorted(r["seen"] for r in kept)
        n = len(rows) - len(kept)
        assert [r.rows_erased for r in receipts] == ([n] if n else [])
        assert st.expire(at=at(now)) == []  # nothing more has expired
        if not kept:
            return
        # rows have ids 1, 2, ... in order: the models equal fits on the kept rows, same ids
        keep = [i for i, r in enumerate(rows) if datetime.fromisoformat(r["seen"]) >= cutoff]
        X = np.array([[rows[i][f] for f in FEATURES] for i in keep])
        ids = np.array(keep) + 1
        try:
            ref_risk = hedgecut().fit(X, [rows[i]["label"] for i in keep], row_ids=ids)
        except ValueError:  # one class left: the store's forest forgot down to it, no reference
            ref_risk = None
        ref_score = linear().fit(X, [rows[i]["score"] for i in keep], row_ids=ids)
        if ref_risk is not None:
            np.testing.assert_array_equal(st.predict("risk", X), ref_risk.predict(X))
        np.testing.assert_allclose(
            st.predict("score", X), ref_score.predict(X), rtol=1e-8, atol=1e-8
        )


def test_an_expiry_is_an_erasure_request_without_a_subject(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "s", evidence_rate=1) as st:
        rows = dated(people(30), [0] * len(people(30)))
        make(st, rows)
        policy = st.set_retention_policy("people", "seen", "P1Y", set_by="dpo")
        assert (policy.dataset, policy.time_column, policy.period) == ("people", "seen", "P1Y")
        assert [p.as_dict()["period"] for p in st.retention_policies()] == ["P1Y"]
        (r,) = st.expire(at=at(30))  # only the victim's rows (400 days old) expired
        assert (r.legal_ground, r.subject_key, r.rows_erased) == (GROUND, "retention:people", 2)
        assert st.find_subject(VICTIM) == {}
        assert {(a.model, a.action) for a in r.models} == {
            ("risk", "exact_unlearning"),
            ("score", "exact_unlearning"),
        }
        assert all(a.evidence["passed"] for a in r.models)  # checked against a retrain
        report = st.erasure_report(r.request_id)
        assert report["legal_ground_article"] == "Art. 5(1)(e)"
        assert "retention period expired" in report["legal_ground_text"]
        summary = st.summary_report()
        assert summary["by_legal_ground"][GROUND] == 1
        (e,) = st.expiries()
        assert (e["dataset"], e["rows"], e["before"]) == (
            "people",
            2,
            "2024-01-31T00:00:00.000000+00:00",
        )
        assert {m["model"] for m in e["models"]} == {"risk", "score"}
        assert st.expiries(since=at(365 * 3)) == []
        kinds = [k for _, k, p in _audit(st)]
        assert "retention.set" in kinds and "erasure.committed" in kinds
        committed = [p for _, k, p in _audit(st) if k == "erasure.committed"]
        assert committed[-1]["expired"] == {
            "dataset": "people",
            "time_column": "seen",
            "before": "2024-01-31T00:00:00.000000+00:00",
        }
        assert VICTIM not in str(_audit(st))  # no subject is named anywhere
        st.purge()
        assert st.erasure_request(r.request_id).status == "completed"
        assert st.verify_audit_log().ok
    # erased means gone: nothing of the expired rows is left in any byte of the store
    assert scan(tmp_path / "s", needles()) == []


def _audit(st: ModelStore) -> list[tuple[int, str, dict]]:
    import json

    return [
        (int(q), str(k), json.loads(p))
        for q, k, p in st._db.all("SELECT seq, kind, payload_json FROM audit_log ORDER BY seq")
    ]


@pytest.mark.parametrize(
    "period", ["30 days", "P", "PT", "P0D", "P1.5D", "p30d", "P-1D", "", None, 30, "P30DT"]
)
def test_a_period_that_is_not_a_duration_is_refused(populated: ModelStore, period: object) -> None:
    head = populated.audit_head()
    with pytest.raises(InvalidRetentionPolicyError, match="duration|zero"):
        populated.set_retention_policy("people", "a", period)  # type: ignore[arg-type]
    assert populated.retention_policies() == [] and populated.audit_head() == head


def test_periods_count_calendar_months_and_fixed_spans() -> None:
    assert parse_period("P1M").before("2025-03-31T00:00:00+00:00").startswith("2025-02-28")
    assert parse_period("P1Y").before("2024-02-29T00:00:00+00:00").startswith("2023-02-28")
    assert parse_period("P2W").before("2025-01-15T00:00:00+00:00").startswith("2025-01-01")
    assert parse_period("PT36H").before("2025-01-03T00:00:00+00:00").startswith("2025-01-01T12")
    for huge in ("P5000Y", "PT999999999999H", "P5534166225132Y699961M51098652W907246DT47843210H"):
        with pytest.raises(InvalidRetentionPolicyError, match="1000 years"):
            parse_period(huge)


def test_bad_policies_are_refused_and_change_nothing(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "s") as st:
        rows = [r | {"seen": "2025-01-01", "note": "x"} for r in people(10)]
        rows[3]["seen"] = "last tuesday"
        make(st, rows)
        head = st.audit_head()
        with pytest.raises(UnknownDatasetError):
            st.set_retention_policy("nope", "seen", "P1D")
        with pytest.raises(InvalidRetentionPolicyError, match="no column"):
            st.set_retention_policy("people", "missing", "P1D")
        with pytest.raises(InvalidRetentionPolicyError, match="1 rows .* not an ISO 8601 time"):
            st.set_retention_policy("people", "seen", "P1D")
        with pytest.raises(NoRetentionPolicyError):
            st.remove_retention_policy("people")
        assert st.retention_policies() == [] and st.audit_head() == head


def test_unreadable_times_appended_later_stop_expiry_with_a_clear_error(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "s") as st:
        rows = dated(people(10), [0] * len(people(10)))
        make(st, rows)
        st.set_retention_policy("people", "seen", "P1D")
        st.append("people", [rows[0] | {"subject_id": "late", "seen": "soon"}])
        with pytest.raises(UnreadableTimeError, match="1 rows"):
            st.expire(at=at(10))
        assert len(remaining(st)) == len(rows) + 1  # nothing expired


def test_numeric_times_and_nulls(tmp_path: Path) -> None:
    """Seconds since 1970 work as times; a row without a time never expires."""
    with ModelStore.open(tmp_path / "s", evidence_rate=0) as st:
        rows = people(10)
        t0 = T0.timestamp()
        rows = [r | {"seen": t0 - 86400 * (i % 3)} for i, r in enumerate(rows)]
        rows[0]["seen"] = None
        make(st, rows)
        st.set_retention_policy("people", "seen", "P1D")
        (r,) = st.expire(at=at(0.5))
        assert r.rows_erased == sum(
            1 for x in rows if x["seen"] is not None and x["seen"] < t0 - 43200
        )
        left = st._db.all('SELECT count(*) FROM data."people" WHERE seen IS NULL')
        assert left == [(1,)]


def test_removing_a_policy_stops_expiry(tmp_path: Path) -> None:
    with ModelStore.open(tmp_path / "s") as st:
        make(st, dated(people(10), [0] * len(people(10))))
        st.set_retention_policy("people", "seen", "P1D", set_by="dpo")
        st.remove_retention_policy("people", removed_by="dpo")
        assert st.expire(at=at(1000)) == [] and st.retention_policies() == []
