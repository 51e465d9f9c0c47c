"""Quantized scoring: the compiled forest on bin indices against its float form and peers.

Usage::

    python -m bench.scoring_quantized            # adult, 100 trees, 10,000 rows and 1 row
    python -m bench.scoring_quantized --quick    # 10 trees, 1,000 rows, no C compile (CI)

Two forests on adult (80/20 split, rows drawn from the test part), each scored on one thread
by every scorer in interleaved rounds (a noisy neighbour hurts every scorer alike):

1. ``HedgeCutClassifier`` (100 trees, defaults) through ``compile_forest``: strategy
   ``"tt"`` (float32 rows, 16-byte records: what ``auto`` picks for these deep trees) and
   ``"qtt"`` (rows binned to the forest's cut-offs, 8-byte records; ``_quantized``), beside
   ONNX Runtime on ``forget.exchange.to_onnx``'s graph and tl2cgen's compiled C (treelite's
   model builder over the same trees, gcc ``-O2``).
2. scikit-learn's ``ExtraTreesClassifier`` (100 trees) through ``from_sklearn``, the same
   two strategies, ONNX Runtime on skl2onnx's conversion, and tl2cgen when the forest is small
   enough to compile in the bench's time (ExtraTrees' 1.7 M nodes are not: the row says so).

Per scorer: median and p99 latency for 10,000 rows and for one row, rows per second at
10,000, the bytes the model's scoring arrays take (``CompiledForest``: node records, leaf
values and bin edges; ONNX: the serialised graph; tl2cgen: the shared library), and whether
the probabilities are bitwise the float compiled scorer's (else the largest difference).
``binning`` times ``qtt``'s first pass alone (rows to bins). Ratios are against the float
compiled scorer measured in the same run.

3. ``LinearRegression`` on adult (the label as target) with ``Int8Weights``: the largest
   error against the model's own ``predict`` over the rows, the stated bound there, their
   ratio, and both predicts' latency.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier

from bench._common import latency_summary, machine, table, write_json
from bench.scoring import _one_row, _onnx_scorer, measure, tl2cgen_library
from forget import HedgeCutClassifier
from forget.datasets import load_adult, train_test_split
from forget.linear import Int8Weights, LinearRegression
from forget.scoring import CompiledForest, compile_forest, from_sklearn, sklearn_structures
from forget.scoring import _quantized as Q

TL2CGEN_MAX_NODES = 200_000  # past this gcc takes many minutes on the generated C


def _bytes_float(cf: CompiledForest) -> dict[str, int]:
    pool = cf._pool
    return {
        "node_bytes": pool.tail * pool.rec.itemsize * 4,
        "leaf_bytes": pool.tail * 8 * (cf.n_classes + 1),
    }


def _bytes_quantized(cf: CompiledForest) -> dict[str, int]:
    qt = cf._layout("qtt")
    assert isinstance(qt, Q.QuantizedTrees)
    pool = cf._pool
    edges = qt.edges.nbytes + qt.offs.nbytes
    return {
        "node_bytes": pool.tail * 8 + edges,
        "leaf_bytes": pool.tail * 8 * (cf.n_classes + 1),
    }


def _hedgecut_onnx(
    model: HedgeCutClassifier,
) -> tuple[Callable[[np.ndarray], Any] | None, str, int]:
    try:
        import onnxruntime as ort

        from forget.exchange import to_onnx
    except ImportError as exc:
        return None, f"ONNX Runtime: not installed ({exc.name}): pip install 'forget[peers]'", 0
    data = to_onnx(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    def score(rows: np.ndarray) -> np.ndarray:
        return sess.run(["probabilities"], {"X": rows.astype(np.float32)})[0]

    return score, f"ONNX Runtime {ort.__version__}", len(data)


def _sklearn_onnx(
    et: ExtraTreesClassifier, d: int
) -> tuple[Callable[[np.ndarray], Any] | None, str, int]:
    score, name = _onnx_scorer(et, d)
    if score is None:
        return None, f"ONNX Runtime: {name}", 0
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(
        et, initial_types=[("X", FloatTensorType([None, d]))], options={id(et): {"zipmap": False}}
    )
    return score, name, len(onx.SerializeToString())


def _treelite_model(
    structures: list[np.ndarray], n_classes: int, n_features: int, leaves: str
) -> Any:
    """The trees as a treelite model: ``x <= cut-off`` goes left, leaves hold the tree's
    class shares (an empty HedgeCut leaf holds zeros: treelite averages over every tree, so
    only forests where no tree abstains on a row score as the model does)."""
    from treelite.model_builder import Metadata, ModelBuilder, PostProcessorFunc, TreeAnnotation

    T = len(structures)
    b = ModelBuilder(
        threshold_type="float64",
        leaf_output_type="float64",
        metadata=Metadata(
            num_feature=n_features,
            task_type="kMultiClf",
            average_tree_output=True,
            num_target=1,
            num_class=[n_classes],
            leaf_vector_shape=(1, n_classes),
        ),
        tree_annotation=TreeAnnotation(num_tree=T, target_id=[0] * T, class_id=[-1] * T),
        postprocessor=PostProcessorFunc(name="identity_multiclass"),
        base_scores=[0.0] * n_classes,
    )
    for s in structures:
        s = np.asarray(s, np.float64)
        right, stack = np.full(len(s), -1), list[int]()
        for v in range(len(s)):
            if v > 0 and s[v - 1, 0] < 0:
                right[stack.pop()] = v
            if s[v, 0] >= 0:
                stack.append(v)
        b.start_tree()
        for v in range(len(s)):
            b.start_node(v)
            if s[v, 0] >= 0:  # float32 rows as doubles against the float32 cut-off: as forget
                cut = float(np.float32(s[v, 1]))
                b.numerical_test(
                    int(s[v, 0]), cut, default_left=True, opname="<=",
                    left_child_key=v + 1, right_child_key=int(right[v]),
                )  # fmt: skip
            else:
                c, tot = s[v, 2:], s[v, 2:].sum()
                share = c / tot if leaves == "counts" and tot > 0 else c * (leaves != "counts")
                b.leaf([float(x) for x in share])
            b.end_node()
        b.end_tree()
    return b.commit()


def _tl2cgen(
    structures: list[np.ndarray], n_classes: int, n_features: int, leaves: str
) -> tuple[Callable[[np.ndarray], Any] | None, str, int]:
    try:
        import tl2cgen
        import treelite  # noqa: F401
    except ImportError as exc:
        return None, f"tl2cgen: not installed ({exc.name}): pip install treelite tl2cgen", 0
    nodes = sum(len(s) for s in structures)
    if nodes > TL2CGEN_MAX_NODES:
        return None, f"tl2cgen: not run, {nodes:,} nodes: gcc would take many minutes", 0
    model = _treelite_model(structures, n_classes, n_features, leaves)
    score, lib, compile_s = tl2cgen_library(model)
    compiled = f"compiled in {compile_s:.0f} s" if compile_s else "cached"
    name = f"tl2cgen {tl2cgen.__version__} (gcc, {compiled})"
    return score, name, Path(lib).stat().st_size


def bench_forest(
    label: str,
    cf_float: CompiledForest,
    cf: CompiledForest,
    peers: list[tuple[Callable[[np.ndarray], Any] | None, str, int]],
    rows: np.ndarray,
    rounds: int,
    budget_s: float,
) -> list[dict[str, Any]]:
    """One forest: float and quantized compiled scorers and the peers, interleaved."""
    n = len(rows)
    want = cf_float.predict_proba(rows)
    qt = cf._layout("qtt")
    assert isinstance(qt, Q.QuantizedTrees)
    rows32 = np.ascontiguousarray(rows, dtype=np.float32)
    B = np.empty(rows32.shape, qt.dtype)
    entries: dict[str, Callable[[np.ndarray], Any]] = {
        "compiled tt (float32 rows)": cf_float.predict_proba,
        "compiled qtt (quantized)": cf.predict_proba,
    }
    sizes = {
        "compiled tt (float32 rows)": _bytes_float(cf_float),
        "compiled qtt (quantized)": _bytes_quantized(cf),
    }
    notes: list[dict[str, Any]] = []
    for score, name, nbytes in peers:
        if score is None:
            notes.append({"forest": label, "scorer": name.split(":")[0], "note": name})
            continue
        entries[name] = score
        sizes[name] = {"node_bytes": nbytes}
    batch = measure({k: partial(f, rows) for k, f in entries.items()}, rounds, budget_s, 30)
    single = measure({k: _one_row(f, rows) for k, f in entries.items()}, rounds, budget_s / 2, 3000)
    binning = measure(
        {"b": lambda: Q.binarize(rows32, qt.edges, qt.offs, B)}, rounds, budget_s / 4, 30
    )
    base_b = float(np.median(batch["compiled tt (float32 rows)"]))
    base_1 = float(np.median(single["compiled tt (float32 rows)"]))
    out = []
    for name, f in entries.items():
        got = np.asarray(f(rows), dtype=np.float64)
        b, s = latency_summary(batch[name]), latency_summary(single[name])
        size = sizes[name]
        out.append(
            {
                "forest": label,
                "scorer": name,
                "batch_ms": b["p50_us"] / 1e3,
                "batch_p99_ms": b["p99_us"] / 1e3,
                "rows_per_s": n / (b["p50_us"] / 1e6),
                "batch_x_float": base_b / (b["p50_us"] / 1e6),
                "one_us": s["p50_us"],
                "one_p99_us": s["p99_us"],
                "one_x_float": base_1 / (s["p50_us"] / 1e6),
                "node_bytes": size["node_bytes"],
                "leaf_bytes": size.get("leaf_bytes"),
                "exact": bool(np.array_equal(got, want)),
                "max_abs_diff": float(np.abs(got - want).max()),
            }
        )
    bq = latency_summary(binning["b"])
    out.append(
        {
            "forest": label,
            "scorer": f"qtt: binning only ({np.dtype(qt.dtype).name} bins)",
            "batch_ms": bq["p50_us"] / 1e3,
            "batch_p99_ms": bq["p99_us"] / 1e3,
            "note": f"{qt.edges.size:,} edges; most on one feature {int(np.diff(qt.offs).max()):,}",
        }
    )
    return out + notes


def bench_linear(X: np.ndarray, y: np.ndarray, rows: np.ndarray, rounds: int, budget_s: float):
    """Int8 weights against the float model: measured error, stated bound, latency."""
    model = LinearRegression(alpha=1e-6).fit(X, y.astype(np.float64))
    w = Int8Weights.from_model(model)
    err = np.abs(w.predict(rows) - model.predict(rows))
    bound = w.error_bound(rows)
    fns = {"float64 weights": model.predict, "int8 weights": w.predict}
    batch = measure({k: partial(f, rows) for k, f in fns.items()}, rounds, budget_s / 4, 200)
    single = measure({k: _one_row(f, rows) for k, f in fns.items()}, rounds, budget_s / 4, 3000)
    out = []
    for name in fns:
        b, s = latency_summary(batch[name]), latency_summary(single[name])
        out.append(
            {
                "scorer": name,
                "batch_ms": b["p50_us"] / 1e3,
                "batch_p99_ms": b["p99_us"] / 1e3,
                "one_us": s["p50_us"],
                "one_p99_us": s["p99_us"],
                "weight_bytes": model.coef_.nbytes if name.startswith("float") else w.q.nbytes,
            }
        )
    out[-1].update(
        max_abs_err=float(err.max()),
        max_bound=float(bound.max()),
        err_over_bound=float((err / bound).max()),
        within_bound=bool((err <= bound).all()),
    )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--quick", action="store_true", help="10 trees, 1,000 rows, no C compile")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args(argv)
    trees, n_rows, rounds, budget = args.trees, args.rows, args.rounds, 6.0
    if args.quick:
        trees, n_rows, rounds, budget = 10, 1000, 2, 0.3
    load_before = os.getloadavg()[0]  # a shared machine: say how busy it was
    X, Xte, y, _ = train_test_split(load_adult())
    rows = np.resize(Xte, (n_rows, Xte.shape[1]))
    d = X.shape[1]
    model = HedgeCutClassifier(n_estimators=trees, random_state=0).fit(X, y)
    et = ExtraTreesClassifier(n_estimators=trees, random_state=0).fit(X, y)
    results: list[dict[str, Any]] = []
    skip_c = (None, "tl2cgen: skipped in --quick (gcc compile)", 0)
    hc = model.tree_structures()
    peers = [_hedgecut_onnx(model)]
    peers.append(skip_c if args.quick else _tl2cgen(hc, model.classes_.size, d, "counts"))
    pair = (compile_forest(model, "tt", n_jobs=1), compile_forest(model, "qtt", n_jobs=1))
    results += bench_forest("HedgeCut", *pair, peers, rows, rounds, budget)
    pair = (from_sklearn(et, "tt"), from_sklearn(et, "qtt"))
    structures = sklearn_structures(et)[0]
    peers = [_sklearn_onnx(et, d)]
    peers.append(skip_c if args.quick else _tl2cgen(structures, et.n_classes_, d, "proba"))
    results += bench_forest("sklearn ExtraTrees", *pair, peers, rows, rounds, budget)
    linear = bench_linear(X, y, rows, rounds, budget)
    print(
        f"adult: {trees} trees, {n_rows:,} rows and 1 row, one thread; "
        f"{machine()['cpus']} shared cpus\n"
    )
    print(
        table(
            results,
            [
                ("forest", "forest"),
                ("scorer", "scorer"),
                ("batch_ms", f"{n_rows:,} rows ms (p50)"),
                ("batch_p99_ms", "p99 ms"),
                ("rows_per_s", "rows/s"),
                ("batch_x_float", "× float"),
                ("one_us", "1 row µs (p50)"),
                ("one_p99_us", "p99 µs"),
                ("one_x_float", "1 row × float"),
                ("node_bytes", "node bytes"),
                ("leaf_bytes", "leaf bytes"),
                ("exact", "bitwise = float"),
                ("note", "note"),
            ],
        )
    )
    print("\nLinearRegression on adult, int8 weights: error against the float model\n")
    print(
        table(
            linear,
            [
                ("scorer", "weights"),
                ("batch_ms", f"{n_rows:,} rows ms (p50)"),
                ("batch_p99_ms", "p99 ms"),
                ("one_us", "1 row µs (p50)"),
                ("one_p99_us", "p99 µs"),
                ("weight_bytes", "weight bytes"),
                ("max_abs_err", "max |error|"),
                ("max_bound", "max stated bound"),
                ("err_over_bound", "max error / bound"),
                ("within_bound", "within bound"),
            ],
        )
    )
    payload = {
        "trees": trees,
        "rows": n_rows,
        "quick": args.quick,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "results": results,
        "linear": linear,
    }
    path = write_json(
        "scoring_quantized-quick" if args.quick else "scoring_quantized", payload, args.out
    )
    after = os.getloadavg()[0]
    print(f"\nwritten: {path} (1-min load average {load_before:.1f} before, {after:.1f} after)")
    return payload


if __name__ == "__main__":
    main()
