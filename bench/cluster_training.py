"""Fitting a HedgeCut forest on Ray (``forget train --ray``) against fitting it in one process.

Usage::

    python -m bench.cluster_training           # adult, 100 trees; 1,000,000 x 10 synthetic, 50
    python -m bench.cluster_training --quick   # 2,000 adult rows and 20,000 synthetic, 10 trees

Each data set is fitted with ``n_jobs=1``, with ``n_jobs=-1`` (a thread per core) and with its
trees as Ray tasks (:class:`cluster.training.RayTreeFitter`, default chunks) on a local Ray
cluster of ``--workers`` CPUs; the time is the median of ``--repeats`` fits, each with the
forest's defaults (``max_samples=0.1``). Ray's start and the workers' first fit (process
start-up, loading the compiled kernels) are reported apart: a warm-up fit comes first, as on a
long-lived cluster. "identical" says whether the model's artifact equals the ``n_jobs=1``
fit's (``n_jobs``, which changes no tree, set alike).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from typing import Any

import numpy as np

from bench._common import table, timed, write_json
from forget import HedgeCutClassifier
from forget.datasets import load_adult


def _datasets(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    adult = load_adult()
    n_syn, d_syn = (20_000, 10) if quick else (1_000_000, 10)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_syn, d_syn)).round(4)
    y = (X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] > 0.1 * rng.normal(size=n_syn)).astype(int)
    if quick:
        return [("adult", adult.X[:2_000], adult.y[:2_000], 10), ("synthetic", X, y, 10)]
    return [("adult", adult.X, adult.y, 100), ("synthetic", X, y, 50)]


def _artifact(model: HedgeCutClassifier) -> str:
    return hashlib.sha256(model.set_params(n_jobs=1).to_bytes()).hexdigest()


def _fit(params: dict[str, Any], X: np.ndarray, y: np.ndarray) -> tuple[float, Any]:
    model = HedgeCutClassifier(**params)
    return timed(lambda: model.fit(X, y))


def _median_fit(
    params: dict[str, Any], X: np.ndarray, y: np.ndarray, repeats: int
) -> tuple[float, list[float], HedgeCutClassifier]:
    fits = [_fit(params, X, y) for _ in range(repeats)]
    times = [t for t, _ in fits]
    return statistics.median(times), times, fits[-1][1]


def run(quick: bool, repeats: int, workers: int) -> dict[str, Any]:
    import ray

    from cluster.training import on_ray

    t = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    results: list[dict[str, Any]] = []
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        for name, X, y, trees in _datasets(quick):
            HedgeCutClassifier(n_estimators=2, random_state=0).fit(X[:50], y[:50])  # compile
            base: str | None = None
            for mode, n_jobs in (("n_jobs=1", 1), ("n_jobs=-1", -1), (f"ray, {cpus} CPUs", 1)):
                params = {"n_estimators": trees, "random_state": 0, "n_jobs": n_jobs}
                first_s = None
                if mode.startswith("ray"):
                    with on_ray():
                        first_s, _ = _fit(params, X, y)  # the workers start, load the kernels
                        fit_s, times, model = _median_fit(params, X, y, repeats)
                else:
                    fit_s, times, model = _median_fit(params, X, y, repeats)
                sha = _artifact(model)
                base = base or sha
                results.append(
                    {
                        "dataset": name,
                        "rows": int(X.shape[0]),
                        "features": int(X.shape[1]),
                        "trees": trees,
                        "mode": mode,
                        "fit_s": fit_s,
                        "fit_times_s": times,
                        "first_fit_s": first_s,
                        "identical": sha == base,
                        "artifact_sha256": sha,
                    }
                )
                print(f"{name} {mode}: {fit_s:.3f} s", flush=True)
    finally:
        if started:
            ray.shutdown()
    for r in results:
        one = next(b for b in results if b["dataset"] == r["dataset"] and b["mode"] == "n_jobs=1")
        r["speedup"] = one["fit_s"] / r["fit_s"]
    return {"ray_workers": cpus, "ray_init_s": init_s, "repeats": repeats, "results": results}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small data, 10 trees, 1 repeat")
    p.add_argument("--repeats", type=int, help="timed fits per mode (default 3; quick: 1)")
    p.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster")
    p.add_argument("--out", help="JSON path (default bench/results/cluster_training[-quick].json)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    payload = run(args.quick, repeats, args.workers)
    print(
        f"Ray: {payload['ray_workers']} workers, started in {payload['ray_init_s']:.1f} s; "
        f"median of {repeats} fits after a warm-up fit"
    )
    rows = [
        r
        | {
            "ratio": f"{r['speedup']:.2f}x",
            "first": "" if r["first_fit_s"] is None else f"{r['first_fit_s']:.2f}",
            "same": "yes" if r["identical"] else "no",
        }
        for r in payload["results"]
    ]
    print(
        table(
            rows,
            [
                ("dataset", "data"),
                ("rows", "rows"),
                ("trees", "trees"),
                ("mode", "fit on"),
                ("fit_s", "fit s"),
                ("ratio", "vs n_jobs=1"),
                ("first", "first fit s"),
                ("same", "identical"),
            ],
        )
    )
    payload["quick"] = args.quick
    path = write_json(
        "cluster_training-quick" if args.quick else "cluster_training", payload, args.out
    )
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
