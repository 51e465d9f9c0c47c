"""Erasure end to end through ``ModelStore.erase`` against retraining the models from scratch.

Usage::

    python -m bench.store_erasure            # adult, 200 erasure requests
    python -m bench.store_erasure --quick    # a small run (what CI executes)

Adult's rows get made-up subject ids, one to three rows per subject. Three models are trained
on the dataset (HedgeCut, kNN, ridge regression). Each request is timed until it is durable and
every model has forgotten (``purge=False``, ``verify=False``: one DuckDB transaction of six
statements, the models forgetting inside it); physical purge (artifact rewrite and database
compaction) is timed separately, once per batch of requests; the peer is retraining the three
models on the remaining rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import numpy as np

from bench._common import latency_summary, table, timed, write_json
from forget import HedgeCutClassifier, KNNClassifier, LinearRegression
from forget.datasets import load_adult
from store import ModelStore


def _columns(n: int, seed: int = 0) -> tuple[dict[str, list[Any]], list[str], np.ndarray]:
    ds = load_adult()
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n), rng.integers(1, 4, size=n))[:n]
    names = [f.replace("-", "_") for f in ds.feature_names]
    cols: dict[str, list[Any]] = {
        "subject_id": [f"person-{s:06d}" for s in subjects],
        "income": ds.y[:n].astype(float).tolist(),
    }
    for j, name in enumerate(names):
        cols[name] = ds.X[:n, j].tolist()
    return cols, names, subjects


def _models(names: list[str]) -> dict[str, tuple[Any, str, list[str]]]:
    """The three models the erasure benches train on adult: estimator, label, features."""
    hours = "hours_per_week"
    return {
        "hedgecut": (HedgeCutClassifier(random_state=0), "income", names),
        "knn": (KNNClassifier(5), "income", names),
        "linear": (LinearRegression(alpha=1.0), hours, [c for c in names if c != hours]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=24_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="2,000 rows, 20 requests")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    n, requests = (2000, 20) if args.quick else (args.rows, args.requests)
    cols, names, subjects = _columns(n)
    models = _models(names)
    with tempfile.TemporaryDirectory() as tmp, ModelStore.open(tmp) as st:
        ingest_s, _ = timed(lambda: st.ingest("adult", cols, subject_column="subject_id"))
        train_s = {}
        for name, (est, label, feats) in models.items():
            train_s[name], _ = timed(
                lambda n=name, e=est, lb=label, f=feats: st.train(
                    n, dataset="adult", estimator=e, label=lb, features=f
                )
            )
        rng = np.random.default_rng(1)
        victims = [f"person-{s:06d}" for s in rng.permutation(np.unique(subjects))[: requests + 3]]
        for v in victims[:3]:  # warm: first calls compile kernels and plan queries
            st.erase(v, legal_ground="art17-1-b", purge=False, verify=False)
        lat, rows = [], 0
        for v in victims[3:]:
            t = time.perf_counter()
            r = st.erase(v, legal_ground="art17-1-b", purge=False, verify=False)
            lat.append(time.perf_counter() - t)
            rows += r.rows_erased
        purge_s, _ = timed(st.purge)
        one_s = []
        for v in rng.permutation(np.unique(subjects))[requests + 3 : requests + 8]:
            t = time.perf_counter()
            st.erase(f"person-{v:06d}", legal_ground="art17-1-b")  # with purge and evidence
            one_s.append(time.perf_counter() - t)
        assert st.verify_audit_log().ok
    retrain_s = sum(train_s.values())
    el = latency_summary(lat)
    result = {
        "rows": n,
        "requests": len(lat),
        "rows_erased": rows,
        "ingest_s": ingest_s,
        "train_s": train_s,
        "erase_p50_ms": el["p50_us"] / 1e3,
        "erase_p90_ms": float(np.percentile(lat, 90)) * 1e3,
        "erase_p99_ms": el["p99_us"] / 1e3,
        "erase_max_ms": el["max_us"] / 1e3,
        "purge_batch_s": purge_s,
        "erase_with_purge_and_evidence_p50_ms": float(np.median(one_s)) * 1e3,
        "retrain_three_models_s": retrain_s,
        "retrain_vs_erase_p50": retrain_s / (el["p50_us"] * 1e-6),
    }
    print(
        table(
            [result],
            [
                ("rows", "rows"),
                ("requests", "requests"),
                ("erase_p50_ms", "erase p50 ms"),
                ("erase_p99_ms", "erase p99 ms"),
                ("erase_max_ms", "erase max ms"),
                ("purge_batch_s", "purge (batch) s"),
                ("erase_with_purge_and_evidence_p50_ms", "erase + purge + evidence ms"),
                ("retrain_three_models_s", "retrain 3 models s"),
                ("retrain_vs_erase_p50", "retrain / erase p50"),
            ],
        )
    )
    payload = {"quick": args.quick, "results": [result]}
    path = write_json("store_erasure-quick" if args.quick else "store_erasure", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
