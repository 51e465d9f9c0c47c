"""Scoring a HedgeCut forest: compiled strategies against scikit-learn and the forest's kernel.

Usage::

    python -m bench.scoring            # adult, 100 trees, 10,000 rows and 1 row
    python -m bench.scoring --quick    # 10 trees, 1,000 rows: a few seconds (what CI runs)

One run, on the same data (adult, 80/20 split, rows drawn from the test part):

1. **Scorers** on the default forest: scikit-learn's ``ExtraTreesClassifier.predict_proba``
   (same number of trees, ``n_jobs=None``), ``HedgeCutClassifier.predict_proba``, and every
   strategy × backend of ``forget.scoring`` that the forest's depth allows, for a batch of
   10,000 rows and for one row (median and p99 over repetitions, taken in interleaved rounds
   so that a noisy neighbour hurts every scorer alike); ``exact`` says whether the result is
   bitwise the forest's. The parallel rows use every core (threads reported) and are not
   part of the single-threaded comparison.
2. **Crossover**: forests cut at depths 3 to 12, each strategy × backend: where ``auto``'s
   depth limits come from.
3. **Refresh**: forget one training row (it changes ~10 of 100 trees), then
   ``refresh(changed)`` against compiling every tree again.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier

from bench._common import latency_summary, machine, table, write_json
from forget import HedgeCutClassifier
from forget.datasets import load_adult, train_test_split
from forget.scoring import CompiledForest, changed_trees, compile_forest
from forget.scoring import _torch as scoring_torch

COMBOS = [("tt", "numba"), ("ptt", "numba"), ("gemm", "numba")]
if scoring_torch.importable():
    COMBOS += [("tt", "torch"), ("ptt", "torch"), ("gemm", "torch")]


def _torch_threads() -> int | None:
    if not scoring_torch.importable():
        return None
    import torch

    return int(torch.get_num_threads())


def measure(
    fns: dict[str, Callable[[], Any]], rounds: int, budget_s: float, max_per_round: int
) -> dict[str, list[float]]:
    """Seconds per call of each function: ``rounds`` interleaved rounds, ~``budget_s`` each."""
    est = {}
    for name, fn in fns.items():
        fn()  # warm: compiled kernels, device copies
        t = time.perf_counter()
        fn()
        est[name] = time.perf_counter() - t
    reps = {
        k: max(1, min(max_per_round, int(budget_s / rounds / max(v, 1e-7)))) for k, v in est.items()
    }
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(reps[name]):
                t = time.perf_counter()
                fn()
                out[name].append(time.perf_counter() - t)
    return out


def _one_row(predict: Callable[[np.ndarray], Any], rows: np.ndarray) -> Callable[[], Any]:
    singles = itertools.cycle([rows[i : i + 1] for i in range(min(len(rows), 512))])
    return lambda: predict(next(singles))


def _try_compile(model: HedgeCutClassifier, strategy: str, backend: str, n_jobs: int | None):
    try:
        return compile_forest(model, strategy, backend, n_jobs=n_jobs), ""
    except ValueError as exc:
        return None, str(exc).split(";")[0]


def _gemm_too_slow(cf: CompiledForest, n_rows: int, limit: float) -> bool:
    """GEMM's work grows with nodes²: skip batches that would take minutes."""
    gm = cf._layout("gemm")
    I = gm.n_splits  # noqa: E741
    return n_rows * cf.n_trees * max(I, 1) * (I + 1) > limit


