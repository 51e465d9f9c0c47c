"""bench.sharded runs (small): the table's rows, and SISA's retrain after deletions is a refit."""

from __future__ import annotations

import json

import pytest


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sharded_bench_quick(tmp_path):
    from bench import sharded

    out = tmp_path / "sharded.json"
    payload = sharded.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["results"] == json.loads(json.dumps(payload["results"]))
    rows = payload["results"]
    assert {(r["learner"], r["n_shards"]) for r in rows} == {
        (lname, k) for lname in ("HGB", "RF") for k in ("monolithic", 1, 5)
    }
    for r in rows:
        assert 0.5 < r["accuracy"] <= 1.0
        if r["n_shards"] == "monolithic":
            continue
        assert r["answers"] == 23  # 3 deletions retrained, 20 answered only
        assert 0 < r["answer_p50_ms"] <= r["answer_p99_ms"]
        assert r["retrain_per_deletion_s"] > 0 and r["speedup"] > 0
        if r["n_shards"] == 5:
            assert r["equals_refit"] is True
