"""SISA sharding (``forget.sharded.Sharded``): accuracy and deletion cost against one model.

Usage::

    python -m bench.sharded            # adult and shopping, HGB, HGB-100, RF; 1/5/10/20 shards
    python -m bench.sharded --quick    # shopping, 2,000 rows, small learners, 1 and 5 shards (CI)

Per data set (80/20 split of ``forget.datasets``) and learner, in the same run. Learners, all
``random_state=0``: ``HGB`` is ``HistGradientBoostingClassifier`` with its defaults, whose
early stopping is on from 10,000 rows only (the monolithic model on adult stops early, shards
under 10,000 rows train all 100 iterations); ``HGB-100`` the same with
``early_stopping=False`` (100 iterations everywhere: like for like); ``RF`` is
``RandomForestClassifier``, 100 trees. Everything runs on ``--threads`` threads (default 1:
on a shared machine OpenMP's spinning threads made HGB's timings erratic, for shards and
full retrains alike).

- ``monolithic``: the learner fitted on every training row, ``--repeats`` times: its test
  accuracy and median fit time.
- ``Sharded(n_shards=k)`` (``aggregate="mean_proba"``, ``retrain="deferred"``) for each ``k``:
  test accuracy, and the points it loses against the monolithic model; then ``--retrains``
  deletions of one random row, each answered by ``forget`` (the affected constituent dropped)
  and followed by ``retrain_pending()`` (that shard retrained): the median retrain time per
  deletion. After each of the first ``--full`` of them the learner is also fitted on all the
  remaining rows (a full retrain, interleaved so that a noisy neighbour slows both alike):
  ``speedup`` is the median full retrain over the median shard retrain; then ``--answers``
  more deletions answered without retraining. ``answer`` latency (median and p99) is over
  every ``forget`` call, both phases. For the largest ``k`` the model after the deletions and
  the retrains is compared with ``Sharded`` fitted on the remaining rows (``equals_refit``:
  probabilities on the test rows bit for bit).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from threadpoolctl import threadpool_limits

from bench._common import latency_summary, table, write_json
from forget.datasets import load_adult, load_shopping, train_test_split
from forget.sharded import Sharded

LOADERS = {"adult": load_adult, "shopping": load_shopping}


def learners(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "HGB": HistGradientBoostingClassifier(max_iter=10, random_state=0),
            "RF": RandomForestClassifier(n_estimators=10, random_state=0),
        }
    return {
        "HGB": HistGradientBoostingClassifier(random_state=0),
        "HGB-100": HistGradientBoostingClassifier(early_stopping=False, random_state=0),
        "RF": RandomForestClassifier(n_estimators=100, random_state=0),
    }


def run_one(
    est: Any,
    k: int,
    split: tuple[np.ndarray, ...],
    mono_acc: float,
    args: argparse.Namespace,
    verify: bool,
) -> dict[str, Any]:
    Xtr, Xte, ytr, yte = split
    ids = np.arange(Xtr.shape[0])
    t0 = time.perf_counter()
    m = Sharded(clone(est), n_shards=k, random_state=0).fit(Xtr, ytr, row_ids=ids)
    fit_s = time.perf_counter() - t0
    acc = float((m.predict(Xte) == yte).mean())
    order = np.random.default_rng(k).permutation(ids)
    answers: list[float] = []
    retrains: list[float] = []
    fulls: list[float] = []
    keep = np.ones(ids.size, dtype=bool)
    for n, i in enumerate(order[: args.retrains].tolist()):
        t = time.perf_counter()
        m.forget([i])
        answers.append(time.perf_counter() - t)
        retrains.append(m.retrain_pending().seconds)
        keep[i] = False
        if n < args.full:  # the peer, interleaved: a noisy neighbour slows both alike
            t = time.perf_counter()
            clone(est).fit(Xtr[keep], ytr[keep])
            fulls.append(time.perf_counter() - t)
    equal: bool | None = None
    if verify:
        ref = Sharded(clone(est), n_shards=k, random_state=0)
        ref.fit(Xtr[keep], ytr[keep], row_ids=ids[keep])
        equal = bool(np.array_equal(m.predict_proba(Xte), ref.predict_proba(Xte)))
    for i in order[args.retrains : args.retrains + args.answers].tolist():
        t = time.perf_counter()
        m.forget([i])
        answers.append(time.perf_counter() - t)
    lat = latency_summary(answers)
    retrain_s = float(np.median(retrains))
    full_s = float(np.median(fulls))
    return {
        "n_shards": k,
        "accuracy": acc,
        "points_vs_monolithic": 100.0 * (acc - mono_acc),
        "fit_s": fit_s,
        "answer_p50_ms": lat["p50_us"] / 1e3,
        "answer_p99_ms": lat["p99_us"] / 1e3,
        "answers": lat["n"],
        "retrain_per_deletion_s": retrain_s,
        "retrain_p99_s": float(np.percentile(retrains, 99)),
        "full_retrain_s": full_s,
        "full_retrains": len(fulls),
        "speedup": full_s / retrain_s,
        "equals_refit": equal,
    }


def _run(args: argparse.Namespace, datasets: list[str], shards: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in datasets:
        Xtr, Xte, ytr, yte = train_test_split(LOADERS[name]())
        if args.quick:
            Xtr, ytr = Xtr[:2000], ytr[:2000]
        for lname, est in learners(args.quick).items():
            fits, mono = [], None
            for _ in range(args.repeats):
                mono = clone(est)
                t = time.perf_counter()
                mono.fit(Xtr, ytr)
                fits.append(time.perf_counter() - t)
            assert mono is not None
            mono_s = float(np.median(fits))
            mono_acc = float((mono.predict(Xte) == yte).mean())
            rows.append(
                {"dataset": name, "learner": lname, "n_shards": "monolithic",
                 "accuracy": mono_acc, "fit_s": mono_s}
            )  # fmt: skip
            for k in shards:
                r = run_one(est, k, (Xtr, Xte, ytr, yte), mono_acc, args, k == max(shards))
                rows.append({"dataset": name, "learner": lname, **r})
                print(f"{name} {lname} k={k}: acc {r['accuracy']:.4f}, x{r['speedup']:.1f}")
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shopping, 2,000 rows, small learners")
    ap.add_argument("--datasets", nargs="+", default=None, choices=sorted(LOADERS))
    ap.add_argument("--shards", nargs="+", type=int, default=None)
    ap.add_argument("--retrains", type=int, default=None, help="deletions retrained, each")
    ap.add_argument("--answers", type=int, default=None, help="deletions answered only")
    ap.add_argument("--full", type=int, default=3, help="full retrains per shard count")
    ap.add_argument("--repeats", type=int, default=3, help="monolithic fits")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP / BLAS threads")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    q = args.quick
    datasets = args.datasets or (["shopping"] if q else ["adult", "shopping"])
    shards = args.shards or ([1, 5] if q else [1, 5, 10, 20])
    args.retrains = args.retrains or (3 if q else 6)
    args.answers = args.answers or (20 if q else 200)
    args.full = min(args.full, args.retrains)
    with threadpool_limits(args.threads):
        rows = _run(args, datasets, shards)
    cols = [
        ("dataset", "data"), ("learner", "learner"), ("n_shards", "shards"),
        ("accuracy", "accuracy"), ("points_vs_monolithic", "Δ points"),
        ("answer_p50_ms", "answer p50 ms"), ("answer_p99_ms", "answer p99 ms"),
        ("retrain_per_deletion_s", "retrain s / deletion"), ("full_retrain_s", "full retrain s"),
        ("speedup", "× cheaper"), ("equals_refit", "= refit"),
    ]  # fmt: skip
    print(table(rows, cols))
    payload = {
        "config": {
            "quick": q,
            "datasets": datasets,
            "shards": shards,
            "retrains": args.retrains,
            "answers": args.answers,
            "repeats": args.repeats,
            "full_retrains": args.full,
            "threads": args.threads,
            "learners": {k: repr(v) for k, v in learners(q).items()},
        },
        "results": rows,
    }
    path = write_json("sharded", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
