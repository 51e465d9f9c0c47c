"""forget.scoring: every strategy × backend scores bit for bit as the forest; refresh is local."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from forget import HedgeCutClassifier
from forget.scoring import (
    CompiledForest,
    Plan,
    _gemm,
    _parse,
    _ptt,
    _torch,
    changed_trees,
    compile_forest,
    compiled,
)
from forget.scoring import _kernels as K
from tests.forget.helpers import held_outside_trees, trees_held

TORCH = _torch.importable()
COMBOS = [(s, b) for b in ("numba", "torch") for s in ("tt", "ptt", "gemm")]
ALL = [(s, b) for b in ("numba", *(("torch",) if TORCH else ())) for s in ("tt", "ptt", "gemm")]


def needs(backend: str) -> None:
    if backend == "torch":
        pytest.importorskip("torch")


def slow_ok(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------- a reference


def right_children(enc: np.ndarray) -> np.ndarray:
    right = np.full(len(enc), -1)
    stack: list[int] = []
    for v in range(len(enc)):
        if v > 0 and enc[v - 1, 0] < 0:
            right[stack.pop()] = v
        if enc[v, 0] >= 0:
            stack.append(v)
    return right


def reference_proba(structures: list[np.ndarray], n_classes: int, X: np.ndarray) -> np.ndarray:
    """The documented semantics, plainly: float32 rows, ``<=`` goes left, trees in order."""
    X32 = np.asarray(X, dtype=np.float64).astype(np.float32)
    out = np.zeros((len(X32), n_classes))
    used = np.zeros(len(X32))
    for enc in structures:
        right = right_children(enc)
        for i, x in enumerate(X32):
            v = 0
            while enc[v, 0] >= 0:
                v = v + 1 if x[int(enc[v, 0])] <= enc[v, 1] else right[v]
            counts = enc[v, 2:]
            tot = 0.0
            for c in counts:
                tot += c
            if tot > 0:
                out[i] += counts / tot
                used[i] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(used[:, None] > 0, out / used[:, None], 1.0 / n_classes)


def random_tree(rng, d, n_classes, max_depth, p_split, cuts, depth=0) -> list[list[float]]:
    if depth < max_depth and rng.random() < p_split:
        node = [float(rng.integers(d)), float(rng.choice(cuts))] + [0.0] * n_classes
        left = random_tree(rng, d, n_classes, max_depth, p_split, cuts, depth + 1)
        right = random_tree(rng, d, n_classes, max_depth, p_split, cuts, depth + 1)
        return [node, *left, *right]
    counts = rng.integers(0, 4, n_classes) * (rng.random() > 0.2)  # some leaves are empty
    return [[-1.0, 0.0, *map(float, counts)]]


def chain_tree(rng, d, n_classes, depth, cuts) -> list[list[float]]:
    """A deep, thin tree: one split per level, a leaf on the other side."""
    if depth == 0:
        return [[-1.0, 0.0, *map(float, rng.integers(1, 5, n_classes))]]
    node = [float(rng.integers(d)), float(rng.choice(cuts))] + [0.0] * n_classes
    leaf = [[-1.0, 0.0, *map(float, rng.integers(0, 5, n_classes))]]
    rest = chain_tree(rng, d, n_classes, depth - 1, cuts)
    return [node, *leaf, *rest] if rng.random() < 0.5 else [node, *rest, *leaf]


@st.composite
def forests(draw, deep: bool = False):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = draw(st.integers(1, 5))
    n_classes = draw(st.integers(1, 4))
    cuts = np.round(rng.normal(size=6), 1)
    cuts = np.concatenate([cuts, [0.1, 1 / 3]])  # 0.1 and 1/3 are not float32 numbers
    trees = []
    for _ in range(draw(st.integers(1, 11))):
        if deep and rng.random() < 0.5:
            t = chain_tree(rng, d, n_classes, int(rng.integers(12, 40)), cuts)
        else:
            t = random_tree(rng, d, n_classes, draw(st.integers(0, 6)), 0.7, cuts)
        trees.append(np.array(t))
    # rows on, just beside and far from the cut-offs (ties go left)
    pool = np.concatenate([cuts, np.nextafter(cuts, 9), np.nextafter(cuts, -9), [-9.0, 9.0]])
    X = rng.choice(pool, size=(draw(st.integers(1, 40)), d))
    X[0] = 0.1  # float64 0.1 rounds up in float32: above the float32 cut-off 0.1 rounds to
    return trees, n_classes, d, X


# ---------------------------------------------------------------------------- exactness


@slow_ok(40)
@given(forests())
def test_every_strategy_and_backend_matches_the_reference(forest):
    trees, n_classes, d, X = forest
    want = reference_proba(trees, n_classes, X)
    for strategy, backend in ALL:
        got = CompiledForest(trees, n_classes, d, strategy=strategy, backend=backend)
        np.testing.assert_array_equal(got.predict_proba(X), want, err_msg=f"{strategy}/{backend}")


@slow_ok(15)
@given(forests(deep=True))
def test_deep_trees_by_traversal(forest):
    trees, n_classes, d, X = forest
    want = reference_proba(trees, n_classes, X)
    for backend in ("numba", *(("torch",) if TORCH else ())):
        cf = CompiledForest(trees, n_classes, d, strategy="tt", backend=backend)
        np.testing.assert_array_equal(cf.predict_proba(X), want)
    auto = CompiledForest(trees, n_classes, d)
    np.testing.assert_array_equal(auto.predict_proba(X), want)
    if auto.max_depth_ > _ptt.MAX_DEPTH:
        assert auto.plan(len(X)).strategy == "tt"
        with pytest.raises(ValueError, match="perfect tree traversal"):
            CompiledForest(trees, n_classes, d, strategy="ptt")


@slow_ok(15)
@given(st.integers(0, 2**32 - 1), st.integers(8, 40), st.integers(1, 7))
def test_a_few_rows_through_many_trees_of_unequal_depths(seed, n_trees, n_rows):
    """Fewer rows than walk together: trees descend eight at a time, each slot taking the
    next tree when its own reaches a leaf; the leaves still add up in tree order."""
    rng = np.random.default_rng(seed)
    cuts = np.round(rng.normal(size=6), 1)
    trees = [
        np.array(
            chain_tree(rng, 3, 2, int(rng.integers(0, 30)), cuts)
            if rng.random() < 0.5
            else random_tree(rng, 3, 2, int(rng.integers(0, 7)), 0.7, cuts)
        )
        for _ in range(n_trees)
    ]
    X = rng.choice(np.concatenate([cuts, np.nextafter(cuts, 9)]), size=(n_rows, 3))
    cf = CompiledForest(trees, 2, 3, strategy="tt")
    np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))


@st.composite
def problems(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(10, 120))
    d = draw(st.integers(1, 5))
    n_classes = draw(st.integers(2, 4))
    X = rng.integers(0, draw(st.integers(2, 8)), size=(n, d)) + rng.normal(size=(n, d)) * 0.1
    y = rng.integers(0, n_classes, size=n)
    params = dict(
        n_estimators=draw(st.integers(1, 12)),
        max_depth=draw(st.sampled_from([None, None, 1, 2, 3, 5])),
        min_samples_leaf=draw(st.integers(1, 3)),
        max_samples=draw(st.sampled_from([1.0, 0.5, 0.1, 0.02])),  # small: empty trees
        max_variants=draw(st.integers(0, 1)),
        hedge_min_samples=draw(st.sampled_from([0, 8])),
        random_state=draw(st.integers(0, 2**31)),
    )
    return X, y, params


def query_rows(model: HedgeCutClassifier, X: np.ndarray, rng) -> np.ndarray:
    """Training rows, random rows, and rows exactly on each of the model's cut-offs."""
    splits = [s[s[:, 0] >= 0][:, :2] for s in model.tree_structures()]
    splits = np.concatenate([np.empty((0, 2)), *splits])
    on_cuts = np.repeat(X[:1], len(splits), axis=0)
    on_cuts[np.arange(len(splits)), splits[:, 0].astype(int)] = splits[:, 1]
    return np.concatenate([X, on_cuts, rng.normal(size=(7, X.shape[1])) * 5])


