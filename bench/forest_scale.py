"""The forest at scale: HedgeCut against ExtraTrees, RandomForest and retraining, 10k to 1M rows.

Usage::

    python -m bench.forest_scale                          # 10k, 100k and 1M rows, both tasks
    python -m bench.forest_scale --sizes 10000 100000     # the sizes to run
    python -m bench.forest_scale --quick                  # 10k rows, 10 trees, 20 deletions (CI)
    python -m bench.forest_scale --curve                  # accuracy vs deletion latency, 100k
    python -m bench.forest_scale --defer 256 1024         # also HedgeCut deferring big rebuilds

Two synthetic tasks (``make_classification``, 20 features, seed 0; 10,000 more rows held out
for testing): ``default`` (scikit-learn's defaults: 2 informative features, 1 % label noise)
and ``hard`` (10 informative features, 5 % label noise). For each size, in one run and one
process, every model is fitted with the same ``--n-jobs`` (default 1 thread) and measured:

- accuracy on the held-out rows (mean over ``--seeds`` model seeds up to ``--seed-rows`` rows,
  one seed above), fit seconds, model bytes (scikit-learn: its trees' node and value arrays;
  HedgeCut: everything it holds, training rows included, and its artifact), peak RSS during
  the model's turn (the process's high-water mark, reset before each model: the data set is
  part of it, ``baseline_rss_mb`` says how much);
- ``predict_proba`` of 10,000 rows (best of 5) and of one row (median of 200);
- HedgeCut: ``--deletions`` single-row ``forget`` calls (random rows): p50 / p99 / max
  latency, the share that took the slow path (a subtree rebuilt) and the rows rebuilt per slow
  path (the row-id index a first ``forget`` would build is built before, timed apart, as a
  store does when it loads a model); with ``--defer N`` also HedgeCut with ``defer_rows=N``,
  its deferred rebuilds done after each deletion that left trees pending and timed apart
  (``later``: the work a server's background worker does); then the first 10,000-row
  prediction (it recompiles the trees the deletions changed), retraining from scratch on the
  remaining rows, and a check that the two forests are the same (every tree, every test
  probability). ExtraTrees and RandomForest can only forget by
  retraining: their deletion costs a fit (``retrain_s`` is their fit time).

``--curve`` measures the trade-off instead, at 100k rows (or ``--sizes``): HedgeCut over a grid
of ``max_samples`` (the share of rows a tree trains on: a deletion touches that share of the
trees, and a rebuilt subtree holds that share of the rows), ``max_features`` (candidates per
node) and ``random_depth`` (top levels that take the first balanced candidate, which
deletions rarely change), each with its
accuracy (mean over ``--seeds``) against ExtraTrees' and its deletion p50 / p99 / max.

Writes ``bench/results/forest_scale.json`` (``forest_scale_curve.json`` with ``--curve``,
``-quick`` with ``--quick``, or ``--out``). The machine may be shared: the load average before
and after is recorded.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from bench._common import latency_summary, table, timed, write_json
from bench.hedgecut import retrain_without
from forget import HedgeCutClassifier
from forget.warm import prepare, rehearse

TASKS: dict[str, dict[str, Any]] = {
    "default": {},
    "hard": {"n_informative": 10, "flip_y": 0.05},
}
PEERS: dict[str, tuple[str, Any]] = {
    "et": ("sklearn ExtraTrees", ExtraTreesClassifier),
    "rf": ("sklearn RandomForest", RandomForestClassifier),
}
TEST_ROWS = 10_000


# ---------------------------------------------------------------------- memory


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux ``clear_refs``); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _rss_mb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) in MB; ``ru_maxrss`` where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _turn() -> dict[str, Any]:
    """Start a model's turn (the last model freed): reset the peak, note what is held now."""
    gc.collect()
    scoped = _reset_peak()
    return {"baseline_rss_mb": _rss_mb("VmRSS"), "peak_rss_scoped": scoped}


# ---------------------------------------------------------------------- measurements


def _predict_times(model: Any, X_test: np.ndarray, repeats: int = 5) -> tuple[float, float]:
    rows = np.resize(X_test, (TEST_ROWS, X_test.shape[1]))
    model.predict_proba(rows[:1])  # warm: compiles kernels (HedgeCut: its trees) on first use
    batch = min(timed(lambda: model.predict_proba(rows))[0] for _ in range(repeats))
    one = [timed(lambda r=rows[i : i + 1]: model.predict_proba(r))[0] for i in range(200)]
    return batch, float(np.median(one))


