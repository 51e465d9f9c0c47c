"""Scoring a HedgeCut forest: compiled strategies against scikit-learn and the forest's kernel.

Usage::

    python -m bench.scoring            # adult, 100 trees, 10,000 rows and 1 row
    python -m bench.scoring --quick    # 10 trees, 1,000 rows: a few seconds (what CI runs)

One run, on the same data (adult, 80/20 split, rows drawn from the test part):

1. **Scorers** on the default forest: scikit-learn's ``ExtraTreesClassifier.predict_proba``
   (same number of trees, ``n_jobs=None``), ``HedgeCutClassifier.predict_proba``, and every
   strategy × backend of ``forget.scoring`` that the forest's depth allows, for a batch of
   10,000 rows and for one row (median and p99 over repetitions, taken in interleaved rounds
   so that a noisy neighbour hurts every scorer alike); ``exact`` says whether the result is
   bitwise the forest's. The parallel rows use every core (threads reported) and are not
   part of the single-threaded comparison.
2. **Crossover**: forests cut at depths 3 to 12, each strategy × backend: where ``auto``'s
   depth limits come from.
3. **Refresh**: forget one training row (it changes ~10 of 100 trees), then
   ``refresh(changed)`` against compiling every tree again.
4. **Same forest**: scikit-learn's ExtraTrees trees converted into ``CompiledForest``
   (``forget.scoring.from_sklearn``, bitwise its ``predict_proba``) and scored on one thread
   beside ``predict_proba`` itself, ONNX Runtime (via skl2onnx) and tl2cgen's compiled C
   (treelite's import of the forest, gcc ``-O1`` by default: the C of 1.8M nodes takes gcc
   ~33 minutes on two cores, once, then comes from a cache; ``--no-tl2cgen`` leaves it out),
   the peers from ``pip install 'forget[peers]'`` and skipped when missing, in interleaved
   rounds. ``ns per visited node`` is
   the time over the nodes the rows' paths visit (leaves included, summed over trees), and
   the bound rows are the physical floor: the node bytes those visits touch over a measured
   one-thread copy bandwidth, for forget's 16-byte records and scikit-learn's 64-byte nodes.
   One row is timed twice: warm (rows cycled through the same scorer, its nodes in cache) and
   cold (the caches emptied before each call, as for a row after other work or an idle spell:
   what a machine with a small last-level cache sees for most rows).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier

from bench._common import latency_summary, machine, table, timed, write_json
from forget import HedgeCutClassifier
from forget.datasets import load_adult, train_test_split
from forget.scoring import CompiledForest, changed_trees, compile_forest, from_sklearn
from forget.scoring import _torch as scoring_torch

COMBOS = [("tt", "numba"), ("ptt", "numba"), ("gemm", "numba")]
if scoring_torch.importable():
    COMBOS += [("tt", "torch"), ("ptt", "torch"), ("gemm", "torch")]


def _torch_threads() -> int | None:
    if not scoring_torch.importable():
        return None
    import torch

    return int(torch.get_num_threads())


def measure(
    fns: dict[str, Callable[[], Any]], rounds: int, budget_s: float, max_per_round: int
) -> dict[str, list[float]]:
    """Seconds per call of each function: ``rounds`` interleaved rounds, ~``budget_s`` each."""
    est = {}
    for name, fn in fns.items():
        fn()  # warm: compiled kernels, device copies
        t = time.perf_counter()
        fn()
        est[name] = time.perf_counter() - t
    reps = {
        k: max(1, min(max_per_round, int(budget_s / rounds / max(v, 1e-7)))) for k, v in est.items()
    }
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(reps[name]):
                t = time.perf_counter()
                fn()
                out[name].append(time.perf_counter() - t)
    return out


def _one_row(predict: Callable[[np.ndarray], Any], rows: np.ndarray) -> Callable[[], Any]:
    singles = itertools.cycle([rows[i : i + 1] for i in range(min(len(rows), 512))])
    return lambda: predict(next(singles))


def _last_level_cache_bytes() -> int:
    """The CPU's largest cache (Linux's sysfs), 64 MiB where it does not say."""
    biggest = 0
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        biggest = max(biggest, int(size.rstrip("KMG")) * unit)
    return biggest or 64 << 20


def cold_rows(
    fns: dict[str, Callable[[np.ndarray], Any]], rows: np.ndarray, reps: int
) -> dict[str, list[float]]:
    """Seconds per one-row call of each function with the caches emptied before it (twice the
    last-level cache written first): a row scored after the server did other work, the
    first after an idle spell; interleaved, a different row each time."""
    junk = np.ones(min(2 * _last_level_cache_bytes(), 2 << 30) // 8)
    out: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(reps):
        for name, fn in fns.items():
            x = rows[r % len(rows)][None, :]
            junk += 1.0
            t = time.perf_counter()
            fn(x)
            out[name].append(time.perf_counter() - t)
    return out


def _try_compile(model: HedgeCutClassifier, strategy: str, backend: str, n_jobs: int | None):
    try:
        return compile_forest(model, strategy, backend, n_jobs=n_jobs), ""
    except ValueError as exc:
        return None, str(exc).split(";")[0]


def _gemm_too_slow(cf: CompiledForest, n_rows: int, limit: float) -> bool:
    """GEMM's work grows with nodes²: skip batches that would take minutes."""
    gm = cf._layout("gemm")
    I = gm.n_splits  # noqa: E741
    return n_rows * cf.n_trees * max(I, 1) * (I + 1) > limit