@slow_ok(25)
@given(problems())
def test_compiled_equals_the_model_then_refresh_equals_compiling_again(problem):
    X, y, params = problem
    model = HedgeCutClassifier(**params).fit(X, y)
    rng = np.random.default_rng(0)
    Q = query_rows(model, X, rng)
    scorers = {sb: compile_forest(model, *sb) for sb in ALL}
    want = model.predict_proba(Q)
    for sb, cf in scorers.items():
        np.testing.assert_array_equal(cf.predict_proba(Q), want, err_msg=str(sb))
    alive = np.arange(len(X))
    for _ in range(2):
        if len(alive) < 3:
            break
        gone = rng.choice(alive, size=int(rng.integers(1, len(alive) // 2 + 1)), replace=False)
        before = model.tree_structures()
        model.forget(gone.tolist())
        alive = np.setdiff1d(alive, gone)
        after = model.tree_structures()
        want = model.predict_proba(Q)
        for sb, cf in scorers.items():
            # refresh of the changed trees; all of them when a class left with its last row
            assert [a.tolist() for a in cf.update(model, before)] == [a.tolist() for a in after]
            assert cf.n_classes == len(model.classes_)
            np.testing.assert_array_equal(cf.predict_proba(Q), want, err_msg=str(sb))
            fresh = CompiledForest(after, len(model.classes_), X.shape[1], strategy=sb[0],
                                   backend=sb[1])  # fmt: skip
            np.testing.assert_array_equal(fresh.predict_proba(Q), want)


def test_adult_sized_forest_matches_the_model_in_every_plan():
    from forget.datasets import load_adult, train_test_split

    X, Xte, y, _ = train_test_split(load_adult())
    model = HedgeCutClassifier(n_estimators=20, random_state=0).fit(X[:8000], y[:8000])
    rows = Xte[:3000]
    want = model.predict_proba(rows)
    serial = compile_forest(model, n_jobs=1)
    parallel = compile_forest(model, n_jobs=2)
    assert serial.plan(len(rows)) == Plan("tt", "numba", "cpu", 1)
    assert parallel.plan(len(rows)).threads == min(2, compiled._max_numba_threads())
    assert parallel.plan(compiled.PARALLEL_MIN_ROWS - 1).threads == 1
    for cf in (serial, parallel):
        np.testing.assert_array_equal(cf.predict_proba(rows), want)
        for i in range(0, 40, 7):  # small batches take the tree-interleaved path
            np.testing.assert_array_equal(cf.predict_proba(rows[i : i + 3]), want[i : i + 3])
    np.testing.assert_array_equal(serial.predict(rows), model.predict(rows))
    # the kernels release the GIL: a server's threads score side by side, each exactly
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        chunks = list(pool.map(serial.predict_proba, np.array_split(rows, 8)))
    np.testing.assert_array_equal(np.concatenate(chunks), want)


# ---------------------------------------------------------------------------- refresh


def test_refresh_recompiles_only_the_trees_given(monkeypatch):
    rng = np.random.default_rng(1)
    cuts = np.array([-1.0, 0.0, 0.5, 1.0])
    trees = [np.array(random_tree(rng, 3, 2, 5, 0.8, cuts)) for _ in range(12)]
    X = rng.normal(size=(50, 3))
    cf = CompiledForest(trees, 2, 3, strategy="ptt")
    cf.predict_proba(X)
    parsed = []
    real = _parse.parse_structure

    def spy(enc, n_classes, n_features, t, leaves):
        parsed.append(t)
        return real(enc, n_classes, n_features, t, leaves)

    monkeypatch.setattr(compiled, "parse_structure", spy)
    filled = []
    real_fill = _ptt.PerfectTrees.fill
    monkeypatch.setattr(
        _ptt.PerfectTrees,
        "fill",
        lambda self, pool, t: (filled.append(t), real_fill(self, pool, t)),
    )
    new = {3: np.array(random_tree(rng, 3, 2, 4, 0.8, cuts)), 7: trees[7][:1].copy()}
    new[7][0] = [-1.0, 0.0, 2.0, 1.0]  # a whole tree shrinks to one leaf
    before = cf._pool.rec.copy()
    cf.refresh(new)
    assert sorted(parsed) == [3, 7] and sorted(filled) == [3, 7]
    for t in set(range(12)) - {3, 7}:
        s = cf._pool.span(t)
        np.testing.assert_array_equal(cf._pool.rec[s], before[s])
    trees[3], trees[7] = new[3], new[7]
    np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))


@pytest.mark.parametrize(("strategy", "backend"), COMBOS)
def test_refresh_in_place_and_after_moves(strategy, backend):
    needs(backend)
    rng = np.random.default_rng(2)
    cuts = np.array([-1.0, 0.0, 0.3, 1.0])
    trees = [np.array(random_tree(rng, 4, 3, 2, 0.9, cuts)) for _ in range(5)]
    X = rng.normal(size=(30, 4))
    cf = CompiledForest(trees, 3, 4, strategy=strategy, backend=backend)
    cf.predict_proba(X)  # the device copy exists: later refreshes patch or re-upload it
    generations = set()
    for step in range(30):
        t = int(rng.integers(5))
        depth = int(rng.integers(0, 8)) if step % 3 else 2
        trees[t] = np.array(random_tree(rng, 4, 3, depth, 0.9, cuts))
        cf.refresh({t: trees[t]})
        generations.add(cf._pool.generation)
        want = reference_proba(trees, 3, X)
        np.testing.assert_array_equal(cf.predict_proba(X), want, err_msg=f"step {step}")
        fresh = CompiledForest(trees, 3, 4, strategy=strategy, backend=backend)
        np.testing.assert_array_equal(fresh.predict_proba(X), want)
        assert held_outside_trees(cf._pool) == 0  # the old slot, or its tail, zeroed
    assert len(generations) > 1  # slots moved or the pool grew along the way
    assert cf._pool.tail <= 2 * int(cf._pool.caps.sum()) + 1


def subtree_end(enc: np.ndarray, at: int) -> int:
    """Where the subtree whose root is row ``at`` of a preorder structure ends."""
    open_, j = 1, at
    while open_:
        open_ += 1 if enc[j, 0] >= 0 else -1
        j += 1
    return j


def row_depth(enc: np.ndarray, at: int) -> int:
    depth, stack = 0, []  # (depth of the node whose right child comes next)
    for v in range(at + 1):
        if v > 0:
            depth = depth + 1 if enc[v - 1, 0] >= 0 else stack.pop() + 1
        if enc[v, 0] >= 0:
            stack.append(depth)
    return depth


@slow_ok(40)
@given(st.integers(0, 2**32 - 1))
def test_splices_replace_subtrees_and_leave_nothing_else(seed):
    """Splice random subtrees into random trees, one after another (each at the position a
    fresh compile or the last splice gave the node): scores stay the plain semantics' of the
    trees as changed, no other tree changes, and no record outside the trees holds
    anything; a tree out of room is refused, unchanged, and refreshed whole instead."""
    rng = np.random.default_rng(seed)
    cuts = np.array([-1.0, -0.3, 0.0, 0.4, 1.0])
    trees = [np.array(random_tree(rng, 3, 2, 6, 0.8, cuts)) for _ in range(4)]
    where = [np.arange(len(enc)) for enc in trees]  # each row's index in its tree's records
    X = rng.normal(size=(60, 3))
    cf = CompiledForest(trees, 2, 3, strategy="auto", backend="numba")
    refused = 0
    for _ in range(12):
        t = int(rng.integers(len(trees)))
        enc = trees[t]
        at = int(rng.integers(len(enc)))
        end = subtree_end(enc, at)
        sub = np.array(random_tree(rng, 3, 2, int(rng.integers(0, 5)), 0.7, cuts))
        before = trees_held(cf._pool)
        got = cf.splice(t, int(where[t][at]), sub, row_depth(enc, at))
        trees[t] = np.concatenate([enc[:at], sub, enc[end:]])
        if got is None:  # no room: unchanged, then the tree goes whole
            refused += 1
            cf.refresh({t: trees[t]})
            where[t] = np.arange(len(trees[t]))
        else:
            where[t] = np.concatenate([where[t][:at], got, where[t][end:]])
            assert cf.depths_[t] >= max(row_depth(trees[t], v) for v in range(len(trees[t])))
        for u, (was, now) in enumerate(zip(before, trees_held(cf._pool), strict=True)):
            if u != t:  # (a refresh may compact the pool: records move, trees stay)
                np.testing.assert_array_equal(now, was)
        np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))
        assert held_outside_trees(cf._pool) == 0
    assert refused < 12


