"""The ``forget`` command line."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    from forget import HedgeCutClassifier
    from forget.datasets import load_adult, train_test_split

    ds = load_adult()
    Xtr, Xte, ytr, yte = train_test_split(ds)
    print(f"adult: {Xtr.shape[0]} training rows, {Xte.shape[0]} test rows, {Xtr.shape[1]} features")
    print("compiling the kernels (only the first run on a machine takes long) ...", flush=True)
    t0 = time.perf_counter()
    warm = HedgeCutClassifier(n_estimators=2, random_state=0).fit(Xtr[:200], ytr[:200])
    warm.forget([0])
    warm.predict(Xte[:2])
    print(f"  ready in {time.perf_counter() - t0:.1f} s")
    print(f"training HedgeCutClassifier({args.trees} trees) ...", flush=True)
    t0 = time.perf_counter()
    model = HedgeCutClassifier(n_estimators=args.trees, random_state=0).fit(Xtr, ytr)
    acc = np.mean(model.predict(Xte) == yte)
    print(f"  trained in {time.perf_counter() - t0:.2f} s, accuracy {acc:.4f}")
    victims = np.random.default_rng(1).permutation(Xtr.shape[0])[: args.deletions]
    print(f"forgetting {victims.size} training rows, one request each ...", flush=True)
    lat = []
    slow = 0
    for v in victims.tolist():
        t = time.perf_counter()
        res = model.forget([v])
        lat.append(time.perf_counter() - t)
        slow += res.n_slow
    us = np.array(lat) * 1e6
    print(
        f"  deletion latency p50 {np.median(us):.0f} us, p99 {np.percentile(us, 99):.0f} us, "
        f"slow path {slow / victims.size:.1%}; guarantee: {model.guarantee.value}"
    )
    print(f"  accuracy after forgetting: {np.mean(model.predict(Xte) == yte):.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="forget", description="Machine unlearning for GDPR Art. 17."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train on the bundled adult data and forget rows")
    demo.add_argument("--trees", type=int, default=100, help="trees in the forest (default 100)")
    demo.add_argument("--deletions", type=int, default=200, help="rows to forget (default 200)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
