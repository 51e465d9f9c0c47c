"""The performance-prediction bench runs (small; the full run writes bench/results/ppm.json)."""

from __future__ import annotations

import json

from bench import ppm


def test_ppm_bench_quick(tmp_path):
    out = tmp_path / "ppm.json"
    payload = ppm.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(payload["rows"]))
    rows = payload["rows"]
    assert {(r["dataset"], r["model"], r["regressor"]) for r in rows} == {
        (d, m, r)
        for d in ("adult", "shopping", "synthetic")
        for m in ("HedgeCut", "LogisticRegression")
        for r in ("auto", "ridge", "knn")
    }
    assert set(payload["withheld_kinds"]).isdisjoint(payload["train_kinds"])
    for r in rows:
        assert r["windows"] == 40 and 0 < r["withheld_windows"] < 40
        for k in ("mae_predictor", "mae_constant", "mae_drift_flag", "validation_accuracy"):
            assert 0.0 <= r[k] <= 1.0, (k, r)
        best = min(r["mae_constant"], r["mae_drift_flag"])
        assert r["ratio"] == best / r["mae_predictor"]
        assert r["estimate_p50_us"] > 0 and r["score_p50_us"] > 0 and r["served_p50_us"] > 0
        assert r["served_windows"] == 5
        assert r["cost_share_pct"] == 100 * r["estimate_p50_us"] / r["served_p50_us"]
        assert r["cost_share_of_scoring_pct"] == 100 * r["estimate_p50_us"] / r["score_p50_us"]
        # auto keeps the regressor of lower leave-one-out error and estimates as it does
        assert r["chosen"] == (
            r["regressor"] if r["regressor"] != "auto" else min(r["loo_mae"], key=r["loo_mae"].get)
        )
    by = {(r["dataset"], r["model"], r["regressor"]): r for r in rows}
    for (d, m, reg), r in by.items():
        if reg == "auto":
            assert r["mae_predictor"] == by[(d, m, r["chosen"])]["mae_predictor"]
