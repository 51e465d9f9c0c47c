"""forget.scoring.from_sklearn: scikit-learn's tree ensembles, scored bit for bit as they do."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)

from forget.scoring import CompiledForest, _gemm, _ptt, _torch, from_sklearn, sklearn_structures

BACKENDS = ("numba", *(("torch",) if _torch.importable() else ()))
FORESTS = (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor)
TREES = (DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor)
CLASSIFIERS = (ExtraTreesClassifier, RandomForestClassifier, DecisionTreeClassifier)
CLASSIFIERS += (ExtraTreeClassifier,)


def bits(a: np.ndarray) -> np.ndarray:
    """The float64s' bit patterns: equality of these is bitwise equality (-0.0 != 0.0)."""
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


def assert_bitwise(got: np.ndarray, want: np.ndarray, msg: str = "") -> None:
    assert got.shape == want.shape, msg
    np.testing.assert_array_equal(bits(got), bits(want), err_msg=msg)


def strategies_that_fit(cf: CompiledForest) -> list[str]:
    out = ["tt"]
    if cf.max_depth_ <= _ptt.MAX_DEPTH:
        out.append("ptt")
    if _gemm.cells(cf.n_trees, cf._max_splits()) <= _gemm.MAX_CELLS:
        out.append("gemm")
    return out


def on_the_cut_offs(est, X: np.ndarray) -> np.ndarray:
    """Rows exactly on every split's threshold, on its float32 rounding and one float32 step
    either side (ties go left), and on the float64 threshold itself."""
    members = getattr(est, "estimators_", [est])
    splits = [
        (f, thr)
        for tree in members
        for f, thr in zip(tree.tree_.feature, tree.tree_.threshold, strict=True)
        if f >= 0
    ]
    rows = []
    for f, thr in splits[:200]:
        t32 = np.float32(thr)
        for v in (thr, t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, -np.inf)):
            row = X[len(rows) % len(X)].copy()
            row[f] = v
            rows.append(row)
    return np.asarray(rows).reshape(-1, X.shape[1])


@st.composite
def fitted(draw):
    kind = draw(st.sampled_from(FORESTS + TREES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, d = draw(st.integers(2, 80)), draw(st.integers(1, 4))
    levels = draw(st.integers(1, 6))
    X = rng.integers(0, levels, size=(n, d)) / 3.0  # duplicates, ties, not float32 numbers
    if draw(st.booleans()):
        X = X + rng.normal(size=(n, d)) * draw(st.sampled_from([1e-9, 1e-3, 1.0, 1e6]))
    classifier = issubclass(kind, CLASSIFIERS)
    if classifier:
        n_classes = draw(st.integers(1, 5))
        y = rng.integers(0, n_classes, size=n) * 10 - 7  # labels that are not indices
    elif draw(st.booleans()):
        y = rng.normal(size=(n, 2)) * 100  # two outputs
    else:
        y = np.round(rng.normal(size=n), draw(st.integers(0, 3)))  # equal targets too
    params = dict(
        max_depth=draw(st.sampled_from([None, None, 1, 2, 4, 8])),
        min_samples_leaf=draw(st.integers(1, 3)),
        max_features=draw(st.sampled_from([None, 1, "sqrt", 0.5])),
        max_leaf_nodes=draw(st.sampled_from([None, None, 2, 5, 17])),  # best-first numbering
        random_state=draw(st.integers(0, 2**31)),
    )
    if kind in FORESTS:
        params["n_estimators"] = draw(st.integers(1, 9))
        params["bootstrap"] = draw(st.booleans())
    weights = None
    if draw(st.booleans()):
        weights = rng.integers(0, 4, size=n).astype(float)
        weights[0] = 1.0  # not all zero
    est = kind(**params).fit(X, y, sample_weight=weights)
    Q = np.concatenate([X, on_the_cut_offs(est, X), rng.normal(size=(9, d)) * 3])
    return est, Q


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fitted())
def test_every_strategy_and_backend_scores_as_scikit_learn(case):
    est, Q = case
    auto = from_sklearn(est)
    classifier = hasattr(est, "classes_")
    want = est.predict_proba(Q) if classifier else est.predict(Q)
    for strategy in strategies_that_fit(auto):
        for backend in BACKENDS:
            cf = from_sklearn(est, strategy, backend, device="cpu")
            msg = f"{type(est).__name__} {strategy}/{backend}"
            if classifier:
                assert_bitwise(cf.predict_proba(Q), want, msg)
                np.testing.assert_array_equal(cf.predict(Q), est.predict(Q), err_msg=msg)
                assert_bitwise(cf.predict_proba(Q[:3]), want[:3], msg)  # trees side by side
            else:
                assert_bitwise(cf.predict(Q), want, msg)
                assert_bitwise(cf.predict(Q[:3]), want[:3], msg)


@pytest.fixture(scope="module")
def adult():
    from forget.datasets import load_adult, train_test_split

    X, Xte, y, _ = train_test_split(load_adult())
    return X[:6000], y[:6000], Xte[:2500]


@pytest.mark.parametrize("kind", [ExtraTreesClassifier, RandomForestRegressor])
def test_deep_adult_forests_in_every_plan(adult, kind):
    X, y, rows = adult
    classifier = kind is ExtraTreesClassifier
    target = y if classifier else y + np.random.default_rng(0).normal(size=len(y))
    est = kind(n_estimators=6, random_state=0).fit(X, target)
    want = est.predict_proba(rows) if classifier else est.predict(rows)
    serial, parallel = from_sklearn(est), from_sklearn(est, n_jobs=2)
    assert serial.max_depth_ > _ptt.MAX_DEPTH and serial.plan(len(rows)).strategy == "tt"
    for cf in (serial, parallel):
        score = cf.predict_proba if classifier else cf.predict
        assert_bitwise(score(rows), want)
        for i in range(0, 30, 7):  # one row at a time: trees descend side by side
            assert_bitwise(score(rows[i : i + 1]), want[i : i + 1])
    # the work measure the bench reports: every node on every path, leaves included
    paths = sum(int(tree.decision_path(rows.astype(np.float32)).nnz) for tree in est.estimators_)
    assert serial.visited_nodes(rows) == paths


def test_best_first_trees_are_renumbered_in_preorder():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 3)), rng.integers(0, 3, 300)
    est = DecisionTreeClassifier(max_leaf_nodes=12, random_state=0).fit(X, y)
    left = est.tree_.children_left
    assert any(left[v] not in (-1, v + 1) for v in range(len(left)))  # not preorder as fitted
    (structure,), n_classes, leaves = sklearn_structures(est)
    assert (n_classes, leaves) == (3, "proba") and len(structure) == est.tree_.node_count
    assert_bitwise(from_sklearn(est).predict_proba(X), est.predict_proba(X))


