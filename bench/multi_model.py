"""Multi-model requests: k models of one dataset scoring the same rows in one request, against
k separate requests, in process and over HTTP, in the same run.

Usage::

    python -m bench.multi_model            # adult 24,000 rows, 10 models, 200 requests a cell
    python -m bench.multi_model --quick    # 3,000 rows, 40 requests (what CI runs)

The store holds adult (made-up subject ids) and ten models trained on it (HedgeCut forests
with different seeds, kNN classifiers, ridge regressions; three distinct feature lists: all
features, all but ``hours_per_week`` — the ridges' label — and the first six). For k = 1, 3,
10 (the first k models), each request scores ``rows`` fresh rows of adult (never the same rows
twice, so no answer comes from the cache) and is measured until every one of the k answers is
in hand:

- **one request**: ``Service.predict_models`` (``POST /v1/datasets/adult/predict``): the rows
  read once, one matrix per distinct feature list, every model scored under its gate held at
  once;
- **k requests**: ``Service.predict`` per model (``POST /v1/models/{m}/predict`` each, one
  after the other), each with rows carrying exactly its model's features.

In process: the serving layer called directly. Over HTTP: one uvicorn server on a thread of
this process (its heap frozen after warming, as ``forget serve`` does) and one keep-alive
httpx client, requests one after the other (the client's cost per request is part of what
k requests pay; both paths share the process). The forests
are warmed first (compiled scorers), as ``forget serve`` does. Reported per cell: model-rows
scored per second (rows × k over the time), p50 and p99 of a request's (or k requests') time,
and the ratio of k requests' median to one request's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from api.app import create_app
from api.auth import ApiKeys
from api.server import BackgroundServer
from api.service import Service
from bench._common import latency_summary, table, write_json
from bench.store_erasure import _columns
from forget import HedgeCutClassifier, KNNClassifier, LinearRegression
from store import ModelStore

TOKEN = "bench-multi-model"
HOURS = "hours_per_week"


def models(names: list[str]) -> dict[str, tuple[Any, str, list[str]]]:
    """Ten models of adult: estimator, label, features; the first three are the erasure
    benches' (forest, kNN, ridge)."""
    rest = [c for c in names if c != HOURS]
    first = names[:6] if HOURS not in names[:6] else rest[:6]
    return {
        "hedgecut": (HedgeCutClassifier(random_state=0), "income", names),
        "knn": (KNNClassifier(5), "income", names),
        "linear": (LinearRegression(alpha=1.0), HOURS, rest),
        "hedgecut_b": (HedgeCutClassifier(random_state=1), "income", names),
        "knn_b": (KNNClassifier(15), "income", names),
        "linear_b": (LinearRegression(alpha=10.0), HOURS, rest),
        "hedgecut_c": (HedgeCutClassifier(random_state=2), "income", first),
        "knn_c": (KNNClassifier(5), "income", first),
        "linear_c": (LinearRegression(alpha=1.0), "income", first),
        "hedgecut_d": (HedgeCutClassifier(n_estimators=50, random_state=3), "income", names),
    }


WARM = 3  # untimed calls before each path's timed ones (its first call plans, fills caches)


