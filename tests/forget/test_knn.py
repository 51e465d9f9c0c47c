"""KNNClassifier / KNNRegressor: forget(S) after fit(D) behaves exactly as fit(D \\ S)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from forget import _persist
from forget.base import ForgetResult, Guarantee, Path, Unlearnable
from forget.errors import (
    ArtifactError,
    DuplicateRowIdsError,
    EmptyModelError,
    TooFewRowsError,
    UnknownRowIdsError,
)
from forget.knn import KNNClassifier, KNNRegressor

MODELS = (KNNClassifier, KNNRegressor)
GRID = (-1.0, 0.0, 0.5, 2.0)  # few values: duplicate points and equal distances are common


@st.composite
def problems(draw, grid_only=False):
    """Rows with many ties, labels, shuffled non-contiguous ids, rows to forget, queries."""
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 3))
    grid = st.sampled_from(GRID)
    values = grid if grid_only else st.one_of(grid, st.floats(-3, 3, width=64))
    X = draw(hnp.arrays(np.float64, (n, d), elements=values))
    y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2)))
    ids = np.array(draw(st.permutations(range(n))), dtype=np.int64) * 7 + 3
    gone = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n - 1, unique=True))
    extra = draw(hnp.arrays(np.float64, (3, d), elements=grid))
    return X, y, ids, np.array(gone), np.vstack([X, extra])


def fit(cls, X, y, ids, **params):
    y = y.astype(float) * 1.5 if cls is KNNRegressor else y
    return cls(**params).fit(X, y, row_ids=ids)


def assert_same(a, b, Q):
    """Same neighbours (ids and distances), same predictions, same probabilities."""
    (da, ia), (db, ib) = a.kneighbors(Q), b.kneighbors(Q)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)
    np.testing.assert_array_equal(a.predict(Q), b.predict(Q))
    if isinstance(a, KNNClassifier):
        np.testing.assert_array_equal(a.classes_, b.classes_)
        np.testing.assert_allclose(a.predict_proba(Q), b.predict_proba(Q), rtol=0, atol=1e-12)


def arrays_of(model):
    """Every ndarray the model holds (also inside tuples), by attribute name."""
    out = {"rows.ids": model._rows.ids, "rows.alive": model._rows.alive}
    for name, value in vars(model).items():
        for i, a in enumerate(value if isinstance(value, tuple) else (value,)):
            if isinstance(a, np.ndarray):
                out[f"{name}[{i}]"] = a
    return out


@settings(max_examples=25, deadline=None)
@given(
    problem=problems(),
    cls=st.sampled_from(MODELS),
    weights=st.sampled_from(["uniform", "distance"]),
    algorithm=st.sampled_from(["brute", "index"]),
    k=st.integers(1, 4),
    leaf_size=st.integers(1, 4),
    split=st.integers(0, 30),
    seed=st.integers(0, 2**16),
)
def test_forget_equals_refit_on_remaining_rows(
    problem, cls, weights, algorithm, k, leaf_size, split, seed
):
    X, y, ids, gone, Q = problem
    k = min(k, len(X) - len(gone))  # more would be refused (test_forget_keeps_n_neighbors_rows)
    params = dict(n_neighbors=k, weights=weights, algorithm=algorithm, leaf_size=leaf_size)
    model = fit(cls, X, y, ids, **params)
    model.forget(ids[gone[:split]].tolist()) if split else None  # one batch, then one by one
    for i in gone[split:]:
        assert model.forget(ids[i]).guarantee is Guarantee.EXACT
    keep = np.setdiff1d(np.arange(len(X)), gone)
    keep = np.random.default_rng(seed).permutation(keep)  # the refit sees another row order
    assert_same(model, fit(cls, X[keep], y[keep], ids[keep], **params), Q)


@settings(max_examples=25, deadline=None)
@given(problem=problems(grid_only=True), k=st.integers(1, 5), leaf_size=st.integers(1, 4))
def test_index_equals_brute_force_and_the_tie_rule(problem, k, leaf_size):
    X, y, ids, gone, Q = problem
    brute = fit(KNNClassifier, X, y, ids, n_neighbors=1, algorithm="brute")
    index = fit(KNNClassifier, X, y, ids, n_neighbors=1, algorithm="index", leaf_size=leaf_size)
    for m in (brute, index):
        m.set_params(n_neighbors=min(k, len(X) - len(gone)))
        m.forget(ids[gone])
    assert_same(index, brute, Q)
    # the rule itself: ascending distance, then ascending row id (grid values: exact sums)
    live = np.setdiff1d(np.arange(len(X)), gone)
    _, got = index.kneighbors(Q)
    for q, row in zip(Q, got, strict=True):
        d2 = ((X[live] - q) ** 2).sum(axis=1)
        np.testing.assert_array_equal(row, ids[live][np.lexsort((ids[live], d2))][: len(row)])


@settings(max_examples=25, deadline=None)
@given(
    problem=problems(), cls=st.sampled_from(MODELS), algorithm=st.sampled_from(["brute", "index"])
)
def test_batch_forget_equals_one_by_one(problem, cls, algorithm):
    X, y, ids, gone, Q = problem
    batch = fit(cls, X, y, ids, n_neighbors=1, algorithm=algorithm, leaf_size=2)
    single = fit(cls, X, y, ids, n_neighbors=1, algorithm=algorithm, leaf_size=2)
    paths = batch.forget(ids[gone]).paths
    assert paths == tuple(p for i in gone for p in single.forget([ids[i]]).paths)
    assert_same(batch, single, Q)
    a, b = arrays_of(batch), arrays_of(single)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("algorithm", ["brute", "index"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_matches_scikit_learn_without_ties(algorithm, weights):
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(300, 4)), rng.normal(size=(80, 4))
    y = rng.integers(0, 3, 300)
    Q[:5] = X[:5]  # zero distances: those rows alone vote under "distance"
    ours = KNNClassifier(7, weights=weights, algorithm=algorithm).fit(X, y)
    # scikit-learn's k-d tree measures distances exactly; its brute force (|x|^2 - 2xq + |q|^2)
    # may leave a zero distance at 1e-8 (scikit-learn 1.9), and so vote with the other rows
    ref = KNeighborsClassifier(7, weights=weights, algorithm="kd_tree").fit(X, y)
    np.testing.assert_array_equal(ours.predict(Q), ref.predict(Q))
    np.testing.assert_allclose(ours.predict_proba(Q), ref.predict_proba(Q), atol=1e-12)
    np.testing.assert_array_equal(ours.kneighbors(Q)[1], ref.kneighbors(Q)[1])
    r_ours = KNNRegressor(7, weights=weights, algorithm=algorithm).fit(X, y * 0.5)
    r_ref = KNeighborsRegressor(7, weights=weights, algorithm="kd_tree").fit(X, y * 0.5)
    np.testing.assert_allclose(r_ours.predict(Q), r_ref.predict(Q), atol=1e-12)


def test_big_batches_use_the_parallel_kernel_with_the_same_answers():
    rng = np.random.default_rng(1)
    X, Q = rng.integers(0, 4, size=(500, 3)).astype(float), rng.integers(0, 4, size=(200, 3))
    for algorithm in ("brute", "index"):
        m = KNNClassifier(4, algorithm=algorithm).fit(X, rng.integers(0, 2, 500))
        one_by_one = np.vstack([m.kneighbors(q[None])[1] for q in Q])
        np.testing.assert_array_equal(m.kneighbors(Q)[1], one_by_one)


def float_bytes(arrays):
    """The raw bytes of every float array, to search for a value's eight bytes."""
    return b"".join(a.tobytes() for a in arrays if a.dtype.kind == "f")


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("algorithm", ["brute", "index"])
def test_forgotten_values_leave_the_model_and_the_artifact(cls, algorithm):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 3))  # continuous: every value is unique
    gone = [3, 17, 42]
    y = np.arange(60) % 20 if cls is KNNClassifier else rng.normal(size=60)
    y[gone] = [100, 101, 102]  # for the classifier: three labels of one row each
    model = cls(3, algorithm=algorithm, leaf_size=4).fit(X, y, row_ids=np.arange(60) + 500)
    secret = list(X[gone].ravel()) + (list(y[gone]) if cls is KNNRegressor else [])
    secrets = [np.float64(v).tobytes() for v in secret]
    assert all(s in float_bytes(arrays_of(model).values()) for s in secrets)  # the search works
    model.forget([503])  # a tombstone: zeroed in place, no rebuild
    model.forget([517, 542])
    assert model.forget([544]).n_slow == 0
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as z:
        saved = {k: z[k] for k in z.files}
    for where in (arrays_of(model).values(), saved.values()):
        assert not any(s in float_bytes(where) for s in secrets), "a forgotten value is held"
    if cls is KNNClassifier:  # a label whose only row is forgotten goes, as in a refit
        assert not np.isin(y[gone], model.classes_).any()
        assert not np.isin(y[gone], saved["classes"]).any()


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("algorithm", ["brute", "index"])
def test_round_trip_then_forget(cls, algorithm):
    rng = np.random.default_rng(3)
    X, y = rng.integers(0, 3, size=(80, 2)).astype(float), rng.integers(0, 3, 80)
    params = dict(n_neighbors=3, weights="distance", algorithm=algorithm, leaf_size=3)
    model = fit(cls, X, y, np.arange(80), **params)
    model.forget([1, 2, 3])
    loaded = cls.from_bytes(model.to_bytes())
    assert loaded.get_params() == model.get_params() and loaded.algorithm_ == algorithm
    assert_same(loaded, model, X)
    loaded.forget(np.arange(10, 40))
    with pytest.raises(UnknownRowIdsError, match="not held"):  # forgotten: no longer known
        loaded.forget([2])
    keep = np.r_[0, 4:10, 40:80]
    assert_same(loaded, fit(cls, X[keep], y[keep], keep, **params), X)


