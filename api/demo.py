"""``forget demo``: the whole loop on the bundled data, over real HTTP.

It builds a store from UCI Adult with made-up subject ids (one to three rows each), trains a
HedgeCut forest, a kNN classifier and a ridge regression, serves the store on uvicorn, sends
predictions and a burst of erasure requests (with predictions running beside them), purges,
verifies the audit chain and writes one erasure report as HTML and JSON.
"""

from __future__ import annotations

import argparse
import csv
import errno
import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from api.app import create_app
from api.auth import ApiKeys
from api.server import BackgroundServer, free_port
from api.service import Service


def _say(text: str) -> None:
    print(text, flush=True)


def _column(name: str) -> str:
    return name.replace("-", "_")


def _write_people(path: Path, seed: int = 0) -> tuple[list[str], list[str]]:
    """The adult rows as people.csv with made-up subject ids; returns (subjects, features)."""
    from forget.datasets import load_adult

    ds = load_adult()
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < len(ds.y):
        sizes.append(int(rng.integers(1, 4)))
    owner = np.repeat(np.arange(len(sizes)), sizes)[: len(ds.y)]
    owner = owner[rng.permutation(owner.size)]
    subjects = [f"person-{i:06d}" for i in range(len(sizes))]
    features = [_column(n) for n in ds.feature_names]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["subject_id", *features, "income_over_50k"])
        for i in range(len(ds.y)):
            w.writerow([subjects[owner[i]], *ds.X[i].tolist(), int(ds.y[i])])
    return sorted(set(subjects[o] for o in owner.tolist())), features


def _port(host: str, wanted: int) -> int:
    if wanted == 0:
        return free_port(host)
    with socket.socket() as s:
        try:
            s.bind((host, wanted))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            port = free_port(host)
            _say(f"port {wanted} is in use; serving on {port} instead")
            return port
    return wanted


def _ms(values: list[float]) -> tuple[str, str]:
    a = np.asarray(values) * 1e3
    return f"{np.median(a):.2f}", f"{np.percentile(a, 99):.2f}"


def run(args: argparse.Namespace) -> int:
    # a store the demo makes itself holds a subject key: it is removed when the demo ends
    scratch = not args.store
    directory = Path(args.store or tempfile.mkdtemp(prefix="forget-demo-"))
    if directory.exists() and any(directory.iterdir()):
        _say(f"forget demo: {directory} is not empty; give --store an empty or new directory")
        return 2
    from forget import HedgeCutClassifier, KNNClassifier, LinearRegression

    t0 = time.perf_counter()
    _say(f"building a store in {directory}")
    service = Service.open(directory, purge_interval=0, evidence_rate=0.1)
    csv_path = Path(tempfile.mkdtemp(prefix="forget-demo-data-")) / "people.csv"
    subjects, features = _write_people(csv_path)
    info = service.store.ingest("people", csv_path, subject_column="subject_id")
    csv_path.unlink()
    _say(f"  dataset 'people': {info.n_rows} rows of {len(subjects)} made-up subjects (UCI Adult)")
    hours = "hours_per_week"
    plans: list[tuple[str, Any, str, list[str]]] = [
        (
            "income_forest",
            HedgeCutClassifier(n_estimators=args.trees, random_state=0),
            "income_over_50k",
            features,
        ),
        ("income_knn", KNNClassifier(n_neighbors=15), "income_over_50k", features),
        ("hours_ridge", LinearRegression(alpha=1.0), hours, [f for f in features if f != hours]),
    ]
    for name, est, label, feats in plans:
        _say(f"  training {name} ({type(est).__name__}) ...")
        t = time.perf_counter()
        service.store.train(name, dataset="people", estimator=est, label=label, features=feats)
        _say(f"    done in {time.perf_counter() - t:.2f} s")

    admin, predictor = ApiKeys.new_token(), ApiKeys.new_token()
    keys = ApiKeys.from_mapping({admin: ["admin"], predictor: ["predict"]})
    app = create_app(service, keys, owns=False)
    server = BackgroundServer(app, args.host, _port(args.host, args.port))
    rng = np.random.default_rng(1)
    stats: dict[str, list[float]] = {}
    _say("starting the server: it warms every model first (the first run on a machine compiles")
    _say("  the serving and erasure kernels, a minute or two; later runs load them from a cache)")
    t = time.perf_counter()
    with server as url:
        _say(f"  ready in {time.perf_counter() - t:.2f} s")
        _say(f"serving on {url} (OpenAPI at {url}/docs)")
        _say("sending traffic ...")
        auth = {"Authorization": f"Bearer {predictor}"}
        admin_auth = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=url, timeout=60) as http:
            probe = http.get("/v1/models", headers=auth).json()["models"]
            model_features = {m["name"]: m["versions"][-1]["features"] for m in probe}
            X = _feature_rows(features)
            for name, _, _, _ in plans:
                lat = stats.setdefault(f"predict {name} (1 row)", [])
                for _ in range(args.predictions):
                    row = X[int(rng.integers(len(X)))]
                    body = {"rows": [{f: row[f] for f in model_features[name]}]}
                    t = time.perf_counter()
                    http.post(
                        f"/v1/models/{name}/predict", json=body, headers=auth
                    ).raise_for_status()
                    lat.append(time.perf_counter() - t)

            stop = threading.Event()
            beside: list[float] = []

            def predict_beside() -> None:
                with httpx.Client(base_url=url, timeout=60) as h2:
                    while not stop.is_set():
                        row = X[int(rng.integers(len(X)))]
                        body = {"rows": [{f: row[f] for f in model_features["income_forest"]}]}
                        t = time.perf_counter()
                        h2.post(
                            "/v1/models/income_forest/predict", json=body, headers=auth
                        ).raise_for_status()
                        beside.append(time.perf_counter() - t)

            worker = threading.Thread(target=predict_beside, daemon=True)
            worker.start()
            chosen = rng.choice(
                len(subjects), size=min(args.requests, len(subjects)), replace=False
            )
            erase_lat, receipts = stats.setdefault("erasure request", []), []
            for i in chosen.tolist():
                t = time.perf_counter()
                r = http.post(
                    "/v1/erasure-requests",
                    json={"subject_id": subjects[i], "legal_ground": "art17-1-b"},
                    headers=admin_auth,
                )
                erase_lat.append(time.perf_counter() - t)
                r.raise_for_status()
                receipts.append(r.json())
            stop.set()
            worker.join()
            stats["predict income_forest during the erasure burst"] = beside
            t = time.perf_counter()
            purge = http.post("/v1/admin/purge", headers=admin_auth).json()
            stats["physical purge of the burst"] = [time.perf_counter() - t]
            # the purge ran the retrain checks the erasures scheduled: read the receipts again
            receipts = [
                http.get(f"/v1/erasure-requests/{r['request_id']}", headers=admin_auth).json()
                for r in receipts
            ]
            verify = http.get("/v1/audit/verify", headers=admin_auth).json()
            first = receipts[0]["request_id"] if receipts else None
            # reports name no subject: they outlive a scratch store
            report_dir = (
                Path(tempfile.mkdtemp(prefix="forget-demo-reports-"))
                if scratch
                else (directory / "reports")
            )
            if first is not None:
                report_dir.mkdir(exist_ok=True)
                page = http.get(
                    f"/v1/erasure-requests/{first}/report",
                    headers=admin_auth | {"Accept": "text/html"},
                )
                (report_dir / f"{first}.html").write_text(page.text, encoding="utf-8")
                doc = http.get(f"/v1/erasure-requests/{first}/report", headers=admin_auth).json()
                (report_dir / f"{first}.json").write_text(json.dumps(doc, indent=2), "utf-8")
            models = http.get("/v1/models", headers=admin_auth).json()["models"]

        _print_summary(stats, receipts, purge, verify, models)
        if first is not None:
            _say(f"erasure report of {first}: {report_dir / (first + '.html')} (and .json)")
        _say(f"demo took {time.perf_counter() - t0:.1f} s")
        if not args.once:
            _say(
                f"\nstill serving on {url} — try:\n"
                f"  curl -H 'Authorization: Bearer {admin}' {url}/v1/models\n"
                f"tokens: admin {admin}  predict {predictor}\npress Ctrl-C to stop"
            )
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                _say("stopping")
    service.close()
    if scratch:
        shutil.rmtree(directory)
        _say(f"removed the demo's store {directory} (it held the subject key)")
    return 0