def bench_scorers(model, et, rows, rounds, budget_s, gemm_limit) -> list[dict[str, Any]]:
    want = model.predict_proba(rows)
    n = len(rows)
    entries: dict[str, dict[str, Any]] = {
        "sklearn ExtraTrees": {"fn": et.predict_proba, "threads": 1},
        "HedgeCut predict_proba": {"fn": model.predict_proba, "threads": 1},
    }
    for strategy, backend in COMBOS:
        cf, why = _try_compile(model, strategy, backend, None)
        name = f"compiled {strategy} / {backend}"
        if cf is None:
            entries[name] = {"skip": why, "strategy": strategy, "backend": backend}
            continue
        if strategy == "gemm" and _gemm_too_slow(cf, n, gemm_limit):
            entries[name] = {
                "skip": f"skipped: GEMM on depth-{cf.max_depth_} trees, work past the limit",
                "strategy": strategy,
                "backend": backend,
            }
            continue
        plan = cf.plan(n)
        entries[name] = {"fn": cf.predict_proba, "cf": cf, "threads": plan.threads}
    auto = compile_forest(model)
    entries["compiled auto"] = {"fn": auto.predict_proba, "cf": auto, "threads": 1}
    par = compile_forest(model, n_jobs=-1)
    entries["compiled auto, parallel"] = {
        "fn": par.predict_proba,
        "cf": par,
        "threads": par.plan(n).threads,
        "parallel": True,
    }
    et_par = copy.copy(et)  # the same fitted trees, predicting on every core
    et_par.n_jobs = -1
    entries["sklearn ExtraTrees, n_jobs=-1"] = {
        "fn": et_par.predict_proba,
        "threads": os.cpu_count() or 1,
        "parallel": True,
        "batch_only": True,
    }
    live = {k: e for k, e in entries.items() if "fn" in e}
    batch = measure({k: (lambda f=e["fn"]: f(rows)) for k, e in live.items()}, rounds, budget_s, 50)
    single = measure(
        {k: _one_row(e["fn"], rows) for k, e in live.items() if not e.get("batch_only")},
        rounds,
        budget_s / 2,
        2000,
    )
    et_ms = float(np.median(batch["sklearn ExtraTrees"])) * 1e3
    # the work each forest's traversal does: its rows' path lengths, summed over trees
    visited = {"sklearn": from_sklearn(et).visited_nodes(rows), "forget": auto.visited_nodes(rows)}
    out = []
    for name, e in entries.items():
        cf = e.get("cf")
        row: dict[str, Any] = {"scorer": name}
        if cf is not None:
            p_big, p_one = cf.plan(n), cf.plan(1)
            row.update(
                strategy=p_big.strategy,
                backend=p_big.backend,
                plan_1_row=f"{p_one.strategy}/{p_one.backend}",
                exact=bool(np.array_equal(cf.predict_proba(rows), want)),
            )
        elif "skip" in e:
            row.update(strategy=e["strategy"], backend=e["backend"], note=e["skip"])
            out.append(row)
            continue
        row["threads"] = e["threads"]
        if cf is not None and cf.plan(n).backend == "torch":
            row["threads"] = cf.plan(n).threads
        b = latency_summary(batch[name])
        row.update(
            batch_ms=b["p50_us"] / 1e3,
            batch_p99_ms=b["p99_us"] / 1e3,
            batch_reps=b["n"],
            speedup_vs_et=et_ms / (b["p50_us"] / 1e3),
            ns_per_node=b["p50_us"] * 1e3 / visited["sklearn" if "sklearn" in name else "forget"],
        )
        if name in single:
            s = latency_summary(single[name])
            row.update(one_us=s["p50_us"], one_p99_us=s["p99_us"], one_reps=s["n"])
        out.append(row)
    return out


