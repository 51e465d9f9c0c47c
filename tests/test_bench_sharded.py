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
    assert payload["best"] == json.loads(json.dumps(sharded.best(rows)))


def test_best_is_the_cheapest_retrain_within_one_point():
    from bench.sharded import best

    def row(k, points, speedup, p99=0.5, learner="RF"):
        return {
            "dataset": "d", "learner": learner, "n_shards": k,
            "points_vs_monolithic": points, "speedup": speedup, "answer_p99_ms": p99,
        }  # fmt: skip

    rows = [
        {"dataset": "d", "learner": "RF", "n_shards": "monolithic"},
        row(1, 0.0, 50.0),  # one shard is no sharding: never the best
        row(5, 0.2, 4.0),
        row(20, -0.9, 12.0),
        row(50, -1.4, 30.0),  # cheaper, but more than a point lost
        row(20, -2.0, 30.0, learner="HGB"),  # none within a point: no row
        row(10, -0.5, 12.0, p99=1.5, learner="MLP"),  # cheap enough, answers too slow
    ]
    got = {(r["learner"], r["n_shards"], r["met"]) for r in best(rows)}
    assert got == {("RF", 20, True), ("MLP", 10, False)}
    mlp = next(r for r in best(rows) if r["learner"] == "MLP")
    assert mlp["cheap_enough"] and not mlp["fast_enough"]