def test_bad_artifacts_are_refused():
    model = KNNClassifier(1).fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ArtifactError):
        KNNClassifier.from_bytes(b"not an artifact")
    with pytest.raises(ArtifactError, match="KNNClassifier, not a KNNRegressor"):
        KNNRegressor.from_bytes(model.to_bytes())
    _, params, state, arrays = _persist.load(model.to_bytes())
    for broken in (
        {"row_ids": np.array([5, 5])},
        {"X": np.zeros((1, 1))},
        {"y": np.array([0, 7])},
        {"y": np.array([0, 0])},  # class 1 without a row
    ):
        data = _persist.dump("KNNClassifier", params, state, arrays | broken)
        with pytest.raises(ArtifactError, match="corrupt KNNClassifier"):
            KNNClassifier.from_bytes(data)


@pytest.mark.parametrize("cls", MODELS)
def test_refused_requests_change_nothing(cls):
    X, y = np.arange(12, dtype=float).reshape(6, 2), np.array([0, 1, 0, 1, 0, 1])
    model = fit(cls, X, y, [10, 11, 12, 13, 14, 15], n_neighbors=2, algorithm="index")
    model.forget([10])
    snapshot = {k: v.copy() for k, v in arrays_of(model).items()}
    for request, error in [
        ([11, 99], UnknownRowIdsError),
        ([11, 11], DuplicateRowIdsError),
        ([12, 10], UnknownRowIdsError),  # 10 is forgotten: unknown now
        ([11, 12, 13, 14, 15], EmptyModelError),
        ([11, 12, 13, 14], TooFewRowsError),  # one row left for two neighbours
        ([1.5], ValueError),
    ]:
        with pytest.raises(error):
            model.forget(request)
        assert arrays_of(model).keys() == snapshot.keys()
        for name, value in arrays_of(model).items():
            np.testing.assert_array_equal(value, snapshot[name], err_msg=name)


