"""Performance prediction (issue 18): does the predictor's accuracy estimate beat the baselines?

Usage::

    python -m bench.ppm            # adult, shopping, synthetic; 1,000 copies, 300 windows of 1,000
    python -m bench.ppm --quick    # 2,000-row subsets, 60 copies, 40 windows (what CI runs)

Per data set, a seeded split: train (at most ``--train`` rows), held-out (``--heldout``), test
(the rest, at most ``--test``). Data sets: UCI adult and shopping (categorical columns as
codes), and ``make_classification`` with ``flip_y=0.05`` and two columns binned into category
codes ("data we did not tune on"). Classifiers under test, fitted on the train split: forget's
HedgeCutClassifier (50 trees) and forget's LogisticRegression (on columns standardised by
the train split's mean and std).

The :class:`drift.performance.PerformancePredictor` is fitted on the held-out split with four
generators (gaussian noise, missing values, scaling, category flips), once with each regressor
(ridge, kNN). It is evaluated on ``--windows`` test windows of ``--window`` rows sampled from
the test split, each corrupted by a mix of 1–3 of **all six** generators at U(0, 1)
fractions — so most mixes hold ``swapped_columns`` or ``outliers``, which training never saw —
or left clean (10 %). For each window: the true accuracy, and the estimates of

(a) the predictor;
(b) **constant**: the validation (clean held-out) accuracy;
(c) **drift flag**: a :class:`drift.ReferenceProfile` of the held-out split and
    :func:`drift.evaluate.evaluate_features` with the monitor's default thresholds (KS / χ²,
    Holm at α = 0.01, effect gates, missing and unseen-value rules). Calibration: the same
    test runs on ``--calib`` training-style corrupted held-out windows (the predictor's four
    generators); ``drop`` is the mean of (validation accuracy − window accuracy) over those it
    flags (over all of them if it flags none). At test time: validation accuracy − ``drop`` if
    any feature is flagged, validation accuracy otherwise.

Reported: MAE of each, ``ratio`` = MAE of the better baseline / MAE of the predictor (target
≥ 2), the MAE restricted to windows holding a withheld generator, and cost: the median (and
p99) time of one estimate (features + regressor) against the median time of the model scoring
that window (``predict_proba``), and their ratio as a share (target < 5 %).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.datasets import make_classification

from bench._common import latency_summary, table, write_json
from drift.evaluate import Thresholds, evaluate_features
from drift.performance import Columns, PerformancePredictor, corrupt, random_mix
from drift.profile import ReferenceProfile
from forget import HedgeCutClassifier, LogisticRegression
from forget.datasets import load_adult, load_shopping

TRAIN_KINDS = ("gaussian_noise", "missing_values", "scaling", "category_flips")
WITHHELD = ("swapped_columns", "outliers")
ALL_KINDS = TRAIN_KINDS + WITHHELD


def _synthetic(seed: int = 7) -> tuple[np.ndarray, np.ndarray, list[str]]:
    X, y = make_classification(
        n_samples=15_000, n_features=12, n_informative=6, n_redundant=2, flip_y=0.05,
        class_sep=1.0, random_state=seed,
    )  # fmt: skip
    for j in (0, 1):  # two informative columns as category codes (quintiles)
        X[:, j] = np.digitize(X[:, j], np.quantile(X[:, j], [0.2, 0.4, 0.6, 0.8]))
    kinds = ["categorical"] * 2 + ["numeric"] * 10
    return X, y.astype(np.int64), kinds


def _datasets(names: list[str]) -> list[tuple[str, np.ndarray, np.ndarray, list[str]]]:
    out = []
    for name in names:
        if name == "synthetic":
            out.append((name, *_synthetic()))
            continue
        ds = {"adult": load_adult, "shopping": load_shopping}[name]()
        kinds = ["categorical" if f in ds.categories else "numeric" for f in ds.feature_names]
        out.append((name, ds.X, ds.y, kinds))
    return out


def _models(Xtr: np.ndarray, ytr: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    hc = HedgeCutClassifier(n_estimators=50, random_state=0).fit(Xtr, ytr)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd[sd == 0] = 1.0
    lr = LogisticRegression(lam=1e-3).fit((Xtr - mu) / sd, ytr)
    return {
        "HedgeCut": hc.predict_proba,
        "LogisticRegression": lambda Z: lr.predict_proba((Z - mu) / sd),
    }


def _flags(profile: ReferenceProfile, W: np.ndarray) -> bool:
    th = Thresholds(min_rows=min(500, W.shape[0]))
    return any(r.drift for r in evaluate_features(profile, W, th))


def _run_one(
    name: str, X: np.ndarray, y: np.ndarray, kinds: list[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    order = np.random.default_rng(0).permutation(X.shape[0])
    ntr, nho = min(args.train, X.shape[0] // 2), min(args.heldout, X.shape[0] // 4)
    tr, ho = order[:ntr], order[ntr : ntr + nho]
    te = order[ntr + nho :][: args.test]
    Xho, yho, Xte, yte = X[ho], y[ho], X[te], y[te]
    names = [f"f{j}" for j in range(X.shape[1])]
    profile = ReferenceProfile.fit(
        Xho, names, categorical=[n for n, k in zip(names, kinds, strict=True) if k == "categorical"]
    )
    cols = Columns.describe(Xho, kinds)
    rows = []
    for model, proba in _models(X[tr], y[tr]).items():
        fitted: dict[str, PerformancePredictor] = {}
        fit_s: dict[str, float] = {}
        for reg in ("ridge", "knn"):
            pp = PerformancePredictor(
                n_corruptions=args.copies, window=args.window, kinds=TRAIN_KINDS,
                regressor=reg, seed=1,
            )  # fmt: skip
            t = time.perf_counter()
            fitted[reg] = pp.fit(proba, Xho, yho, kinds)
            fit_s[reg] = time.perf_counter() - t
        val = fitted["ridge"].validation_accuracy_
        # drift-flag heuristic: calibrate the drop on training-style corruptions
        drops = []
        for i in range(args.calib):
            rng = np.random.default_rng([2, i])
            pos = rng.choice(Xho.shape[0], size=min(args.window, Xho.shape[0]), replace=False)
            W = corrupt(Xho[pos], cols, rng, random_mix(rng, TRAIN_KINDS))
            acc = float(np.mean(proba(W).argmax(axis=1) == yho[pos]))
            drops.append((_flags(profile, W), val - acc))
        flagged = [d for f, d in drops if f] or [d for _, d in drops]
        drop = float(np.mean(flagged))
        est: dict[str, list[float]] = {"ridge": [], "knn": []}
        truth, const, flag, withheld = [], [], [], []
        t_est, t_score = [], []
        for i in range(args.windows):
            rng = np.random.default_rng([3, i])
            pos = rng.choice(Xte.shape[0], size=args.window, replace=False)
            mix = random_mix(rng, ALL_KINDS)
            W = corrupt(Xte[pos], cols, rng, mix)
            t = time.perf_counter()
            P = proba(W)
            t_score.append(time.perf_counter() - t)
            truth.append(float(np.mean(P.argmax(axis=1) == yte[pos])))
            for reg, pp in fitted.items():
                t = time.perf_counter()
                e = pp.estimate(P)
                if reg == "ridge":
                    t_est.append(time.perf_counter() - t)
                est[reg].append(e)
            const.append(val)
            flag.append(val - drop if _flags(profile, W) else val)
            withheld.append(any(k in mix for k in WITHHELD))
        tv, wh = np.array(truth), np.array(withheld)

        def mae(e: list[float], mask: np.ndarray | None = None, tv: np.ndarray = tv) -> float:
            err = np.abs(np.array(e) - tv)
            return float(err[mask].mean() if mask is not None else err.mean())

        m_const, m_flag = mae(const), mae(flag)
        best = min(m_const, m_flag)
        le, ls = latency_summary(t_est), latency_summary(t_score)
        for reg in ("ridge", "knn"):
            m = mae(est[reg])
            rows.append(
                {
                    "dataset": name, "model": model, "regressor": reg,
                    "validation_accuracy": val, "true_acc_mean": float(tv.mean()),
                    "true_acc_min": float(tv.min()), "windows": int(tv.size),
                    "withheld_windows": int(wh.sum()),
                    "mae_predictor": m, "mae_constant": m_const, "mae_drift_flag": m_flag,
                    "ratio": best / m if m > 0 else float("inf"),
                    "mae_predictor_withheld": mae(est[reg], wh),
                    "mae_best_baseline_withheld": min(mae(const, wh), mae(flag, wh)),
                    "flag_drop": drop, "fit_s": fit_s[reg],
                    "estimate_p50_us": le["p50_us"], "estimate_p99_us": le["p99_us"],
                    "score_p50_us": ls["p50_us"], "score_p99_us": ls["p99_us"],
                    "cost_share_pct": 100.0 * le["p50_us"] / ls["p50_us"],
                }
            )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", nargs="+", default=["adult", "shopping", "synthetic"])
    ap.add_argument("--train", type=int, default=10_000)
    ap.add_argument("--heldout", type=int, default=3_000)
    ap.add_argument("--test", type=int, default=8_000)
    ap.add_argument("--copies", type=int, default=1000, help="corrupted copies to fit on")
    ap.add_argument("--calib", type=int, default=200, help="windows calibrating the drift flag")
    ap.add_argument("--windows", type=int, default=300, help="test windows")
    ap.add_argument("--window", type=int, default=1000, help="rows per window")
    ap.add_argument("--quick", action="store_true", help="small splits, 60 copies, 40 windows")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.train, args.heldout, args.test = 2_000, 1_000, 2_000
        args.copies, args.calib, args.windows, args.window = 60, 20, 40, 300
    t0 = time.perf_counter()
    rows = [r for ds in _datasets(args.datasets) for r in _run_one(*ds, args)]
    cols = [
        ("dataset", "data"), ("model", "model"), ("regressor", "regressor"),
        ("validation_accuracy", "val acc"), ("true_acc_mean", "mean true acc"),
        ("mae_predictor", "MAE ppm"), ("mae_constant", "MAE const"),
        ("mae_drift_flag", "MAE flag"), ("ratio", "best baseline / ppm"),
        ("mae_predictor_withheld", "MAE ppm (withheld)"),
        ("estimate_p50_us", "estimate p50 µs"), ("score_p50_us", "scoring p50 µs"),
        ("cost_share_pct", "cost %"),
    ]  # fmt: skip
    print(table(rows, cols))
    ridge = [r for r in rows if r["regressor"] == "ridge"]
    print(
        f"\nridge: worst ratio {min(r['ratio'] for r in ridge):.2f}x (target >= 2), worst cost "
        f"share {max(r['cost_share_pct'] for r in ridge):.1f} % (target < 5 %); "
        f"{time.perf_counter() - t0:.0f} s"
    )
    payload = {
        "quick": args.quick,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "train_kinds": list(TRAIN_KINDS),
        "withheld_kinds": list(WITHHELD),
        "rows": rows,
    }
    path = write_json("ppm-quick" if args.quick else "ppm", payload, args.out)
    print(f"written: {path}")
    return payload


if __name__ == "__main__":
    main()
