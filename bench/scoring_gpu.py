"""Compiled scoring on a GPU: torch on CUDA against numba on every CPU core, one short run.

Usage::

    python -m bench.scoring_gpu                 # on a machine with a CUDA GPU and torch
    python -m bench.scoring_gpu --device cpu    # the same program on torch's CPU backend
    python -m bench.scoring_gpu --quick         # 10 trees, batches up to 10,000 rows

Needs numpy, numba, scikit-learn and torch only (no store, no server), so it runs in a bare
GPU image with the repository on ``PYTHONPATH``. Three forests fitted on adult — the default
HedgeCut forest (deep trees: tree traversal), ``max_depth=8`` (perfect tree traversal) and
``max_depth=4`` (GEMM) — score batches of 1 to 1,000,000 rows (test rows drawn with
replacement) with each strategy on torch and with numba's ``auto`` on every core. A torch
call's time includes copying the rows to the device and the probabilities back (what a
server pays). ``exact`` compares each result bitwise with ``HedgeCutClassifier.predict_proba``
on the first 20,000 rows. Writes ``bench/results/scoring_gpu.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from bench._common import latency_summary, machine, table, write_json
from forget import HedgeCutClassifier
from forget.datasets import load_adult, train_test_split
from forget.scoring import _torch as scoring_torch
from forget.scoring import compile_forest

FORESTS = [("default", None, "tt"), ("max_depth=8", 8, "ptt"), ("max_depth=4", 4, "gemm")]
CHECK_ROWS = 20_000


def _time(fn: Any, rows: np.ndarray, budget_s: float, max_reps: int) -> list[float]:
    fn(rows)  # warm: kernels, device copies, the caching allocator
    t = time.perf_counter()
    fn(rows)
    once = time.perf_counter() - t
    out = []
    for _ in range(max(3, min(max_reps, int(budget_s / max(once, 1e-6))))):
        t = time.perf_counter()
        fn(rows)
        out.append(time.perf_counter() - t)
    return out


def run(
    trees: int, batches: list[int], device: str, budget_s: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import torch

    Xtr, Xte, ytr, _ = train_test_split(load_adult())
    rng = np.random.default_rng(0)
    pool = Xte[rng.integers(0, len(Xte), size=max(batches))]
    results = []
    for label, depth, strategy in FORESTS:
        model = HedgeCutClassifier(
            n_estimators=trees, max_depth=depth, random_state=0, n_jobs=-1
        ).fit(Xtr, ytr)
        check = pool[:CHECK_ROWS]
        want = model.predict_proba(check)
        scorers = {
            f"{strategy} / torch {device}": compile_forest(model, strategy, "torch", device=device),
            "auto / numba, all cores": compile_forest(model, n_jobs=-1),
        }
        for name, cf in scorers.items():
            exact = bool(np.array_equal(cf.predict_proba(check), want))
            for n in batches:
                rows = pool[:n]
                times = _time(cf.predict_proba, rows, budget_s, 2000)
                s = latency_summary(times)
                plan = cf.plan(n)
                results.append(
                    {
                        "forest": label,
                        "tree_depth": int(cf.max_depth_),
                        "scorer": name,
                        "plan": f"{plan.strategy}/{plan.backend}/{plan.device}",
                        "threads": plan.threads,
                        "rows": n,
                        "p50_ms": s["p50_us"] / 1e3,
                        "p99_ms": s["p99_us"] / 1e3,
                        "rows_per_s": n / (s["p50_us"] / 1e6),
                        "reps": s["n"],
                        "exact": exact,
                    }
                )
                print(
                    f"  {label:12} {name:28} {n:>9,} rows: p50 {s['p50_us'] / 1e3:9.3f} ms "
                    f"p99 {s['p99_us'] / 1e3:9.3f} ms  exact={exact}",
                    flush=True,
                )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return results, {"torch": torch.__version__, "gpu": gpu, "device": device}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timing per cell")
    ap.add_argument("--quick", action="store_true", help="10 trees, up to 10,000 rows")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args(argv)
    if not scoring_torch.importable():
        raise SystemExit("bench.scoring_gpu needs torch: pip install 'forget[gpu]'")
    device = args.device or ("cuda" if scoring_torch.cuda_available() else "cpu")
    trees = 10 if args.quick else args.trees
    batches = [1, 100, 10_000] if args.quick else [1, 1_000, 10_000, 100_000, 1_000_000]
    budget = 0.05 if args.quick else args.budget
    print(f"device {device}, {trees} trees, {os.cpu_count()} CPUs", flush=True)
    results, env = run(trees, batches, device, budget)
    print()
    print(
        table(
            results,
            [
                ("forest", "forest"),
                ("scorer", "scorer"),
                ("rows", "rows"),
                ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"),
                ("rows_per_s", "rows/s"),
                ("exact", "exact"),
            ],
        )
    )
    payload = {
        "quick": args.quick,
        "trees": trees,
        "machine": machine() | env,
        "results": results,
    }
    path = write_json("scoring_gpu-quick" if args.quick else "scoring_gpu", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
