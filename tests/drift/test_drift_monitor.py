"""drift.Monitor end to end on adult-like synthetic data: quiet in distribution, the right
feature and the right words under shift, new categories, missing values, ADWIN and DDM,
revision restarts, erasure, caching, threads, bad input."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from drift import DriftInputError, Monitor, MonitorConfig, ReferenceProfile, Thresholds

NAMES = ["age", "workclass", "fnlwgt", "hours-per-week", "sex", "native-country"]
CATEGORICAL = ["workclass", "sex", "native-country"]
WORKCLASS = np.array([0.03, 0.07, 0.74, 0.04, 0.08, 0.04, 0.0])
WORKCLASS = WORKCLASS / WORKCLASS.sum()
COUNTRY = np.r_[0.91, np.full(40, 0.09 / 40)]


def adult_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Columns shaped like adult's: skewed integer ages, a lognormal weight, hours piled at 40,
    skewed categories (one with 41 levels, most of them rare)."""
    age = np.clip(np.round(rng.gamma(6.0, 6.5, n) + 5), 17, 90)
    hours = np.where(rng.random(n) < 0.5, 40.0, np.clip(np.round(rng.normal(41, 12, n)), 1, 99))
    return np.c_[
        age,
        rng.choice(7, size=n, p=WORKCLASS),
        np.round(rng.lognormal(12.0, 0.5, n)),
        hours,
        (rng.random(n) < 0.67).astype(float),
        rng.choice(41, size=n, p=COUNTRY),
    ]


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile.fit(
        adult_like(rng, 24_000),
        NAMES,
        categorical=CATEGORICAL,
        labels={"sex": ["Female", "Male"]},
        meta={"model": "income", "version": 1},
    )


def feed(mon: Monitor, X: np.ndarray, outputs=None, batch: int = 64, keys=None) -> None:
    for i in range(0, X.shape[0], batch):
        mon.observe(
            X[i : i + batch],
            None if outputs is None else outputs[i : i + batch],
            None if keys is None else keys[i : i + batch],
        )


def flagged(rep: dict) -> list[str]:
    return [f["name"] for f in rep["features"] if f["drift"]]


def test_in_distribution_traffic_raises_nothing(profile):
    for seed in range(5):
        rng = np.random.default_rng(seed + 1)
        mon = Monitor(profile)
        feed(mon, adult_like(rng, 8000), rng.beta(1, 3, 8000))
        mon.feedback(rng.random(8000) < 0.5, rng.random(8000) < 0.5)
        rep = mon.report()
        assert rep["drift"] is False and rep["alerts"] == [], rep["alerts"]
        assert [f["test"] for f in rep["features"]] == ["ks", "chi2", "ks", "ks", "chi2", "chi2"]
        assert rep["window"] == {
            "rows": 5000,
            "capacity": 5000,
            "seen": 8000,
            "discarded": 0,
            "tested_rows": 5000,
            "tested_at_row": 8000,
        }
        json.dumps(rep, allow_nan=False)  # JSON-able as is


def test_a_shifted_feature_is_flagged_alone_and_worded(profile):
    rng = np.random.default_rng(11)
    mon = Monitor(profile)
    feed(mon, adult_like(rng, 5000))
    X = adult_like(rng, 1500)
    std = profile.features[0].std  # type: ignore[union-attr]
    X[:, 0] += std
    feed(mon, X)
    rep = mon.report()
    assert flagged(rep) == ["age"] and rep["drift"]
    age = rep["features"][0]
    assert age["reasons"] == ["distribution"] and age["effect"] >= 0.1
    assert age["p_adjusted"] < 0.01 and age["p_value"] <= age["p_adjusted"]
    (alert,) = rep["alerts"]
    assert alert.startswith("feature 'age' shifted by +0.")  # 1,500 of 5,000 rows moved 1 std
    assert "std (mean 4" in alert and "→" in alert and "KS p=" in alert


def test_a_new_category_is_named_with_its_share(profile):
    rng = np.random.default_rng(12)
    mon = Monitor(profile)
    X = adult_like(rng, 5000)
    X[rng.random(5000) < 0.12, 1] = 17
    feed(mon, X)
    rep = mon.report()
    assert flagged(rep) == ["workclass"]
    wc = rep["features"][1]
    assert set(wc["reasons"]) == {"distribution", "unseen"}
    assert wc["unseen"][0][0] == 17.0 and 0.1 < wc["unseen_share"] < 0.14
    assert any(
        a.startswith("feature 'workclass' has a new category 17 in 1") for a in rep["alerts"]
    )


