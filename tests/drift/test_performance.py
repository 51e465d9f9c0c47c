"""Performance prediction: error generators, window features, the predictor and its erasure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.errors import DriftInputError
from drift.performance import (
    ALPHAS,
    GENERATORS,
    PERCENTILES,
    Columns,
    PerformancePredictor,
    _fit_knn,
    _fit_ridge,
    _knn_mean,
    category_flips,
    corrupt,
    gaussian_noise,
    missing_values,
    outliers,
    random_mix,
    scaling,
    score_features,
    swapped_columns,
)
from forget.errors import ArtifactError, DuplicateRowIdsError, UnknownRowIdsError

KINDS = ["numeric", "numeric", "categorical", "numeric", "categorical"]
NUMERIC = np.array([0, 1, 3])
CATEGORICAL = np.array([2, 4])


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.normal(size=n),
            rng.normal(2.0, 3.0, size=n),
            rng.integers(0, 4, size=n),
            rng.normal(size=n),
            rng.integers(0, 3, size=n),
        ]
    ).astype(np.float64)
    y = X[:, 0] + 0.5 * X[:, 3] + 0.3 * (X[:, 2] == 1) + 0.5 * rng.normal(size=n) > 0
    return X, y.astype(np.int64)


def _proba(Z: np.ndarray) -> np.ndarray:
    p = 0.5 + 0.5 * np.tanh(1.5 * (Z[:, 0] + 0.5 * Z[:, 3] + 0.3 * (Z[:, 2] == 1)))
    return np.column_stack([1.0 - p, p])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, Columns]:
    X, y = _data(20_000)
    return X, y, Columns.describe(X, KINDS)


# ------------------------------------------------------------------------------ generators
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_fraction_zero_is_identity_and_input_untouched(name, data):
    X, _, c = data
    before = X.copy()
    out = GENERATORS[name](X, c, np.random.default_rng(3), 0.0)
    assert np.array_equal(out, X) and out is not X
    GENERATORS[name](X, c, np.random.default_rng(3), 1.0)
    assert np.array_equal(X, before)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_deterministic_by_seed(name, data):
    X, _, c = data
    a = GENERATORS[name](X, c, np.random.default_rng(5), 0.5)
    b = GENERATORS[name](X, c, np.random.default_rng(5), 0.5)
    d = GENERATORS[name](X, c, np.random.default_rng(6), 0.5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, d)


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_generator_refuses_bad_fraction(name, fraction, data):
    X, _, c = data
    with pytest.raises(DriftInputError, match="fraction"):
        GENERATORS[name](X, c, np.random.default_rng(0), fraction)


@pytest.mark.parametrize(
    ("gen", "allowed"),
    [(gaussian_noise, NUMERIC), (scaling, NUMERIC), (outliers, NUMERIC),
     (category_flips, CATEGORICAL)],
)  # fmt: skip
@pytest.mark.parametrize("seed", range(6))
def test_generators_touch_their_columns_at_their_fraction(gen, allowed, seed, data):
    X, _, c = data
    out = gen(X, c, np.random.default_rng(seed), 0.3)
    changed = out != X
    touched = np.flatnonzero(changed.any(axis=0))
    assert touched.size >= 1 and set(touched) <= set(allowed)
    for j in touched:
        share = changed[:, j].mean()
        # a flip may draw the code the cell had: the change rate is 0.3·(1 − 1/codes)
        expect = 0.3 * (1 - 1 / c.n_codes[j]) if c.categorical[j] else 0.3
        assert abs(share - expect) < 0.02, (j, share, expect)
    if gen is category_flips:
        for j in CATEGORICAL:
            assert set(np.unique(out[:, j])) <= set(range(int(c.n_codes[j])))


def test_missing_values_impute_the_fill(data):
    X, _, c = data
    assert c.fill[0] == pytest.approx(X[:, 0].mean())
    assert c.fill[2] == np.argmax(np.bincount(X[:, 2].astype(int)))
    for seed in range(5):
        out = missing_values(X, c, np.random.default_rng(seed), 0.4)
        changed = out != X
        for j in np.flatnonzero(changed.any(axis=0)):
            assert np.all(out[changed[:, j], j] == c.fill[j])
            # cells equal to the fill already do not count as changed
            hit = (out[:, j] == c.fill[j]) & (X[:, j] != c.fill[j])
            assert abs(hit.mean() - 0.4 * (X[:, j] != c.fill[j]).mean()) < 0.02
    nan_cols = Columns.describe(X, KINDS, fill=np.full(5, np.nan))
    out = missing_values(X, nan_cols, np.random.default_rng(0), 0.5)
    assert 0.45 < np.isnan(out).any(axis=1).mean() < 0.55 or np.isnan(out).mean() > 0


def test_swapped_columns_trades_values_of_one_kind(data):
    X, _, c = data
    for seed in range(8):
        out = swapped_columns(X, c, np.random.default_rng(seed), 0.25)
        changed = np.flatnonzero((out != X).any(axis=0))
        assert changed.size == 2
        a, b = changed
        assert c.categorical[a] == c.categorical[b]
        rows = (out != X).any(axis=1)
        assert np.array_equal(out[rows, a], X[rows, b])
        assert np.array_equal(out[rows, b], X[rows, a])
        differ = X[:, a] != X[:, b]  # a swap of equal values changes nothing
        assert abs(rows[differ].mean() - 0.25) < 0.02


def test_columns_refuse_bad_kinds():
    X, _ = _data(50)
    with pytest.raises(DriftInputError, match="kinds names 2 columns"):
        Columns.describe(X, ["numeric", "numeric"])
    with pytest.raises(DriftInputError, match="'numeric' or 'categorical'"):
        Columns.describe(X, ["numeric"] * 4 + ["text"])
    Xb = X.copy()
    Xb[0, 2] = 1.5
    with pytest.raises(DriftInputError, match="not codes"):
        Columns.describe(Xb, KINDS)


def test_mix_and_corrupt(data):
    X, _, c = data
    rng = np.random.default_rng(0)
    mixes = [random_mix(rng, ["scaling", "outliers"], max_kinds=2) for _ in range(200)]
    assert 5 < sum(not m for m in mixes) < 40  # about 10 % clean
    assert all(set(m) <= {"scaling", "outliers"} and all(0 <= f <= 1 for f in m.values())
               for m in mixes)  # fmt: skip
    with pytest.raises(DriftInputError, match="unknown error generators"):
        random_mix(rng, ["scaling", "typos"])
    with pytest.raises(DriftInputError, match="unknown error generator 'typos'"):
        corrupt(X, c, rng, {"typos": 0.1})
    a = corrupt(X, c, np.random.default_rng(1), {"scaling": 0.2, "category_flips": 0.5})
    r2 = np.random.default_rng(2)
    b = category_flips(scaling(X, c, np.random.default_rng(1), 0.2), c, r2, 0.5)
    assert not np.array_equal(a, X)
    r = np.random.default_rng(1)
    assert np.array_equal(a, category_flips(scaling(X, c, r, 0.2), c, r, 0.5))
    assert b.shape == a.shape


# ------------------------------------------------------------------------------ features
@st.composite
def _probas(draw):
    n = draw(st.integers(1, 300))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**31))
    style = draw(st.sampled_from(["spread", "saturated", "ties"]))
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(k) * (0.05 if style == "saturated" else 1.0), size=n)
    if style == "ties":
        P = np.round(P * 4) / 4
    return P


@given(_probas())
@settings(max_examples=60, deadline=None)
def test_score_features_are_percentiles_means_and_shares(P):
    n, k = P.shape
    cols = [P.max(axis=1)] + ([P[:, 1]] if k == 2 else [P[:, j] for j in range(k)])
    expect = np.concatenate(
        [np.percentile(col, PERCENTILES) for col in cols]
        + [[col.mean() for col in cols], np.bincount(P.argmax(axis=1), minlength=k) / n]
    )
    assert np.allclose(score_features(P), expect, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("P", "match"),
    [
        (np.array([[0.5, np.nan]]), "NaN, inf or outside"),
        (np.array([[0.5, np.inf]]), "NaN, inf or outside"),
        (np.array([[-0.1, 1.1]]), "NaN, inf or outside"),
        (np.ones((3, 1)), "rows, classes >= 2"),
        (np.ones(3), "rows, classes >= 2"),
        (np.ones((0, 2)), "rows, classes >= 2"),
    ],
)
def test_score_features_refuse_non_probabilities(P, match):
    with pytest.raises(DriftInputError, match=match):
        score_features(P)


# ------------------------------------------------------------------------------ predictor
def _small(seed: int = 1, **kw) -> PerformancePredictor:
    return PerformancePredictor(n_corruptions=kw.pop("n", 8), window=30, seed=seed, **kw)


@pytest.fixture(scope="module")
def held():
    return _data(60, seed=4)


@pytest.mark.parametrize("regressor", ["auto", "ridge", "knn"])
def test_fit_is_deterministic_by_seed(regressor, held):
    X, y = held
    a = _small(regressor=regressor).fit(_proba, X, y, KINDS).to_bytes()
    b = _small(regressor=regressor).fit(_proba, X, y, KINDS).to_bytes()
    d = _small(seed=2, regressor=regressor).fit(_proba, X, y, KINDS).to_bytes()
    assert a == b and a != d


@pytest.mark.parametrize("regressor", ["auto", "ridge", "knn"])
def test_persistence_round_trip_is_bitwise(regressor, held):
    X, y = held
    pp = _small(regressor=regressor, k=3).fit(_proba, X, y, KINDS, fill=np.zeros(5))
    back = PerformancePredictor.from_bytes(pp.to_bytes())
    assert back.to_bytes() == pp.to_bytes()
    P = _proba(_data(200, seed=9)[0])
    assert back.estimate(P) == pp.estimate(P)
    assert back.validation_accuracy_ == pp.validation_accuracy_
    assert back.k == 3 and back.regressor == regressor
    assert (back.chosen_, back.loo_mae_) == (pp.chosen_, pp.loo_mae_)
    with pytest.raises(ArtifactError):
        PerformancePredictor.from_bytes(b"not an artifact")


@given(st.sets(st.integers(0, 59), min_size=1, max_size=20), st.booleans())
@settings(max_examples=15, deadline=None)
def test_forget_equals_fresh_fit_without_the_rows(gone, with_ids):
    X, y = _data(60, seed=4)
    ids = np.arange(1000, 1060) if with_ids else np.arange(60)
    pp = _small().fit(_proba, X, y, KINDS, row_ids=ids)
    drop = np.array(sorted(gone))
    res = pp.forget(ids[drop])
    keep = np.setdiff1d(np.arange(60), drop)
    fresh = _small().fit(_proba, X[keep], y[keep], KINDS, row_ids=ids[keep])
    assert pp.to_bytes() == fresh.to_bytes()
    assert res.n_forgotten == drop.size and res.details["rows_left"] == keep.size
    assert not np.isin(ids[drop], pp.row_ids_).any()


def test_forget_after_reload_needs_and_uses_the_model(held):
    X, y = held
    pp = PerformancePredictor.from_bytes(_small().fit(_proba, X, y, KINDS).to_bytes())
    with pytest.raises(DriftInputError, match="predict_proba"):
        pp.forget([3])
    pp.forget([3, 7], _proba)
    keep = np.setdiff1d(np.arange(60), [3, 7])
    assert pp.to_bytes() == _small().fit(_proba, X[keep], y[keep], KINDS, row_ids=keep).to_bytes()


def test_forget_refuses_unknown_or_repeated_ids_and_changes_nothing(held):
    X, y = held
    pp = _small().fit(_proba, X, y, KINDS)
    before = pp.to_bytes()
    with pytest.raises(UnknownRowIdsError, match=r"2 row ids not held by performance predictor"):
        pp.forget([5, 60, 99])
    with pytest.raises(DuplicateRowIdsError, match="more than once"):
        pp.forget([5, 5])
    with pytest.raises(DriftInputError, match="integers"):
        pp.forget([1.5])
    assert pp.to_bytes() == before
    pp.forget([5])
    with pytest.raises(UnknownRowIdsError):
        pp.forget([5])  # already forgotten


@pytest.mark.parametrize("regressor", ["auto", "ridge", "knn"])
def test_estimates_beat_the_constant_baseline(regressor):
    """Fresh rows, fresh corruptions (the training generators): the estimate tracks accuracy
    better than "accuracy stays at validation accuracy" (a constant estimate fails this)."""
    X, y = _data(4000, seed=1)
    Xt, yt = _data(20_000, seed=2)
    pp = PerformancePredictor(n_corruptions=300, window=500, regressor=regressor, seed=0)
    pp.fit(_proba, X, y, KINDS)
    c = Columns.describe(X, KINDS)
    truth, est = [], []
    for i in range(60):
        rng = np.random.default_rng([7, i])
        pos = rng.choice(Xt.shape[0], size=500, replace=False)
        P = _proba(corrupt(Xt[pos], c, rng, random_mix(rng, pp.kinds)))
        truth.append(np.mean(P.argmax(axis=1) == yt[pos]))
        est.append(pp.estimate(P))
    truth_a = np.array(truth)
    mae = np.abs(np.array(est) - truth_a).mean()
    mae_const = np.abs(pp.validation_accuracy_ - truth_a).mean()
    assert mae < 0.8 * mae_const, (mae, mae_const)


def test_fit_refuses_bad_input(held):
    X, y = held
    pp = _small()
    with pytest.raises(DriftInputError, match="X must be 2-d"):
        pp.fit(_proba, X[:, 0], y, KINDS)
    with pytest.raises(DriftInputError, match="y must hold 60"):
        pp.fit(_proba, X, y[:-1], KINDS)
    with pytest.raises(DriftInputError, match=">= 20 held-out rows"):
        pp.fit(_proba, X[:10], y[:10], KINDS)
    Xn = X.copy()
    Xn[3, 0] = np.nan
    with pytest.raises(DriftInputError, match="NaN or inf"):
        pp.fit(_proba, Xn, y, KINDS)
    with pytest.raises(DriftInputError, match="class columns 0..1"):
        pp.fit(_proba, X, y + 1, KINDS)
    with pytest.raises(DriftInputError, match="kinds names"):
        pp.fit(_proba, X, y, KINDS[:-1])
    with pytest.raises(DuplicateRowIdsError):
        pp.fit(_proba, X, y, KINDS, row_ids=np.zeros(60, dtype=np.int64))
    with pytest.raises(DriftInputError, match="row_ids must be 60 integers"):
        pp.fit(_proba, X, y, KINDS, row_ids=np.arange(59))
    with pytest.raises(DriftInputError, match="NaN, inf or outside"):
        pp.fit(lambda Z: _proba(Z) * 2, X, y, KINDS)
    with pytest.raises(DriftInputError, match="not fitted"):
        pp.estimate(np.full((5, 2), 0.5))
    with pytest.raises(ValueError, match="regressor"):
        PerformancePredictor(regressor="forest")
    with pytest.raises(ValueError, match="kinds must name generators"):
        PerformancePredictor(kinds=("typos",))


def test_estimate_refuses_bad_proba(held):
    X, y = held
    pp = _small().fit(_proba, X, y, KINDS)
    with pytest.raises(DriftInputError, match=r"\(rows, 2\)"):
        pp.estimate(np.full((5, 3), 1 / 3))
    with pytest.raises(DriftInputError, match="NaN"):
        pp.estimate(np.array([[0.5, np.nan]]))
    assert 0.0 <= pp.estimate(np.array([[0.2, 0.8]])) <= 1.0


# ------------------------------------------------------------------------------ regressors
@given(
    st.integers(1, 40), st.integers(1, 4), st.integers(1, 12), st.integers(-1, 45),
    st.integers(0, 2**32 - 1),
)  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_knn_mean_is_the_stable_sort_oracle(n, d, k, skip, seed):
    """Small integer coordinates: distances are exact and ties frequent, so the kernel must
    break them as a stable sort does (the lower row first) and leave ``skip`` out."""
    rng = np.random.default_rng(seed)
    Z = rng.integers(-2, 3, size=(n, d)).astype(np.float64)
    t = rng.integers(0, 1000, size=n).astype(np.float64)
    z = rng.integers(-2, 3, size=d).astype(np.float64)
    rows = np.array([i for i in range(n) if i != skip])
    if rows.size == 0:
        assert np.isnan(_knn_mean(Z, t, z, k, skip))
        return
    dist = ((Z[rows] - z) ** 2).sum(axis=1)
    near = rows[np.argsort(dist, kind="stable")[:k]]
    assert _knn_mean(Z, t, z, k, skip) == pytest.approx(t[near].mean(), rel=1e-12)


def test_loo_errors_are_those_of_refits_without_each_copy():
    """``loo_mae``: ridge's from the hat matrix, kNN's by leaving each copy out, against
    brute force (the ridge refit with the same standardisation and penalty, intercept free)."""
    rng = np.random.default_rng(3)
    F = rng.normal(size=(40, 5))
    t = F @ rng.normal(size=5) * 0.1 + 0.05 * rng.normal(size=40)
    r, ridge_loo = _fit_ridge(F, t)
    assert r["alpha"][0] in ALPHAS
    Z = (F - r["mu"]) / r["sd"]
    errs = []
    for i in range(40):
        keep = np.arange(40) != i
        A = np.column_stack([np.ones(39), Z[keep]])
        pen = np.diag([0.0] + [r["alpha"][0]] * 5)
        w = np.linalg.solve(A.T @ A + pen, A.T @ t[keep])
        errs.append(abs(w[0] + Z[i] @ w[1:] - t[i]))
    assert ridge_loo == pytest.approx(np.mean(errs), rel=1e-9)
    kn, knn_loo = _fit_knn(F, t, 3)
    errs = []
    for i in range(40):
        keep = np.arange(40) != i
        dist = ((kn["Z"][keep] - kn["Z"][i]) ** 2).sum(axis=1)
        errs.append(abs(t[keep][np.argsort(dist, kind="stable")[:3]].mean() - t[i]))
    assert knn_loo == pytest.approx(np.mean(errs), rel=1e-12)


def test_auto_keeps_the_regressor_of_lower_loo_error(held):
    """Accuracy a smooth function of the features: ridge; a step in them: kNN. "auto" keeps
    the one of lower leave-one-out error and estimates exactly as that one alone does."""
    X, y = held
    P = _proba(_data(200, seed=9)[0])
    pp = _small(n=40).fit(_proba, X, y, KINDS)
    assert set(pp.loo_mae_) == {"ridge", "knn"}
    assert pp.chosen_ == min(pp.loo_mae_, key=lambda name: pp.loo_mae_[name])
    alone = _small(n=40, regressor=pp.chosen_).fit(_proba, X, y, KINDS)
    assert (
        alone.estimate(P) == pp.estimate(P)
        and alone.loo_mae_[pp.chosen_] == pp.loo_mae_[pp.chosen_]
    )
    rng = np.random.default_rng(0)
    F = rng.normal(size=(300, 3))
    smooth, step = 0.7 + 0.05 * F[:, 0], 0.6 + 0.3 * (np.abs(F[:, 0]) < 0.5)
    assert _fit_ridge(F, smooth)[1] < _fit_knn(F, smooth, 10)[1]
    assert _fit_knn(F, step, 10)[1] < _fit_ridge(F, step)[1]