def test_splice_declines_where_another_layout_scores_and_checks_its_position():
    rng = np.random.default_rng(5)
    cuts = np.array([-1.0, 0.0, 1.0])
    trees = [np.array(random_tree(rng, 2, 2, 4, 1.0, cuts)) for _ in range(3)]
    leaf = np.array([[-1.0, 0.0, 3.0, 1.0]])
    for strategy, backend in (("ptt", "numba"), ("gemm", "numba"), ("qtt", "numba")):
        cf = CompiledForest(trees, 2, 2, strategy=strategy, backend=backend)
        rec = cf._pool.rec.copy()
        assert cf.splice(0, 1, leaf, 1) is None  # those layouts copy whole trees
        np.testing.assert_array_equal(cf._pool.rec, rec)
    cf = CompiledForest(trees, 2, 2, strategy="tt", backend="numba")
    for t, at in ((3, 0), (0, len(trees[0])), (-1, 0), (0, -1)):
        with pytest.raises(ValueError, match="no record"):
            cf.splice(t, at, leaf, 0)
    with pytest.raises(ValueError, match="tree 1"):
        cf.splice(1, 0, np.array([[0.0, 0.5, 0.0, 0.0]]), 0)  # a split with no children
    assert cf.splice(1, 0, leaf, 0) is not None  # the whole tree, at its root
    X = rng.normal(size=(20, 2))
    np.testing.assert_array_equal(
        cf.predict_proba(X), reference_proba([trees[0], leaf, trees[2]], 2, X)
    )


