"""Multi-model predictions in the store: the rows read once, each model's answer its own."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forget import KNNRegressor
from store import ModelStore, stages
from store.errors import PredictInputError
from tests.store.helpers import FEATURES, hedgecut, linear, people


def test_each_model_answers_as_alone(tmp_path) -> None:
    with ModelStore.open(tmp_path / "s") as s:
        s.ingest("people", people(), subject_column="subject_id")
        s.train("risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES)
        s.train("score", dataset="people", estimator=linear(), label="score", features=FEATURES)
        s.train(
            "near", dataset="people", estimator=KNNRegressor(), label="score", features=["c", "a"]
        )
        rows = [{f: float(i + j) for j, f in enumerate(FEATURES)} for i in range(5)]
        got = s.predict_models(["risk", "score", "near"], rows)
        assert list(got) == ["risk", "score", "near"]
        for name, pred in got.items():
            np.testing.assert_array_equal(pred, s.predict(name, rows))
        with pytest.raises(PredictInputError, match="once"):
            s.predict_models(["risk", "risk"], rows)
        with pytest.raises(PredictInputError, match="lack features"):
            s.predict_models(["near"], [{"a": 1.0}])
        with pytest.raises(PredictInputError, match="dicts"):
            s.predict_models(["near"], np.zeros((2, 2)))  # type: ignore[arg-type]


names = st.sampled_from("abcdefg")
lists = st.lists(
    st.lists(names, min_size=1, max_size=7, unique=True).map(tuple), min_size=1, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(lists)
def test_a_plan_gives_each_list_its_columns_in_order(feature_lists) -> None:
    p = stages.plan(feature_lists)
    assert set(p.union) == {f for fl in feature_lists for f in fl} and len(set(p.union)) == len(
        p.union
    )
    X = np.arange(3 * len(p.union), dtype=float).reshape(3, len(p.union))
    split = p.split(X)
    assert set(split) == set(feature_lists)
    for fl in feature_lists:  # column j of a list's matrix is its j-th feature's union column
        want = np.stack([X[:, p.union.index(f)] for f in fl], axis=1)
        np.testing.assert_array_equal(split[fl], want)
        assert split[fl].flags.c_contiguous