def _time(fn: Callable[[int], Any], block: int, n: int) -> list[float]:
    """Seconds of ``fn(i)`` for the ``n`` request indexes of ``block`` (each path its own
    block of fresh rows), after ``WARM`` untimed calls on rows of their own."""
    for i in range(4 * n + block * WARM, 4 * n + (block + 1) * WARM):
        fn(i)
    out = []
    for i in range(block * n, (block + 1) * n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=24_000, help="adult rows in the store")
    ap.add_argument("--requests", type=int, default=None, help="requests a cell (200; 40 quick)")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 100], help="rows a request")
    ap.add_argument("--quick", action="store_true", help="3,000 rows, 40 requests")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    n = 3000 if args.quick else args.rows
    requests = args.requests or (40 if args.quick else 200)
    cols, names, _ = _columns(n)
    specs = models(names)
    union = list(dict.fromkeys(f for _, _, feats in specs.values() for f in feats))
    rng = np.random.default_rng(3)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with ModelStore.open(tmp) as st:
            st.ingest("adult", cols, subject_column="subject_id")
            for name, (est, label, feats) in specs.items():
                st.train(name, dataset="adult", estimator=est, label=label, features=feats)
        svc = Service.open(tmp, purge_interval=0, evidence_rate=0)
        app = create_app(
            svc, ApiKeys.from_mapping({TOKEN: ["predict"]}), owns=False, freeze_heap=True
        )
        try:
            svc.warm()
            with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=60) as client:
                headers = {"Authorization": f"Bearer {TOKEN}"}
                for batch in args.batch:
                    for k in (1, 3, 10):
                        chosen = list(specs)[:k]
                        feats = {m: specs[m][2] for m in chosen}
                        m_req = 4 * (requests + WARM)  # fresh rows for every request of the cell
                        picks = rng.choice(n, size=(m_req, batch), replace=m_req * batch > n)
                        reqs = [[{f: cols[f][i] for f in union} for i in p] for p in picks]
                        per_model = [
                            {m: [{f: r[f] for f in feats[m]} for r in rows] for m in chosen}
                            for rows in reqs
                        ]
                        refs = [(m, None, None) for m in chosen]

                        def multi(i: int, refs: Any = refs, reqs: Any = reqs) -> None:
                            svc.predict_models("adult", refs, reqs[i])

                        def single(
                            i: int, chosen: list[str] = chosen, per_model: Any = per_model
                        ) -> None:
                            for m in chosen:
                                svc.predict(m, per_model[i][m])

                        cells: dict[tuple[str, str], list[float]] = {
                            ("in process", "one request"): _time(multi, 0, requests),
                            ("in process", f"{k} requests"): _time(single, 1, requests),
                        }

                        def multi_http(
                            i: int, chosen: list[str] = chosen, reqs: Any = reqs
                        ) -> None:
                            body = {"models": chosen, "rows": reqs[i]}
                            r = client.post(
                                "/v1/datasets/adult/predict", json=body, headers=headers
                            )
                            r.raise_for_status()

                        def single_http(
                            i: int, chosen: list[str] = chosen, per_model: Any = per_model
                        ) -> None:
                            for m in chosen:
                                body = {"rows": per_model[i][m]}
                                r = client.post(
                                    f"/v1/models/{m}/predict", json=body, headers=headers
                                )
                                r.raise_for_status()

                        cells["HTTP", "one request"] = _time(multi_http, 2, requests)
                        cells["HTTP", f"{k} requests"] = _time(single_http, 3, requests)
                        for (where, path), lat in cells.items():
                            s = latency_summary(lat)
                            results.append(
                                {
                                    "where": where,
                                    "rows": batch,
                                    "k": k,
                                    "path": path,
                                    "model_rows_per_s": batch * k * len(lat) / sum(lat),
                                    "p50_ms": s["p50_us"] / 1e3,
                                    "p99_ms": s["p99_us"] / 1e3,
                                }
                            )
        finally:
            svc.close()
    for r in results:  # k separate requests' median over one request's, per cell
        one = next(
            o["p50_ms"]
            for o in results
            if (o["where"], o["rows"], o["k"], o["path"])
            == (r["where"], r["rows"], r["k"], "one request")
        )
        r["vs_one_request"] = r["p50_ms"] / one
    print(
        table(
            results,
            [
                ("where", "where"),
                ("rows", "rows"),
                ("k", "k"),
                ("path", "path"),
                ("model_rows_per_s", "model-rows/s"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("vs_one_request", "p50 / one request"),
            ],
        )
    )
    payload = {"quick": args.quick, "dataset_rows": n, "requests": requests, "results": results}
    path = write_json("multi_model-quick" if args.quick else "multi_model", payload, args.out)
    print(f"written: {path}")
    return payload


if __name__ == "__main__":
    main()