def test_a_growing_tree_moves_and_the_pool_compacts(monkeypatch):
    rng = np.random.default_rng(4)
    cuts = np.array([-1.0, 0.0, 1.0])
    trees = [np.array([[-1.0, 0.0, 1.0, 0.0]]), np.array(random_tree(rng, 2, 2, 4, 0.9, cuts))]
    X = rng.normal(size=(40, 2))
    cf = CompiledForest(trees, 2, 2, strategy="tt")
    compactions = []
    real = type(cf._pool).compact
    monkeypatch.setattr(type(cf._pool), "compact", lambda p: (compactions.append(1), real(p)))
    for depth in range(1, 40):
        trees[0] = np.array(chain_tree(rng, 2, 2, depth, cuts))
        cf.refresh({0: trees[0]})
        np.testing.assert_array_equal(cf.predict_proba(X), reference_proba(trees, 2, X))
        assert cf._pool.garbage <= cf._pool.tail // 2
    assert compactions


def test_refresh_checks_everything_before_changing_anything():
    rng = np.random.default_rng(3)
    trees = [np.array(random_tree(rng, 2, 2, 3, 0.8, np.array([0.0, 1.0]))) for _ in range(4)]
    X = rng.normal(size=(20, 2))
    cf = CompiledForest(trees, 2, 2, strategy="gemm")
    want = cf.predict_proba(X)
    bad = np.array([[0.0, 0.5, 0, 0]])  # a split without children
    for changed in ({0: trees[1], 2: bad}, {9: trees[0]}, {-1: trees[0]}, {"0": trees[0]}):
        with pytest.raises(ValueError):
            cf.refresh(changed)  # type: ignore[arg-type]
        np.testing.assert_array_equal(cf.predict_proba(X), want)
    deep = np.array(chain_tree(rng, 2, 2, 20, np.array([0.0, 1.0])))
    ptt = CompiledForest(trees, 2, 2, strategy="ptt")
    with pytest.raises(ValueError, match="perfect tree traversal"):
        ptt.refresh({1: deep})
    np.testing.assert_array_equal(ptt.predict_proba(X), want)
    auto = CompiledForest(trees, 2, 2)
    auto.predict_proba(X)
    auto.refresh({1: deep})  # auto moves on to tree traversal
    assert auto.plan(5).strategy == "tt"
    trees[1] = deep
    np.testing.assert_array_equal(auto.predict_proba(X), reference_proba(trees, 2, X))