def bench_scorers(model, et, rows, rounds, budget_s, gemm_limit) -> list[dict[str, Any]]:
    want = model.predict_proba(rows)
    n = len(rows)
    entries: dict[str, dict[str, Any]] = {
        "sklearn ExtraTrees": {"fn": et.predict_proba, "threads": 1},
        "HedgeCut predict_proba": {"fn": model.predict_proba, "threads": 1},
    }
    for strategy, backend in COMBOS:
        cf, why = _try_compile(model, strategy, backend, None)
        name = f"compiled {strategy} / {backend}"
        if cf is None:
            entries[name] = {"skip": why, "strategy": strategy, "backend": backend}
            continue
        if strategy == "gemm" and _gemm_too_slow(cf, n, gemm_limit):
            entries[name] = {
                "skip": f"skipped: GEMM on depth-{cf.max_depth_} trees, work past the limit",
                "strategy": strategy,
                "backend": backend,
            }
            continue
        plan = cf.plan(n)
        entries[name] = {"fn": cf.predict_proba, "cf": cf, "threads": plan.threads}
    auto = compile_forest(model)
    entries["compiled auto"] = {"fn": auto.predict_proba, "cf": auto, "threads": 1}
    par = compile_forest(model, n_jobs=-1)
    entries["compiled auto, parallel"] = {
        "fn": par.predict_proba,
        "cf": par,
        "threads": par.plan(n).threads,
        "parallel": True,
    }
    et_par = copy.copy(et)  # the same fitted trees, predicting on every core
    et_par.n_jobs = -1
    entries["sklearn ExtraTrees, n_jobs=-1"] = {
        "fn": et_par.predict_proba,
        "threads": os.cpu_count() or 1,
        "parallel": True,
        "batch_only": True,
    }
    live = {k: e for k, e in entries.items() if "fn" in e}
    batch = measure({k: (lambda f=e["fn"]: f(rows)) for k, e in live.items()}, rounds, budget_s, 50)
    single = measure(
        {k: _one_row(e["fn"], rows) for k, e in live.items() if not e.get("batch_only")},
        rounds,
        budget_s / 2,
        2000,
    )
    et_ms = float(np.median(batch["sklearn ExtraTrees"])) * 1e3
    out = []
    for name, e in entries.items():
        cf = e.get("cf")
        row: dict[str, Any] = {"scorer": name}
        if cf is not None:
            p_big, p_one = cf.plan(n), cf.plan(1)
            row.update(
                strategy=p_big.strategy,
                backend=p_big.backend,
                plan_1_row=f"{p_one.strategy}/{p_one.backend}",
                exact=bool(np.array_equal(cf.predict_proba(rows), want)),
            )
        elif "skip" in e:
            row.update(strategy=e["strategy"], backend=e["backend"], note=e["skip"])
            out.append(row)
            continue
        row["threads"] = e["threads"]
        if cf is not None and cf.plan(n).backend == "torch":
            row["threads"] = cf.plan(n).threads
        b = latency_summary(batch[name])
        row.update(
            batch_ms=b["p50_us"] / 1e3,
            batch_p99_ms=b["p99_us"] / 1e3,
            batch_reps=b["n"],
            speedup_vs_et=et_ms / (b["p50_us"] / 1e3),
        )
        if name in single:
            s = latency_summary(single[name])
            row.update(one_us=s["p50_us"], one_p99_us=s["p99_us"], one_reps=s["n"])
        out.append(row)
    return out


def bench_crossover(X, y, rows, trees, depths, rounds, budget_s, gemm_limit):
    out = []
    for depth in depths:
        model = HedgeCutClassifier(n_estimators=trees, max_depth=depth, random_state=0).fit(X, y)
        want = model.predict_proba(rows)
        fns, rows_meta = {}, {}
        for strategy, backend in COMBOS:
            cf, why = _try_compile(model, strategy, backend, None)
            if cf is None or (strategy == "gemm" and _gemm_too_slow(cf, len(rows), gemm_limit)):
                continue
            key = f"{strategy}/{backend}"
            fns[key] = lambda cf=cf: cf.predict_proba(rows)
            fns[key + " 1"] = _one_row(cf.predict_proba, rows)
            rows_meta[key] = cf
        times = measure(fns, rounds, budget_s, 30)
        auto = compile_forest(model)
        row: dict[str, Any] = {
            "max_depth": depth,
            "tree_depth": auto.max_depth_,
            "auto_batch": auto.plan(len(rows)).strategy,
            "auto_1_row": auto.plan(1).strategy,
        }
        for key, cf in rows_meta.items():
            row[f"{key} ms"] = float(np.median(times[key])) * 1e3
            row[f"{key} 1 µs"] = float(np.median(times[key + " 1"])) * 1e6
            row[f"{key} exact"] = bool(np.array_equal(cf.predict_proba(rows), want))
        out.append(row)
    return out


