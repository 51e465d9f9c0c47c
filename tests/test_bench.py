"""The benchmarks run (small in every test run, full size with ``pytest -m bench -n 0``)."""

from __future__ import annotations

import gc
import json

import pytest

from bench import hedgecut


def test_hedgecut_bench_quick(tmp_path):
    out = tmp_path / "hc.json"
    payload = hedgecut.main(["--quick", "--datasets", "adult", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["results"] == json.loads(json.dumps(payload["results"]))
    ours = [r for r in payload["results"] if r["model"] == "forget HedgeCut"]
    assert len(ours) == 1
    assert ours[0]["equals_retrain"] is True
    assert ours[0]["deletions"] == 50
    assert 0.0 <= ours[0]["slow_path_share"] <= 1.0


@pytest.mark.bench
def test_hedgecut_bench_full(tmp_path):
    payload = hedgecut.main(["--out", str(tmp_path / "hc.json")])
    assert all(r["equals_retrain"] for r in payload["results"] if r["model"] == "forget HedgeCut")


def test_incremental_bench_quick(tmp_path):
    from bench import incremental

    payload = incremental.main(["--quick", "--out", str(tmp_path / "inc.json")])
    names = {r["model"] for r in payload["results"]}
    assert {"LinearRegression", "GaussianNB", "MultinomialNB", "KNNClassifier"} <= names
    for r in payload["results"]:
        assert r["deletions"] == 50
        # exact models score like their scikit-learn peer (kNN breaks distance ties by row id,
        # scikit-learn by its own order, so duplicates may differ there)
        if r["guarantee"] == "exact" and not r["model"].startswith("KNN"):
            assert abs(r["score"] - r["sklearn_score"]) < 1e-9, r


def test_readme_tables_render_from_the_committed_results():
    from bench import readme
    from bench._common import RESULTS

    for name, make in readme.TABLES.items():
        table = make(json.loads((RESULTS / f"{name}.json").read_text()))
        assert table.count("\n") >= 2  # a header, its rule, at least one row
    assert "<!-- bench:hedgecut -->" in readme.README.read_text()
    scoring = readme.scoring_table(json.loads((RESULTS / "scoring.json").read_text()))
    assert "| forget CompiledForest |" in scoring  # the same-forest table renders with it


def test_store_erasure_bench_quick(tmp_path):
    from bench import store_erasure

    payload = store_erasure.main(["--quick", "--out", str(tmp_path / "se.json")])
    (r,) = payload["results"]
    assert r["requests"] == 20 and r["rows_erased"] >= 20
    assert r["erase_p50_ms"] > 0 and r["purge_batch_s"] > 0


def test_erasure_batch_bench_quick(tmp_path):
    from bench import erasure_batch

    payload = erasure_batch.main(["--quick", "--out", str(tmp_path / "eb.json")])
    one, bulk = payload["rows"]
    assert (one["subjects"], bulk["subjects"]) == (30, 300)
    assert one["subjects_per_s"] > 0 and bulk["subjects_per_s"] > 0
    # the heap was frozen as forget serve freezes it, and given back when the bench ended
    assert payload["heap_frozen"] is True and gc.get_freeze_count() == 0


def test_serving_bench_quick(tmp_path):
    from bench import serving

    payload = serving.main(["--quick", "--out", str(tmp_path / "sv.json")])
    assert len(payload["results"]) == 6
    for r in payload["results"]:
        assert r["statuses"] == {"200": r["requests"]} and r["requests"] > 0, r
    assert payload["summary"]["batching_speedup_64"] > 0


def test_monitoring_bench_quick(tmp_path):
    from bench import monitoring

    payload = monitoring.main(["--quick", "--out", str(tmp_path / "mon.json")])
    assert [r["rows_per_call"] for r in payload["results"]] == [1, 64]
    assert payload["in_distribution_drift"] is False


def test_gpu_scoring_bench_runs_on_torch_cpu(tmp_path):
    """The GPU script is the same program on torch's CPU backend, and stays exact there."""
    pytest.importorskip("torch")
    from bench import scoring_gpu

    payload = scoring_gpu.main(["--quick", "--device", "cpu", "--out", str(tmp_path / "g.json")])
    rows = payload["results"]
    assert {r["forest"] for r in rows} == {"default", "max_depth=8", "max_depth=4"}
    assert all(r["exact"] for r in rows)
    assert {r["plan"].split("/")[1] for r in rows} == {"torch", "numba"}


def test_api_erasure_builds_a_synthetic_store_under_adults_columns(tmp_path):
    from bench import api_erasure
    from store import ModelStore

    names, X, subjects = api_erasure._build(tmp_path / "s", 600, synthetic=True, defer_rows=64)
    assert X.shape == (600, len(names)) and "fnlwgt" in names  # the bench's bodies need it
    with ModelStore.open(tmp_path / "s") as st:
        assert st.estimator("hedgecut", 1).defer_rows == 64
        assert len(set(subjects)) == len(subjects) and 200 <= len(subjects) <= 600


def test_api_erasure_bench_quick(tmp_path):
    """Every phase ran against the one server: each erasure was accepted (201/202, never a
    repeat: every subject distinct), each prediction answered 200, and the JSON holds a row
    per figure with its target, as the README renders it."""
    from bench import api_erasure

    out = tmp_path / "ae.json"
    payload = api_erasure.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(payload["rows"]))
    assert payload["all_erasures_accepted"] and payload["all_predictions_ok"]
    assert payload["audit_verified"]
    ph, sizes = payload["phases"], api_erasure.QUICK
    assert ph["cold"]["n"] == sizes.cold and ph["alone"]["erasures"]["n"] == sizes.alone
    for k in ("beside 8", "beside 64", "storm beside 8"):
        assert ph[k]["predictions"]["n"] > 0 and set(ph[k]["predictions"]["statuses"]) == {"200"}
    for k, n in (("beside 8", sizes.beside), ("storm", sizes.storm)):
        assert ph[k]["erasures"]["n"] == n
        assert set(ph[k]["erasures"]["statuses"]) <= {"201", "202"}, ph[k]
    assert len(ph["purge"]["purges"]) == sizes.purges and ph["purge"]["predictions"]["n"] > 0
    assert ph["purge"]["erasures"]["n"] > 0  # sent during the purges, answered meanwhile
    assert set(ph["purge"]["erasures"]["statuses"]) <= {"201", "202"}
    keys = {"scenario", "what", "n", "p50_ms", "p99_ms", "max_ms", "per_s", "target", "met"}
    rows = payload["rows"]
    assert all(keys <= set(r) for r in rows)
    assert {r["what"] for r in rows} == {"1st erasure", f"{sizes.cold}th erasure",
                                         f"1st to {sizes.cold}th erasure", "erasure",
                                         "prediction"}  # fmt: skip
    series = next(r for r in rows if r["what"].startswith("1st to"))
    assert series["n"] == sizes.cold and "ms apart" in series["scenario"]
    assert ph["cold"]["window_s"] >= (sizes.cold - 1) * api_erasure.COLD_PAUSE_S  # paced
    for r in rows:
        assert r["p50_ms"] > 0 and r["max_ms"] >= r["p50_ms"], r
        assert (r["met"] is None) == (r["target"] == ""), r


def test_forest_scale_bench_quick(tmp_path):
    from bench import forest_scale, readme

    out = tmp_path / "fs.json"
    payload = forest_scale.main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["results"] == json.loads(json.dumps(payload["results"]))
    rows = payload["results"]
    assert {(r["task"], r["model"]) for r in rows} == {
        (task, model)
        for task in ("default", "hard")
        for model in ("sklearn ExtraTrees", "sklearn RandomForest", "forget HedgeCut")
    }
    for r in rows:
        assert r["rows"] == 10_000 and r["predict_10k_ms"] > 0 and r["peak_rss_mb"] > 0, r
        if r["model"] == "forget HedgeCut":
            assert r["equals_retrain"] is True and r["deletions"] == 20
            assert 0.0 <= r["slow_path_share"] <= 1.0
    assert readme.forest_scale_table(payload).count("\n") == 1 + len(rows)


def test_forest_scale_bench_quick_with_deferred_rebuilds(tmp_path):
    from bench import forest_scale, readme

    payload = forest_scale.main(
        ["--quick", "--peers", "--tasks", "hard", "--defer", "8", "--out", str(tmp_path / "d.json")]
    )
    plain, deferring = payload["results"]
    assert plain["defer_rows"] is None and deferring["defer_rows"] == 8
    assert deferring["model"] == "forget HedgeCut, defer_rows=8"
    for r in (plain, deferring):
        assert r["equals_retrain"] is True and r["deletions"] == 20 and r["row_index_ms"] > 0
    assert plain["deferred_share"] == 0.0
    assert 0.0 < deferring["deferred_share"] <= 1.0  # 10k rows, 10 trees: some rebuilds wait
    assert deferring["later_max_us"] >= deferring["later_p50_us"] > 0
    assert 1 <= deferring["trees_pending_max"] <= 10
    assert readme.forest_scale_defer_table(payload).count("\n") == 1 + 2


def test_forest_scale_curve_quick(tmp_path):
    from bench import forest_scale, readme

    payload = forest_scale.main(
        ["--curve", "--quick", "--tasks", "hard", "--out", str(tmp_path / "c.json")]
    )
    rows = payload["results"]
    assert [r["model"] for r in rows] == ["sklearn ExtraTrees"] + ["forget HedgeCut"] * len(
        forest_scale.CURVE
    )
    ours = rows[1:]
    assert [(r["max_samples"], r["max_features"], r["random_depth"]) for r in ours] == (
        forest_scale.CURVE
    )
    et = rows[0]["accuracy"]
    for r in ours:
        assert r["deletions"] == 20 and 0 < r["delete_p50_us"] <= r["delete_max_us"], r
        assert r["accuracy_vs_et_points"] == pytest.approx(100 * (r["accuracy"] - et))
    assert readme.forest_scale_curve_table(payload).count("\n") == 1 + len(rows)


@pytest.mark.bench
def test_forest_scale_bench_full(tmp_path):
    from bench import forest_scale

    payload = forest_scale.main(["--out", str(tmp_path / "fs.json")])
    ours = [r for r in payload["results"] if r["model"] == "forget HedgeCut"]
    assert len(ours) == 6 and all(r["equals_retrain"] for r in ours)


def test_scoring_quantized_bench_quick(tmp_path):
    from bench import scoring_quantized

    payload = scoring_quantized.main(["--quick", "--out", str(tmp_path / "sq.json")])
    rows = {(r["forest"], r["scorer"]): r for r in payload["results"]}
    for forest in ("HedgeCut", "sklearn ExtraTrees"):
        q, f = rows[forest, "compiled qtt (quantized)"], rows[forest, "compiled tt (float32 rows)"]
        assert q["exact"] and f["exact"]  # bitwise the float compiled scorer
        assert q["node_bytes"] < f["node_bytes"] and q["rows_per_s"] > 0
    assert any("ONNX" in r["scorer"] or "ONNX" in r.get("note", "") for r in rows.values())
    assert payload["linear"][-1]["within_bound"] is True


def test_multi_model_bench_quick(tmp_path):
    from bench import multi_model

    payload = multi_model.main(["--quick", "--requests", "8", "--out", str(tmp_path / "mm.json")])
    cells = {(r["where"], r["rows"], r["k"], r["path"]) for r in payload["results"]}
    for where in ("in process", "HTTP"):
        for k in (1, 3, 10):
            assert (where, 100, k, "one request") in cells
            assert (where, 100, k, f"{k} requests") in cells
    assert all(r["model_rows_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in payload["results"])