def test_changed_trees():
    a = [np.zeros((1, 4)), np.ones((3, 4))]
    b = [np.zeros((1, 4)), np.ones((1, 4))]
    assert list(changed_trees(a, b)) == [1]
    assert changed_trees(a, a) == {}
    with pytest.raises(ValueError, match="trees before"):
        changed_trees(a, b[:1])


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return HedgeCutClassifier(n_estimators=6, random_state=0).fit(X, y), X


@pytest.mark.parametrize(("strategy", "backend"), COMBOS)
def test_bad_rows_are_refused_and_an_empty_batch_is_empty(small, strategy, backend):
    needs(backend)
    model, X = small
    cf = compile_forest(model, strategy, backend)
    with pytest.raises(ValueError, match="3 features, the forest was compiled for 4"):
        cf.predict_proba(X[:, :3])
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X[:5].copy()
        Xb[2, 1] = bad
        with pytest.raises(
            ValueError, match=r"NaN or infinite values at \(row, column\) \[\[2, 1\]\]"
        ):
            cf.predict_proba(Xb)
        with pytest.raises(ValueError, match="NaN or infinite"):
            cf.predict_proba(Xb.astype(np.float32))
    with pytest.raises(ValueError, match="2-d"):
        cf.predict_proba(X[0])
    with pytest.raises(ValueError, match="numbers"):
        cf.predict_proba([["a", "b", "c", "d"]])
    empty = cf.predict_proba(np.empty((0, 4)))
    assert empty.shape == (0, 3) and empty.dtype == np.float64
    assert cf.predict(np.empty((0, 4))).shape == (0,)
    np.testing.assert_array_equal(cf.predict(X), model.predict(X))
    np.testing.assert_array_equal(cf.predict(X.tolist(), classes=["a", "b", "c"]),
                                  np.array(["a", "b", "c"])[model.predict(X)])  # fmt: skip


