"""Drift monitoring on adult: false alarms, detection delays, and what monitoring costs per row.

Usage::

    python -m bench.drift              # 20 seeds, every numeric feature
    python -m bench.drift --quick      # 2 seeds, 2 features, shorter streams (what CI executes)

Per seed: an 80/20 split (seeded), the reference profile of the training split, a HedgeCut
forest trained on it (its positive-class probabilities feed ADWIN, its errors on fed-back
labels feed DDM); traffic is drawn from the test split with replacement and reported on every
``--step`` rows.

1. In-distribution: 10,000 rows. A false alarm is a run with any feature flagged (or any alert).
   The margin: the largest effects and smallest corrected p-values seen, and the closest call,
   min over reports and features of max(p_adjusted / alpha, gate / effect) (flagged iff < 1).
2. Shift: 5,000 in-distribution rows fill the window, then one numeric feature is shifted by one
   (training) standard deviation for 2,000 rows. Delay = rows after the shift until that feature
   is flagged; "others flagged" = runs where another feature was flagged before the end.
3. Cost: ``observe`` per row at several batch sizes, next to the forest's own ``predict_proba``
   per row at the same batch size; ``report`` (all tests fresh) per call and per row at the
   default cadence.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from bench._common import table, write_json
from drift import Monitor, MonitorConfig, ReferenceProfile
from forget import HedgeCutClassifier
from forget.datasets import Dataset, load_adult, train_test_split

NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def _setup(ds: Dataset, seed: int) -> dict[str, Any]:
    Xtr, Xte, ytr, yte = train_test_split(ds, seed=seed)
    profile = ReferenceProfile.fit(
        Xtr, ds.feature_names, categorical=ds.categories, labels=ds.categories, seed=seed
    )
    model = HedgeCutClassifier(random_state=seed).fit(Xtr, ytr)
    return {"profile": profile, "model": model, "X": Xte, "y": yte}


def _stream(mon: Monitor, X, proba, y, step: int):
    """Observe in batches of ``step`` rows with labels fed back; yield each report."""
    pred = (proba >= 0.5).astype(np.int64)
    for at in range(0, X.shape[0], step):
        s = slice(at, at + step)
        mon.observe(X[s], proba[s])
        mon.feedback(y[s], pred[s])
        yield at + min(step, X.shape[0] - at), mon.report()


def _flagged(rep: dict[str, Any]) -> set[str]:
    return {f["name"] for f in rep["features"] if f["drift"]}


def run_null(setup: dict[str, Any], rows: int, step: int, rng: np.random.Generator) -> dict:
    X, y, model = setup["X"], setup["y"], setup["model"]
    idx = rng.integers(0, X.shape[0], rows)
    proba = model.predict_proba(X)[:, 1]
    mon = Monitor(setup["profile"], MonitorConfig(recheck_rows=step))
    feats: set[str] = set()
    dets: set[str] = set()
    alerts = 0
    # how close the gates came; "closest": min over reports and features of
    # max(p_adjusted / alpha, gate / effect), flagged iff below 1
    margin = {"numeric": 0.0, "categorical": 0.0, "p": 1.0, "closest": float("inf")}
    th = mon.config.thresholds
    for _, rep in _stream(mon, X[idx], proba[idx], y[idx], step):
        feats |= _flagged(rep)
        dets |= {d["detector"] for d in rep["detectors"] if d["drift"]}
        alerts += bool(rep["alerts"])
        for f in rep["features"]:
            if f["effect"] is not None:
                margin[f["kind"]] = max(margin[f["kind"]], f["effect"])
                margin["p"] = min(margin["p"], f["p_adjusted"])
                gate = th.numeric_effect if f["kind"] == "numeric" else th.categorical_effect
                call = max(f["p_adjusted"] / th.alpha, gate / max(f["effect"], 1e-12))
                margin["closest"] = min(margin["closest"], call)
    return {
        "features": sorted(feats),
        "detectors": sorted(dets),
        "any_alert": alerts > 0,
        "margin": margin,
    }


def run_shift(
    setup: dict[str, Any], feature: str, warm: int, rows: int, step: int, rng: np.random.Generator
) -> dict:
    """One shift run, watched by two monitors fed the same stream: one re-running the tests at
    every report (every ``step`` rows: the statistical delay), one with the default cache
    (tests re-run once ``recheck_rows`` new rows arrived: the delay an operator sees)."""
    X, y, model, profile = setup["X"], setup["y"], setup["model"], setup["profile"]
    j = profile.names.index(feature)
    shifted = X.copy()
    shifted[:, j] += profile.features[j].std
    proba = model.predict_proba(X)[:, 1]
    proba_s = model.predict_proba(shifted)[:, 1]
    mons = [Monitor(profile, MonitorConfig(recheck_rows=step)), Monitor(profile)]
    w = rng.integers(0, X.shape[0], warm)
    s = rng.integers(0, X.shape[0], rows)
    out: dict[str, Any] = {"delay": None, "delay_default": None, "others": set()}
    out["warm_flags"], out["adwin"] = set(), False
    for mon, delay_key in zip(mons, ("delay", "delay_default"), strict=True):
        for _, rep in _stream(mon, X[w], proba[w], y[w], step):
            out["warm_flags"] |= _flagged(rep)
        for at, rep in _stream(mon, shifted[s], proba_s[s], y[s], step):
            flags = _flagged(rep)
            if out[delay_key] is None and feature in flags:
                out[delay_key] = at
            out["others"] |= flags - {feature}
            out["adwin"] |= any(d["drift"] for d in rep["detectors"] if d["detector"] == "ADWIN")
    out["others"], out["warm_flags"] = sorted(out["others"]), sorted(out["warm_flags"])
    return out


def _per_row_us(fn, rows: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / rows * 1e6


def run_costs(setup: dict[str, Any], rows: int, batches: tuple[int, ...]) -> list[dict]:
    X, model, profile = setup["X"], setup["model"], setup["profile"]
    rng = np.random.default_rng(7)
    Xs = X[rng.integers(0, X.shape[0], rows)]
    proba = model.predict_proba(Xs)[:, 1]
    out = []
    for b in batches:
        chunks = [(Xs[i : i + b], proba[i : i + b]) for i in range(0, rows, b)]
        keys = [[f"subject-{j}" for j in range(i, min(i + b, rows))] for i in range(0, rows, b)]
        mon, keyed = Monitor(profile), Monitor(profile)

        def observe(mon=mon, chunks=chunks) -> None:
            for xb, pb in chunks:
                mon.observe(xb, pb)

        def observe_keyed(mon=keyed, chunks=chunks, keys=keys) -> None:
            for (xb, pb), kb in zip(chunks, keys, strict=True):
                mon.observe(xb, pb, kb)

        def predict(chunks=chunks) -> None:
            for xb, _ in chunks:
                model.predict_proba(xb)

        obs = _per_row_us(observe, rows)
        obs_keyed = _per_row_us(observe_keyed, rows)
        pred = _per_row_us(predict, rows, repeats=1)
        out.append(
            {
                "batch": b,
                "observe_us_per_row": obs,
                "observe_keyed_us_per_row": obs_keyed,
                "predict_us_per_row": pred,
                "observe_share_of_predict": obs / pred,
            }
        )
    mon = Monitor(profile)
    mon.observe(Xs[:5000], proba[:5000])
    t = time.perf_counter()
    reps = 20
    for _ in range(reps):
        mon.report(fresh=True)
    report_ms = (time.perf_counter() - t) / reps * 1e3
    cadence = mon.config.recheck_rows
    for r in out:
        r["report_ms"] = report_ms
        r["report_us_per_row_at_cadence"] = report_ms * 1e3 / cadence
        r["total_us_per_row"] = r["observe_us_per_row"] + r["report_us_per_row_at_cadence"]
        r["total_share_of_predict"] = r["total_us_per_row"] / r["predict_us_per_row"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--rows", type=int, default=10_000, help="in-distribution rows per run")
    ap.add_argument("--shift-rows", type=int, default=2000)
    ap.add_argument("--warm", type=int, default=5000, help="rows before the shift")
    ap.add_argument("--step", type=int, default=50, help="rows between two reports")
    ap.add_argument("--features", default=",".join(NUMERIC))
    ap.add_argument("--quick", action="store_true", help="2 seeds, 2 features, short streams")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    features = args.features.split(",")
    if args.quick:
        args.seeds, args.rows, args.shift_rows, args.warm = 2, 2000, 1000, 1000
        features = features[:2]
    ds = load_adult()
    nulls, shifts = [], {f: [] for f in features}
    for seed in range(args.seeds):
        setup = _setup(ds, seed)
        rng = np.random.default_rng([seed, 1])
        nulls.append(run_null(setup, args.rows, args.step, rng))
        for f in features:
            shifts[f].append(run_shift(setup, f, args.warm, args.shift_rows, args.step, rng))
    n = len(nulls)
    null_row = {
        "runs": n,
        "rows": args.rows,
        "feature_false_alarm_rate": sum(bool(r["features"]) for r in nulls) / n,
        "adwin_false_alarm_rate": sum("ADWIN" in r["detectors"] for r in nulls) / n,
        "ddm_false_alarm_rate": sum("DDM" in r["detectors"] for r in nulls) / n,
        "any_alert_rate": sum(r["any_alert"] for r in nulls) / n,
        "features_flagged": sorted({f for r in nulls for f in r["features"]}),
        "max_numeric_effect": max(r["margin"]["numeric"] for r in nulls),
        "max_categorical_psi": max(r["margin"]["categorical"] for r in nulls),
        "min_p_adjusted": min(r["margin"]["p"] for r in nulls),
        "closest_call": min(r["margin"]["closest"] for r in nulls),
    }
    shift_rows = []
    for f, runs in shifts.items():
        delays = [r["delay"] for r in runs if r["delay"] is not None]
        seen = [r["delay_default"] for r in runs if r["delay_default"] is not None]
        shift_rows.append(
            {
                "feature": f,
                "runs": len(runs),
                "detected_share": len(delays) / len(runs),
                "delay_median_rows": float(np.median(delays)) if delays else None,
                "delay_p95_rows": float(np.percentile(delays, 95)) if delays else None,
                "delay_max_rows": max(delays) if delays else None,
                "detected_share_default_cadence": len(seen) / len(runs),
                "delay_p95_rows_default_cadence": float(np.percentile(seen, 95)) if seen else None,
                "others_flagged_share": sum(bool(r["others"]) for r in runs) / len(runs),
                "others_flagged": sorted({o for r in runs for o in r["others"]}),
                "flagged_before_shift_share": sum(bool(r["warm_flags"]) for r in runs) / len(runs),
                "adwin_fired_share": sum(r["adwin"] for r in runs) / len(runs),
            }
        )
    costs = run_costs(_setup(ds, 0), 2000 if args.quick else 20_000, (1, 16, 64, 256))
    print(f"in-distribution: {n} runs × {args.rows:,} rows, a report every {args.step} rows\n")
    print(
        table(
            [null_row],
            [
                ("runs", "runs"),
                ("feature_false_alarm_rate", "feature false alarms"),
                ("adwin_false_alarm_rate", "ADWIN false alarms"),
                ("ddm_false_alarm_rate", "DDM false alarms"),
                ("any_alert_rate", "any alert"),
                ("max_numeric_effect", "largest W1/std seen (gate 0.1)"),
                ("max_categorical_psi", "largest PSI seen (gate 0.1)"),
                ("min_p_adjusted", "smallest Holm p seen (α 0.01)"),
                ("closest_call", "closest call (flag < 1)"),
            ],
        )
    )
    print(
        f"\nshift by +1 std after {args.warm:,} rows, {args.shift_rows:,} rows after it; delays"
        f" with tests every {args.step} rows, and at the default cache of "
        f"{MonitorConfig().recheck_rows:,} rows\n"
    )
    print(
        table(
            shift_rows,
            [
                ("feature", "feature"),
                ("detected_share", "detected"),
                ("delay_median_rows", "delay median rows"),
                ("delay_p95_rows", "delay p95 rows"),
                ("delay_p95_rows_default_cadence", "p95 at default cadence"),
                ("others_flagged_share", "other features flagged"),
                ("adwin_fired_share", "ADWIN fired"),
            ],
        )
    )
    print("\ncost per row (µs; best of 3; the forest's predict_proba for comparison)\n")
    print(
        table(
            costs,
            [
                ("batch", "batch rows"),
                ("observe_us_per_row", "observe µs/row"),
                ("observe_keyed_us_per_row", "with a key per row"),
                ("predict_us_per_row", "predict µs/row"),
                ("report_ms", "report ms (fresh)"),
                ("report_us_per_row_at_cadence", "report µs/row (default cadence)"),
                ("total_share_of_predict", "monitoring / predict"),
            ],
        )
    )
    payload = {
        "quick": args.quick,
        "seeds": args.seeds,
        "step": args.step,
        "warm": args.warm,
        "shift_rows": args.shift_rows,
        "in_distribution": null_row,
        "shift": shift_rows,
        "cost": costs,
    }
    path = write_json("drift-quick" if args.quick else "drift", payload, args.out)
    print(f"\nwritten: {path}")
    return payload


if __name__ == "__main__":
    main()
