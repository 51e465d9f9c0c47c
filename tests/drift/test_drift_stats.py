"""drift.stats: KS and Wasserstein-1 against scipy, χ² with an unseen bucket, PSI, Holm, and the
effect gate of drift.evaluate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from drift.evaluate import Thresholds, evaluate_features
from drift.profile import ReferenceProfile
from drift.stats import (
    bonferroni,
    compare_categorical,
    compare_numeric,
    holm,
    ks_2samp_sorted,
    ks_pvalue,
    psi,
    wasserstein_sorted,
)

samples = st.builds(
    lambda seed, n, m, shift, ties: _draw(seed, n, m, shift, ties),
    st.integers(0, 2**32 - 1),
    st.integers(2, 400),  # scipy's asymp divides by zero at n = m = 1
    st.integers(1, 400),
    st.floats(-1.0, 1.0),
    st.booleans(),
)


def _draw(seed: int, n: int, m: int, shift: float, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, r = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, m)
    if ties:  # integers: many ties within and across samples
        x, r = np.round(3 * x), np.round(3 * r)
    return x, np.sort(r)


@settings(max_examples=150, deadline=None)
@given(samples)
def test_ks_statistic_and_pvalue_agree_with_scipy(xr):
    x, ref = xr
    d, p = ks_2samp_sorted(x, ref)
    want = stats.ks_2samp(x, ref, method="asymp")
    assert d == pytest.approx(want.statistic, abs=1e-12)
    if want.pvalue < 0.05 or np.round(x.size * ref.size / (x.size + ref.size)) < 100:
        assert p == pytest.approx(want.pvalue, rel=1e-9, abs=1e-300)
    else:  # Stephens' approximation where nothing is decided
        assert p == pytest.approx(want.pvalue, rel=0.02)


def test_ks_pvalue_close_to_scipy_exact_on_moderate_samples():
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.1, 0.3):
        x, ref = rng.normal(shift, 1, 300), np.sort(rng.normal(0, 1, 700))
        _, p = ks_2samp_sorted(x, ref)
        exact = stats.ks_2samp(x, ref, method="exact").pvalue
        assert p == pytest.approx(exact, rel=0.15, abs=1e-4)


def test_ks_pvalue_uses_kstwo_where_it_matters():
    assert ks_pvalue(0.1, 3000, 10_000) == pytest.approx(stats.kstwo.sf(0.1, 2308), rel=1e-12)
    with pytest.raises(ValueError):
        ks_pvalue(0.1, 0, 10)


@settings(max_examples=100, deadline=None)
@given(samples)
def test_wasserstein_agrees_with_scipy(xr):
    x, ref = xr
    want = stats.wasserstein_distance(x, ref)
    assert wasserstein_sorted(np.sort(x), ref) == pytest.approx(want, rel=1e-9, abs=1e-12)
    r = compare_numeric(x, ref, scale=2.0)
    assert r.effect == pytest.approx(want / 2.0, rel=1e-9, abs=1e-12)


def test_compare_numeric_rejects_empty_and_bad_scale():
    with pytest.raises(ValueError, match="non-empty"):
        compare_numeric(np.array([]), np.array([1.0]), scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        compare_numeric(np.array([1.0]), np.array([1.0]), scale=0.0)


# ---------------------------------------------------------------------------- categories

CATS = np.array([0.0, 1.0, 2.0, 5.0])
REF = np.array([4000, 3000, 2000, 1000])


def _table(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    win = np.array([(x == c).sum() for c in CATS] + [(~np.isin(x, CATS)).sum()])
    return np.r_[REF, 0], win


def test_chi2_matches_scipy_on_the_table_with_an_unseen_column():
    rng = np.random.default_rng(0)
    x = rng.choice([0.0, 1.0, 2.0, 5.0, 7.0, 9.5], p=[0.35, 0.3, 0.2, 0.1, 0.04, 0.01], size=3000)
    c = compare_categorical(x, CATS, REF)
    ref_t, win_t = _table(x)
    want = stats.chi2_contingency(np.vstack([ref_t, win_t]), correction=False)
    assert c.statistic == pytest.approx(want.statistic, rel=1e-10)
    assert c.dof == want.dof == 4
    assert c.p_value == pytest.approx(want.pvalue, rel=1e-8, abs=1e-300)
    assert c.unseen_rows == (x == 7.0).sum() + (x == 9.5).sum()
    assert c.unseen[0] == (7.0, int((x == 7.0).sum()))
    assert c.effect == pytest.approx(psi(ref_t, win_t))
    assert sum(c.shares) == pytest.approx(1 - c.unseen_rows / x.size)


def test_chi2_without_unseen_values_is_the_plain_homogeneity_test():
    rng = np.random.default_rng(1)
    x = rng.choice(CATS, p=REF / REF.sum(), size=2000)
    c = compare_categorical(x, CATS, REF)
    want = stats.chi2_contingency(np.vstack([REF, _table(x)[1][:4]]), correction=False)
    assert c.statistic == pytest.approx(want.statistic, rel=1e-10)
    assert c.dof == 3 and c.unseen_rows == 0 and c.unseen == ()
    assert c.p_value > 1e-3


def test_a_new_category_is_significant_and_a_large_effect():
    rng = np.random.default_rng(2)
    x = np.r_[rng.choice(CATS, p=REF / REF.sum(), size=1700), np.full(300, 17.0)]
    c = compare_categorical(x, CATS, REF)
    assert c.p_value < 1e-30 and c.effect > 0.5
    assert c.unseen == ((17.0, 300),)


def test_rare_categories_are_pooled():
    cats, ref = np.arange(6.0), np.array([5000, 4000, 30, 20, 10, 5])
    x = np.r_[np.zeros(60), np.ones(40)]  # expected counts of 2..5 under 5 with n = 100
    c = compare_categorical(x, cats, ref)
    assert c.dof == 2  # columns: 0, 1, the pooled rare ones (the unseen one is empty)


def test_categorical_codes_that_are_not_integers_use_the_search_path():
    cats, ref = np.array([-1.5, 0.25, 3.0]), np.array([10, 20, 30])
    c = compare_categorical(np.array([0.25, 3.0, 3.0, 8.0]), cats, ref, min_expected=0)
    assert c.shares == (0.0, 0.25, 0.5) and c.unseen_rows == 1


def test_psi_is_zero_on_equal_shares_and_positive_otherwise():
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0, abs=1e-3)
    assert psi([50, 50], [80, 20]) > 0.1
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])


# ---------------------------------------------------------------------------- corrections


def _holm_rejects(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure, as stated: reject the k smallest until p_(k) > α/(m-k+1)."""
    m = p.size
    reject = np.zeros(m, dtype=bool)
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        if p[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.sampled_from([0.01, 0.05]))
def test_holm_adjusted_pvalues_reject_what_the_procedure_rejects(ps, alpha):
    p = np.array(ps)
    adj = holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    assert np.all(adj <= bonferroni(p) + 1e-15)
    # at the boundary (p == α/k) the procedure rejects and the adjusted value equals α
    assert np.array_equal(adj <= alpha * (1 + 1e-12), _holm_rejects(p, alpha))


