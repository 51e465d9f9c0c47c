"""ADWIN and DDM: the exponential histogram's invariants, detection, quiet on stationary streams,
batch-split invariance, reset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift import _kernels as K
from drift.detectors import ADWIN, DDM


def _buckets(a: ADWIN) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = int(a._state[K.A_COUNT])
    return a._bn[:c].copy(), a._bs[:c].copy(), a._bm[:c].copy()


def _split(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    edges = sorted({0, values.size, *(c % (values.size + 1) for c in cuts)})
    return [values[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


streams = st.builds(
    lambda seed, n, jump: np.r_[
        np.random.default_rng(seed).random(n), np.random.default_rng(seed + 1).random(n) * jump
    ],
    st.integers(0, 10_000),
    st.integers(1, 1500),
    st.sampled_from([1.0, 0.2]),
)


@settings(max_examples=60, deadline=None)
@given(streams, st.lists(st.integers(0, 3000), max_size=6))
def test_adwin_histogram_summarises_exactly_the_last_width_values(values, cuts):
    a = ADWIN(max_buckets=3)
    for part in _split(values, cuts):
        a.update(part)
    bn, bs, bm = _buckets(a)
    assert a.seen == values.size and a.width == bn.sum()
    assert np.all(bn[:-1] >= bn[1:])  # oldest (largest) first
    assert all(int(b) & (int(b) - 1) == 0 for b in bn)  # powers of two
    _, per_size = np.unique(bn, return_counts=True)
    assert per_size.max() <= 3
    # the window is the stream's suffix, bucket by bucket
    start = values.size - a.width
    for size, total, m2 in zip(bn, bs, bm, strict=True):
        chunk = values[start : start + size]
        assert total == pytest.approx(chunk.sum(), rel=1e-9, abs=1e-9)
        assert m2 == pytest.approx(((chunk - chunk.mean()) ** 2).sum(), rel=1e-7, abs=1e-9)
        start += size
    assert a.mean == pytest.approx(values[values.size - a.width :].mean())


@settings(max_examples=30, deadline=None)
@given(streams, st.lists(st.integers(0, 3000), max_size=6))
def test_adwin_and_ddm_do_not_depend_on_how_the_stream_is_batched(values, cuts):
    whole, parts = ADWIN(), ADWIN()
    changes = whole.update(values)
    assert [c for p in _split(values, cuts) for c in parts.update(p)] == changes
    assert np.array_equal(_buckets(whole)[0], _buckets(parts)[0])
    errs = values > 0.5
    d1, d2 = DDM(), DDM()
    assert d1.update(errs) == [c for p in _split(errs, cuts) for c in d2.update(p)]


def test_adwin_detects_a_mean_change_soon_and_says_from_what_to_what():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        a = ADWIN()
        assert a.update(rng.normal(0.3, 0.1, 3000)) == []
        changes = a.update(rng.normal(0.4, 0.1, 2000))
        assert changes, seed
        first = changes[0]
        assert 3000 < first.at < 3400  # a 1-std change on a 0.1-std signal: ~100-300 values
        assert first.before == pytest.approx(0.3, abs=0.03)
        assert first.after > first.before
        assert a.mean == pytest.approx(0.4, abs=0.02)  # the old values are gone
        assert a.width < 2200  # (but for a bucket or two straddling the change)


def test_adwin_is_quiet_on_stationary_streams():
    fired = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        probs = rng.beta(0.5, 1.5, 10_000)  # skewed like predicted probabilities
        fired += bool(ADWIN().update(probs))
        fired += bool(ADWIN().update(rng.random(10_000) < 0.25))  # 0/1 values
    assert fired == 0
    a = ADWIN()
    a.update(np.random.default_rng(0).random(50_000))
    assert a.width == 50_000 and a.n_changes == 0


def test_adwin_reset_and_non_finite_values():
    a = ADWIN()
    a.update([0.1, np.nan, 0.2, np.inf])
    assert a.seen == 2
    a.reset()
    assert a.seen == 0 and a.width == 0 and math.isnan(a.mean) and not a.changes
    with pytest.raises(ValueError):
        ADWIN(delta=0)


# ---------------------------------------------------------------------------- DDM


def _ddm_reference(errors, warning=2.0, drift=3.0, min_instances=30) -> list[tuple[int, float]]:
    """Gama et al.'s DDM, written plainly (with the same no-minimum-before-an-error rule)."""
    out, n, k, p_min, s_min = [], 0, 0, math.inf, math.inf
    for i, e in enumerate(errors, start=1):
        n, k = n + 1, k + int(e)
        p = k / n
        s = math.sqrt(p * (1 - p) / n)
        if n < min_instances:
            continue
        if k > 0 and p + s <= p_min + s_min:
            p_min, s_min = p, s
        if p + s > p_min + drift * s_min:
            out.append((i, p))
            n, k, p_min, s_min = 0, 0, math.inf, math.inf
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 0.5), st.floats(0.01, 0.6))
def test_ddm_matches_the_plain_algorithm(seed, p0, p1):
    rng = np.random.default_rng(seed)
    errs = np.r_[rng.random(800) < p0, rng.random(800) < p1]
    got = [(c.at, c.after) for c in DDM().update(errs)]
    want = _ddm_reference(errs)
    assert [a for a, _ in got] == [a for a, _ in want]
    assert [p for _, p in got] == pytest.approx([p for _, p in want])


def test_ddm_detects_an_error_rate_rise():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        d = DDM(drift=3.5, min_instances=1000)  # the monitor's settings
        assert d.update(rng.random(2000) < 0.1) == []
        changes = d.update(rng.random(1000) < 0.4)
        assert changes and 2000 < changes[0].at < 2400, seed
        assert changes[0].before < 0.12 and changes[0].after > changes[0].before
        assert d.error_rate > 0.3  # it starts over on the new concept


def test_ddm_false_alarms_on_stationary_streams_paper_vs_monitor_settings():
    """DDM with the paper's settings fires on long stationary streams (the reason
    MonitorConfig is stricter); with the monitor's settings it rarely does."""
    paper = monitor = 0
    for seed in range(40):
        errs = np.random.default_rng(seed).random(10_000) < 0.15
        paper += bool(DDM().update(errs))
        monitor += bool(DDM(drift=3.5, min_instances=1000).update(errs))
    assert paper >= 6  # about a third
    assert monitor <= 2  # about 2 %


def test_ddm_warning_state_reset_and_no_false_change_on_first_error():
    d = DDM()
    assert d.update(np.zeros(100)) == []  # error-free: no minimum yet
    assert d.update([1]) == []  # so the first error is not a "change"
    assert d.seen == 101 and d.error_rate == pytest.approx(1 / 101)
    d.reset()
    assert d.seen == 0 and math.isnan(d.error_rate) and not d.in_warning
    with pytest.raises(ValueError):
        DDM(warning=4, drift=3)
