"""A forest fitted on Ray (local cluster, 2 CPUs) is byte for byte the single-process one."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.training import RayTreeFitter, _chunked, on_ray
from forget import HedgeCutClassifier
from forget.hedgecut import ForestInputs, Tree, fit_trees, tree_fitter
from tests.store.helpers import people, write_csv

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray")

rng = np.random.default_rng(7)
X = rng.normal(size=(400, 5)).round(3)
Y = ((X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)).astype(int)  # 3 classes
IDS = np.arange(1000, 1400)
MODES = ("n_jobs=1", "n_jobs=-1", "ray, 2 CPUs")


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _same(a: HedgeCutClassifier, b: HedgeCutClassifier) -> None:
    assert a.to_bytes() == b.to_bytes()
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


@needs_ray
@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    max_samples=st.floats(0.05, 1.0),
    n_estimators=st.integers(1, 12),
    chunks=st.none() | st.integers(1, 15),
    victims=st.lists(st.sampled_from(IDS.tolist()), min_size=1, max_size=6, unique=True),
)
def test_ray_fit_is_the_single_process_fit(
    ray_cluster: Any,
    seed: int,
    max_samples: float,
    n_estimators: int,
    chunks: int | None,
    victims: list[int],
) -> None:
    params = dict(n_estimators=n_estimators, max_samples=max_samples, random_state=seed)
    local = HedgeCutClassifier(**params).fit(X, Y, row_ids=IDS)
    with on_ray(chunks=chunks):
        spread = HedgeCutClassifier(**params).fit(X, Y, row_ids=IDS)
    _same(local, spread)
    assert local.forget(victims).paths == spread.forget(victims).paths
    _same(local, spread)


@needs_ray
def test_on_ray_leaves_a_running_ray_and_the_fitter_as_it_found_them(ray_cluster: Any) -> None:
    seen: list[Sequence[int]] = []

    def recording(inputs: ForestInputs, trees: Sequence[int]) -> list[Tree]:
        seen.append(trees)
        return fit_trees(inputs, trees)

    with tree_fitter(recording):
        with pytest.raises(KeyError), on_ray() as fitter:
            assert isinstance(fitter, RayTreeFitter)
            raise KeyError("inside the block")
        assert ray_cluster.is_initialized()
        HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, Y)
    assert seen == [range(3)]


@needs_ray
def test_a_failing_task_raises_in_the_caller(ray_cluster: Any) -> None:
    broken = ForestInputs(X, Y, IDS, np.zeros(1, np.int64), np.zeros((5, 2)), 0)  # prm too short
    with pytest.raises(IndexError):
        RayTreeFitter()(broken, range(3))


@needs_ray
def test_cli_train_on_ray_writes_the_same_artifact(tmp_path: Path, ray_cluster: Any) -> None:
    store = str(tmp_path / "store")
    csv = write_csv(tmp_path / "people.csv", people(80, seed=3))
    _cli("ingest", "--store", store, "people", str(csv), "--subject-column", "subject_id")
    train = ("--dataset", "people", "--estimator", "HedgeCutClassifier", "--label", "label",
             "--features", "a,b,c", "--param", "n_estimators=9", "--param", "random_state=4",
             "--param", "max_samples=0.5")  # fmt: skip
    plain = _cli("train", "--store", store, "plain", *train)
    on_this = _cli("train", "--store", store, "spread", *train, "--ray")
    address = ray_cluster.get_runtime_context().gcs_address
    on_that = _cli("train", "--store", store, "joined", *train, "--ray-address", address)
    assert _artifact(plain) == _artifact(on_this) == _artifact(on_that)


@needs_ray
def test_bench_quick(tmp_path: Path, ray_cluster: Any) -> None:
    from bench import cluster_training

    payload = cluster_training.main(["--quick", "--out", str(tmp_path / "ct.json")])
    modes = [(r["dataset"], r["mode"]) for r in payload["results"]]
    assert modes == [(d, m) for d in ("adult", "synthetic") for m in MODES]
    assert all(r["identical"] and r["fit_s"] > 0 for r in payload["results"])


def test_cli_train_on_ray_without_ray_is_one_line(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from forget.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ("train", "--store", str(tmp_path / "s"), "m", "--dataset", "d", "--estimator",
            "HedgeCutClassifier", "--label", "y", "--features", "a", "--ray")  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "forget train: error: training on Ray needs Ray: pip install 'forget[ray]'"
    ]
    assert not (tmp_path / "s").exists()  # refused before the store was opened


def test_training_code_does_not_import_ray() -> None:
    code = (
        "import sys, forget, forget.cli, forget.hedgecut, cluster.training\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_the_fitter_is_restored_after_an_exception() -> None:
    seen: list[Sequence[int]] = []

    def recording(inputs: ForestInputs, trees: Sequence[int]) -> list[Tree]:
        seen.append(trees)
        return fit_trees(inputs, trees)

    with tree_fitter(recording):
        with pytest.raises(KeyError), tree_fitter(RayTreeFitter(chunks=2)):
            raise KeyError("inside the block")
        HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, Y)
    assert seen == [range(3)]


def test_chunks_cover_the_trees_in_order() -> None:
    for n_trees in range(0, 20):
        for n in range(1, 25):
            parts = _chunked(range(n_trees), n)
            assert [t for p in parts for t in p] == list(range(n_trees))
            assert len(parts) == max(1, min(n, n_trees))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_chunks_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunks must be a positive int"):
        RayTreeFitter(chunks=0)


def _cli(*args: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "forget.cli", *args], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


def _artifact(stdout: str) -> str:
    match = re.search(r"artifact ([0-9a-f]{64})", stdout)
    assert match, stdout
    return match.group(1)
