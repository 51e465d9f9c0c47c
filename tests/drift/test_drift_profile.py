"""drift.profile: bounded and deterministic summaries, JSON round trips, strict parsing, input
coercion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.errors import DriftInputError, ProfileFormatError
from drift.profile import CategoricalFeature, NumericFeature, ReferenceProfile

finite = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
values = st.one_of(finite, st.sampled_from([np.nan, np.inf, 0.0, 1.0, 2.0]))


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 60).flatmap(
        lambda n: st.lists(
            st.tuples(values, st.sampled_from([0.0, 1.0, 3.0, np.nan])), min_size=n, max_size=n
        )
    ),
    st.integers(1, 50),
    st.integers(0, 2**31),
)
def test_profile_round_trips_through_dict_and_bytes(rows, max_sample, seed):
    X = np.array(rows, dtype=np.float64)
    p = ReferenceProfile.fit(
        X,
        ["x", "c"],
        categorical=["c"],
        labels={"c": ["zero", "one"]},
        max_sample=max_sample,
        seed=seed,
        meta={"model": "m", "version": 3},
    )
    d = p.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d  # JSON-able, no NaN
    for q in (ReferenceProfile.from_dict(d), ReferenceProfile.from_bytes(p.to_bytes())):
        assert q.to_dict() == d
        assert q.to_bytes() == p.to_bytes()
    num, cat = p.features
    assert isinstance(num, NumericFeature) and isinstance(cat, CategoricalFeature)
    finite_x = X[np.isfinite(X[:, 0]), 0]
    assert num.count == finite_x.size and num.missing == X.shape[0] - finite_x.size
    assert num.sample.size == min(max_sample, finite_x.size)
    assert np.all(np.diff(num.sample) >= 0) and np.all(np.isin(num.sample, finite_x))
    assert cat.count + cat.missing == X.shape[0]


def test_sample_is_bounded_deterministic_and_drawn_per_feature():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50_000, 3))
    a = ReferenceProfile.fit(X, list("abc"), max_sample=1000, seed=4)
    b = ReferenceProfile.fit(X, list("abc"), max_sample=1000, seed=4)
    c = ReferenceProfile.fit(X, list("abc"), max_sample=1000, seed=5)
    assert a.to_bytes() == b.to_bytes() != c.to_bytes()
    samples = [f.sample for f in a.features if isinstance(f, NumericFeature)]
    assert [s.size for s in samples] == [1000, 1000, 1000]
    # each feature samples different rows: no row of X survives across features
    rows_of = [set(np.flatnonzero(np.isin(X[:, j], s))) for j, s in enumerate(samples)]
    assert len(rows_of[0] & rows_of[1] & rows_of[2]) < 5
    num = a.features[0]
    assert isinstance(num, NumericFeature)
    assert num.mean == pytest.approx(X[:, 0].mean()) and num.std == pytest.approx(X[:, 0].std())
    assert len(a.to_bytes()) < 3 * 1000 * 25 + 2000  # bounded: ~20 bytes a kept value


def test_labels_word_categories():
    p = ReferenceProfile.fit(
        np.array([[0.0], [1.0], [1.0]]), ["sex"], categorical=["sex"], labels={"sex": ["F", "M"]}
    )
    f = p.features[0]
    assert isinstance(f, CategoricalFeature)
    assert f.describe(1.0) == "1 ('M')" and f.describe(17.0) == "17" and f.describe(0.5) == "0.5"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format="other"), "not a reference profile"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d["features"][0].update(sample=[3.0, 1.0]), "sorted"),
        (lambda d: d["features"][0].update(sample=["a"]), "finite number"),
        (lambda d: d["features"][0].update(count=True), "integer"),
        (lambda d: d["features"][0].pop("mean"), "malformed"),
        (lambda d: d["features"][1].update(categories=[1.0, 0.0]), "strictly increasing"),
        (lambda d: d["features"][1].update(counts=[1]), "strictly increasing"),
        (lambda d: d["features"][1].update(labels="ab"), "labels"),
        (lambda d: d["features"][1].update(kind="ordinal"), "unknown kind"),
        (lambda d: d["features"].append(dict(d["features"][0])), "unique"),
        (lambda d: d.update(meta=[]), "meta"),
    ],
)
def test_from_dict_refuses_what_it_did_not_write(mutate, message):
    p = ReferenceProfile.fit(np.array([[1.0, 0.0], [2.0, 1.0]]), ["x", "c"], categorical=["c"])
    d = json.loads(p.to_bytes())
    mutate(d)
    with pytest.raises(ProfileFormatError, match=message):
        ReferenceProfile.from_dict(d)


def test_from_bytes_refuses_non_json_and_pickles():
    import pickle

    p = ReferenceProfile.fit(np.ones((2, 1)), ["x"])
    with pytest.raises(ProfileFormatError):
        ReferenceProfile.from_bytes(pickle.dumps(p.to_dict()))
    with pytest.raises(ProfileFormatError):
        ReferenceProfile.from_bytes(b"\xff\xfe")
    with pytest.raises(ProfileFormatError):
        ReferenceProfile.from_bytes(b"[]")


def test_fit_refuses_bad_arguments():
    X = np.ones((3, 2))
    with pytest.raises(DriftInputError, match="not unique"):
        ReferenceProfile.fit(X, ["a", "a"])
    with pytest.raises(DriftInputError, match="not among"):
        ReferenceProfile.fit(X, ["a", "b"], categorical=["z"])
    with pytest.raises(DriftInputError, match="not categorical"):
        ReferenceProfile.fit(X, ["a", "b"], labels={"a": ["x"]})
    with pytest.raises(DriftInputError, match="has 2 features, the profile has 3"):
        ReferenceProfile.fit(X, ["a", "b", "c"])
    with pytest.raises(DriftInputError, match="no rows"):
        ReferenceProfile.fit(np.ones((0, 2)), ["a", "b"])
    with pytest.raises(DriftInputError, match="distinct values"):
        ReferenceProfile.fit(np.arange(20_000.0)[:, None], ["id"], categorical=["id"])


def test_as_matrix_coerces_and_refuses_clearly():
    p = ReferenceProfile.fit(np.ones((3, 2)), ["age", "sex"], categorical=["sex"])
    assert p.as_matrix([[1, None]]).tolist()[0][0] == 1.0
    assert np.isnan(p.as_matrix([[1, None]])[0, 1])
    assert p.as_matrix(np.array([[1, 0]], dtype=np.int32)).dtype == np.float64
    m = p.as_matrix([{"age": 30}, {"sex": 1, "age": 2.5}])
    assert np.isnan(m[0, 1]) and m[1].tolist() == [2.5, 1.0]
    with pytest.raises(DriftInputError, match=r"X has 3 features, the profile has 2: \['age'"):
        p.as_matrix(np.ones((1, 3)))
    with pytest.raises(DriftInputError, match="2-D"):
        p.as_matrix(np.ones(2))
    with pytest.raises(DriftInputError, match="strings"):
        p.as_matrix([["38", "1"]])
    with pytest.raises(DriftInputError, match="not numbers"):
        p.as_matrix(np.array([[1, "x"]], dtype=object))
    with pytest.raises(DriftInputError, match="rows × features"):
        p.as_matrix([[1.0, 2.0], [1.0]])
    with pytest.raises(DriftInputError, match="unknown features"):
        p.as_matrix([{"age": 1, "height": 2}])
    with pytest.raises(DriftInputError, match="expected a number, got str"):
        p.as_matrix([{"age": "old"}])
    with pytest.raises(DriftInputError, match="dtype"):
        p.as_matrix(np.array([["2020-01-01", "2020-01-02"]], dtype="datetime64[D]"))