def test_bad_structures_and_parameters_are_refused():
    leaf = np.array([[-1.0, 0.0, 1.0, 2.0]])
    split = np.array([[0.0, 0.5, 0, 0], [-1.0, 0, 1, 0], [-1.0, 0, 0, 1]])
    cases = {
        "shape": [np.zeros((2, 3))],
        "feature": [np.array([[3.0, 0.5, 0, 0], [-1, 0, 1, 0], [-1, 0, 0, 1]])],
        "NaN": [np.array([[0.0, np.nan, 0, 0], [-1, 0, 1, 0], [-1, 0, 0, 1]])],
        "counts": [np.array([[-1.0, 0.0, -1.0, 2.0]])],
        "preorder": [split[:2]],
        "follow": [np.concatenate([leaf, leaf])],
    }
    for what, trees in cases.items():
        with pytest.raises(ValueError, match="tree 0"):
            CompiledForest(trees, 2, 2)
        assert what
    with pytest.raises(ValueError, match="at least one tree"):
        CompiledForest([], 2, 2)
    with pytest.raises(ValueError, match="strategy"):
        CompiledForest([leaf], 2, 2, strategy="fast")
    with pytest.raises(ValueError, match="backend"):
        CompiledForest([leaf], 2, 2, backend="jax")
    with pytest.raises(ValueError, match="n_features"):
        CompiledForest([leaf], 2, 0)
    with pytest.raises(ValueError, match="n_jobs"):
        CompiledForest([leaf], 2, 2, n_jobs=0)
    with pytest.raises(ValueError, match="classes"):
        CompiledForest([leaf], 2, 2).predict(np.zeros((1, 2)), classes=[1, 2, 3])


def test_gemm_refuses_trees_too_large(monkeypatch):
    monkeypatch.setattr(_gemm, "MAX_CELLS", 50)
    rng = np.random.default_rng(0)
    big = [np.array(chain_tree(rng, 2, 2, 9, np.array([0.0, 1.0]))) for _ in range(2)]
    with pytest.raises(ValueError, match="GEMM needs"):
        CompiledForest(big, 2, 2, strategy="gemm")
    assert CompiledForest(big, 2, 2).plan(1).strategy in ("ptt", "tt")


def test_uniform_when_no_tree_votes():
    empty = np.array([[0.0, 0.0, 0, 0, 0], [-1, 0, 0, 0, 0], [-1, 0, 0, 0, 0]])
    cf = CompiledForest([empty, empty[1:2]], 3, 1)
    np.testing.assert_array_equal(cf.predict_proba([[1.0], [-1.0]]), np.full((2, 3), 1 / 3))


