"""drift.profile removal: ``fit(D)`` then ``remove(S)`` holds what ``fit(D \\ S)`` holds (same
seed), moments bit for bit; the reserve refills the sample and says when it cannot."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.errors import DriftInputError
from drift.profile import (
    CategoricalFeature,
    NumericFeature,
    ReferenceProfile,
    priorities,
)

NAMES = ["x", "k", "c"]
numbers = st.one_of(
    st.integers(-3, 3).map(float),  # duplicates
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
    st.floats(-1e-300, 1e-300, allow_nan=False),  # tiny: squares underflow
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 0.1, 1e100]),
)
codes = st.sampled_from([0.0, 1.0, 2.0, 7.0, -0.0, math.nan])


def _fit(X, ids, **kw):
    return ReferenceProfile.fit(X, NAMES, categorical=["c"], row_ids=ids, **kw)


def _numeric(p: ReferenceProfile) -> list[NumericFeature]:
    return [f for f in p.features if isinstance(f, NumericFeature)]


def _assert_same(after: ReferenceProfile, fresh: ReferenceProfile) -> None:
    """Equal serialised form, the same sample rows in the same order and the same exact
    sums; the reserve a prefix of the fresh one's."""
    assert after.to_dict() == fresh.to_dict()
    assert after.to_bytes() == fresh.to_bytes()
    for a, f in zip(_numeric(after), _numeric(fresh), strict=True):
        assert a.kept is not None and f.kept is not None
        assert a.mean.hex() == f.mean.hex() and a.std.hex() == f.std.hex()
        assert np.array_equal(a.kept.sums, f.kept.sums)
        n = a.kept.n_sample
        assert n == f.kept.n_sample
        assert np.array_equal(a.kept.row_ids[:n], f.kept.row_ids[:n])
        size = a.kept.row_ids.size
        assert size <= f.kept.row_ids.size
        assert np.array_equal(a.kept.row_ids, f.kept.row_ids[:size])
        assert np.array_equal(a.kept.values, f.kept.values[:size])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_remove_equals_a_fit_on_the_rows_left(data):
    n = data.draw(st.integers(2, 40), label="n")
    X = np.array(
        data.draw(st.lists(st.tuples(numbers, numbers, codes), min_size=n, max_size=n)),
        dtype=np.float64,
    )
    X[:, 1] = np.round(X[:, 1]) if data.draw(st.booleans()) else X[:, 1]
    ids = np.array(
        data.draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n, unique=True)),
        dtype=np.int64,
    )
    kw = {
        "max_sample": data.draw(st.integers(1, 12), label="max_sample"),
        "reserve": data.draw(st.integers(0, 6), label="reserve"),
        "seed": data.draw(st.integers(0, 2**40), label="seed"),
    }
    profile = _fit(X, ids, **kw)
    alive = np.ones(n, dtype=bool)
    for _ in range(data.draw(st.integers(1, 4), label="removals")):
        left = np.flatnonzero(alive)
        if left.size < 2:
            break
        gone = np.array(
            data.draw(
                st.lists(st.sampled_from(left.tolist()), max_size=left.size - 1, unique=True)
            ),
            dtype=np.int64,
        )
        after = profile.remove(ids[gone], X[gone])
        alive[gone] = False
        fresh = _fit(X[alive], ids[alive], **kw)
        if after is None:  # only when some sample lost more rows than its reserve could replace
            assert any(
                np.isin(f.kept.row_ids, ids[gone], invert=True).sum()
                < min(kw["max_sample"], g.count)
                for f, g in zip(_numeric(profile), _numeric(fresh), strict=True)
                if f.kept is not None
            )
            profile = fresh  # what a caller does: fit anew
            continue
        _assert_same(after, fresh)
        assert after.n_rows == int(alive.sum())
        profile = after


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            # squares below ~1e-300 underflow: the sums of squares are exact above that
            st.floats(-1e15, 1e15).filter(lambda x: x == 0 or abs(x) > 1e-140),
            st.integers(-(10**6), 10**6).map(float),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 2**32),
)
def test_moments_are_the_exact_ones_rounded(vals, seed):
    v = np.array(vals, dtype=np.float64)
    f = ReferenceProfile.fit(v[:, None], ["x"], seed=seed).features[0]
    assert isinstance(f, NumericFeature)
    exact = [Fraction(x) for x in vals]
    n = len(exact)
    mean = sum(exact) / n
    var = sum((x - mean) ** 2 for x in exact) / n
    assert f.mean == float(mean)  # correctly rounded
    assert f.std == math.sqrt(float(var)) and f.std >= 0.0
    if len(set(vals)) == 1:
        assert f.std == 0.0


