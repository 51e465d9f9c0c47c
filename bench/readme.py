"""Rewrite the README's benchmark tables from the JSON of the latest full runs.

Usage::

    python -m bench.hedgecut && python -m bench.incremental && python -m bench.store_erasure
    python -m bench.readme

Each table sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in README.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench._common import RESULTS

README = Path(__file__).resolve().parents[1] / "README.md"


def _num(v: float, nd: int = 0) -> str:
    return f"{v:,.{nd}f}"


def hedgecut_table(payload: dict[str, Any]) -> str:
    head = (
        "| data | model | accuracy (mean of seeds) | vs ExtraTrees | fit s | model MB "
        "| predict 10k rows ms | predict 1 row µs | forget p50 µs | forget p99 µs | slow path "
        "| retrain s | equals retrain |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in payload["results"]:
        ours = "delete_p50_us" in r
        lines.append(
            "| "
            + " | ".join(
                [
                    r["dataset"],
                    r["model"],
                    f"{r['accuracy']:.4f}",
                    f"{r['accuracy_vs_et_points']:+.2f} pts" if ours else "",
                    f"{r['fit_s']:.2f}",
                    f"{r['bytes'] / 1e6:.1f}",
                    _num(r["predict_10k_ms"]),
                    _num(r["predict_1_us"]),
                    _num(r["delete_p50_us"], 1) if ours else "",
                    _num(r["delete_p99_us"]) if ours else "",
                    f"{100 * r['slow_path_share']:.0f}%" if ours else "",
                    f"{r['retrain_s']:.2f}" if ours else "",
                    ("yes" if r["equals_retrain"] else "NO") if ours else "",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def incremental_table(payload: dict[str, Any]) -> str:
    head = (
        "| model | guarantee | accuracy / R² | scikit-learn | fit ms | forget p50 µs "
        "| forget p99 µs | refit ms | refit / forget p50 |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in payload["results"]:
        lines.append(
            f"| {r['model']} | {r['guarantee']} | {r['score']:.4f} | {r['sklearn_score']:.4f} "
            f"| {r['fit_s'] * 1e3:.1f} | {r['delete_p50_us']:.1f} | {r['delete_p99_us']:.0f} "
            f"| {r['refit_s'] * 1e3:.1f} | {r['speedup_vs_refit_p50']:,.0f}× |"
        )
    return "\n".join(lines)


def store_erasure_table(payload: dict[str, Any]) -> str:
    lines = [
        "| rows | requests | erase p50 ms | erase p99 ms | purge of the batch s "
        "| one request with purge + evidence ms | retrain 3 models s |",
        "|" + "---|" * 7,
    ]
    for r in payload["results"]:
        lines.append(
            f"| {r['rows']:,} | {r['requests']} | {r['erase_p50_ms']:.1f} "
            f"| {r['erase_p99_ms']:.1f} | {r['purge_batch_s']:.2f} "
            f"| {r['erase_with_purge_and_evidence_p50_ms']:,.0f} "
            f"| {r['retrain_three_models_s']:.2f} |"
        )
    return "\n".join(lines)


def serving_table(payload: dict[str, Any]) -> str:
    lines = ["| scenario | rows/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    for r in payload["results"]:
        lines.append(
            f"| {r['scenario']} | {r['rows_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
        )
    return "\n".join(lines)


def monitoring_table(payload: dict[str, Any]) -> str:
    lines = [
        "| rows per call | serving µs/row | with monitoring µs/row | overhead |",
        "|---|---|---|---|",
    ]
    for r in payload["results"]:
        lines.append(
            f"| {r['rows_per_call']} | {r['serving_us_per_row']:.1f} "
            f"| {r['monitored_us_per_row']:.1f} | {100 * r['overhead']:+.1f}% |"
        )
    h = payload.get("http")
    if h:
        lines.append(
            f"| 1, over HTTP (p50 per request) | {h['off_p50_ms'] * 1e3:.0f} "
            f"| {h['on_p50_ms'] * 1e3:.0f} | {100 * h['overhead']:+.1f}% |"
        )
    return "\n".join(lines)


def drift_table(payload: dict[str, Any]) -> str:
    null = payload["in_distribution"]
    lines = [
        f"In-distribution: {null['runs']} runs of {null['rows']:,} rows, "
        f"feature false alarms {null['feature_false_alarm_rate']:.0%}, "
        f"any alert {null['any_alert_rate']:.0%}.",
        "",
        "| shifted feature (+1 std) | detected | delay median rows | delay p95 rows "
        "| other features flagged |",
        "|---|---|---|---|---|",
    ]
    for r in payload["shift"]:
        lines.append(
            f"| {r['feature']} | {r['detected_share']:.0%} | {r['delay_median_rows']:,.0f} "
            f"| {r['delay_p95_rows']:,.0f} | {r['others_flagged_share']:.0%} |"
        )
    return "\n".join(lines)


def cluster_table(payload: dict[str, Any]) -> str:
    lines = [
        "| model rows (1-NN) | replicas | router | predictions/s | vs 1 replica, batching "
        "| erase p50 / p99 ms | fan-out p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in payload["runs"]:
        for r in run["results"]:
            e, f = r["erase"], r["fan_out"]
            lines.append(
                f"| {run['rows']:,} | {r['replicas']} "
                f"| {'batching' if r.get('batched', True) else 'unbatched'} "
                f"| {r['predictions_per_s']:,.0f} "
                f"| {r['throughput_ratio']:.2f}× "
                f"| {e['p50_us'] / 1e3:.1f} / {e['p99_us'] / 1e3:.1f} "
                f"| {f['p50_us'] / 1e3:.1f} / {f['p99_us'] / 1e3:.1f} |"
            )
    return "\n".join(lines)


def scoring_table(payload: dict[str, Any]) -> str:
    lines = [
        "| scorer | threads | 10,000 rows ms p50 | vs ExtraTrees | 1 row µs p50 | bitwise equal |",
        "|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        if r.get("batch_ms") is None:  # a strategy the forest's depth rules out
            continue
        one = "" if r.get("one_us") is None else _num(r["one_us"], 1)
        exact = {True: "yes", False: "NO", None: ""}[r.get("exact")]
        lines.append(
            f"| {r['scorer']} | {r['threads']} | {r['batch_ms']:.1f} "
            f"| {r['speedup_vs_et']:.1f}× | {one} | {exact} |"
        )
    same = payload.get("same_forest")
    if same:
        f = same["forest"]
        lines += [
            "",
            f"The same forest: ExtraTrees' own {f['trees']} trees ({f['nodes']:,} nodes, depth "
            f"mean {f['depth_mean']:.1f}, {f['visited_per_row_tree']:.1f} nodes visited per row "
            "and tree) compiled with `forget.scoring.from_sklearn`; one thread:",
            "",
            "| scorer | 10,000 rows ms p50 | vs sklearn | 1 row µs p50 | 1 cold row µs p50 "
            "| ns per visited node | bitwise equal to sklearn |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in same["results"]:
            if r.get("batch_ms") is None:  # a peer not installed or not run
                lines.append(f"| {r['scorer']}: {r.get('note', '')} | | | | | | |")
                continue
            one = "" if r.get("one_us") is None else _num(r["one_us"], 1)
            cold = "" if r.get("cold_one_us") is None else _num(r["cold_one_us"], 1)
            exact = {True: "yes", False: f"no ({r.get('diff')})", None: ""}[r.get("exact")]
            name = r["scorer"] + (f" ({r['note']})" if r.get("note") else "")
            lines.append(
                f"| {name} | {r['batch_ms']:.1f} | {r['speedup_vs_sklearn']:.1f}× | {one} "
                f"| {cold} | {r['ns_per_node']:.1f} | {exact} |"
            )
    return "\n".join(lines)


def cluster_training_table(payload: dict[str, Any]) -> str:
    lines = [
        "| data | rows × trees | fitted on | fit s (median) | vs n_jobs=1 | identical model |",
        "|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        lines.append(
            f"| {r['dataset']} | {r['rows']:,} × {r['trees']} | {r['mode']} | {r['fit_s']:.2f} "
            f"| {r['speedup']:.2f}× | {'yes' if r['identical'] else 'NO'} |"
        )
    return "\n".join(lines)


def api_erasure_table(payload: dict[str, Any]) -> str:
    def num(v: float | None, fmt: str = ",.1f") -> str:
        return "" if v is None else format(v, fmt)

    lines = [
        "| scenario | what | p50 ms | p99 ms | longest ms | per s | p99 / idle | target (2 cores) "
        "| met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        met = "" if r["met"] is None else "yes" if r["met"] else "no"
        ratio = r.get("p99_vs_idle")
        lines.append(
            f"| {r['scenario']} | {r['what']} | {num(r['p50_ms'])} | {num(r['p99_ms'])} "
            f"| {num(r['max_ms'])} | {num(r['per_s'], ',.0f')} "
            f"| {'' if ratio is None else f'{ratio:.1f}×'} | {r['target']} | {met} |"
        )
    return "\n".join(lines)


TABLES = {
    "hedgecut": hedgecut_table,
    "incremental": incremental_table,
    "store_erasure": store_erasure_table,
    "serving": serving_table,
    "api_erasure": api_erasure_table,
    "api_erasure_synthetic": api_erasure_table,  # the same phases on a store 10x adult
    "monitoring": monitoring_table,
    "drift": drift_table,
    "cluster": cluster_table,
    "cluster_training": cluster_training_table,
    "scoring": scoring_table,
}


def _forget_us(r: dict[str, Any]) -> str:
    """The forest_scale tables' deletion cell: p50 / p99 / max in µs."""
    return f"{r['delete_p50_us']:,.0f} / {r['delete_p99_us']:,.0f} / {r['delete_max_us']:,.0f}"