def test_plan_picks_by_depth_batch_and_backend(monkeypatch):
    rng = np.random.default_rng(0)
    shallow = [np.array(random_tree(rng, 2, 2, 2, 1.0, np.array([0.0]))) for _ in range(3)]
    deep = [np.array(chain_tree(rng, 2, 2, 30, np.array([0.0]))) for _ in range(3)]
    limits = compiled.AUTO_MAX_DEPTH["numba"]
    want = "gemm" if limits["gemm"] >= 2 else "ptt" if limits["ptt"] >= 2 else "tt"
    assert CompiledForest(shallow, 2, 2).plan(10).strategy == want
    assert CompiledForest(deep, 2, 2).plan(10) == Plan("tt", "numba", "cpu", 1)
    assert CompiledForest(deep, 2, 2, strategy="tt").plan(10**6).threads == 1
    if TORCH:  # torch on a CPU: GEMM loses there too; Hummingbird's GEMM is for GPUs
        on_cpu = CompiledForest(shallow, 2, 2, backend="torch", device="cpu").plan(10)
        assert (on_cpu.strategy, on_cpu.device) == ("ptt", "cpu")
    monkeypatch.setattr(compiled._torch, "cuda_available", lambda: True)
    if TORCH:
        assert CompiledForest(deep, 2, 2).plan(compiled.TORCH_MIN_ROWS).backend == "torch"
    assert CompiledForest(deep, 2, 2).plan(compiled.TORCH_MIN_ROWS - 1).backend == "numba"


def test_a_one_row_plan_follows_a_refresh(monkeypatch):
    """Small batches reuse one plan; a refresh that deepens the trees past what the plan's
    strategy can lay out must not leave one-row predictions on it."""
    monkeypatch.setitem(compiled.AUTO_MAX_DEPTH, "numba", {"gemm": -1, "ptt": 10})
    rng = np.random.default_rng(3)
    trees = [np.array(random_tree(rng, 2, 2, 2, 1.0, np.array([0.0]))) for _ in range(3)]
    X = rng.normal(size=(4, 2))
    cf = CompiledForest(trees, 2, 2)
    before = cf.plan(1)
    assert before.strategy != "tt"
    np.testing.assert_array_equal(cf.predict_proba(X[:1]), reference_proba(trees, 2, X[:1]))
    trees[1] = np.array(chain_tree(rng, 2, 2, 40, np.array([0.0])))
    cf.refresh({1: trees[1]})
    assert cf.plan(1).strategy == "tt"
    for i in range(len(X)):
        np.testing.assert_array_equal(cf.predict_proba(X[i : i + 1]),
                                      reference_proba(trees, 2, X[i : i + 1]))  # fmt: skip
    assert cf._small_plan == cf.plan(1)


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [3.4028235e38, 3.4028236e38, 3.5e38, -3.5e38, 1e-46, -0.0]  # float32's edges
)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9), elements=FLOATS),
    st.booleans(),
    st.booleans(),
)
def test_row_kernels_agree_with_numpy(X, as32, transpose):
    """``all_finite`` is ``isfinite(X).all()``; ``as_float32`` is numpy's cast, bit for bit,
    on any layout (values past float32's range become inf, NaN stays NaN)."""
    with np.errstate(over="ignore"):
        X = X.astype(np.float32) if as32 else X
        want32 = X.T.astype(np.float32) if transpose else X.astype(np.float32)
    X = X.T if transpose else X
    assert K.all_finite(X) == bool(np.isfinite(X).all())
    got, finite = K.as_float32(X)
    assert got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want32.view(np.uint32))
    assert finite == bool(np.isfinite(want32).all())


def test_the_bench_runs_quick(tmp_path):
    from bench import scoring

    out = tmp_path / "scoring.json"
    payload = scoring.main(["--quick", "--out", str(out)])
    assert out.exists()
    rows = payload["results"]
    assert all(r["exact"] for r in rows if "exact" in r)
    assert {r["scorer"] for r in rows} >= {"sklearn ExtraTrees", "HedgeCut predict_proba"}
    # the same forest: ExtraTrees' own trees compiled, scored bitwise as scikit-learn does
    same = {r["scorer"]: r for r in payload["same_forest"]["results"]}
    assert same["forget CompiledForest"]["exact"] and same["sklearn predict_proba"]["exact"]
    assert all(r["ns_per_node"] > 0 for r in same.values() if "ns_per_node" in r)
    assert sum(k.startswith("bandwidth bound") for k in same) == 2
    assert "ONNX" in " ".join(same)  # measured, or why not