def test_a_rebuild_is_the_one_slow_deletion_and_is_reported():
    X = np.random.default_rng(4).normal(size=(40, 2))
    model = KNNClassifier(1, algorithm="index", leaf_size=2).fit(X, np.arange(40) % 2)
    results = [model.forget([i]) for i in range(12)]
    paths = [r.paths[0] for r in results]
    assert paths == [Path.FAST] * 10 + [Path.SLOW] + [Path.FAST]  # 11 > 40 / 4 tombstones
    slow = results[10].details
    assert slow["rebuilds"] == 1 and slow["rebuild_seconds"] > 0 and slow["tombstones"] == 0
    assert results[11].details["tombstones"] == 1 and results[11].details["live_rows"] == 28
    assert 0 < results[11].details["amortised_rebuild_seconds"] < slow["rebuild_seconds"]
    assert isinstance(results[0], ForgetResult) and results[0].row_ids == (0,)


@pytest.mark.parametrize("cls", MODELS)
def test_bad_inputs_raise_clear_value_errors(cls):
    """scikit-learn's input checks and messages, plus ours."""
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    for bad_X, message in [
        ([[0.0, np.nan]] * 4, "Input X contains NaN"),
        ([[0.0, np.inf]] * 4, "Input X contains infinity"),
        ([0.0, 1.0, 2.0, 3.0], "Expected 2D array"),
        ([["a", "b"]] * 4, "could not convert string to float"),
        (np.zeros((4, 0)), "0 feature"),
        (X + 1j, "Complex data not supported"),
    ]:
        with pytest.raises(ValueError, match=message):
            cls().fit(bad_X, y)
    for bad_y, message in [
        (y[:3], "inconsistent numbers of samples"),
        (np.array([0, 1, np.nan, 1]), "Input y contains NaN"),
        (None, "requires y to be passed"),
    ]:
        with pytest.raises(ValueError, match=message):
            cls().fit(X, bad_y)
    with pytest.warns(DataConversionWarning):  # a column of targets is raveled, as in sklearn
        cls(1).fit(X, y[:, None])
    if cls is KNNClassifier:
        with pytest.raises(ValueError, match="Unknown label type: continuous"):
            cls().fit(X, [0.5, 1.5, 2.0, 3.0])
    with pytest.raises(DuplicateRowIdsError):
        cls(1).fit(X, y, row_ids=[1, 1, 2, 3])
    for name, value in [
        ("n_neighbors", 0),
        ("weights", "gauss"),
        ("algorithm", "ball_tree"),
        ("leaf_size", 1.5),
        ("n_neighbors", True),
    ]:
        with pytest.raises(ValueError, match=name):
            cls(**{name: value}).fit(X, y)
    with pytest.raises(NotFittedError):
        cls().predict(X)
    model = cls(n_neighbors=3).fit(X, y)
    for bad_Q, message in [
        (np.zeros((1, 3)), "X has 3 features, but .* is expecting 2 features"),
        ([[np.nan, 0.0]], "Input X contains NaN"),
        (np.zeros(2), "Expected 2D array"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.predict(bad_Q)
    model.set_params(n_neighbors=5)  # more neighbours than rows: refused, as sklearn does
    with pytest.raises(ValueError, match="n_neighbors=5 is larger than the 4 training rows"):
        model.predict(X)


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_values_whose_distances_overflow_are_refused_naming_the_column(cls, weights):
    """Beyond 1e150 squared distances may be infinite: every neighbour then weighs 0 (a
    division by zero under "distance") or ties with all (an arbitrary answer)."""
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(30, 3)), np.arange(30) % 2
    bad = X.copy()
    bad[4, 1] = -1e155
    with pytest.raises(ValueError, match=r"column 1 holds values beyond ±1e\+150.* row 4"):
        fit(cls, bad, y, np.arange(30), weights=weights)
    model = fit(cls, X, y, np.arange(30), weights=weights)
    for Q in (bad, bad.tolist()):  # the serving path and scikit-learn's
        with pytest.raises(ValueError, match=r"column 1 holds values beyond ±1e\+150.* row 4"):
            model.predict(Q)
    edge = X.copy()
    edge[0] = [1e150, -1e150, 1e150]  # the bound itself is taken
    assert np.isfinite(fit(cls, edge, y, np.arange(30), weights=weights).predict(edge)).all()


@pytest.mark.parametrize("cls", MODELS)
def test_fit_refuses_fewer_rows_than_n_neighbors(cls):
    """Such a model could answer no prediction (issue 14, item 7): fit says so at once."""
    X, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="n_neighbors=5 needs at least 5 rows; fit got 4 samples"):
        cls(n_neighbors=5).fit(X, y)
    with pytest.raises(ValueError, match="got 1 sample"):  # the words scikit-learn's checks read
        cls(n_neighbors=2).fit(X[:1], y[:1])
    assert cls(n_neighbors=4).fit(X, y).row_ids_.size == 4


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("algorithm", ["brute", "index"])
def test_forget_keeps_n_neighbors_rows(cls, algorithm):
    """A request that would leave fewer rows than n_neighbors is refused, changing nothing,
    with a domain error (an ``EmptyModelError``): the store then retrains the model (or
    retires it) instead of serving a model whose every prediction fails."""
    X = np.arange(12, dtype=float).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    model = fit(cls, X, y, [10, 11, 12, 13, 14, 15], n_neighbors=3, algorithm=algorithm)
    model.forget([10, 11])
    snapshot = {k: v.copy() for k, v in arrays_of(model).items()}
    before = model.to_bytes()
    with pytest.raises(TooFewRowsError, match=r"leave .* with 2 rows; n_neighbors=3") as info:
        model.forget([12, 13])
    assert isinstance(info.value, EmptyModelError)
    assert model.to_bytes() == before
    for name, value in arrays_of(model).items():
        np.testing.assert_array_equal(value, snapshot[name], err_msg=name)
    assert model.predict(X).shape == (6,)
    assert model.forget([12]).n_forgotten == 1  # down to n_neighbors rows: allowed