def bench_crossover(X, y, rows, trees, depths, rounds, budget_s, gemm_limit):
    out = []
    for depth in depths:
        model = HedgeCutClassifier(n_estimators=trees, max_depth=depth, random_state=0).fit(X, y)
        want = model.predict_proba(rows)
        fns, rows_meta = {}, {}
        for strategy, backend in COMBOS:
            cf, why = _try_compile(model, strategy, backend, None)
            if cf is None or (strategy == "gemm" and _gemm_too_slow(cf, len(rows), gemm_limit)):
                continue
            key = f"{strategy}/{backend}"
            fns[key] = lambda cf=cf: cf.predict_proba(rows)
            fns[key + " 1"] = _one_row(cf.predict_proba, rows)
            rows_meta[key] = cf
        times = measure(fns, rounds, budget_s, 30)
        auto = compile_forest(model)
        row: dict[str, Any] = {
            "max_depth": depth,
            "tree_depth": auto.max_depth_,
            "auto_batch": auto.plan(len(rows)).strategy,
            "auto_1_row": auto.plan(1).strategy,
        }
        for key, cf in rows_meta.items():
            row[f"{key} ms"] = float(np.median(times[key])) * 1e3
            row[f"{key} 1 µs"] = float(np.median(times[key + " 1"])) * 1e6
            row[f"{key} exact"] = bool(np.array_equal(cf.predict_proba(rows), want))
        out.append(row)
    return out


def bench_refresh(X, y, trees, depth, combos, reps) -> list[dict[str, Any]]:
    model = HedgeCutClassifier(n_estimators=trees, max_depth=depth, random_state=0).fit(X, y)
    t0 = time.perf_counter()
    before = model.tree_structures()
    structures_ms = (time.perf_counter() - t0) * 1e3
    for victim in range(len(X)):  # one row: as many trees as hold it (~10%)
        model.forget([victim])
        after = model.tree_structures()
        changed = changed_trees(before, after)
        if changed:
            break
    undo = {t: before[t] for t in changed}
    nc, d = len(model.classes_), X.shape[1]
    probe = X[:1]
    out = []
    for strategy, backend in combos:
        if (strategy, backend) not in COMBOS:  # torch is not installed
            continue
        try:
            cf = CompiledForest(after, nc, d, strategy=strategy, backend=backend)
        except ValueError:
            continue
        cf.predict_proba(probe)
        full, part = [], []
        for i in range(reps):
            t = time.perf_counter()
            fresh = CompiledForest(after, nc, d, strategy=strategy, backend=backend)
            fresh.predict_proba(probe)  # a torch layout is uploaded on first use
            full.append(time.perf_counter() - t)
            t = time.perf_counter()
            cf.refresh(undo if i % 2 == 0 else changed)
            cf.predict_proba(probe)
            part.append(time.perf_counter() - t)
        cf.refresh(changed)
        ok = np.array_equal(cf.predict_proba(X[:2000]), model.predict_proba(X[:2000]))
        out.append(
            {
                "forest": f"max_depth={depth}" if depth else "default",
                "strategy": strategy,
                "backend": backend,
                "trees_changed": len(changed),
                "trees": trees,
                "refresh_ms": float(np.median(part)) * 1e3,
                "compile_ms": float(np.median(full)) * 1e3,
                "ratio": float(np.median(full) / np.median(part)),
                "tree_structures_ms": structures_ms,
                "exact_after_refresh": bool(ok),
            }
        )
    return out