def _first_problem(a: np.ndarray, n_features: int, leaves: str) -> str | None:
    """The structure checks written out in numpy: what ``parse_structure`` must report."""
    f = a[:, 0]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(f) & (f == np.round(f)) & (f >= -1) & (f < n_features)
    if not ok.all():
        return f"tree 0, node {int(np.flatnonzero(~ok)[0])}: feature"
    leaf = f < 0
    nan = ~leaf & np.isnan(a[:, 1])
    if nan.any():
        return f"tree 0, node {int(np.flatnonzero(nan)[0])}: the cut-off is NaN"
    counts = a[:, 2:]
    with np.errstate(invalid="ignore"):
        good = np.isfinite(counts) if leaves == "values" else np.isfinite(counts) & (counts >= 0)
    bad = leaf & ~good.all(axis=1)
    if bad.any():
        return f"tree 0, leaf {int(np.flatnonzero(bad)[0])}:"
    return None


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    leaves=st.sampled_from(["counts", "proba", "values"]),
)
def test_structure_problems_are_named_as_the_numpy_checks_name_them(data, leaves):
    """``parse_structure`` checks a structure in one kernel: for any rows — features that
    are fractions, out of range, NaN or infinite; NaN cut-offs; leaf values negative or not
    finite — it names the first problem of the first kind, as the numpy checks do."""
    m = data.draw(st.integers(1, 9))

    def sometimes(usual: list[float], odd: list[float]) -> st.SearchStrategy[float]:
        return st.integers(0, 7).flatmap(  # one value in eight is odd
            lambda r: st.sampled_from(odd if r == 0 else usual)
        )

    odd_feat = [np.nan, np.inf, -np.inf, -2.0, -0.5, 0.5, 3.0, 7.0]
    feat = [data.draw(sometimes([-1.0, -1.0, 0.0, 1.0, 2.0], odd_feat)) for _ in range(m)]
    cut = [data.draw(sometimes([0.5, -1.0], [np.nan])) for _ in range(m)]
    vals = np.array(
        [[data.draw(sometimes([0.0, 1.0, 2.5], [-1.0, np.nan, np.inf])) for _ in range(2)]
         for _ in range(m)]
    )  # fmt: skip
    a = np.column_stack([feat, cut, vals])
    want = _first_problem(a, 3, leaves)
    if want is None:
        try:  # no value problem: what is left to refuse is the shape of the tree
            _parse.parse_structure(a, 2, 3, 0, leaves)
        except ValueError as exc:
            assert "not one binary tree in preorder" in str(exc)
        return
    with pytest.raises(ValueError) as info:
        _parse.parse_structure(a, 2, 3, 0, leaves)
    assert str(info.value).startswith(want), (str(info.value), want)


@settings(max_examples=300, deadline=None)
@given(
    thr=st.floats(allow_nan=False)
    | st.floats(-1e-40, 1e-40)
    | st.sampled_from([3.4028235677973366e38, -3.4028235677973366e38, 0.7, -0.0])
)
def test_a_parsed_cutoff_is_the_largest_float32_at_or_below_it(thr):
    """The parsing kernel rounds each split's cut-off down to float32 as numpy does it here
    (bit for bit: signed zeros, subnormals, beyond float32's range), so that ``x <= t`` keeps
    its meaning for every float32 row."""
    a = np.array([[0.0, thr, 0.0, 0.0], [-1.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 1.0]])
    tree = _parse.parse_structure(a, 2, 1, 0)
    got = tree.rec.view(np.float32)[0, 1]
    with np.errstate(over="ignore"):
        want = np.float32(thr)
    if float(want) > thr:
        want = np.nextafter(want, np.float32(-np.inf))
    assert got.view(np.int32) == want.view(np.int32), (thr, got, want)


def test_tl2cgen_peer_compiles_once_and_scores_as_sklearn(tmp_path, monkeypatch):
    treelite = pytest.importorskip("treelite")
    pytest.importorskip("tl2cgen")
    from sklearn.ensemble import ExtraTreesClassifier

    from bench.scoring import tl2cgen_library

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    et = ExtraTreesClassifier(n_estimators=3, max_depth=4, random_state=0).fit(X, y)
    model = treelite.sklearn.import_model(et)
    _, lib, seconds = tl2cgen_library(model, "-O0")
    assert seconds > 0 and lib.startswith(str(tmp_path / "forget-bench" / "tl2cgen"))
    score, lib2, seconds2 = tl2cgen_library(model, "-O0")  # from the cache
    assert (lib2, seconds2) == (lib, 0.0)
    np.testing.assert_array_equal(score(X), et.predict_proba(X.astype(np.float32)))
