"""What drift monitoring adds to the serving path, in process (the service, no HTTP).

Usage::

    python -m bench.monitoring            # adult, 100-tree HedgeCut
    python -m bench.monitoring --quick    # 10 trees, fewer calls (what CI executes)

Two services over copies of one store — monitoring on and off, cache off — score the same
test rows, calls interleaved so that machine noise hits both alike, for calls of 1 and of 64
rows. The cost of a drift report (the feature tests re-run at most once per 1,000 new rows)
is measured too and spread over the rows it covers. Then the same over HTTP: two servers, one
with monitoring and one without, one-row requests alternated between them. Goal (the drift
issue): under 5 % of the serving cost per row.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from api.server import free_port
from api.service import Service
from bench._common import machine, table, write_json
from bench.serving import TOKEN, _build, _serve
from forget.datasets import load_adult, train_test_split


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--quick", action="store_true", help="10 trees, 300 calls")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    trees, calls = (10, 300) if args.quick else (args.trees, args.calls)
    _, Xte, _, _ = train_test_split(load_adult())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        on_dir, off_dir = Path(tmp) / "on", Path(tmp) / "off"
        names = _build(on_dir, trees)
        shutil.copytree(on_dir, off_dir)
        rows = [dict(zip(names, x.tolist(), strict=True)) for x in Xte]
        services = {
            True: Service.open(on_dir, purge_interval=0, cache_bytes=0, batching=False),
            False: Service.open(off_dir, purge_interval=0, cache_bytes=0, batching=False,
                                monitoring=False),
        }  # fmt: skip
        try:
            for size in (1, 64):
                batches = [rows[(i * size) % (len(rows) - size) :][:size] for i in range(calls)]
                for svc in services.values():  # warm: kernels, monitors, profiles
                    for b in batches[:20]:
                        svc.predict("income", b)
                took: dict[bool, list[float]] = {True: [], False: []}
                for i, b in enumerate(batches):
                    for on in (True, False) if i % 2 else (False, True):  # no order bias
                        t = time.perf_counter()
                        services[on].predict("income", b)
                        took[on].append(time.perf_counter() - t)
                on_us = float(np.median(took[True])) * 1e6 / size
                off_us = float(np.median(took[False])) * 1e6 / size
                results.append(
                    {
                        "rows_per_call": size,
                        "serving_us_per_row": off_us,
                        "monitored_us_per_row": on_us,
                        "overhead": on_us / off_us - 1,
                    }
                )
            svc = services[True]
            reports = []
            for _ in range(5):
                t = time.perf_counter()
                svc.drift("income")
                reports.append(time.perf_counter() - t)
                svc.predict("income", rows[:1000])  # 1,000 new rows: the next report re-tests
            report_ms = float(np.median(reports)) * 1e3
            drift = svc.drift("income")
        finally:
            for svc in services.values():
                svc.close()
        http = _over_http(on_dir, off_dir, rows, calls)
    per_row_report = report_ms * 1e3 / 1000
    for r in results:
        r["report_us_per_row"] = per_row_report
        r["total_overhead"] = (r["monitored_us_per_row"] + per_row_report) / r[
            "serving_us_per_row"
        ] - 1
    print(
        table(
            results,
            [
                ("rows_per_call", "rows per call"),
                ("serving_us_per_row", "serving µs/row"),
                ("monitored_us_per_row", "with monitoring µs/row"),
                ("overhead", "observe overhead"),
                ("report_us_per_row", "report µs/row (1 per 1,000 rows)"),
                ("total_overhead", "total overhead"),
            ],
        )
    )
    print(f"\ndrift report: {report_ms:.2f} ms; in-distribution traffic drifts: {drift['drift']}")
    print(
        f"over HTTP (two servers, requests alternated): p50 {http['off_p50_ms']:.3f} ms without "
        f"monitoring, {http['on_p50_ms']:.3f} ms with ({http['overhead']:+.1%})"
    )
    payload = {
        "quick": args.quick,
        "trees": trees,
        "calls": calls,
        "machine": machine(),
        "report_ms": report_ms,
        "in_distribution_drift": drift["drift"],
        "results": results,
        "http": http,
    }
    path = write_json("monitoring-quick" if args.quick else "monitoring", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


def _over_http(on_dir: Path, off_dir: Path, rows: list[dict[str, Any]], calls: int) -> dict:
    """One-row requests alternated between a server with monitoring and one without."""
    ports = {True: free_port(), False: free_port()}
    procs = [
        _serve(on_dir, ports[True], "--cache-mb", "0"),
        _serve(off_dir, ports[False], "--cache-mb", "0", "--no-monitoring"),
    ]
    took: dict[bool, list[float]] = {True: [], False: []}
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        clients = {
            on: httpx.Client(base_url=f"http://127.0.0.1:{p}", headers=headers)
            for on, p in ports.items()
        }
        for i in range(calls + 50):
            body = {"rows": [rows[i % len(rows)]]}
            for on in (True, False) if i % 2 else (False, True):
                t = time.perf_counter()
                clients[on].post("/v1/models/income/predict", json=body).raise_for_status()
                if i >= 50:  # the first calls warm kernels and monitors
                    took[on].append(time.perf_counter() - t)
        for c in clients.values():
            c.close()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=60)
    on_ms, off_ms = (float(np.median(took[k])) * 1e3 for k in (True, False))
    return {"on_p50_ms": on_ms, "off_p50_ms": off_ms, "overhead": on_ms / off_ms - 1}


if __name__ == "__main__":
    main()
