"""forget.scoring's quantized tree traversal ("qtt"): rows binned to the forest's own cut-offs
score bit for bit as the float traversal and the forest, before and after forgetting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from forget import HedgeCutClassifier
from forget.scoring import CompiledForest, compile_forest, compiled, from_sklearn
from forget.scoring import _quantized as Q
from tests.forget.test_scoring import (
    chain_tree,
    forests,
    problems,
    query_rows,
    random_tree,
    reference_proba,
    slow_ok,
)


def all_cutoffs(cf: CompiledForest) -> set[tuple[int, float]]:
    """(feature, float32 cut-off) of every split the compiled trees hold."""
    pool, out = cf._pool, set()
    for t in range(cf.n_trees):
        s = pool.span(t)
        split = pool.rec[s, 2] != np.arange(s.start, s.stop)
        out |= set(
            zip(pool.rec[s, 0][split].tolist(), pool.recf[s, 1][split].tolist(), strict=True)
        )
    return out


def edge_set(qt: Q.QuantizedTrees) -> set[tuple[int, float]]:
    return {
        (f, float(e)) for f in range(qt.n_features) for e in qt.edges[qt.offs[f] : qt.offs[f + 1]]
    }


# ---------------------------------------------------------------------------- binning


floats32 = st.floats(width=32, allow_nan=False, allow_infinity=True)


@slow_ok(200)
@given(
    st.lists(floats32, min_size=0, max_size=40),
    st.lists(floats32, min_size=1, max_size=60),
)
def test_a_bin_is_searchsorted_left_so_bin_le_j_iff_x_le_edge_j(cuts, xs):
    edges = np.unique(np.array(cuts, np.float32))  # -0.0 and 0.0 compare equal: one edge
    with np.errstate(over="ignore"):  # beside max float32: inf
        beside = [np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)]
    X = np.concatenate([np.array(xs, np.float32), edges, *beside]).astype(np.float32)[:, None]
    B = np.empty(X.shape, np.uint32)
    Q.binarize(X, edges, np.array([0, edges.size]), B)
    np.testing.assert_array_equal(B[:, 0], np.searchsorted(edges, X[:, 0], side="left"))
    for j, e in enumerate(edges):  # the split (f, e_j): left exactly when x <= e_j
        np.testing.assert_array_equal(B[:, 0] <= j, X[:, 0] <= e)


def test_bins_take_the_smallest_dtype_that_holds_them():
    assert Q.bin_dtype(0) is np.uint8 and Q.bin_dtype(255) is np.uint8
    assert Q.bin_dtype(256) is np.uint16 and Q.bin_dtype(65_535) is np.uint16
    assert Q.bin_dtype(65_536) is np.uint32
    with pytest.raises(ValueError, match="too many to quantize"):
        Q.bin_dtype(2**32)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2)) * 20
    for n_cuts, dtype in ((255, np.uint8), (256, np.uint16)):
        cuts = rng.permutation(np.arange(n_cuts) / 7 - 15)
        trees = [ladder(cuts), np.array(random_tree(rng, 2, 2, 5, 0.9, cuts[:9]))]
        cf = CompiledForest(trees, 2, 2, strategy="qtt")
        qt = cf._layout("qtt")
        assert isinstance(qt, Q.QuantizedTrees) and qt.dtype is dtype
        assert int(np.diff(qt.offs).max()) == n_cuts
        X[:n_cuts, 0] = cuts  # rows on every cut-off
        np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))


def ladder(cuts: np.ndarray) -> np.ndarray:
    """One tree, a split on feature 0 per cut-off, each the left child of the one before."""
    splits = [[0.0, float(c), 0.0, 0.0] for c in cuts]
    leaves = [[-1.0, 0.0, float(k % 3), 1.0] for k in range(len(cuts) + 1)]
    return np.array(splits + leaves)


# ---------------------------------------------------------------------------- exactness


@slow_ok(40)
@given(forests())
def test_quantized_equals_the_reference_and_the_float_traversal(forest):
    trees, n_classes, d, X = forest
    want = reference_proba(trees, n_classes, X)
    q = CompiledForest(trees, n_classes, d, strategy="qtt")
    tt = CompiledForest(trees, n_classes, d, strategy="tt")
    np.testing.assert_array_equal(q.predict_proba(X), want)
    np.testing.assert_array_equal(tt.predict_proba(X), want)
    for i in range(len(X)):  # one row: eight trees descend together
        np.testing.assert_array_equal(q.predict_proba(X[i : i + 1]), want[i : i + 1])
    assert edge_set(q._layout("qtt")) == all_cutoffs(q)  # type: ignore[arg-type]


@slow_ok(15)
@given(forests(deep=True))
def test_deep_trees_quantized(forest):
    trees, n_classes, d, X = forest
    q = CompiledForest(trees, n_classes, d, strategy="qtt")
    np.testing.assert_array_equal(q.predict_proba(X), reference_proba(trees, n_classes, X))


@slow_ok(25)
@given(problems())
def test_quantized_equals_the_model_before_and_after_forgetting(problem):
    X, y, params = problem
    model = HedgeCutClassifier(**params).fit(X, y)
    rng = np.random.default_rng(0)
    Q_rows = query_rows(model, X, rng)  # rows on every cut-off, beside and far from them
    q = compile_forest(model, "qtt")
    np.testing.assert_array_equal(q.predict_proba(Q_rows), model.predict_proba(Q_rows))
    alive = np.arange(len(X))
    for _ in range(2):
        if len(alive) < 3:
            break
        gone = rng.choice(alive, size=int(rng.integers(1, len(alive) // 2 + 1)), replace=False)
        before = model.tree_structures()
        model.forget(gone.tolist())
        alive = np.setdiff1d(alive, gone)
        q.update(model, before)
        Q_rows = query_rows(model, X, rng)  # the new trees' cut-offs too
        want = model.predict_proba(Q_rows)
        np.testing.assert_array_equal(q.predict_proba(Q_rows), want)
        tt = compile_forest(model, "tt")
        np.testing.assert_array_equal(tt.predict_proba(Q_rows), want)
        assert all_cutoffs(q) <= edge_set(q._layout("qtt"))  # type: ignore[arg-type]


def test_parallel_blocks_equal_one_thread():
    from forget.datasets import load_adult, train_test_split

    X, Xte, y, _ = train_test_split(load_adult())
    model = HedgeCutClassifier(n_estimators=10, random_state=0).fit(X[:4000], y[:4000])
    rows = Xte[:2500]
    want = model.predict_proba(rows)
    serial = compile_forest(model, "qtt", n_jobs=1)
    parallel = compile_forest(model, "qtt", n_jobs=2)
    assert serial.plan(len(rows)) == compiled.Plan("qtt", "numba", "cpu", 1)
    np.testing.assert_array_equal(serial.predict_proba(rows), want)
    np.testing.assert_array_equal(parallel.predict_proba(rows), want)
    np.testing.assert_array_equal(serial.predict(rows), model.predict(rows))


def test_sklearn_forests_quantized_bitwise():
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestRegressor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    X[:, 2] = np.round(X[:, 2])  # ties on a cut-off's neighbours
    y = (X[:, 0] + X[:, 2] > 0).astype(int)
    et = ExtraTreesClassifier(n_estimators=15, random_state=0).fit(X, y)
    rows = np.concatenate([X, rng.normal(size=(200, 4)) * 3])
    np.testing.assert_array_equal(
        from_sklearn(et, "qtt").predict_proba(rows), et.predict_proba(rows)
    )
    rf = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 1])
    np.testing.assert_array_equal(from_sklearn(rf, "qtt").predict(rows), rf.predict(rows))


# ---------------------------------------------------------------------------- refresh


def test_a_new_cutoff_rebuilds_the_edges_a_known_one_only_reencodes(monkeypatch):
    rng = np.random.default_rng(5)
    cuts = np.array([-1.0, 0.0, 1.0])
    trees = [np.array(random_tree(rng, 2, 2, 4, 0.9, cuts)) for _ in range(6)]
    X = np.concatenate([rng.normal(size=(40, 2)), np.full((3, 2), 0.5), np.full((3, 2), 0.25)])
    cf = CompiledForest(trees, 2, 2, strategy="qtt")
    cf.predict_proba(X)
    rebuilds: list[int] = []
    real = Q.QuantizedTrees.rebuild

    def counted(self: Q.QuantizedTrees) -> None:
        rebuilds.append(1)
        real(self)

    monkeypatch.setattr(Q.QuantizedTrees, "rebuild", counted)
    # the same cut-offs: tree 2 is re-encoded alone
    trees[2] = np.array(random_tree(rng, 2, 2, 2, 1.0, cuts))
    cf.refresh({2: trees[2]})
    assert not rebuilds
    np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))
    # a cut-off between two edges: rows at 0.25 and 0.5 now part; every node is re-encoded
    trees[4] = np.array([[0.0, 0.375, 0, 0], [-1.0, 0, 5.0, 0.0], [-1.0, 0, 0.0, 5.0]])
    cf.refresh({4: trees[4]})
    assert rebuilds == [1]
    assert (0, 0.375) in edge_set(cf._qtt)  # type: ignore[arg-type]
    np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))
    assert edge_set(cf._qtt) == all_cutoffs(cf)  # type: ignore[arg-type]


def test_refresh_survives_pool_moves_and_growth():
    rng = np.random.default_rng(6)
    cuts = np.round(rng.normal(size=40), 2)
    trees = [np.array(random_tree(rng, 3, 3, 2, 0.9, cuts)) for _ in range(5)]
    X = rng.normal(size=(50, 3))
    cf = CompiledForest(trees, 3, 3, strategy="qtt")
    generations = set()
    for step in range(40):
        t = int(rng.integers(5))
        trees[t] = (
            np.array(chain_tree(rng, 3, 3, int(rng.integers(1, 30)), cuts))
            if step % 2
            else np.array(random_tree(rng, 3, 3, int(rng.integers(0, 7)), 0.9, cuts))
        )
        cf.refresh({t: trees[t]})
        generations.add(cf._pool.generation)
        np.testing.assert_array_equal(
            cf.predict_proba(X), reference_proba(trees, 3, X), err_msg=f"step {step}"
        )
    assert len(generations) > 1  # the pool moved records: the layout followed


# ---------------------------------------------------------------------------- the option


def test_qtt_is_numba_only_and_auto_never_picks_it(monkeypatch):
    trees = [np.array([[0.0, 0.5, 0, 0], [-1.0, 0, 1.0, 0.0], [-1.0, 0, 0.0, 1.0]])]
    with pytest.raises(ValueError, match="numba only"):
        CompiledForest(trees, 2, 1, strategy="qtt", backend="torch")
    monkeypatch.setattr(compiled._torch, "cuda_available", lambda: True)
    q = CompiledForest(trees, 2, 1, strategy="qtt")
    assert q.plan(10**6).backend == "numba" and q.plan(1).strategy == "qtt"
    auto = CompiledForest(trees, 2, 1, backend="numba")
    assert {auto.plan(n).strategy for n in (1, 10_000)} <= {"tt", "ptt", "gemm"}
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="NaN or infinite"):
            q.predict_proba(np.array([[bad]]))
    assert q.predict_proba(np.empty((0, 1))).shape == (0, 2)
    np.testing.assert_array_equal(q.predict_proba([[0.5], [0.6]]), [[1.0, 0.0], [0.0, 1.0]])


def test_too_many_cutoffs_for_the_packed_nodes_are_refused(monkeypatch):
    trees = [np.array([[0.0, 0.5, 0, 0], [-1.0, 0, 1.0, 0.0], [-1.0, 0, 0.0, 1.0]])]
    cf = CompiledForest(trees, 2, 2**30, strategy="tt")  # 30 bits for a feature index
    with pytest.raises(ValueError, match="too many to quantize"):
        Q.QuantizedTrees(cf._pool, 2**30)


# ---------------------------------------------------------------------------- linear: int8


@slow_ok(60)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 12),
    st.sampled_from([1e-3, 1.0, 1e3, 1e6]),
    st.sampled_from([0.0, 0.1, 10.0]),
)
def test_int8_linear_weights_stay_within_their_stated_bound(seed, d, magnitude, alpha):
    from forget.linear import Int8Weights, LinearRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, d)) * magnitude * rng.random(d)
    y = X @ rng.normal(size=d) * rng.choice([1e-3, 1.0, 1e3]) + rng.normal(size=40)
    model = LinearRegression(alpha=alpha).fit(X, y)
    w = Int8Weights.from_model(model)
    assert w.q.dtype == np.int8 and int(np.abs(w.q).max(initial=0)) <= 127
    rows = np.concatenate([X, rng.normal(size=(60, d)) * magnitude * 10, -X])
    err = np.abs(w.predict(rows) - model.predict(rows))
    bound = w.error_bound(rows)
    assert (err <= bound).all(), float((err / bound).max())
    # the bound is the half step over the row's 1-norm, and little more
    l1 = np.abs(rows).sum(axis=1)
    assert (bound <= w.scale / 2 * l1 * (1 + 1e-9) + 1e-9 * (np.abs(model.intercept_) + 1)).all()


def test_int8_linear_refuses_bad_input():
    from forget.linear import Int8Weights, LinearRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]])
    w = Int8Weights.from_model(LinearRegression().fit(X, np.array([1.0, 2.0, 4.0])))
    with pytest.raises(ValueError, match=r"shape \(rows, 2\)"):
        w.predict(X[:, :1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        w.predict(np.array([[np.nan, 0.0]]))
    with pytest.raises(Exception, match="not fitted"):
        Int8Weights.from_model(LinearRegression())
