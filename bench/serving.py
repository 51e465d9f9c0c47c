"""Serving over HTTP: one uvicorn worker, loopback, a load generator in its own process.

Usage::

    python -m bench.serving            # adult, 100-tree HedgeCut, 5 s per scenario
    python -m bench.serving --quick    # 10 trees, 1 s per scenario (what CI executes)

A store holding adult (30,162 rows, made-up subject ids) and a HedgeCut forest is served by
``forget serve`` in a subprocess; ``bench._loadgen`` (raw keep-alive HTTP/1.1 connections)
sends one-row predict requests, each a different test row, so the prediction cache cannot
answer (it is off except in the scenario that measures it). Scenarios: latency at one
connection (with and without drift monitoring); throughput at 64 connections with the
micro-batcher on and off; and repeated rows with the cache on. The same machine runs server
and load generator (2 cores): the figures are a floor, and the ratios between scenarios are
what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._common import machine, table, write_json
from bench.store_erasure import _columns
from forget import HedgeCutClassifier
from forget.datasets import load_adult, train_test_split
from store import ModelStore

TOKEN = "bench-token-0001"


def _build(directory: Path, trees: int) -> list[str]:
    ds = load_adult()
    cols, names, _ = _columns(len(ds.y))
    with ModelStore.open(directory) as st:
        st.ingest("adult", cols, subject_column="subject_id")
        st.train(
            "income",
            dataset="adult",
            estimator=HedgeCutClassifier(n_estimators=trees, random_state=0),
            label="income",
            features=names,
        )
    return names


def _bodies(path: Path, names: list[str], distinct: int) -> Path:
    _, Xte, _, _ = train_test_split(load_adult())
    with path.open("w") as f:
        for x in Xte[:distinct]:
            f.write(json.dumps({"rows": [dict(zip(names, x.tolist(), strict=True))]}) + "\n")
    return path


def _serve(directory: Path, port: int, *flags: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FORGET_API_KEYS": json.dumps({TOKEN: ["predict"]})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "forget.cli", "serve", "--store", str(directory), "--port",
         str(port), "--log-level", "warning", "--purge-interval", "0", *flags],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def _load(port: int, bodies: Path, connections: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._loadgen", "--port", str(port), "--path",
         "/v1/models/income/predict", "--bodies", str(bodies), "--token", TOKEN,
         "--connections", str(connections), "--seconds", str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true", help="10 trees, 1 s per scenario")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    trees, seconds = (10, 1.0) if args.quick else (args.trees, args.seconds)
    from api.server import free_port

    scenarios = [
        ("1 connection, batching on", ("--cache-mb", "0"), 1, 6000),
        ("1 connection, batching off", ("--cache-mb", "0", "--no-batching"), 1, 6000),
        ("1 connection, no drift monitoring", ("--cache-mb", "0", "--no-monitoring"), 1, 6000),
        ("64 connections, batching on", ("--cache-mb", "0"), 64, 6000),
        ("64 connections, batching off", ("--cache-mb", "0", "--no-batching"), 64, 6000),
        ("64 connections, batching on, cache on (100 distinct rows)", (), 64, 100),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "store"
        names = _build(directory, trees)
        for label, flags, connections, distinct in scenarios:
            bodies = _bodies(Path(tmp) / f"bodies-{distinct}.jsonl", names, distinct)
            port = free_port()
            proc = _serve(directory, port, *flags)
            try:
                _load(port, bodies, connections, min(1.0, seconds))  # warm: kernels, caches
                r = _load(port, bodies, connections, seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            r["scenario"] = label
            results.append(r)
            print(f"  {label}: {r['rows_per_s']:,.0f} rows/s, p50 {r['p50_ms']:.2f} ms, "
                  f"p99 {r['p99_ms']:.2f} ms, statuses {r['statuses']}", flush=True)  # fmt: skip
    by = {r["scenario"]: r for r in results}
    on, off = by["64 connections, batching on"], by["64 connections, batching off"]
    one, bare = by["1 connection, batching on"], by["1 connection, no drift monitoring"]
    summary = {
        "batching_speedup_64": on["rows_per_s"] / off["rows_per_s"],
        "one_connection_p99_ms": one["p99_ms"],
        "monitoring_overhead_p50": one["p50_ms"] / bare["p50_ms"] - 1,
    }
    print()
    print(
        table(
            results,
            [
                ("scenario", "scenario"),
                ("connections", "connections"),
                ("rows_per_s", "rows/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("requests", "requests"),
            ],
        )
    )
    print(f"\nbatching on / off at 64 connections: {summary['batching_speedup_64']:.2f}×")
    print(f"drift monitoring adds {summary['monitoring_overhead_p50']:+.1%} to the p50 latency")
    payload = {
        "quick": args.quick,
        "trees": trees,
        "seconds": seconds,
        "machine": machine(),
        "results": results,
        "summary": summary,
    }
    path = write_json("serving-quick" if args.quick else "serving", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
