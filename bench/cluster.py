"""Replicated serving on Ray: predict throughput with 1 and 2 replicas, erasure latency.

Usage::

    python -m bench.cluster            # 100,000 and 1,000,000 rows, 5 s per replica count
    python -m bench.cluster --quick    # 2,000 rows, 1 s (what a test run executes)

A store holds synthetic rows (8 features, one to three rows per made-up subject) and a brute
force 1-nearest-neighbour regressor, so that a one-row prediction costs the replica a scan of
every row: about 0.4 ms at 100,000 rows and a few ms at 1,000,000. A :class:`cluster.Cluster`
serves it on a local Ray cluster with 1 replica behind an unbatched router (every request its
own Ray call), then 1 and 2 replicas behind the micro-batching router; ``concurrency``
coroutines in this process send one-row predictions through the router (no HTTP: the router's
overhead, not uvicorn's, is what replicas add), each a different row. Then ``erasures``
subjects are erased one after the other: the latency is the owner's commit plus the fan-out
until every replica acknowledged; ``fan-out`` is the second part alone. Router, replicas and
owner share this machine's cores (2 in CI), so the 2-replica figure is a floor and the ratio
says how much of a replica's work parallelises here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import latency_summary, table, write_json
from forget import KNNRegressor
from store import ModelStore

FEATURES = [f"x{i}" for i in range(8)]


def _build(directory: Path, n: int) -> tuple[list[dict[str, float]], list[str]]:
    """The store; a query per 7th row, and the subjects."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, len(FEATURES))).round(6)
    subjects = [f"s{int(s):07d}" for s in np.repeat(np.arange(n), rng.integers(1, 4, size=n))[:n]]
    columns: dict[str, Any] = {"subject_id": subjects, "y": np.arange(n, dtype=np.float64)}
    columns |= {f: X[:, j] for j, f in enumerate(FEATURES)}
    with ModelStore.open(directory) as st:
        st.ingest("synthetic", columns, subject_column="subject_id")
        st.train(
            "nn",
            dataset="synthetic",
            estimator=KNNRegressor(n_neighbors=1, algorithm="brute"),
            label="y",
            features=FEATURES,
        )
    queries = [dict(zip(FEATURES, x.tolist(), strict=True)) for x in X[::7]]
    return queries, sorted(set(subjects))


async def _load(cluster: Any, queries: list[dict[str, float]], seconds: float, conc: int) -> int:
    done = 0
    end = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < end:
            await cluster.predict_async("nn", [queries[i % len(queries)]])
            i += conc
            done += 1

    await asyncio.gather(*(worker(k) for k in range(conc)))
    return done


# (replicas, router batching): the unbatched router is the same run's baseline
CONFIGS: tuple[tuple[int, bool], ...] = ((1, False), (1, True), (2, True))


def run(
    n: int, seconds: float, erasures: int, concurrency: int, replicas: tuple[tuple[int, bool], ...]
) -> dict[str, Any]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    try:
        return _run(n, seconds, erasures, concurrency, replicas)
    finally:
        if started:
            ray.shutdown()


def _run(
    n: int, seconds: float, erasures: int, concurrency: int, replicas: tuple[tuple[int, bool], ...]
) -> dict[str, Any]:
    from cluster import Cluster

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        queries, subjects = _build(Path(tmp), n)
        picks = iter(np.random.default_rng(1).permutation(subjects).tolist())
        for k, batched in replicas:
            # unbatched: every request its own Ray call at once (no limit on calls in flight)
            inflight = None if batched else 1 << 30
            cluster = Cluster(
                tmp, replicas=k, purge_interval=0, evidence_rate=0.0, max_inflight=inflight
            )
            try:
                asyncio.run(_load(cluster, queries, min(seconds, 0.5), concurrency))  # warm up
                done = asyncio.run(_load(cluster, queries, seconds, concurrency))
                total, fan = [], []
                for _ in range(erasures):
                    t = time.perf_counter()
                    cluster.erase(next(picks), "art17-1-b")
                    total.append(time.perf_counter() - t)
                    assert cluster.last_fanout is not None
                    assert len(cluster.last_fanout.applied) == k
                    fan.append(cluster.last_fanout.seconds)
            finally:
                cluster.close()
            results.append(
                {
                    "replicas": k,
                    "batched": batched,
                    "predictions_per_s": done / seconds,
                    "erase": latency_summary(total),
                    "fan_out": latency_summary(fan),
                }
            )
    base = next(r for r in results if r["replicas"] == 1 and r["batched"])["predictions_per_s"]
    for r in results:
        r["throughput_ratio"] = r["predictions_per_s"] / base
    return {"rows": n, "seconds": seconds, "concurrency": concurrency, "results": results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2,000 rows, 1 s, 10 erasures")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--rows", type=int, nargs="+", help="store sizes (default 100,000 and 1,000,000)"
    )
    p.add_argument("--out", help="JSON path (default bench/results/cluster.json)")
    args = p.parse_args(argv)
    sizes, seconds, erasures = (
        ((2_000,), 1.0, 10) if args.quick else ((100_000, 1_000_000), 5.0, 50)
    )
    runs = [run(n, seconds, erasures, args.concurrency, CONFIGS) for n in args.rows or sizes]
    rows = [
        {
            "rows": run_["rows"],
            "replicas": r["replicas"],
            "router": "batching" if r["batched"] else "unbatched",
            "rps": r["predictions_per_s"],
            "ratio": r["throughput_ratio"],
            "erase_p50": r["erase"]["p50_us"] / 1e3,
            "erase_p99": r["erase"]["p99_us"] / 1e3,
            "fan_p50": r["fan_out"]["p50_us"] / 1e3,
            "fan_p99": r["fan_out"]["p99_us"] / 1e3,
        }
        for run_ in runs
        for r in run_["results"]
    ]
    print(f"1-NN brute force, {args.concurrency} concurrent one-row predictions, {seconds:g} s")
    print(
        table(
            rows,
            [
                ("rows", "rows"),
                ("replicas", "replicas"),
                ("router", "router"),
                ("rps", "predictions/s"),
                ("ratio", "vs 1 replica, batching"),
                ("erase_p50", "erase p50 ms"),
                ("erase_p99", "erase p99 ms"),
                ("fan_p50", "fan-out p50 ms"),
                ("fan_p99", "fan-out p99 ms"),
            ],
        )
    )
    payload: dict[str, Any] = {"runs": runs}
    payload["quick"] = args.quick
    path = write_json("cluster", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
