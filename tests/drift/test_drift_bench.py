"""bench/drift.py runs (small), and its committed full-size results meet the issue's targets."""

from __future__ import annotations

import json
from pathlib import Path

from bench import drift as drift_bench

RESULTS = Path(drift_bench.__file__).parent / "results" / "drift.json"


def test_drift_bench_quick(tmp_path):
    out = tmp_path / "drift.json"
    payload = drift_bench.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["shift"] == json.loads(json.dumps(payload["shift"]))
    assert payload["in_distribution"]["runs"] == 2
    assert payload["in_distribution"]["any_alert_rate"] == 0.0
    for row in payload["shift"]:
        assert row["detected_share"] == 1.0, row
        assert row["delay_median_rows"] <= 1000 and row["others_flagged_share"] == 0.0
    assert {c["batch"] for c in payload["cost"]} == {1, 16, 64, 256}
    assert all(c["observe_us_per_row"] > 0 for c in payload["cost"])


def test_committed_drift_results_meet_the_targets():
    res = json.loads(RESULTS.read_text())
    assert res["quick"] is False and res["seeds"] >= 20
    null = res["in_distribution"]
    assert null["rows"] == 10_000 and null["feature_false_alarm_rate"] <= 0.05
    assert len(res["shift"]) >= 4
    for row in res["shift"]:
        assert row["detected_share"] == 1.0 and row["delay_p95_rows"] <= 2000, row
        assert row["others_flagged_share"] <= 0.05, row