def test_a_changed_category_share_is_worded_with_its_label(profile):
    rng = np.random.default_rng(13)
    mon = Monitor(profile)
    X = adult_like(rng, 5000)
    X[:, 4] = (rng.random(5000) < 0.40).astype(float)  # men 67 % -> 40 %
    feed(mon, X)
    rep = mon.report()
    assert flagged(rep) == ["sex"]
    (alert,) = rep["alerts"]
    assert alert.startswith("feature 'sex': share of ") and "(PSI " in alert and "χ² p=" in alert
    assert "'Male'" in alert or "'Female'" in alert


def test_missing_values_are_counted_not_fatal(profile):
    rng = np.random.default_rng(14)
    mon = Monitor(profile)
    X = adult_like(rng, 3000)
    X[rng.random(3000) < 0.3, 2] = np.nan
    X[:10, 0] = np.inf
    rows = [dict(zip(NAMES, r, strict=True)) for r in X[:100].tolist()]
    for r in rows:
        del r["hours-per-week"]  # a client that does not send the feature at all
    mon.observe(rows)
    feed(mon, X[100:])
    rep = mon.report()
    fn = rep["features"][2]
    assert 0.27 < fn["missing"] < 0.33 and fn["missing_reference"] == 0.0
    assert fn["reasons"] == ["missing"] and fn["test"] == "ks"  # the rest is still tested
    assert rep["features"][0]["drift"] is False  # 10 infinities in 3,000: not a drift
    pct = round(100 * fn["missing"])
    assert (
        f"input rows lack feature 'fnlwgt': missing in {pct}% of the last 3,000 rows "
        "(0% in training)"
    ) in rep["alerts"]
    assert rep["features"][3]["missing"] == pytest.approx(100 / 3000)


def test_adwin_reports_an_output_change_and_a_revision_change_restarts_it(profile):
    rng = np.random.default_rng(15)
    X = adult_like(rng, 6000)
    mon = Monitor(profile, revision="r1")
    feed(mon, X[:3000], rng.beta(2, 6, 3000))
    assert mon.report()["alerts"] == []
    feed(mon, X[3000:], rng.beta(4, 4, 3000))
    rep = mon.report()
    (adwin,) = [d for d in rep["detectors"] if d["detector"] == "ADWIN"]
    assert adwin["drift"] and 3000 < adwin["last_change"]["at"] < 3500
    (alert,) = rep["alerts"]
    assert alert.startswith("model output distribution changed (ADWIN) at row 3,")
    assert "of revision r1: mean output 0.2" in alert and "→ 0.4" in alert
    assert mon.set_revision("r1") is False
    assert mon.set_revision("r2") is True
    rep = mon.report()
    assert rep["alerts"] == [] and rep["revision"] == "r2"
    assert rep["detectors"][0]["rows"] == 0 and rep["window"]["rows"] == 5000  # inputs stay


def test_a_new_revision_with_other_outputs_is_not_drift_by_itself(profile):
    """Unlearning changes the model; restarting per revision keeps that from reading as drift
    (the control without a restart does read it as drift)."""
    rng = np.random.default_rng(16)
    X = adult_like(rng, 4000)
    before, after = rng.beta(2, 6, 2000), rng.beta(2, 6, 2000) + 0.08
    restarted, control = Monitor(profile, revision=1), Monitor(profile, revision=1)
    for mon in (restarted, control):
        feed(mon, X[:2000], before)
    restarted.set_revision(2)
    for mon in (restarted, control):
        feed(mon, X[2000:], after)
    assert restarted.report()["alerts"] == []
    assert any("(ADWIN)" in a for a in control.report()["alerts"])


def test_ddm_reports_an_error_rate_rise(profile):
    rng = np.random.default_rng(17)
    mon = Monitor(profile)
    y = rng.integers(0, 2, 4000)
    wrong = np.r_[rng.random(2000) < 0.14, rng.random(2000) < 0.30]
    mon.feedback(y, np.where(wrong, 1 - y, y))
    rep = mon.report()
    (ddm,) = [d for d in rep["detectors"] if d["detector"] == "DDM"]
    assert ddm["drift"] and 2000 < ddm["last_change"]["at"] < 2600
    (alert,) = rep["alerts"]
    assert alert.startswith("error rate rose from 1") and "(DDM) at labelled row 2," in alert
    assert "over the" in alert and "labels since" in alert
    mon.feedback(errors=np.zeros(10))
    with pytest.raises(DriftInputError):
        mon.feedback([1, 0], [1])
    with pytest.raises(DriftInputError):
        mon.feedback([1])
    with pytest.raises(DriftInputError):
        mon.feedback([1], [1], errors=[0])
    with pytest.raises(DriftInputError):
        mon.feedback(errors=["x"])