def test_moments_match_numpy_on_ordinary_data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20_000, 3)) * [1.0, 250.0, 1e-4] + [0.0, 1e6, 3.0]
    p = ReferenceProfile.fit(X, ["a", "b", "c"])
    for j, f in enumerate(_numeric(p)):
        assert f.mean == pytest.approx(X[:, j].mean(), rel=1e-12, abs=1e-15)
        assert f.std == pytest.approx(X[:, j].std(), rel=1e-12)


def test_the_sample_is_the_bottom_k_by_keyed_priority_whatever_the_row_order():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5_000, 2))
    ids = rng.choice(10**9, size=5_000, replace=False)
    p = ReferenceProfile.fit(X, ["a", "b"], row_ids=ids, max_sample=100, reserve=30, seed=9)
    perm = rng.permutation(5_000)
    q = ReferenceProfile.fit(
        X[perm], ["a", "b"], row_ids=ids[perm], max_sample=100, reserve=30, seed=9
    )
    assert p.to_bytes() == q.to_bytes()
    for j, f in enumerate(_numeric(p)):
        order = np.argsort(priorities(ids, 9, j))
        assert f.kept is not None
        assert np.array_equal(f.kept.row_ids, ids[order[:130]])
        assert np.array_equal(f.sample, np.sort(X[order[:100], j]))
        assert np.array_equal(f.kept.reserve, X[order[100:130], j])


def test_a_removal_the_reserve_cannot_cover_asks_for_a_refit():
    X = np.arange(20.0)[:, None]
    p = ReferenceProfile.fit(X, ["x"], max_sample=4, reserve=2)
    f = p.features[0]
    assert isinstance(f, NumericFeature) and f.kept is not None
    kept = f.kept.row_ids
    # rows beyond sample and reserve leave: always fine
    outside = np.setdiff1d(np.arange(20), kept)[:5]
    q = p.remove(outside, X[outside])
    assert q is not None and q.n_rows == 15
    # two of the sample's rows leave: the reserve's two move in
    q2 = p.remove(kept[:2], X[kept[:2]])
    assert q2 is not None
    g = q2.features[0]
    assert isinstance(g, NumericFeature) and g.kept is not None
    assert np.array_equal(g.sample, np.sort(X[kept[2:6], 0])) and g.kept.reserve.size == 0
    # three leave: one sample slot stays empty while 14 rows remain beyond: refit
    assert p.remove(kept[:3], X[kept[:3]]) is None
    assert q2.remove(kept[2:3], X[kept[2:3]]) is None
    # with no rows beyond the kept ones, the sample shrinks to what is left
    small = ReferenceProfile.fit(X[:5], ["x"], max_sample=4, reserve=0)
    r = small.remove([0, 1, 2], X[:3])
    assert r is not None and _numeric(r)[0].sample.tolist() == [3.0, 4.0]


def test_categorical_counts_fall_and_an_emptied_category_disappears():
    X = np.array([[0.0], [1.0], [1.0], [2.0], [np.nan]])
    p = ReferenceProfile.fit(X, ["c"], categorical=["c"], labels={"c": ["a", "b", "c"]})
    q = p.remove([3, 1, 4], X[[3, 1, 4]])
    assert q is not None
    f = q.features[0]
    assert isinstance(f, CategoricalFeature)
    assert f.categories.tolist() == [0.0, 1.0] and f.counts.tolist() == [1, 1]
    assert f.missing == 0 and f.labels == ("a", "b", "c")
    assert (
        q.to_dict()
        == ReferenceProfile.fit(
            X[[0, 2]], ["c"], categorical=["c"], labels={"c": ["a", "b", "c"]}, row_ids=[0, 2]
        ).to_dict()
    )
    with pytest.raises(DriftInputError, match=r"removed values \[5.0\]"):
        p.remove([0], [[5.0]])
    with pytest.raises(DriftInputError, match="more values"):
        p.remove([0, 1], [[0.0], [0.0]])