def forest_scale_table(payload: dict[str, Any]) -> str:
    lines = [
        "| task | rows | model | accuracy | vs ExtraTrees | fit s | model MB | peak RSS MB "
        "| predict 10k rows ms | vs ExtraTrees | predict 1 row µs | forget p50 / p99 / max µs "
        "| slow path | rows rebuilt per slow path | retrain s | equals retrain |",
        "|" + "---|" * 16,
    ]
    for r in payload["results"]:
        ours = "delete_p50_us" in r
        et = "predict_vs_et" not in r or r["model"] == "sklearn ExtraTrees"  # the reference
        cells = [
            r["task"],
            f"{r['rows']:,}",
            r["model"],
            f"{r['accuracy']:.4f}",
            "" if et else f"{r['accuracy_vs_et_points']:+.2f} pts",
            f"{r['fit_s']:.2f}",
            f"{r['model_bytes'] / 1e6:,.1f}",
            f"{r['peak_rss_mb']:,.0f}",
            f"{r['predict_10k_ms']:,.1f}",
            "" if et else f"{r['predict_vs_et']:.1f}×",
            f"{r['predict_1_us']:,.1f}",
            _forget_us(r) if ours else "",
            f"{100 * r['slow_path_share']:.0f}%" if ours else "",
            f"{r['rows_rebuilt_per_slow_path']:,.0f}" if ours else "",
            f"{r['retrain_s']:.2f}",
            ("yes" if r["equals_retrain"] else "NO") if ours else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLES["forest_scale"] = forest_scale_table


def forest_scale_defer_table(payload: dict[str, Any]) -> str:
    """HedgeCut with and without ``defer_rows`` (``bench.forest_scale --defer``)."""
    lines = [
        "| task | rows | defer_rows | forget p50 / p99 / max µs | slow path "
        "| rows rebuilt per slow path | deferred | later p50 / p99 µs | trees pending at most "
        "| equals retrain |",
        "|" + "---|" * 10,
    ]
    for r in payload["results"]:
        d = r.get("defer_rows")
        cells = [
            r["task"],
            f"{r['rows']:,}",
            str(d) if d else "—",
            _forget_us(r),
            f"{100 * r['slow_path_share']:.0f}%",
            f"{r['rows_rebuilt_per_slow_path']:,.0f}",
            f"{100 * r['deferred_share']:.0f}%",
            f"{r['later_p50_us']:,.0f} / {r['later_p99_us']:,.0f}" if d else "",
            str(r["trees_pending_max"]) if d else "",
            "yes" if r["equals_retrain"] else "NO",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TABLES["forest_scale_defer"] = forest_scale_defer_table


def forest_scale_curve_table(payload: dict[str, Any]) -> str:
    lines = [
        "| task | rows | model | max_samples | max_features | random_depth | accuracy "
        "| vs ExtraTrees | fit s | forget p50 / p99 / max µs | slow path "
        "| rows rebuilt per slow path |",
        "|" + "---|" * 12,
    ]
    for r in payload["results"]:
        if "delete_p50_us" not in r:  # the reference
            lines.append(f"| {r['task']} | {r['rows']:,} | {r['model']} | | | | "
                         f"{r['accuracy']:.4f} | | | | | |")  # fmt: skip
            continue
        lines.append(
            f"| {r['task']} | {r['rows']:,} | {r['model']} | {r['max_samples']} "
            f"| {r['max_features']} | {r['random_depth']} | {r['accuracy']:.4f} "
            f"| {r['accuracy_vs_et_points']:+.2f} pts "
            f"| {r['fit_s']:.2f} "
            f"| {_forget_us(r)} "
            f"| {100 * r['slow_path_share']:.0f}% | {r['rows_rebuilt_per_slow_path']:,.0f} |"
        )
    return "\n".join(lines)


TABLES["forest_scale_curve"] = forest_scale_curve_table


def scoring_quantized_table(payload: dict[str, Any]) -> str:
    lines = [
        "| forest | scorer | 10,000 rows ms p50 / p99 | rows/s | vs float | 1 row µs p50 / p99 "
        "| bytes scored | bitwise |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def opt(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    for r in payload["results"]:
        if r.get("batch_ms") is None:  # a peer that was not run: its note says why
            lines.append(f"| {r['forest']} | {r['scorer']} | {r.get('note', '')} | | | | | |")
            continue
        exact = {True: "yes", None: ""}.get(r.get("exact"), f"{r.get('max_abs_diff', 0):.1g} off")
        size = "" if r.get("node_bytes") is None else f"{r['node_bytes'] / 1e3:,.0f} kB"
        one = "" if r.get("one_us") is None else f"{r['one_us']:.1f} / {r['one_p99_us']:.1f}"
        ratio = "" if r.get("batch_x_float") is None else f"{r['batch_x_float']:.2f}×"
        lines.append(
            f"| {r['forest']} | {r['scorer']} "
            f"| {r['batch_ms']:.1f} / {opt(r.get('batch_p99_ms'), '.1f')} "
            f"| {opt(r.get('rows_per_s'), ',.0f')} | {ratio} "
            f"| {one} | {size} | {exact} |"
        )
    return "\n".join(lines)


def erasure_batch_table(payload: dict[str, Any]) -> str:
    lines = [
        "| path | subjects | subjects/s | ms per subject | p50 ms | p99 ms | latency of |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        lines.append(
            f"| {r['path']} | {r['subjects']:,} | {_num(r['subjects_per_s'])} "
            f"| {r['ms_per_subject']:.2f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
            f"| {r['latency_of']} |"
        )
    return "\n".join(lines)


def multi_model_table(payload: dict[str, Any]) -> str:
    lines = [
        "| where | rows | k | one request p50 / p99 ms | k requests p50 / p99 ms "
        "| k requests / one (p50) | model-rows/s: one request | k requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cells = {
        (r["where"], r["rows"], r["k"], r["path"] == "one request"): r for r in payload["results"]
    }
    for (where, rows, k, one), r in cells.items():
        if not one:
            continue
        sep = cells[where, rows, k, False]
        lines.append(
            f"| {where} | {rows} | {k} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} "
            f"| {sep['p50_ms']:.2f} / {sep['p99_ms']:.2f} | {sep['p50_ms'] / r['p50_ms']:.2f}× "
            f"| {_num(r['model_rows_per_s'])} | {_num(sep['model_rows_per_s'])} |"
        )
    return "\n".join(lines)


def ppm_table(payload: dict[str, Any]) -> str:
    """The default predictor ("auto") per data set and model, against the baselines."""
    lines = [
        "| data | model | regressor kept | MAE | better baseline | ratio | MAE, unseen kinds "
        "| estimate µs | share of serving the window | of bare scoring |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["rows"]:
        if r["regressor"] != "auto":
            continue
        model = "HedgeCut" if r["model"] == "HedgeCut" else "logistic"
        best = min(r["mae_constant"], r["mae_drift_flag"])
        lines.append(
            f"| {r['dataset']} | {model} | {r['chosen']} | {r['mae_predictor']:.3f} | {best:.3f} "
            f"| {r['ratio']:.1f}× | {r['mae_predictor_withheld']:.3f} "
            f"(vs {r['mae_best_baseline_withheld']:.3f}) | {r['estimate_p50_us']:.0f} "
            f"| {r['cost_share_pct']:.1f} % | {r['cost_share_of_scoring_pct']:.1f} % |"
        )
    return "\n".join(lines)


def sharded_table(payload: dict[str, Any]) -> str:
    """Per data set and learner, every shard count, the best one (issue 20's) marked."""
    chosen = {(r["dataset"], r["learner"], r["n_shards"]): r for r in payload["best"]}
    yes = {True: "yes", False: "no"}
    lines = [
        "| data | learner | shards | accuracy | Δ points | answer p50 / p99 ms "
        "| retrain s per deletion | full retrain s | × cheaper | best: ≥ 10× / p99 < 1 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        k = r["n_shards"]
        if k == "monolithic":
            lines.append(
                f"| {r['dataset']} | {r['learner']} | one model | {100 * r['accuracy']:.2f} % "
                f"|  |  |  | {r['fit_s']:.2f} |  |  |"
            )
            continue
        b = chosen.get((r["dataset"], r["learner"], k))
        best = b is not None
        verdict = f"{yes[b['cheap_enough']]} / {yes[b['fast_enough']]}" if b else ""
        lines.append(
            f"| {r['dataset']} | {r['learner']} | {'**' + str(k) + '**' if best else k} "
            f"| {100 * r['accuracy']:.2f} % | {r['points_vs_monolithic']:+.2f} "
            f"| {r['answer_p50_ms']:.3f} / {r['answer_p99_ms']:.2f} "
            f"| {r['retrain_per_deletion_s']:.3f} | {r['full_retrain_s']:.2f} "
            f"| {r['speedup']:.1f}× | {verdict} |"
        )
    return "\n".join(lines)


TABLES["sharded"] = sharded_table
TABLES["scoring_quantized"] = scoring_quantized_table
TABLES["erasure_batch"] = erasure_batch_table
TABLES["multi_model"] = multi_model_table
TABLES["ppm"] = ppm_table


def main() -> None:
    text = README.read_text()
    for name, make in TABLES.items():
        payload = json.loads((RESULTS / f"{name}.json").read_text())
        stamp = (
            f"<!-- measured {payload['machine']['date']} on {payload['machine']['cpus']} cpus -->"
        )
        block = f"<!-- bench:{name} -->\n{stamp}\n{make(payload)}\n<!-- /bench:{name} -->"
        pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no <!-- bench:{name} --> section")
        text = pattern.sub(lambda _m, b=block: b, text)
    README.write_text(text)
    print(f"updated {README}")


if __name__ == "__main__":
    main()