def _accuracy(make: Callable[[int], Any], seeds: int, X, y, Xte, yte) -> float:
    return float(np.mean([(make(s).fit(X, y).predict(Xte) == yte).mean() for s in range(seeds)]))


def _tree_bytes(est: Any) -> int:
    """Bytes of a scikit-learn forest's trees: their node and value arrays."""
    total = 0
    for tree in est.estimators_:
        state = tree.tree_.__getstate__()
        total += state["nodes"].nbytes + state["values"].nbytes
    return total


def bench_peer(
    key: str, trees: int, n_jobs: int | None, seeds: int, data: tuple[np.ndarray, ...]
) -> dict[str, Any]:
    X, y, Xte, yte = data
    label, cls = PEERS[key]
    turn = _turn()
    est = cls(n_estimators=trees, random_state=0, n_jobs=n_jobs)
    fit_s, _ = timed(partial(est.fit, X, y))
    acc0 = float((est.predict(Xte) == yte).mean())
    batch_s, one_s = _predict_times(est, Xte)
    peak = _rss_mb("VmHWM")
    nbytes = _tree_bytes(est)
    del est
    acc = acc0
    if seeds > 1:
        others = _accuracy(
            lambda s: cls(n_estimators=trees, random_state=s, n_jobs=n_jobs),
            seeds - 1, X, y, Xte, yte,
        )  # fmt: skip
        acc = (acc0 + (seeds - 1) * others) / seeds
    return {
        "model": label,
        "accuracy": acc,
        "accuracy_seed0": acc0,
        "fit_s": fit_s,
        "model_bytes": nbytes,
        "peak_rss_mb": peak,
        **turn,
        "predict_10k_ms": batch_s * 1e3,
        "predict_1_us": one_s * 1e6,
        "retrain_s": fit_s,
    }


def _forget_one_by_one(model: HedgeCutClassifier, victims: list[int]) -> dict[str, Any]:
    """Forget ``victims`` one ``forget`` call each: latency, slow-path share, rows rebuilt.

    A model with ``defer_rows`` has its deferred rebuilds done after each deletion that left
    trees pending (as a server's background worker keeping up would), timed apart: the
    deletion's latency is its answer's, ``later_*`` the rebuilds it left.

    The row-id index a first ``forget`` builds (O(n) once; a store builds it when it loads
    the model) is built first and timed apart (``row_index_ms``): it is no deletion's cost."""
    index_s, _ = timed(partial(prepare, model))
    lat, slow, rebuilt, subtrees, later, later_rows, most = [], 0, 0, 0, [], 0, 0
    for v in victims:
        r = model.forget([v])
        lat.append(r.seconds)
        slow += r.n_slow
        rebuilt += r.details["rows_rebuilt"]
        subtrees += r.details["subtrees_rebuilt"]
        if r.needs_retrain:
            most = max(most, len(model.pending_))
            done = model.retrain_pending()
            later.append(done.seconds)
            later_rows += done.rows
    dl = latency_summary(lat)
    if later:
        ll = latency_summary(later)
        deferred = {
            "deferred_share": len(later) / len(victims),
            "later_p50_us": ll["p50_us"],
            "later_p99_us": ll["p99_us"],
            "later_max_us": ll["max_us"],
            "later_rows_per_deferral": later_rows / len(later),
            "trees_pending_max": most,
        }
    else:
        deferred = {"deferred_share": 0.0}
    return {
        "row_index_ms": index_s * 1e3,
        **deferred,
        "deletions": dl["n"],
        "delete_p50_us": dl["p50_us"],
        "delete_p99_us": dl["p99_us"],
        "delete_max_us": dl["max_us"],
        "delete_mean_us": dl["mean_us"],
        "slow_path_share": slow / len(victims),
        "rows_rebuilt_per_slow_path": rebuilt / slow if slow else 0.0,
        "subtrees_rebuilt_per_slow_path": subtrees / slow if slow else 0.0,
    }