def test_missing_values_leave_the_missing_count():
    X = np.array([[1.0], [np.nan], [np.inf], [4.0]])
    p = ReferenceProfile.fit(X, ["x"])
    q = p.remove([1, 2], X[[1, 2]])
    assert q is not None
    f = q.features[0]
    assert isinstance(f, NumericFeature)
    assert (f.count, f.missing, f.mean, f.sample.tolist()) == (2, 0, 2.5, [1.0, 4.0])
    with pytest.raises(DriftInputError, match="missing"):
        q.remove([1], [[np.nan]])


def test_remove_refuses_rows_the_profile_cannot_hold():
    X = np.arange(6.0).reshape(3, 2)
    p = ReferenceProfile.fit(X, ["a", "b"])
    assert p.remove([], np.empty((0, 2))) is p
    with pytest.raises(DriftInputError, match="not unique"):
        p.remove([1, 1], X[[1, 1]])
    with pytest.raises(DriftInputError, match="do not have the values"):
        p.remove([1], [[9.0, 3.0]])
    with pytest.raises(DriftInputError, match="one per row"):
        p.remove([1, 2], X[[1]])
    with pytest.raises(DriftInputError, match="removing 4 rows"):
        ReferenceProfile.fit(X[:2], ["a", "b"]).remove([0, 1, 2, 3], np.zeros((4, 2)))
    assert p.remove([0, 1, 2], X) is None  # nothing would be left: fit refuses that
    # read back from bytes, a profile names no rows: it cannot forget one
    assert ReferenceProfile.from_bytes(p.to_bytes()).remove([0], X[[0]]) is None


def test_fit_checks_row_ids_and_magnitudes():
    X = np.ones((3, 1))
    with pytest.raises(DriftInputError, match="not unique"):
        ReferenceProfile.fit(X, ["x"], row_ids=[1, 1, 2])
    with pytest.raises(DriftInputError, match="3 integers"):
        ReferenceProfile.fit(X, ["x"], row_ids=[1, 2])
    with pytest.raises(DriftInputError, match="3 integers"):
        ReferenceProfile.fit(X, ["x"], row_ids=[0.5, 1.0, 2.0])
    with pytest.raises(DriftInputError, match="2\\*\\*480"):
        ReferenceProfile.fit(np.array([[1.0], [1e200]]), ["x"])
    with pytest.raises(DriftInputError, match="reserve"):
        ReferenceProfile.fit(X, ["x"], reserve=-1)
    # categories hold any finite code; only numeric features keep sums of squares
    ReferenceProfile.fit(np.array([[1.0], [1e200]]), ["c"], categorical=["c"])


def test_nothing_unique_to_the_removed_rows_stays_in_sample_reserve_or_categories():
    rng = np.random.default_rng(5)
    n = 3_000
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 5, size=n).astype(float)])
    victim = np.array([17, 1_000, 2_222])
    X[victim, 0] = [123.456, -987.5, 4242.0]  # values no one else has
    X[victim, 1] = 9.0  # a category only the victim's rows hold
    ids = np.arange(n) * 7 + 3
    p = ReferenceProfile.fit(X, ["v", "c"], categorical=["c"], row_ids=ids, max_sample=200)
    f = p.features[0]
    assert isinstance(f, NumericFeature) and f.kept is not None
    # make sure the test bites: the victim's rows are in the sample or reserve of a profile
    # keeping everything
    whole = ReferenceProfile.fit(X, ["v", "c"], categorical=["c"], row_ids=ids, max_sample=n)
    assert np.isin(X[victim, 0], _numeric(whole)[0].sample).all()
    for prof in (p, whole):
        q = prof.remove(ids[victim], X[victim])
        assert q is not None
        g, c = q.features
        assert isinstance(g, NumericFeature) and g.kept is not None
        assert isinstance(c, CategoricalFeature)
        assert not np.isin(X[victim, 0], g.sample).any()
        assert not np.isin(X[victim, 0], g.kept.values).any()
        assert not np.isin(ids[victim], g.kept.row_ids).any()
        assert 9.0 not in c.categories.tolist()
        assert "123.456" not in q.to_bytes().decode()
