"""Pluggable tree fitters: any fitter that returns the trees in order gives the same forest."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forget import HedgeCutClassifier
from forget.hedgecut import ForestInputs, Tree, TreeFitter, fit_tree, fit_trees, tree_fitter

rng = np.random.default_rng(3)
X = rng.normal(size=(300, 4)).round(3)
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


def backwards(inputs: ForestInputs, trees: Sequence[int]) -> list[Tree]:
    """Fits the last tree first, as a distributed fitter may; returns them in order."""
    return [fit_tree(inputs, t) for t in reversed(trees)][::-1]


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**63 - 1),
    n_estimators=st.integers(1, 8),
    max_samples=st.floats(0.05, 1.0),
    n_jobs=st.sampled_from([None, 2, -1]),
)
def test_every_fitter_gives_the_threaded_forest(
    seed: int, n_estimators: int, max_samples: float, n_jobs: int | None
) -> None:
    params = dict(
        n_estimators=n_estimators, max_samples=max_samples, n_jobs=n_jobs, random_state=seed
    )
    want = HedgeCutClassifier(**params).fit(X, Y).to_bytes()
    for fitter in (fit_trees, backwards):
        with tree_fitter(fitter):
            assert HedgeCutClassifier(**params).fit(X, Y).to_bytes() == want


def test_a_fitter_gets_the_shared_inputs_and_every_tree() -> None:
    calls: list[tuple[ForestInputs, Sequence[int]]] = []

    def spy(inputs: ForestInputs, trees: Sequence[int]) -> list[Tree]:
        calls.append((inputs, trees))
        return fit_trees(inputs, trees)

    with tree_fitter(spy):
        model = HedgeCutClassifier(n_estimators=4, random_state=9).fit(X, Y)
    ((inputs, trees),) = calls
    assert trees == range(4) and inputs.seed == model.seed_ == 9
    assert inputs.X.dtype == np.float32 and inputs.y.dtype == np.int32
    assert inputs.bounds is model.feature_bounds_


def test_a_fitter_returning_too_few_trees_is_refused() -> None:
    with (
        tree_fitter(lambda inputs, trees: fit_trees(inputs, trees[1:])),
        pytest.raises(RuntimeError, match="returned 2 trees for 3"),
    ):
        HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, Y)


def test_the_fitter_holds_in_its_block_and_thread_only() -> None:
    seen: list[str] = []

    def named(name: str) -> TreeFitter:
        def fitter(inputs: ForestInputs, trees: Sequence[int]) -> list[Tree]:
            seen.append(name)
            return fit_trees(inputs, trees)

        return fitter

    def fit() -> None:
        HedgeCutClassifier(n_estimators=2, random_state=0).fit(X, Y)

    with tree_fitter(named("outer")):
        fit()
        with pytest.raises(ZeroDivisionError), tree_fitter(named("inner")):
            fit()
            _ = 1 / 0
        fit()
        with tree_fitter(None):  # the default threads
            fit()
        other = threading.Thread(target=fit)  # a new thread starts from the default
        other.start()
        other.join()
    fit()
    assert seen == ["outer", "inner", "outer"]
