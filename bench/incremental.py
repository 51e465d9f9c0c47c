"""Incrementally maintained models against their scikit-learn equivalents and a full refit.

Usage::

    python -m bench.incremental            # adult, 1,000 single-row deletions per model
    python -m bench.incremental --quick    # a small run (what CI executes)

Classification: adult's income label. Regression: adult's ``hours-per-week`` from the other 13
features (the same rows, so one data set serves both tasks; it is a weak but honest target). For
each model, in one run: the score (accuracy or R²) next to scikit-learn's equivalent, the time of
a full fit, p50 / p99 of ``forget`` over single-row deletions, and the speed-up over refitting.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import linear_model, naive_bayes, neighbors
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from bench._common import latency_summary, table, timed, write_json
from forget.datasets import load_adult, train_test_split
from forget.knn import KNNClassifier, KNNRegressor
from forget.linear import LinearRegression
from forget.logistic import LogisticRegression
from forget.naive_bayes import GaussianNB, MultinomialNB

HOURS = 12  # column of hours-per-week in adult
# distance- and gradient-based models get standardised features (fnlwgt would swamp the rest)
SCALED = frozenset({"LogisticRegression", "KNNClassifier", "KNNRegressor"})


def _cases() -> list[tuple[str, str, Callable[[], Any], Callable[[], Any]]]:
    """(task, name, forget model, scikit-learn peer)."""
    return [
        ("classify", "GaussianNB", GaussianNB, naive_bayes.GaussianNB),
        ("classify", "MultinomialNB", MultinomialNB, naive_bayes.MultinomialNB),
        (
            "classify",
            "LogisticRegression",
            lambda: LogisticRegression(lam=1e-4),
            lambda: linear_model.LogisticRegression(C=1.0, max_iter=1000),
        ),
        (
            "classify",
            "KNNClassifier",
            lambda: KNNClassifier(5),
            lambda: neighbors.KNeighborsClassifier(5),
        ),
        (
            "regress",
            "LinearRegression",
            lambda: LinearRegression(alpha=1.0),
            lambda: linear_model.Ridge(1.0),
        ),
        (
            "regress",
            "KNNRegressor",
            lambda: KNNRegressor(5),
            lambda: neighbors.KNeighborsRegressor(5),
        ),
    ]


def _score(task: str, model: Any, X: np.ndarray, y: np.ndarray) -> float:
    pred = model.predict(X)
    return float((pred == y).mean()) if task == "classify" else float(r2_score(y, pred))


def bench_model(task, name, make, make_peer, data, deletions) -> dict[str, Any]:
    X, Xte, y, yte = data[task]
    if name in SCALED:  # both sides see standardised features
        scaler = StandardScaler().fit(X)
        X, Xte = scaler.transform(X), scaler.transform(Xte)
    peer_s, peer = timed(lambda: make_peer().fit(X, y))
    model = make()
    model.fit(X[:200], y[:200])  # compile kernels outside the timed fit
    fit_s, _ = timed(lambda: model.fit(X, y))
    score, peer_score = _score(task, model, Xte, yte), _score(task, peer, Xte, yte)
    victims = np.random.default_rng(1).permutation(X.shape[0])[:deletions].tolist()
    lat, slow = [], 0
    for v in victims:
        r = model.forget([v])
        lat.append(r.seconds)
        slow += r.n_slow
    keep = np.setdiff1d(np.arange(X.shape[0]), victims)
    refit_s, _ = timed(lambda: make().fit(X[keep], y[keep], row_ids=keep))
    dl = latency_summary(lat)
    return {
        "task": task,
        "model": name,
        "guarantee": model.guarantee.value,
        "score": score,
        "sklearn_score": peer_score,
        "fit_s": fit_s,
        "sklearn_fit_s": peer_s,
        "refit_s": refit_s,
        "delete_p50_us": dl["p50_us"],
        "delete_p99_us": dl["p99_us"],
        "deletions": dl["n"],
        "slow_path_share": slow / len(victims),
        "speedup_vs_refit_p50": refit_s / (dl["p50_us"] * 1e-6),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--deletions", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="2,000 rows and 50 deletions")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    ds = load_adult()
    X, Xte, y, yte = train_test_split(ds)
    deletions = args.deletions
    if args.quick:
        X, y, Xte, yte, deletions = X[:2000], y[:2000], Xte[:500], yte[:500], 50
    others = [j for j in range(X.shape[1]) if j != HOURS]
    data = {
        "classify": (X, Xte, y, yte),
        "regress": (X[:, others], Xte[:, others], X[:, HOURS], Xte[:, HOURS]),
    }
    rows = [bench_model(*case, data, deletions) for case in _cases()]
    print(
        table(
            rows,
            [
                ("model", "model"),
                ("guarantee", "guarantee"),
                ("score", "accuracy / R²"),
                ("sklearn_score", "scikit-learn"),
                ("fit_s", "fit s"),
                ("delete_p50_us", "delete p50 µs"),
                ("delete_p99_us", "delete p99 µs"),
                ("refit_s", "refit s"),
                ("speedup_vs_refit_p50", "speed-up vs refit"),
            ],
        )
    )
    payload = {
        "rows": int(X.shape[0]),
        "deletions": deletions,
        "quick": args.quick,
        "results": rows,
    }
    path = write_json("incremental-quick" if args.quick else "incremental", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