def _feature_rows(features: list[str]) -> list[dict[str, float]]:
    from forget.datasets import load_adult

    ds = load_adult()
    return [dict(zip(features, map(float, x), strict=True)) for x in ds.X[:2000]]


def _print_summary(
    stats: dict[str, list[float]],
    receipts: list[dict[str, Any]],
    purge: dict[str, Any],
    verify: dict[str, Any],
    models: list[dict[str, Any]],
) -> None:
    _say("")
    _say(f"{'what (over HTTP)':<50} {'count':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for what, values in stats.items():
        if values:
            p50, p99 = _ms(values)
            _say(f"{what:<50} {len(values):>6} {p50:>9} {p99:>9}")
    rows = sum(r["rows_erased"] for r in receipts)
    statuses: dict[str, int] = {}
    for r in receipts:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    _say(
        f"\nerasures: {len(receipts)} requests, {rows} rows, statuses {statuses}; "
        f"purge completed {len(purge.get('requests', []))} in {purge.get('seconds', 0):.2f} s"
    )
    _say(f"{'model':<16} {'version':>7} {'revision':>8} {'rows forgotten':>14}  guarantee")
    for m in models:
        v = m["versions"][-1]
        _say(
            f"{m['name']:<16} {v['version']:>7} {v['revision']:>8} {v['rows_forgotten']:>14}  "
            f"{v['guarantee']}"
        )
    checks = [
        [a["evidence"].get("passed") for a in r["models"]
         if a["evidence"].get("method") == "retrain_from_scratch"]
        for r in receipts
    ]  # fmt: skip
    checked = [c for per_request in checks for c in per_request]
    _say(
        f"retrain checks: {sum(map(bool, checked))} of {len(checked)} model checks passed, on "
        f"{sum(map(bool, checks))} of {len(receipts)} requests (a keyed random 10 % of "
        "requests has each of its models compared with one retrained from scratch)"
    )
    state = "verified" if verify["ok"] else "BROKEN"
    _say(f"audit chain {state}: {verify['entries']} entries, head {verify['head']}")
