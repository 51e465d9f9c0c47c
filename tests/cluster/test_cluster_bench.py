"""The cluster benchmark runs (quick mode, its own local Ray cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray")


def test_cluster_bench_quick(tmp_path: Path) -> None:
    from bench import cluster

    out = tmp_path / "cluster.json"
    cluster.main(["--quick", "--concurrency", "4", "--out", str(out)])
    doc = json.loads(out.read_text())
    (run,) = doc["runs"]
    assert [(r["replicas"], r["batched"]) for r in run["results"]] == [
        (1, False),
        (1, True),
        (2, True),
    ]
    assert all(r["predictions_per_s"] > 0 and r["erase"]["n"] == 10 for r in run["results"])