def test_scikit_learn_api_and_the_protocol():
    model = KNNClassifier(3, weights="distance", algorithm="brute", leaf_size=7)
    assert clone(model).get_params() == model.get_params()
    assert model.set_params(n_neighbors=2).n_neighbors == 2
    assert isinstance(model, Unlearnable) and KNNRegressor.guarantee is Guarantee.EXACT
    X, y = np.arange(20, dtype=float).reshape(10, 2), np.arange(10) // 5
    assert model.fit(X, y).score(X, y) == 1.0
    assert KNNRegressor(2).fit(X, y.astype(float)).score(X, y.astype(float)) > 0.5
    np.testing.assert_array_equal(model.row_ids_, np.arange(10))
    np.testing.assert_array_equal(model.X_, X)
    labels = np.array(["cat", "dog"])[y]
    text = KNNClassifier(1).fit(X, labels)
    assert KNNClassifier.from_bytes(text.to_bytes()).predict(X[:1]).tolist() == ["cat"]


def test_auto_picks_the_index_for_many_rows_in_few_dimensions():
    rng = np.random.default_rng(5)
    pick = lambda n, d: KNNRegressor().fit(rng.normal(size=(n, d)), np.zeros(n)).algorithm_  # noqa: E731
    assert (pick(100, 3), pick(3000, 3), pick(3000, 17)) == ("brute", "index", "brute")


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("algorithm", ["brute", "index", "auto"])
def test_the_artifact_is_the_one_a_refit_writes(cls, algorithm):
    """Byte for byte: no forgotten ids, no dead rows, no tree, no count of forgets."""
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(50, 2)), rng.integers(0, 3, 50)
    ids = rng.permutation(1000)[:50] + 10**9
    params = dict(n_neighbors=2, algorithm=algorithm, leaf_size=3)
    model = fit(cls, X, y, ids, **params)
    model.forget(ids[[4, 7]])
    model.forget(ids[[30]])
    keep = np.delete(np.arange(50), [4, 7, 30])
    refit = fit(cls, X[keep], y[keep], ids[keep], **params)
    assert model.to_bytes() == refit.to_bytes()
    _, _, state, arrays = _persist.load(model.to_bytes())
    assert state == {} and sorted(arrays) == sorted(
        ["X", "y", "row_ids"] + ["classes"] * (cls is KNNClassifier)
    )


def test_auto_turns_to_brute_force_when_forgetting_leaves_few_rows():
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(2002, 2)), rng.integers(0, 2, 2002)
    model = KNNClassifier(3).fit(X, y)
    assert model.algorithm_ == "index"
    assert model.forget([0, 1]).paths == (Path.FAST, Path.FAST)  # 2,000 rows: still the tree
    r = model.forget([2])
    assert model.algorithm_ == "brute" and r.paths == (Path.SLOW,)  # as a refit on 1,999 rows
    keep = np.arange(3, 2002)
    assert_same(model, KNNClassifier(3).fit(X[keep], y[keep], row_ids=keep), X[:50])