def test_discard_removes_an_erased_subjects_rows(profile):
    rng = np.random.default_rng(18)
    mon = Monitor(profile)
    X = adult_like(rng, 3000)
    keys = [f"subject-{i % 500}" for i in range(3000)]
    feed(mon, X, keys=keys)
    first = mon.features()
    assert mon.discard(["subject-3", "subject-4", "ghost"]) == 12
    rep = mon.report()
    assert rep["window"]["rows"] == 2988 and rep["window"]["discarded"] == 12
    assert rep["features"][0]["rows"] == 2988 and mon.features() is not first  # re-tested
    mon.observe(X[:2], keys="subject-9")  # one key for a batch
    assert mon.discard(["subject-9"]) == 8


def test_report_caches_feature_tests_between_rechecks(profile):
    rng = np.random.default_rng(19)
    mon = Monitor(profile, MonitorConfig(recheck_rows=500))
    feed(mon, adult_like(rng, 1000))
    a = mon.features()
    feed(mon, adult_like(rng, 499), batch=499)
    assert mon.features() is a
    assert mon.features(fresh=True) is not a
    feed(mon, adult_like(rng, 501), batch=501)
    b = mon.features()
    assert b is not a and b[0].rows == 2000
    mon.clear()
    assert mon.report()["window"]["rows"] == 0
    assert all(f["test"] is None for f in mon.report()["features"])  # too few rows


def test_few_rows_are_reported_untested(profile):
    mon = Monitor(profile, MonitorConfig(thresholds=Thresholds(min_rows=100)))
    mon.observe(adult_like(np.random.default_rng(20), 99))
    rep = mon.report()
    assert rep["drift"] is False and all(f["p_value"] is None for f in rep["features"])


def test_concurrent_observers_and_reporters(profile):
    mon = Monitor(profile, MonitorConfig(capacity=2000, recheck_rows=100))
    X = adult_like(np.random.default_rng(21), 10_000)
    errors: list[BaseException] = []

    def observer(t: int) -> None:
        try:
            for i in range(t * 1000, (t + 1) * 1000, 10):
                mon.observe(X[i : i + 10], np.full(10, 0.3), keys=[f"t{t}"] * 10)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reporter() -> None:
        try:
            for _ in range(20):
                mon.report()
                mon.discard(["t0"])
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=observer, args=(t,)) for t in range(8)]
    threads += [threading.Thread(target=reporter) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    rep = mon.report(fresh=True)
    w = rep["window"]
    assert w["seen"] == 8000 and w["rows"] + w["discarded"] >= 2000 - 1000
    assert w["rows"] <= 2000 and rep["detectors"][0]["rows"] == 8000


def test_bad_batches_are_refused_and_record_nothing(profile):
    mon = Monitor(profile)
    X = adult_like(np.random.default_rng(22), 4)
    with pytest.raises(DriftInputError, match="X has 5 features, the profile has 6"):
        mon.observe(X[:, :5])
    with pytest.raises(DriftInputError, match="outputs have shape"):
        mon.observe(X, outputs=[0.1, 0.2])
    with pytest.raises(DriftInputError, match="3 keys for 4 rows"):
        mon.observe(X, keys=["a", "b", "c"])
    with pytest.raises(DriftInputError, match="strings"):
        mon.observe([["38", "1", "2", "3", "4", "5"]])
    with pytest.raises(DriftInputError, match="outputs must be numbers"):
        mon.observe(X, outputs=["a", "b", "c", "d"])
    rep = mon.report()
    assert rep["window"]["seen"] == 0 and rep["detectors"][0]["rows"] == 0
    mon.observe(X, outputs=np.c_[1 - np.full(4, 0.2), np.full(4, 0.2)])  # (n, 2) probabilities
    mon.observe(X, outputs=np.full((4, 3), 1 / 3))  # several classes: the top probability
    mon.observe(X)  # no outputs at all
    assert mon.report()["window"]["seen"] == 12
    assert mon.report()["detectors"][0]["mean"] == pytest.approx((0.2 * 4 + 4 / 3) / 8)


def test_regressor_outputs_use_the_output_range(profile):
    rng = np.random.default_rng(23)
    mon = Monitor(profile, MonitorConfig(output_range=(0.0, 100.0)))
    X = adult_like(rng, 4000)
    feed(mon, X, np.r_[rng.normal(40, 10, 2000), rng.normal(55, 10, 2000)])
    (alert,) = mon.report()["alerts"]
    assert "(ADWIN)" in alert and "mean output 4" in alert and "→ 5" in alert
    with pytest.raises(ValueError):
        MonitorConfig(output_range=(1.0, 1.0))