def bench_hedgecut(
    trees: int,
    n_jobs: int | None,
    seeds: int,
    deletions: int,
    data: tuple[np.ndarray, ...],
    defer: int | None = None,
) -> dict[str, Any]:
    X, y, Xte, yte = data
    params = {"n_estimators": trees, "n_jobs": n_jobs, "defer_rows": defer}
    rehearse(HedgeCutClassifier(**params, random_state=0).fit(X[:200], y[:200]))  # load kernels
    turn = _turn()
    model = HedgeCutClassifier(**params, random_state=0)
    fit_s, _ = timed(partial(model.fit, X, y))
    acc0 = float((model.predict(Xte) == yte).mean())
    batch_s, one_s = _predict_times(model, Xte)
    victims = np.random.default_rng(1).permutation(X.shape[0])[:deletions].tolist()
    forgets = _forget_one_by_one(model, victims)
    rows = np.resize(Xte, (TEST_ROWS, Xte.shape[1]))
    after_s, _ = timed(partial(model.predict_proba, rows))  # recompiles the changed trees
    peak = _rss_mb("VmHWM")
    nbytes = model.nbytes_
    artifact = len(model.to_bytes())
    _, retrain_s, refit, same = retrain_without(model, X, y, victims, Xte)
    del model, refit
    acc = acc0
    if seeds > 1:
        others = _accuracy(
            lambda s: HedgeCutClassifier(**params, random_state=s), seeds - 1, X, y, Xte, yte
        )
        acc = (acc0 + (seeds - 1) * others) / seeds
    return {
        "model": "forget HedgeCut" + (f", defer_rows={defer}" if defer else ""),
        "defer_rows": defer,
        "accuracy": acc,
        "accuracy_seed0": acc0,
        "fit_s": fit_s,
        "model_bytes": nbytes,
        "artifact_bytes": artifact,
        "peak_rss_mb": peak,
        **turn,
        "predict_10k_ms": batch_s * 1e3,
        "predict_1_us": one_s * 1e6,
        "predict_10k_after_forget_ms": after_s * 1e3,
        **forgets,
        "retrain_s": retrain_s,
        "speedup_vs_retrain_p50": retrain_s / (forgets["delete_p50_us"] * 1e-6),
        "equals_retrain": bool(same),
    }


def make_task(task: str, n: int) -> tuple[np.ndarray, ...]:
    X, y = make_classification(
        n_samples=n + TEST_ROWS, n_features=20, random_state=0, **TASKS[task]
    )
    return X[:n], y[:n], X[n:], y[n:]


def bench_size(
    task: str,
    n: int,
    trees: int,
    deletions: int,
    seeds: int,
    n_jobs: int | None,
    peers: list[str],
    defers: tuple[int | None, ...] = (None,),
) -> list[dict[str, Any]]:
    data = make_task(task, n)
    rows = [bench_peer(key, trees, n_jobs, seeds, data) for key in peers]
    rows += [bench_hedgecut(trees, n_jobs, seeds, deletions, data, defer) for defer in defers]
    et = next((r for r in rows if r["model"] == PEERS["et"][0]), None)
    for r in rows:
        r.update(task=task, rows=n, seeds=seeds, model_mb=r["model_bytes"] / 1e6)
        if et is not None:
            r["predict_vs_et"] = et["predict_10k_ms"] / r["predict_10k_ms"]
            r["accuracy_vs_et_points"] = 100 * (r["accuracy"] - et["accuracy"])
    return rows


# The knobs that trade accuracy for deletion latency: the share of rows each tree trains on, the
# candidate features per node, and the top levels that take the first balanced candidate instead
# of the best (DaRE's random levels): (max_samples, max_features, random_depth); the defaults are
# (0.1, 0.6, 0)
CURVE: list[tuple[float, str | float, int]] = [
    (0.1, "sqrt", 0),
    (1.0, "sqrt", 0),
    *((share, 0.6, 0) for share in (0.05, 0.1, 0.3, 1.0)),
    (0.05, 0.6, 3),
    (0.1, 0.6, 3),
]


def bench_curve(
    task: str, n: int, trees: int, deletions: int, seeds: int, n_jobs: int | None
) -> list[dict[str, Any]]:
    """HedgeCut's accuracy against its deletion latency over ``CURVE``, ExtraTrees as the mark."""
    X, y, Xte, yte = make_task(task, n)
    et = _accuracy(
        lambda s: ExtraTreesClassifier(n_estimators=trees, random_state=s, n_jobs=n_jobs),
        seeds, X, y, Xte, yte,
    )  # fmt: skip
    rows: list[dict[str, Any]] = [{"model": PEERS["et"][0], "accuracy": et}]
    victims = np.random.default_rng(1).permutation(n)[:deletions].tolist()
    rehearse(HedgeCutClassifier(n_estimators=trees, random_state=0).fit(X[:200], y[:200]))
    for share, features, depth in CURVE:
        params = {"n_estimators": trees, "n_jobs": n_jobs, "max_samples": share}
        params.update(max_features=features, random_depth=depth)
        model = HedgeCutClassifier(**params, random_state=0)
        fit_s, _ = timed(partial(model.fit, X, y))
        acc = float((model.predict(Xte) == yte).mean())
        forgets = _forget_one_by_one(model, victims)
        del model
        if seeds > 1:
            others = _accuracy(
                lambda s, p=params: HedgeCutClassifier(**p, random_state=s), seeds - 1,
                X, y, Xte, yte,
            )  # fmt: skip
            acc = (acc + (seeds - 1) * others) / seeds
        rows.append(
            {
                "model": "forget HedgeCut",
                "max_samples": share,
                "max_features": features,
                "random_depth": depth,
                "accuracy": acc,
                "accuracy_vs_et_points": 100 * (acc - et),
                "fit_s": fit_s,
                **forgets,
            }
        )
    for r in rows:
        r.update(task=task, rows=n, seeds=seeds)
    return rows