def copy_bandwidth(nbytes: int = 256 << 20, reps: int = 5) -> float:
    """One thread's memory bandwidth in bytes/s: a copy well past the caches (read + write)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best = min(timed(lambda: np.copyto(dst, src))[0] for _ in range(reps))
    return 2 * nbytes / best


def _onnx_scorer(
    et: ExtraTreesClassifier, d: int
) -> tuple[Callable[[np.ndarray], Any] | None, str]:
    """ONNX Runtime on one thread over skl2onnx's conversion, and its version (or why not)."""
    try:
        import onnxruntime as ort
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        return None, f"not installed ({exc.name}): pip install 'forget[peers]'"
    onx = convert_sklearn(
        et,
        initial_types=[("X", FloatTensorType([None, d]))],
        options={id(et): {"zipmap": False}},  # a plain probability matrix
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(onx.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = sess.get_outputs()[1].name  # (label, probabilities)

    def score(rows: np.ndarray) -> np.ndarray:
        return sess.run([name], {"X": rows.astype(np.float32)})[0]

    return score, f"ONNX Runtime {ort.__version__}"


def tl2cgen_library(
    model: Any, opt: str = "-O3"
) -> tuple[Callable[[np.ndarray], np.ndarray], str, float]:
    """A treelite model compiled to C by tl2cgen with gcc, scoring on one thread: its scorer
    (rows -> the model's outputs, float32 rows as doubles, as forget and scikit-learn see
    them), the library's path and the compile's seconds (0 when it came from the cache).

    The library is cached under ``$XDG_CACHE_HOME/forget-bench/tl2cgen`` by a digest of the
    model's bytes, the optimisation level and tl2cgen's version: a deep forest takes gcc half
    an hour on two cores, once."""
    import tl2cgen

    key = hashlib.sha256(model.serialize_bytes())
    key.update(f"{opt} {tl2cgen.__version__}".encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "forget-bench"
    lib = cache / "tl2cgen" / f"{key.hexdigest()[:24]}.so"
    seconds = 0.0
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.so")
        t = time.perf_counter()
        parts = 4 * (os.cpu_count() or 1)  # translation units gcc compiles side by side
        tl2cgen.export_lib(
            model, toolchain="gcc", libpath=str(tmp), params={"parallel_comp": parts},
            options=[opt],  # after tl2cgen's own -O3: the last level given wins
        )  # fmt: skip
        seconds = time.perf_counter() - t
        tmp.replace(lib)
    pred = tl2cgen.Predictor(str(lib), nthread=1)

    def score(rows: np.ndarray) -> np.ndarray:
        dm = tl2cgen.DMatrix(np.asarray(rows, np.float32).astype(np.float64))
        return np.asarray(pred.predict(dm)).reshape(len(rows), -1)

    return score, str(lib), seconds


def _tl2cgen_scorer(
    et: ExtraTreesClassifier, opt: str
) -> tuple[Callable[[np.ndarray], Any] | None, str]:
    """tl2cgen's compiled C of the forest (treelite's scikit-learn import), one thread."""
    try:
        import tl2cgen
        import treelite
    except ImportError as exc:
        return None, f"not installed ({exc.name}): pip install 'forget[peers]'"
    print(f"tl2cgen: compiling the forest with gcc {opt} (cached; the first time takes long)")
    score, _, seconds = tl2cgen_library(treelite.sklearn.import_model(et), opt)
    compiled = f"compiled in {seconds:.0f} s" if seconds else "cached"
    return score, f"tl2cgen {tl2cgen.__version__} (gcc {opt}, {compiled})"


COLD_REPS = 40  # one-row calls per scorer with the caches emptied before each


def bench_same_forest(et, rows, rounds, budget_s, tl2cgen_opt: str | None) -> dict[str, Any]:
    """ExtraTrees' own trees: scikit-learn, forget's compiled form, ONNX Runtime and tl2cgen
    (``tl2cgen_opt``: gcc's optimisation level, ``None``: not run)."""
    n, d = rows.shape
    t0 = time.perf_counter()
    cf = from_sklearn(et)  # one thread, as the others
    convert_ms = (time.perf_counter() - t0) * 1e3
    want = et.predict_proba(rows)
    visited = cf.visited_nodes(rows)
    onnx, onnx_name = _onnx_scorer(et, d)
    entries: dict[str, Callable[[np.ndarray], Any]] = {
        "sklearn predict_proba": et.predict_proba,
        "forget CompiledForest": cf.predict_proba,
    }
    if onnx is not None:
        entries[onnx_name] = onnx
    c_score, c_name = (None, "not run (--no-tl2cgen or --quick)")
    if tl2cgen_opt is not None:
        c_score, c_name = _tl2cgen_scorer(et, tl2cgen_opt)
    if c_score is not None:
        entries[c_name] = c_score
    calls: dict[str, Callable[[], Any]] = {k: partial(f, rows) for k, f in entries.items()}
    batch = measure(calls, rounds, budget_s, 30)
    # warm: enough calls per round that the scorer runs from its own cached nodes, not from
    # what the other scorers' rounds left in the caches (the cold column measures that)
    single = measure(
        {k: _one_row(f, rows) for k, f in entries.items()}, rounds, budget_s / 2, 20_000
    )
    cold = cold_rows(entries, rows, COLD_REPS)
    sk_ms = float(np.median(batch["sklearn predict_proba"])) * 1e3
    out: list[dict[str, Any]] = []
    for name, f in entries.items():
        ms = float(np.median(batch[name])) * 1e3
        got = np.asarray(f(rows), dtype=np.float64)
        out.append(
            {
                "scorer": name,
                "batch_ms": ms,
                "batch_p99_ms": float(np.percentile(batch[name], 99)) * 1e3,
                "speedup_vs_sklearn": sk_ms / ms,
                "one_us": float(np.median(single[name])) * 1e6,
                "cold_one_us": float(np.median(cold[name])) * 1e6,
                "ns_per_node": ms * 1e6 / visited,
                "exact": bool(np.array_equal(got, want)),
                "max_abs_diff": float(np.abs(got - want).max()),
                "diff": f"{float(np.abs(got - want).max()):.1e}",
            }
        )
    if onnx is None:
        out.append({"scorer": "ONNX Runtime", "note": onnx_name})
    if c_score is None:
        out.append({"scorer": "tl2cgen", "note": c_name})
    bw = copy_bandwidth()
    leaf_bytes = 8 * (want.shape[1] + 1)  # a leaf's values, once per row and tree
    sk_node = et.estimators_[0].tree_.__getstate__()["nodes"].dtype.itemsize
    for label, node_bytes in (("forget records", 16), ("sklearn nodes", sk_node)):
        touched = visited * node_bytes + n * cf.n_trees * leaf_bytes
        out.append(
            {
                "scorer": f"bandwidth bound, {label} ({node_bytes} B)",
                "batch_ms": touched / bw * 1e3,
                "speedup_vs_sklearn": sk_ms / (touched / bw * 1e3),
                "ns_per_node": touched / bw * 1e9 / visited,
                "note": f"{touched / 1e6:,.0f} MB at {bw / 1e9:.1f} GB/s",
            }
        )
    nodes = int(sum(t.tree_.node_count for t in et.estimators_))
    depths = [t.tree_.max_depth for t in et.estimators_]
    return {
        "forest": {
            "trees": cf.n_trees,
            "nodes": nodes,
            "depth_mean": float(np.mean(depths)),
            "depth_max": int(np.max(depths)),
            "visited_per_row_tree": visited / (n * cf.n_trees),
            "convert_ms": convert_ms,
        },
        "copy_bandwidth_gb_s": bw / 1e9,
        "results": out,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    ap.add_argument("--quick", action="store_true", help="10 trees, 1,000 rows, short timings")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/scoring.json)")
    ap.add_argument(
        "--tl2cgen-opt",
        default="-O1",
        help="gcc's level for tl2cgen's C of the deep forest (-O1: ~33 min on 2 cores, once)",
    )
    ap.add_argument("--no-tl2cgen", action="store_true", help="leave tl2cgen out")
    args = ap.parse_args(argv)
    trees, n_rows, rounds, budget = args.trees, args.rows, args.rounds, 6.0
    depths: list[int | None] = [3, 6, 8, 10, 12]
    gemm_limit = 2e10  # rows × trees × internal nodes × leaves: past it, GEMM takes seconds
    if args.quick:
        trees, n_rows, rounds, budget, depths, gemm_limit = 10, 1000, 2, 0.3, [3], 1e8
    load_before = os.getloadavg()[0]  # a shared machine: say how busy it was
    ds = load_adult()
    X, Xte, y, _ = train_test_split(ds)
    rows = np.resize(Xte, (n_rows, Xte.shape[1]))
    model = HedgeCutClassifier(n_estimators=trees, random_state=0).fit(X, y)
    et = ExtraTreesClassifier(n_estimators=trees, random_state=0).fit(X, y)
    depth = compile_forest(model).depths_
    sizes = [len(s) for s in model.tree_structures()]
    print(
        f"adult: {trees} trees, depth mean {depth.mean():.1f} max {depth.max()}, "
        f"{np.mean(sizes):.0f} nodes per tree; {n_rows:,} rows; torch threads "
        f"{_torch_threads()}\n"
    )
    results = bench_scorers(model, et, rows, rounds, budget, gemm_limit)
    print(
        table(
            results,
            [
                ("scorer", "scorer"),
                ("strategy", "strategy"),
                ("backend", "backend"),
                ("threads", "threads"),
                ("batch_ms", f"{n_rows:,} rows ms (p50)"),
                ("batch_p99_ms", "p99 ms"),
                ("speedup_vs_et", "× ExtraTrees"),
                ("ns_per_node", "ns per visited node"),
                ("one_us", "1 row µs (p50)"),
                ("one_p99_us", "p99 µs"),
                ("exact", "bitwise = forest"),
                ("note", "note"),
            ],
        )
    )
    cross = bench_crossover(X, y, rows, trees, depths, rounds, budget / 2, gemm_limit)
    keys = [k for r in cross for k in r if k.endswith(" ms") or k.endswith(" 1 µs")]
    cols = [("max_depth", "max_depth"), ("tree_depth", "depth"), ("auto_batch", "auto")]
    cols += [(k, k) for k in dict.fromkeys(keys)]
    print(f"\ncrossover ({trees} trees; ms per {n_rows:,} rows, µs per row)\n")
    print(table(cross, cols))
    refresh = bench_refresh(X, y, trees, None, [("tt", "numba"), ("tt", "torch")], 11)
    refresh += bench_refresh(X, y, trees, 8, [("ptt", "numba"), ("ptt", "torch")], 11)
    refresh += bench_refresh(X, y, trees, 3, [("gemm", "numba"), ("gemm", "torch")], 11)
    print("\nrefresh after forgetting one row (median ms, incl. the next 1-row predict)\n")
    print(
        table(
            refresh,
            [
                ("forest", "forest"),
                ("strategy", "strategy"),
                ("backend", "backend"),
                ("trees_changed", "trees changed"),
                ("refresh_ms", "refresh ms"),
                ("compile_ms", "full compile ms"),
                ("ratio", "× faster"),
                ("tree_structures_ms", "tree_structures() ms"),
                ("exact_after_refresh", "exact"),
            ],
        )
    )
    opt = None if args.quick or args.no_tl2cgen else args.tl2cgen_opt
    same = bench_same_forest(et, rows, rounds, budget, opt)
    f = same["forest"]
    print(
        f"\nsame forest: ExtraTrees' own {f['trees']} trees, {f['nodes']:,} nodes, depth mean "
        f"{f['depth_mean']:.1f} max {f['depth_max']}, {f['visited_per_row_tree']:.1f} nodes "
        f"visited per row and tree; converted in {f['convert_ms']:.0f} ms; one thread\n"
    )
    print(
        table(
            same["results"],
            [
                ("scorer", "scorer"),
                ("batch_ms", f"{n_rows:,} rows ms (p50)"),
                ("batch_p99_ms", "p99 ms"),
                ("speedup_vs_sklearn", "× sklearn"),
                ("one_us", "1 row µs (p50)"),
                ("cold_one_us", "1 cold row µs (p50)"),
                ("ns_per_node", "ns per visited node"),
                ("exact", "bitwise = sklearn"),
                ("diff", "max abs diff"),
                ("note", "note"),
            ],
        )
    )
    payload = {
        "trees": trees,
        "rows": n_rows,
        "quick": args.quick,
        "forest": {
            "depth_mean": float(depth.mean()),
            "depth_max": int(depth.max()),
            "nodes_mean": float(np.mean(sizes)),
        },
        "torch_threads": _torch_threads(),
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "results": results,
        "crossover": cross,
        "refresh": refresh,
        "same_forest": same,
    }
    path = write_json("scoring-quick" if args.quick else "scoring", payload, args.out)
    print(
        f"\nwritten: {path} ({machine()['cpus']} cpus; 1-min load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    return payload


if __name__ == "__main__":
    main()