def test_refresh_takes_another_fitted_tree(adult):
    X, y, rows = adult
    et = ExtraTreesClassifier(n_estimators=5, max_depth=8, random_state=0).fit(X, y)
    other = ExtraTreesClassifier(n_estimators=2, max_depth=12, random_state=1).fit(X, y)
    for strategy in ("tt", "ptt", "gemm"):
        cf = from_sklearn(et, strategy)
        cf.predict_proba(rows[:5])
        cf.refresh({3: sklearn_structures(other)[0][1]})
        mixed = copy.copy(et)
        mixed.estimators_ = [*et.estimators_[:3], other.estimators_[1], et.estimators_[4]]
        assert_bitwise(cf.predict_proba(rows), mixed.predict_proba(rows), strategy)


def test_what_does_not_compile_is_refused():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 2)), rng.integers(0, 2, 60)
    with pytest.raises(TypeError, match="GradientBoostingClassifier is not a scikit-learn tree"):
        from_sklearn(GradientBoostingClassifier(n_estimators=2).fit(X, y))
    with pytest.raises(NotFittedError):
        from_sklearn(ExtraTreesClassifier())
    two = np.stack([y, 1 - y], axis=1)
    with pytest.raises(ValueError, match="predicts 2 outputs; only single-output classifiers"):
        from_sklearn(RandomForestClassifier(n_estimators=2).fit(X, two))
    reg = from_sklearn(ExtraTreesRegressor(n_estimators=2, random_state=0).fit(X, X[:, 0]))
    with pytest.raises(ValueError, match="no class probabilities: use predict"):
        reg.predict_proba(X)
    with pytest.raises(ValueError, match="no classes"):
        reg.predict(X, classes=[0])
    clf = from_sklearn(DecisionTreeClassifier().fit(X, y))
    bad = X[:4].copy()
    bad[1, 0] = np.nan  # scikit-learn would route it by missing_go_to_left, not kept here
    with pytest.raises(ValueError, match="NaN or infinite"):
        clf.predict_proba(bad)


def test_leaf_kinds_are_checked():
    split = [[0.0, 0.5, 0, 0], [-1.0, 0, -1.5, 2.0], [-1.0, 0, 0.25, 0.75]]
    X = np.array([[0.0], [1.0]])
    reg = CompiledForest([split], 2, 1, leaves="values")  # regression values may be negative
    np.testing.assert_array_equal(reg.predict(X), [[-1.5, 2.0], [0.25, 0.75]])
    assert reg.is_regressor and reg.visited_nodes(X) == 4
    with pytest.raises(ValueError, match="tree 0, leaf 1: class probabilities must be finite"):
        CompiledForest([split], 2, 1, leaves="proba")
    with pytest.raises(ValueError, match="tree 0, leaf 1: class counts must be finite"):
        CompiledForest([split], 2, 1)
    inf = [[-1.0, 0.0, np.inf]]
    with pytest.raises(ValueError, match="tree 0, leaf 0: values must be finite"):
        CompiledForest([inf], 1, 1, leaves="values")
    with pytest.raises(ValueError, match="leaves must be one of"):
        CompiledForest([split], 2, 1, leaves="shares")
    with pytest.raises(ValueError, match="regression forest .* has no classes"):
        CompiledForest([split], 2, 1, leaves="values", classes=["a", "b"])
    # every tree votes, an all-zero leaf too: the mean is over all trees, as scikit-learn's
    zero = [[-1.0, 0.0, 0.0, 0.0]]
    one = [[-1.0, 0.0, 0.0, 1.0]]
    np.testing.assert_array_equal(
        CompiledForest([zero, one], 2, 1, leaves="proba").predict_proba(X), [[0.0, 0.5]] * 2
    )