CURVE_COLUMNS = [
    ("task", "task"),
    ("rows", "rows"),
    ("model", "model"),
    ("max_samples", "max_samples"),
    ("max_features", "max_features"),
    ("random_depth", "random_depth"),
    ("accuracy", "accuracy"),
    ("accuracy_vs_et_points", "vs ET pts"),
    ("fit_s", "fit s"),
    ("delete_p50_us", "forget p50 µs"),
    ("delete_p99_us", "p99 µs"),
    ("delete_max_us", "max µs"),
    ("slow_path_share", "slow path"),
    ("rows_rebuilt_per_slow_path", "rows rebuilt / slow"),
]


COLUMNS = [
    ("task", "task"),
    ("rows", "rows"),
    ("model", "model"),
    ("accuracy", "accuracy"),
    ("fit_s", "fit s"),
    ("model_mb", "model MB"),
    ("peak_rss_mb", "peak RSS MB"),
    ("predict_10k_ms", "predict 10k ms"),
    ("predict_vs_et", "× ET"),
    ("predict_1_us", "1 row µs"),
    ("delete_p50_us", "forget p50 µs"),
    ("delete_p99_us", "p99 µs"),
    ("delete_max_us", "max µs"),
    ("slow_path_share", "slow path"),
    ("rows_rebuilt_per_slow_path", "rows rebuilt / slow"),
    ("deferred_share", "deferred"),
    ("later_p99_us", "later p99 µs"),
    ("retrain_s", "retrain s"),
    ("equals_retrain", "= retrain"),
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--tasks", nargs="+", default=sorted(TASKS), choices=sorted(TASKS))
    ap.add_argument("--peers", nargs="*", default=sorted(PEERS), choices=sorted(PEERS))
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--deletions", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=3, help="seeds accuracy is averaged over")
    ap.add_argument("--seed-rows", type=int, default=100_000, help="above this many rows, one seed")
    ap.add_argument("--n-jobs", type=int, default=None, help="threads of every model (1)")
    ap.add_argument(
        "--quick", action="store_true", help="10k rows, 10 trees, 20 deletions, one seed"
    )
    ap.add_argument(
        "--curve",
        action="store_true",
        help="the accuracy / deletion trade-off over max_samples, max_features and random_depth, "
        "at --sizes "
        "(default 100k rows); writes forest_scale_curve.json",
    )
    ap.add_argument(
        "--defer",
        nargs="*",
        type=int,
        default=[],
        help="also run HedgeCut with defer_rows set to each of these (its deferred rebuilds "
        "done after each deletion, timed apart)",
    )
    ap.add_argument("--no-default", action="store_true", help="skip HedgeCut without defer_rows")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args(argv)
    defers = tuple(args.defer) if args.no_default else (None, *args.defer)
    sizes, trees, deletions, seeds = args.sizes, args.trees, args.deletions, args.seeds
    if args.curve and sizes == ap.get_default("sizes"):
        sizes = [100_000]
    if args.quick:
        sizes, trees, deletions, seeds = [10_000], 10, 20, 1
    columns = CURVE_COLUMNS if args.curve else COLUMNS
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        for task in args.tasks:
            k = seeds if n <= args.seed_rows else 1
            if args.curve:
                part = bench_curve(task, n, trees, deletions, k, args.n_jobs)
            else:
                part = bench_size(task, n, trees, deletions, k, args.n_jobs, args.peers, defers)
            rows += part
            print(table(part, columns), flush=True)
    print()
    print(table(rows, columns))
    payload = {
        "trees": trees,
        "deletions": deletions,
        "sizes": sizes,
        "tasks": {t: TASKS[t] for t in args.tasks},
        "n_jobs": args.n_jobs,
        "quick": args.quick,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_s": time.perf_counter() - started,
        "results": rows,
    }
    name = "forest_scale_curve" if args.curve else "forest_scale"
    path = write_json(f"{name}-quick" if args.quick else name, payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
