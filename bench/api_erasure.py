"""Erasure latency over HTTP with sampled retrain evidence, and the prediction stall it causes:
checks run inline (inside the erasure, under the service's lock: before) against deferred
(scheduled by the erasure, refitted by the background purger off the lock: after).

Usage::

    python -m bench.api_erasure            # adult 24,000 rows, 200 requests, evidence rate 0.1
    python -m bench.api_erasure --quick    # 2,000 rows, 20 requests, rate 0.3

The store is the one ``bench.store_erasure`` builds (adult with made-up subject ids; HedgeCut,
kNN and ridge regression). For each mode a fresh copy is served by uvicorn in a subprocess;
one client files the erasure requests one after another while another sends one-row
predictions to the forest in a loop, from the first erasure until every sampled check is
recorded (deferred checks finish after the burst). Each prediction's latency includes any wait
for the lock: its maximum is the longest stall. Two scenarios: ``evidence only`` (no purge
during the run; a thread in the server calls ``Service.collect_evidence`` every 0.5 s, as the
purger does when only evidence waits), which isolates the checks; and ``purger`` (the service's
background purger every 2 s: evidence, then retrain, checkpoint and compaction under the lock,
which stall predictions in both modes). Server and clients share the machine, so the figures
are a floor; the ratios between the modes are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench._common import latency_summary, machine, table, write_json
from bench.store_erasure import _columns, _models
from store import ModelStore

TOKEN = "bench-token-0002"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODES = {"inline": "inline (before)", "deferred": "deferred (after)"}
SCENARIOS = {"evidence only": (0.0, 0.5), "purger": (2.0, 0.0)}  # purge, collect intervals


def _build(directory: Path, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The store of ``bench.store_erasure``; the forest's features and some rows to predict."""
    cols, names, subjects = _columns(n)
    models = _models(names)
    with ModelStore.open(directory) as st:
        st.ingest("adult", cols, subject_column="subject_id")
        for name, (est, label, feats) in models.items():
            st.train(name, dataset="adult", estimator=est, label=label, features=feats)
    X = np.column_stack([np.asarray(cols[c], dtype=float) for c in names])[:1000]
    return names, X, subjects


