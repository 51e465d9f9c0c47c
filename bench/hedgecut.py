"""HedgeCutClassifier against scikit-learn's ExtraTrees / RandomForest and retraining from scratch.

Usage::

    python -m bench.hedgecut                      # adult + shopping, 100 trees, 1,000 deletions
    python -m bench.hedgecut --quick              # a small run (what CI executes)

For each data set (80/20 split, seed 0), in one run: accuracy (mean over ``--seeds`` model
seeds), training time, bytes of the fitted model, predict_proba time for 10,000 rows and for one
row, then ≥1,000 single-row ``forget`` calls (p50 / p99 latency, share of slow-path deletions),
the time to retrain from scratch on the remaining rows, and a check that the unlearned forest
equals that retrained forest: every tree, every test probability, and every array and number of
its artifact (all but the pinned cut-off bounds).
"""

from __future__ import annotations

import argparse
import pickle
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

from bench._common import latency_summary, table, timed, write_json
from forget import HedgeCutClassifier, _persist
from forget.datasets import load_adult, load_shopping, train_test_split

LOADERS = {"adult": load_adult, "shopping": load_shopping}


def _predict_times(model: Any, X_test: np.ndarray, repeats: int = 5) -> tuple[float, float]:
    rows = np.resize(X_test, (10_000, X_test.shape[1]))
    model.predict_proba(rows[:1])  # warm (compiles numba kernels on first use)
    batch = min(timed(lambda: model.predict_proba(rows))[0] for _ in range(repeats))
    one = [timed(lambda r=rows[i : i + 1]: model.predict_proba(r))[0] for i in range(200)]
    return batch, float(np.median(one))


def _mean_accuracy(make: Any, seeds: int, X, y, Xte, yte) -> tuple[float, float]:
    """Accuracy over ``seeds`` seeds (mean, std): one seed's luck is ±0.3 points here."""
    accs = [float((make(s).fit(X, y).predict(Xte) == yte).mean()) for s in range(seeds)]
    return float(np.mean(accs)), float(np.std(accs))