def test_holm_known_values():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(bonferroni([0.01, 0.5]), [0.02, 1.0])
    assert holm([]).size == 0


# ---------------------------------------------------------------------------- the effect gate


def test_effect_gate_suppresses_a_tiny_but_significant_shift_on_a_huge_sample():
    rng = np.random.default_rng(5)
    profile = ReferenceProfile.fit(rng.normal(size=(200_000, 2)), ["a", "b"], max_sample=200_000)
    window = rng.normal(size=(200_000, 2)) + [0.03, 0.0]  # 0.03 std: real, and irrelevant
    (a, b) = evaluate_features(profile, window, Thresholds())
    assert a.p_adjusted is not None and a.p_adjusted < 1e-6  # significant...
    assert a.effect is not None and a.effect < 0.1
    assert not a.drift and not b.drift  # ...but not drift
    ungated = evaluate_features(profile, window, Thresholds(numeric_effect=0.0))
    assert ungated[0].drift and ungated[0].reasons == ("distribution",)


def test_effect_gate_lets_a_real_shift_through_and_holm_counts_every_feature():
    rng = np.random.default_rng(6)
    profile = ReferenceProfile.fit(rng.normal(size=(10_000, 4)), list("abcd"))
    window = rng.normal(size=(600, 4)) + [0.4, 0, 0, 0]
    res = evaluate_features(profile, window, Thresholds())
    assert [r.drift for r in res] == [True, False, False, False]
    raw = np.array([r.p_value for r in res])
    np.testing.assert_allclose([r.p_adjusted for r in res], holm(raw))
    bon = evaluate_features(profile, window, Thresholds(correction="bonferroni"))
    np.testing.assert_allclose([r.p_adjusted for r in bon], bonferroni(raw))


def test_thresholds_reject_nonsense():
    with pytest.raises(ValueError, match="correction"):
        Thresholds(correction="fdr")
    with pytest.raises(ValueError, match="alpha"):
        Thresholds(alpha=1.5)
