"""SISA sharding (``forget.sharded.Sharded``): accuracy and deletion cost against one model.

Usage::

    python -m bench.sharded            # adult, shopping: HGB, HGB-100, RF; synthetic: HGB, HGB-100
    python -m bench.sharded --quick    # shopping, 2,000 rows, small learners, 1 and 5 shards (CI)

Data sets: UCI adult and shopping (``forget.datasets``), and ``synthetic`` — data we did not
tune on, ten times adult: ``make_classification``, 250,000 rows, 20 features (10 informative),
5 % of the labels flipped, seed 0. Each gets the seeded 80/20 split of
``forget.datasets.train_test_split``. Shard counts: 1, 5, 10, 20 on adult and shopping; 1, 5,
10, 20, 30, 50 on synthetic, whose random forest is left out (100 trees on 200,000 rows take
minutes a fit on one thread; the forest's sharding is measured on the two real data sets).

Per data set and learner, in the same run. Learners, all
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
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from threadpoolctl import threadpool_limits

from bench._common import latency_summary, table, write_json
from forget.datasets import Dataset, load_adult, load_shopping, train_test_split
from forget.sharded import Sharded

SYNTHETIC_ROWS = 250_000


def load_synthetic() -> Dataset:
    """``make_classification``: 250,000 rows, 20 features (10 informative), 5 % label noise."""
    X, y = make_classification(
        n_samples=SYNTHETIC_ROWS, n_features=20, n_informative=10, flip_y=0.05, random_state=0
    )
    names = tuple(f"f{j}" for j in range(X.shape[1]))
    return Dataset("synthetic", X, y.astype(np.int64), names, ("0", "1"), {})


LOADERS = {"adult": load_adult, "shopping": load_shopping, "synthetic": load_synthetic}
SHARDS = {"adult": [1, 5, 10, 20], "shopping": [1, 5, 10, 20], "synthetic": [1, 5, 10, 20, 30, 50]}
SKIP = {"synthetic": {"RF"}}  # learners left out of a data set (see the module doc)


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


def _run(
    args: argparse.Namespace, datasets: list[str], shards: list[int] | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in datasets:
        Xtr, Xte, ytr, yte = train_test_split(LOADERS[name]())
        if args.quick:
            Xtr, ytr = Xtr[:2000], ytr[:2000]
        for lname, est in learners(args.quick).items():
            if lname in SKIP.get(name, set()):
                continue
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
            ks = shards or SHARDS[name]
            for k in ks:
                r = run_one(est, k, (Xtr, Xte, ytr, yte), mono_acc, args, k == max(ks))
                rows.append({"dataset": name, "learner": lname, **r})
                print(f"{name} {lname} k={k}: acc {r['accuracy']:.4f}, x{r['speedup']:.1f}")
    return rows


def best(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set and learner, the issue's "best shard count": of the sharded rows (k > 1)
    within 1 point of the monolithic accuracy, the one whose retrain per deletion is the most
    cheaper than a full retrain; ``cheap_enough`` when that is >= 10x, ``fast_enough`` when
    answers' p99 < 1 ms, ``met`` when both."""
    out = []
    for key in dict.fromkeys((r["dataset"], r["learner"]) for r in rows):
        runs = [
            r for r in rows
            if (r["dataset"], r["learner"]) == key and r["n_shards"] not in ("monolithic", 1)
        ]  # fmt: skip
        ok = [r for r in runs if r["points_vs_monolithic"] >= -1.0]
        if not ok:
            continue
        r = max(ok, key=lambda r: r["speedup"])
        cheap, fast = r["speedup"] >= 10.0, r["answer_p99_ms"] < 1.0
        out.append({**r, "cheap_enough": cheap, "fast_enough": fast, "met": cheap and fast})
    return out


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
    datasets = args.datasets or (["shopping"] if q else ["adult", "shopping", "synthetic"])
    shards = args.shards or ([1, 5] if q else None)  # None: each data set's SHARDS
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
    chosen = best(rows)
    print("\nbest shard count (within 1 point; target >= 10x cheaper, answer p99 < 1 ms):")
    print(table(chosen, [*cols[:3], cols[4], cols[6], cols[9], ("met", "met")]))
    payload = {
        "config": {
            "quick": q,
            "datasets": datasets,
            "shards": shards or {d: SHARDS[d] for d in datasets},
            "retrains": args.retrains,
            "answers": args.answers,
            "repeats": args.repeats,
            "full_retrains": args.full,
            "threads": args.threads,
            "learners": {k: repr(v) for k, v in learners(q).items()},
        },
        "results": rows,
        "best": chosen,
    }
    path = write_json("sharded", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