def bench_dataset(
    name: str,
    trees: int,
    deletions: int,
    max_rows: int | None,
    configs: dict[str, dict[str, Any]],
    seeds: int = 1,
) -> list[dict[str, Any]]:
    ds = LOADERS[name]()
    X, Xte, y, yte = train_test_split(ds)
    if max_rows is not None:
        X, y, Xte, yte = X[:max_rows], y[:max_rows], Xte[: max_rows // 4], yte[: max_rows // 4]
    out = []
    for label, cls in (
        ("sklearn ExtraTrees", ExtraTreesClassifier),
        ("sklearn RandomForest", RandomForestClassifier),
    ):
        est = cls(n_estimators=trees, random_state=0)
        fit_s, _ = timed(lambda est=est: est.fit(X, y))
        batch_s, one_s = _predict_times(est, Xte)
        acc, acc_std = _mean_accuracy(
            lambda s, cls=cls: cls(n_estimators=trees, random_state=s), seeds, X, y, Xte, yte
        )
        out.append(
            {
                "dataset": name,
                "model": label,
                "accuracy": acc,
                "accuracy_std": acc_std,
                "accuracy_seed0": float((est.predict(Xte) == yte).mean()),
                "fit_s": fit_s,
                "bytes": len(pickle.dumps(est)),
                "predict_10k_ms": batch_s * 1e3,
                "predict_1_us": one_s * 1e6,
            }
        )
    for label, params in configs.items():
        row = _bench_hedgecut(name, label, params, trees, deletions, X, y, Xte, yte, out[0])
        row["accuracy"], row["accuracy_std"] = _mean_accuracy(
            lambda s, p=params: HedgeCutClassifier(n_estimators=trees, random_state=s, **p),
            seeds, X, y, Xte, yte,
        )  # fmt: skip
        row["accuracy_vs_et_points"] = 100 * (row["accuracy"] - out[0]["accuracy"])
        out.append(row)
    return out


def _bench_hedgecut(
    name: str,
    label: str,
    params: dict[str, Any],
    trees: int,
    deletions: int,
    X: np.ndarray,
    y: np.ndarray,
    Xte: np.ndarray,
    yte: np.ndarray,
    et: dict[str, Any],
) -> dict[str, Any]:
    model = HedgeCutClassifier(n_estimators=trees, random_state=0, **params)
    model.fit(X[:50], y[:50])  # compile the kernels outside the timed fit
    fit_s, _ = timed(lambda: model.fit(X, y))
    acc = float((model.predict(Xte) == yte).mean())
    batch_s, one_s = _predict_times(model, Xte)
    nbytes = model.nbytes_
    victims = np.random.default_rng(1).permutation(X.shape[0])[:deletions].tolist()
    lat, slow, rebuilt = [], 0, 0
    for v in victims:
        r = model.forget([v])
        lat.append(r.seconds)
        slow += r.n_slow
        rebuilt += r.details["rows_rebuilt"]
    keep, retrain_s, refit, same = retrain_without(model, X, y, victims, Xte)
    same_state = _same_state(model, refit)
    et_retrain_s, _ = timed(
        lambda: ExtraTreesClassifier(n_estimators=trees, random_state=0).fit(X[keep], y[keep])
    )
    dl = latency_summary(lat)
    return {
        "dataset": name,
        "model": label,
        "params": params,
        "accuracy_seed0": acc,
        "fit_s": fit_s,
        "fit_vs_et": fit_s / et["fit_s"],
        "bytes": nbytes,
        "predict_10k_ms": batch_s * 1e3,
        "predict_1_us": one_s * 1e6,
        "delete_p50_us": dl["p50_us"],
        "delete_p99_us": dl["p99_us"],
        "delete_mean_us": dl["mean_us"],
        "delete_max_us": dl["max_us"],
        "deletions": dl["n"],
        "slow_path_share": slow / len(victims),
        "rows_rebuilt_per_deletion": rebuilt / len(victims),
        "accuracy_after": float((model.predict(Xte) == yte).mean()),
        "retrain_s": retrain_s,
        "et_retrain_s": et_retrain_s,
        "speedup_vs_retrain_p50": retrain_s / (dl["p50_us"] * 1e-6),
        "equals_retrain": bool(same and same_state),
        "artifact_equals_retrain": bool(same_state),
    }


def retrain_without(
    model: Any, X: np.ndarray, y: np.ndarray, victims: Any, Xte: np.ndarray
) -> tuple[np.ndarray, float, Any, bool]:
    """Retrain from scratch on the rows ``model`` kept after forgetting ``victims`` (its
    cut-off bounds pinned): the rows kept, the fit's seconds, the refit, and whether every
    tree and every test probability equals the unlearned model's."""
    keep = np.setdiff1d(np.arange(X.shape[0]), victims)
    refit_params = model.get_params() | {"feature_bounds": model.feature_bounds_}
    retrain_s, refit = timed(
        lambda: HedgeCutClassifier(**refit_params).fit(X[keep], y[keep], row_ids=keep)
    )
    same = all(
        a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(model.tree_structures(), refit.tree_structures(), strict=True)
    ) and np.array_equal(model.predict_proba(Xte), refit.predict_proba(Xte))
    return keep, retrain_s, refit, bool(same)


def _same_state(model: Any, refit: Any) -> bool:
    """Whether the two artifacts hold the same arrays and state (all but the pinned bounds)."""
    _, _, state, arrays = _persist.load(model.to_bytes())
    _, _, ref_state, ref_arrays = _persist.load(refit.to_bytes())
    return (
        state == ref_state
        and sorted(arrays) == sorted(ref_arrays)
        and all(
            arrays[k].dtype == ref_arrays[k].dtype and np.array_equal(arrays[k], ref_arrays[k])
            for k in arrays
        )
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="+", default=["adult", "shopping"], choices=sorted(LOADERS))
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--deletions", type=int, default=1000)
    ap.add_argument(
        "--max-samples", type=float, default=None, help="override HedgeCut's max_samples"
    )
    ap.add_argument("--seeds", type=int, default=5, help="seeds the accuracies are averaged over")
    ap.add_argument(
        "--quick", action="store_true", help="small sizes: 2,000 rows, 10 trees, 50 deletions"
    )
    ap.add_argument(
        "--out", default=None, help="JSON path (default bench/results/hedgecut[-quick].json)"
    )
    args = ap.parse_args(argv)
    trees, deletions, max_rows = args.trees, args.deletions, None
    if args.quick:
        trees, deletions, max_rows, args.seeds = 10, 50, 2000, 1
    configs: dict[str, dict[str, Any]] = {
        "forget HedgeCut": {},
        "forget HedgeCut, sqrt features": {"max_features": "sqrt"},
        "forget HedgeCut, all rows per tree": {"max_samples": 1.0},
    }
    if args.max_samples is not None:
        configs = {
            f"forget HedgeCut, max_samples={args.max_samples}": {"max_samples": args.max_samples}
        }
    rows: list[dict[str, Any]] = []
    for name in args.datasets:
        rows += bench_dataset(name, trees, deletions, max_rows, configs, args.seeds)
    print(
        table(
            rows,
            [
                ("dataset", "data"),
                ("model", "model"),
                ("accuracy", "accuracy (mean of seeds)"),
                ("accuracy_vs_et_points", "vs ET, points"),
                ("fit_s", "fit s"),
                ("bytes", "bytes"),
                ("predict_10k_ms", "predict 10k ms"),
                ("predict_1_us", "predict 1 row µs"),
                ("delete_p50_us", "delete p50 µs"),
                ("delete_p99_us", "delete p99 µs"),
                ("slow_path_share", "slow path"),
                ("retrain_s", "retrain s"),
                ("equals_retrain", "= retrain"),
            ],
        )
    )
    payload = {
        "trees": trees,
        "deletions": deletions,
        "seeds": args.seeds,
        "quick": args.quick,
        "results": rows,
    }
    path = write_json("hedgecut-quick" if args.quick else "hedgecut", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