def bench_refresh(X, y, trees, depth, combos, reps) -> list[dict[str, Any]]:
    model = HedgeCutClassifier(n_estimators=trees, max_depth=depth, random_state=0).fit(X, y)
    t0 = time.perf_counter()
    before = model.tree_structures()
    structures_ms = (time.perf_counter() - t0) * 1e3
    for victim in range(len(X)):  # one row: as many trees as hold it (~10%)
        model.forget([victim])
        after = model.tree_structures()
        changed = changed_trees(before, after)
        if changed:
            break
    undo = {t: before[t] for t in changed}
    nc, d = len(model.classes_), X.shape[1]
    probe = X[:1]
    out = []
    for strategy, backend in combos:
        if (strategy, backend) not in COMBOS:  # torch is not installed
            continue
        try:
            cf = CompiledForest(after, nc, d, strategy=strategy, backend=backend)
        except ValueError:
            continue
        cf.predict_proba(probe)
        full, part = [], []
        for i in range(reps):
            t = time.perf_counter()
            fresh = CompiledForest(after, nc, d, strategy=strategy, backend=backend)
            fresh.predict_proba(probe)  # a torch layout is uploaded on first use
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            cf.refresh(undo if i % 2 == 0 else changed)
            cf.predict_proba(probe)
            part.append(time.perf_counter() - t)
        cf.refresh(changed)
        ok = np.array_equal(cf.predict_proba(X[:2000]), model.predict_proba(X[:2000]))
        out.append(
            {
                "forest": f"max_depth={depth}" if depth else "default",
                "strategy": strategy,
                "backend": backend,
                "trees_changed": len(changed),
                "trees": trees,
                "refresh_ms": float(np.median(part)) * 1e3,
                "compile_ms": float(np.median(full)) * 1e3,
                "ratio": float(np.median(full) / np.median(part)),
                "tree_structures_ms": structures_ms,
                "exact_after_refresh": bool(ok),
            }
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--quick", action="store_true", help="10 trees, 1,000 rows, short timings")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/scoring.json)")
    args = ap.parse_args(argv)
    trees, n_rows, rounds, budget = args.trees, args.rows, args.rounds, 6.0
    depths: list[int | None] = [3, 6, 8, 10, 12]
    gemm_limit = 2e10  # rows × trees × internal nodes × leaves: past it, GEMM takes seconds
    if args.quick:
        trees, n_rows, rounds, budget, depths, gemm_limit = 10, 1000, 2, 0.3, [3], 1e8
    load_before = os.getloadavg()[0]  # a shared machine: say how busy it was
    ds = load_adult()
    X, Xte, y, _ = train_test_split(ds)
    rows = np.resize(Xte, (n_rows, Xte.shape[1]))
    model = HedgeCutClassifier(n_estimators=trees, random_state=0).fit(X, y)
    et = ExtraTreesClassifier(n_estimators=trees, random_state=0).fit(X, y)
    depth = compile_forest(model).depths_
    sizes = [len(s) for s in model.tree_structures()]
    print(
        f"adult: {trees} trees, depth mean {depth.mean():.1f} max {depth.max()}, "
        f"{np.mean(sizes):.0f} nodes per tree; {n_rows:,} rows; torch threads "
        f"{_torch_threads()}\n"
    )
    results = bench_scorers(model, et, rows, rounds, budget, gemm_limit)
    print(
        table(
            results,
            [
                ("scorer", "scorer"),
                ("strategy", "strategy"),
                ("backend", "backend"),
                ("threads", "threads"),
                ("batch_ms", f"{n_rows:,} rows ms (p50)"),
                ("batch_p99_ms", "p99 ms"),
                ("speedup_vs_et", "× ExtraTrees"),
                ("one_us", "1 row µs (p50)"),
                ("one_p99_us", "p99 µs"),
                ("exact", "bitwise = forest"),
                ("note", "note"),
            ],
        )
    )
    cross = bench_crossover(X, y, rows, trees, depths, rounds, budget / 2, gemm_limit)
    keys = [k for r in cross for k in r if k.endswith(" ms") or k.endswith(" 1 µs")]
    cols = [("max_depth", "max_depth"), ("tree_depth", "depth"), ("auto_batch", "auto")]
    cols += [(k, k) for k in dict.fromkeys(keys)]
    print(f"\ncrossover ({trees} trees; ms per {n_rows:,} rows, µs per row)\n")
    print(table(cross, cols))
    refresh = bench_refresh(X, y, trees, None, [("tt", "numba"), ("tt", "torch")], 11)
    refresh += bench_refresh(X, y, trees, 8, [("ptt", "numba"), ("ptt", "torch")], 11)
    refresh += bench_refresh(X, y, trees, 3, [("gemm", "numba"), ("gemm", "torch")], 11)
    print("\nrefresh after forgetting one row (median ms, incl. the next 1-row predict)\n")
    print(
        table(
            refresh,
            [
                ("forest", "forest"),
                ("strategy", "strategy"),
                ("backend", "backend"),
                ("trees_changed", "trees changed"),
                ("refresh_ms", "refresh ms"),
                ("compile_ms", "full compile ms"),
                ("ratio", "× faster"),
                ("tree_structures_ms", "tree_structures() ms"),
                ("exact_after_refresh", "exact"),
            ],
        )
    )
    payload = {
        "trees": trees,
        "rows": n_rows,
        "quick": args.quick,
        "forest": {
            "depth_mean": float(depth.mean()),
            "depth_max": int(depth.max()),
            "nodes_mean": float(np.mean(sizes)),
        },
        "torch_threads": _torch_threads(),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "results": results,
        "crossover": cross,
        "refresh": refresh,
    }
    path = write_json("scoring-quick" if args.quick else "scoring", payload, args.out)
    print(
        f"\nwritten: {path} ({machine()['cpus']} cpus; 1-min load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    return payload


if __name__ == "__main__":
    main()