def _serve(args: argparse.Namespace) -> None:
    """The server process: the service in ``args.evidence`` mode on uvicorn, until SIGTERM."""
    import uvicorn

    from api.app import create_app
    from api.auth import ApiKeys
    from api.service import Service

    service = Service.open(
        args.serve,
        purge_interval=args.purge_interval,
        evidence_rate=args.rate,
        evidence=args.evidence,
    )

    def collector() -> None:
        while True:
            time.sleep(args.collect_interval)
            service.collect_evidence()

    if args.collect_interval > 0:
        threading.Thread(target=collector, name="bench-collector", daemon=True).start()
    app = create_app(service, ApiKeys.from_mapping({TOKEN: ["admin"]}))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def _start(
    directory: Path, mode: str, rate: float, scenario: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    from api.server import free_port

    port = free_port()
    purge, collect = SCENARIOS[scenario]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.api_erasure", "--serve", str(directory), "--port",
             str(port), "--evidence", mode, "--rate", str(rate), "--purge-interval",
             str(purge), "--collect-interval", str(collect)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start:\n{log.read_text()}")


def _predict(args: argparse.Namespace) -> None:
    """The predicting client's process: one-row predictions in a loop until the stop file
    appears, then their latencies (seconds) as JSON."""
    bodies = json.loads(Path(args.bodies).read_text())
    stop, latencies = Path(args.stop_file), []
    with httpx.Client(base_url=args.predict, timeout=120, headers=AUTH) as h:
        i = 0
        while not stop.exists():
            t = time.perf_counter()
            r = h.post("/v1/models/hedgecut/predict", json=bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - t)
            r.raise_for_status()
            i += 1
            if i == 1:
                Path(args.stop_file + ".ready").touch()  # the burst may begin
    Path(args.latencies).write_text(json.dumps(latencies))


def _run(
    directory: Path,
    mode: str,
    victims: list[str],
    bodies_file: Path,
    rate: float,
    scenario: str,
) -> dict[str, Any]:
    proc, url = _start(directory, mode, rate, scenario, directory.parent / f"{mode}.log")
    try:
        with httpx.Client(base_url=url, timeout=120, headers=AUTH) as http:
            for body in json.loads(bodies_file.read_text())[:20]:  # warm: kernels, the forest
                http.post("/v1/models/hedgecut/predict", json=body).raise_for_status()
            for v in victims[:3]:
                http.post("/v1/erasure-requests", json={"subject_id": v}).raise_for_status()
            # the predicting client is a process of its own: two client threads in one
            # process would slow each other down (the GIL), and read as a slow server
            stop = directory.parent / f"{directory.name}.stop"
            lat_file = directory.parent / f"{directory.name}.latencies.json"
            worker = subprocess.Popen(
                [sys.executable, "-m", "bench.api_erasure", "--predict", url, "--bodies",
                 str(bodies_file), "--stop-file", str(stop), "--latencies", str(lat_file)],
            )  # fmt: skip
            ready = Path(f"{stop}.ready")
            while not ready.exists():
                if worker.poll() is not None:
                    raise RuntimeError("the predicting client exited")
                time.sleep(0.02)
            erase, receipts = [], []
            t0 = time.perf_counter()
            for v in victims[3:]:
                t = time.perf_counter()
                r = http.post("/v1/erasure-requests", json={"subject_id": v})
                erase.append(time.perf_counter() - t)
                r.raise_for_status()
                receipts.append(r.json())
            burst = time.perf_counter() - t0
            sampled = [
                r["request_id"]
                for r in receipts
                if any(a["evidence"].get("method") == "retrain_from_scratch" for a in r["models"])
            ]
            t1 = time.perf_counter()
            reports = {}
            while len(reports) < len(sampled):  # deferred checks finish after the burst
                for q in sampled:
                    if q not in reports:
                        doc = http.get(f"/v1/erasure-requests/{q}/report").json()
                        if doc["evidence_status"] != "scheduled":
                            reports[q] = doc
                time.sleep(0.05)
            wait = time.perf_counter() - t1
            stop.touch()
            worker.wait(timeout=120)
            predict = json.loads(lat_file.read_text())
            checks = [m["evidence"] for doc in reports.values() for m in doc["models"]]
            verified = http.get("/v1/audit/verify").json()["ok"]
    finally:
        proc.terminate()
        proc.wait(timeout=300)
    el, pl = latency_summary(erase), latency_summary(predict)
    return {
        "scenario": scenario,
        "mode": MODES[mode],
        "requests": len(erase),
        "sampled": len(sampled),
        "checks": len(checks),
        "checks_passed": sum(bool(c.get("passed")) for c in checks),
        "erase_p50_ms": el["p50_us"] / 1e3,
        "erase_p99_ms": el["p99_us"] / 1e3,
        "erase_max_ms": el["max_us"] / 1e3,
        "burst_s": burst,
        "evidence_after_burst_s": wait,
        "predictions": len(predict),
        "predict_p50_ms": pl["p50_us"] / 1e3,
        "predict_p99_ms": pl["p99_us"] / 1e3,
        "predict_max_ms": pl["max_us"] / 1e3,
        "audit_verified": verified,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=24_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.1, help="evidence rate")
    ap.add_argument("--quick", action="store_true", help="2,000 rows, 20 requests, rate 0.3")
    ap.add_argument("--out", default=None)
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--evidence", default="deferred", help=argparse.SUPPRESS)
    ap.add_argument("--purge-interval", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--collect-interval", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--predict", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bodies", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stop-file", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--latencies", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args)
        return {}
    if args.predict:
        _predict(args)
        return {}
    n, requests, rate = (2000, 20, 0.3) if args.quick else (args.rows, args.requests, args.rate)
    rng = np.random.default_rng(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        pristine = Path(tmp) / "pristine"
        names, X, subjects = _build(pristine, n)
        bodies = [{"rows": [dict(zip(names, x.tolist(), strict=True))]} for x in X]
        bodies_file = Path(tmp) / "bodies.json"
        bodies_file.write_text(json.dumps(bodies))
        people = rng.permutation(np.unique(subjects))[: requests + 3]
        victims = [f"person-{s:06d}" for s in people]
        for scenario in SCENARIOS:
            for mode in MODES:
                directory = Path(tmp) / f"{scenario.replace(' ', '-')}-{mode}"
                shutil.copytree(pristine, directory)
                r = _run(directory, mode, victims, bodies_file, rate, scenario)
                results.append(r)
                print(
                    f"  {scenario}, {r['mode']}: erase p50 {r['erase_p50_ms']:.1f} ms, p99 "
                    f"{r['erase_p99_ms']:.1f} ms; predict p99 {r['predict_p99_ms']:.1f} ms, "
                    f"max {r['predict_max_ms']:.1f} ms; {r['checks_passed']}/{r['checks']} "
                    "checks passed",
                    flush=True,
                )
    summary = {}
    for scenario in SCENARIOS:
        before, after = (r for r in results if r["scenario"] == scenario)
        summary[scenario] = {
            "erase_p99_before_over_after": before["erase_p99_ms"] / after["erase_p99_ms"],
            "predict_max_before_over_after": before["predict_max_ms"] / after["predict_max_ms"],
        }
    print()
    print(
        table(
            results,
            [
                ("scenario", "scenario"),
                ("mode", "evidence"),
                ("requests", "requests"),
                ("sampled", "sampled"),
                ("erase_p50_ms", "erase p50 ms"),
                ("erase_p99_ms", "erase p99 ms"),
                ("erase_max_ms", "erase max ms"),
                ("predict_p50_ms", "predict p50 ms"),
                ("predict_p99_ms", "predict p99 ms"),
                ("predict_max_ms", "longest predict stall ms"),
                ("evidence_after_burst_s", "evidence after burst s"),
            ],
        )
    )
    payload = {
        "quick": args.quick,
        "rows": n,
        "evidence_rate": rate,
        "scenarios": {
            k: {"purge_interval_s": p, "collect_interval_s": c} for k, (p, c) in SCENARIOS.items()
        },
        "machine": machine(),
        "results": results,
        "summary": summary,
    }
    path = write_json("api_erasure-quick" if args.quick else "api_erasure", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
