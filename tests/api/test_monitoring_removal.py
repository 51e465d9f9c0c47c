"""api.monitoring after an erasure: the subject's rows leave each touched version's drift
reference without a read of the training table, leaving what a rebuild would build."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import monitoring
from api.metrics import Metrics
from api.monitoring import Monitoring, Reference, build_profile
from forget import KNNClassifier, LinearRegression
from store import ModelStore
from store.registry import ModelVersion

FEATURES = ["x", "k", "m", "z"]
VICTIM = "victim-51c0"
OTHERS = [f"subj-{s:03d}" for s in range(0, 120, 7)]  # erased one after the other


def dataset(seed: int = 0) -> list[dict]:
    """~240 rows of 120 subjects; the victim's two rows hold values no one else has: an ``x``,
    a code of ``k`` (categorical) and the largest label ``y`` (the regressor's range). ``z``
    has 65 integer values, one of them the victim's only: erasing it makes ``z`` categorical."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(120):
        for _ in range(int(rng.integers(1, 4))):
            x = round(float(rng.normal()), 6)
            rows.append(
                {
                    "subject_id": f"subj-{s:03d}",
                    "x": x,
                    "k": int(rng.integers(0, 4)),
                    "m": int(rng.integers(0, 100)),
                    "z": len(rows) % 64,
                    "y": round(3.0 * x + float(rng.normal()), 6),
                    "cls": int(x > 0),
                }
            )
    for i in range(2):
        rows.append(
            {
                "subject_id": VICTIM,
                "x": 7341.918273 + i,
                "k": 9,
                "m": 5,
                "z": 64 if i else 3,
                "y": 999.5 + i,
                "cls": 1,
            }
        )
    return rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ModelStore]:
    st = ModelStore.open(tmp_path / "store")
    st.ingest("people", dataset(), subject_column="subject_id")
    st.train(
        "reg", dataset="people", estimator=LinearRegression(alpha=0.1), label="y", features=FEATURES
    )
    st.train("knn", dataset="people", estimator=KNNClassifier(3), label="cls", features=FEATURES)
    yield st
    st.close()


def _versions(st: ModelStore) -> list[ModelVersion]:
    return [st.get_model("reg"), st.get_model("knn")]


def _monitoring(st: ModelStore) -> Monitoring:
    mon = Monitoring(Metrics(runtime=False))
    for mv in _versions(st):
        mon.monitor(st, mv)
    return mon


def _erase(st: ModelStore, mon: Monitoring, subject: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Erase ``subject`` and tell ``mon``, with the store unable to give training rows."""
    removed: dict = {}
    receipt = st.erase(subject, legal_ground="art17-1-b", purge=False, removed=removed)
    assert receipt.rows_erased and receipt.models
    with monkeypatch.context() as m:
        m.setattr(st, "training_data", _no_reads)
        mon.erased(receipt.subject_key, receipt.models, removed)


def _no_reads(*args: object) -> None:
    raise AssertionError("the training table was read")


def _assert_rebuilt_equal(st: ModelStore, mon: Monitoring) -> None:
    for mv in _versions(st):
        feed = mon.monitor(st, mv)
        assert feed.reference is not None
        profile, out_range = build_profile(st, mv)
        assert feed.monitor.profile.to_dict() == profile.to_dict()
        assert feed.monitor.profile.to_bytes() == profile.to_bytes()
        assert feed.reference.out_range == out_range


def test_an_erasure_updates_the_references_without_reading_the_table(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
):
    mon = _monitoring(store)
    reg, knn = _versions(store)
    before = mon.monitor(store, reg)
    assert before.reference is not None and before.reference.out_range is not None
    kinds = [f.kind for f in before.monitor.profile.features]
    assert kinds == ["numeric", "categorical", "numeric", "numeric"]
    for subject in OTHERS:
        _erase(store, mon, subject, monkeypatch)
        with monkeypatch.context() as m:  # no rebuild on next use either
            m.setattr(store, "training_data", _no_reads)
            for mv in _versions(store):
                mon.monitor(store, mv)
        _assert_rebuilt_equal(store, mon)
    assert mon.monitor(store, store.get_model("reg")) is before  # one monitor, updated in place
    assert before.monitor.profile.n_rows < sum(1 for _ in dataset())


def test_versions_trained_on_the_same_rows_share_their_reference_parts_through_erasures(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
):
    """reg and knn: the same rows and features, other labels. Their columns and profile
    features are one set of objects, worked on once per erasure, and stay one set."""
    mon = _monitoring(store)
    calls: list[int] = []
    real = monitoring.Column.remove
    monkeypatch.setattr(monitoring.Column, "remove", lambda c, v: calls.append(1) or real(c, v))

    def shared() -> tuple[int, int]:
        a, b = (mon.monitor(store, mv).reference for mv in _versions(store))
        assert a is not None and b is not None
        columns = sum(x is y for x, y in zip(a.columns, b.columns, strict=True))
        features = zip(a.profile.features, b.profile.features, strict=True)
        return columns, sum(x is y for x, y in features)

    assert shared() == (len(FEATURES), len(FEATURES))
    for subject in OTHERS[:6]:
        calls.clear()
        _erase(store, mon, subject, monkeypatch)
        assert len(calls) == len(FEATURES) + 2  # shared columns once, then each label
        assert shared() == (len(FEATURES), len(FEATURES))
    _assert_rebuilt_equal(store, mon)


def test_nothing_unique_to_the_subject_is_left_in_the_profiles(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
):
    mon = _monitoring(store)
    reg = store.get_model("reg")
    feed = mon.monitor(store, reg)
    victim_x = [7341.918273, 7342.918273]
    x = feed.monitor.profile.features[0]
    assert np.isin(victim_x, x.sample).all()  # the test bites: the victim's values are held
    assert feed.reference is not None and feed.reference.out_range is not None
    assert feed.reference.out_range[1] == 1000.5
    calls = []
    real = store.training_data
    monkeypatch.setattr(store, "training_data", lambda *a: calls.append(a) or real(*a))
    # erasing the victim makes z (64 values left) categorical: that needs a rebuild, once
    removed: dict = {}
    receipt = store.erase(VICTIM, legal_ground="art17-1-b", purge=False, removed=removed)
    mon.erased(receipt.subject_key, receipt.models, removed)
    assert not calls
    for mv in _versions(store):
        mon.monitor(store, mv)
    assert len(calls) == 2  # each version rebuilt once
    _assert_rebuilt_equal(store, mon)
    for mv in _versions(store):
        feed = mon.monitor(store, mv)
        assert feed.reference is not None
        x, k, _, z = feed.monitor.profile.features
        assert z.kind == "categorical"
        assert not np.isin(victim_x, x.sample).any()
        assert x.kept is not None and not np.isin(victim_x, x.kept.values).any()
        assert 9.0 not in k.categories.tolist()
        assert "7341.918273" not in feed.monitor.profile.to_bytes().decode()
    reference = mon.monitor(store, store.get_model("reg")).reference
    assert reference is not None and reference.out_range is not None
    assert reference.out_range[1] < 999.5


def test_the_reference_loses_the_victim_exactly_when_no_choice_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    rows = [r for r in dataset() if not (r["subject_id"] == VICTIM and r["z"] == 64)]
    st = ModelStore.open(tmp_path / "store")
    try:
        st.ingest("people", rows, subject_column="subject_id")
        st.train(
            "reg",
            dataset="people",
            estimator=LinearRegression(alpha=0.1),
            label="y",
            features=FEATURES,
        )
        st.train(
            "knn", dataset="people", estimator=KNNClassifier(3), label="cls", features=FEATURES
        )
        mon = _monitoring(st)
        _erase(st, mon, VICTIM, monkeypatch)
        with monkeypatch.context() as m:
            m.setattr(st, "training_data", _no_reads)
            feed = mon.monitor(st, st.get_model("reg"))
        _assert_rebuilt_equal(st, mon)
        assert feed.reference is not None and feed.reference.out_range is not None
        assert feed.reference.out_range[1] < 999.5  # the range followed the largest label out
        k = feed.monitor.profile.features[1]
        assert k.kind == "categorical" and 9.0 not in k.categories.tolist()
    finally:
        st.close()


def test_without_the_deleted_rows_the_profile_is_rebuilt(
    store: ModelStore, monkeypatch: pytest.MonkeyPatch
):
    mon = _monitoring(store)
    calls = []
    real = store.training_data
    monkeypatch.setattr(store, "training_data", lambda *a: calls.append(a) or real(*a))
    receipt = store.erase(OTHERS[0], legal_ground="art17-1-b", purge=False)
    mon.erased(receipt.subject_key, receipt.models, None)
    for mv in _versions(store):
        mon.monitor(store, mv)
    assert len(calls) == 2  # no deleted rows given: each version rebuilt from the store
    removed: dict = {}
    receipt = store.erase(OTHERS[1], legal_ground="art17-1-b", purge=False, removed=removed)
    pairs = [(a.model, a.version) for a in receipt.models]
    mon.erased(receipt.subject_key, pairs, removed)  # pairs name no rows: rebuilt too
    for mv in _versions(store):
        mon.monitor(store, mv)
    assert len(calls) == 4
    _assert_rebuilt_equal(store, mon)


# ---------------------------------------------------------------------- Reference, no store
def _mv(d: int) -> Any:
    """What Reference reads of a version: its name, number and feature names."""
    return SimpleNamespace(name="m", version=1, features=[f"f{j}" for j in range(d)])


def _same(after: Reference, fresh: Reference) -> None:
    assert after.profile.to_bytes() == fresh.profile.to_bytes()
    assert after.out_range == fresh.out_range
    assert [c.categorical for c in after.columns] == [c.categorical for c in fresh.columns]


cells = st.one_of(
    st.integers(0, 4).map(float),
    st.integers(-50, 50).map(float),
    st.floats(-100, 100, allow_nan=False),
    st.just(math.nan),
)
labels = st.one_of(st.integers(-30, 30), st.sampled_from([0, 1, 2]))


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_reference_removal_equals_a_rebuild_or_asks_for_one(data):
    # small bounds, so that every path runs: exact counts, a floor, extremes, flips
    with pytest.MonkeyPatch.context() as m:
        m.setattr(monitoring, "CATEGORY_MAX", 3)
        m.setattr(monitoring, "DISTINCT_MAX", 6)
        m.setattr(monitoring, "EXTREMES", 2)
        _remove_and_compare(data)


def _draw_gone(data: st.DataObject, alive: np.ndarray, keep: int) -> np.ndarray | None:
    """Up to three of the rows still ``alive`` to remove, leaving at least ``keep``; None when
    no more can go."""
    left = np.flatnonzero(alive)
    if left.size <= keep:
        return None
    drawn = data.draw(st.lists(st.sampled_from(left.tolist()), max_size=3, unique=True))
    return np.array(drawn, dtype=np.int64)[: left.size - keep]


def _remove_and_compare(data: st.DataObject) -> None:
    n = data.draw(st.integers(3, 40), label="n")
    X = np.array(data.draw(st.lists(st.tuples(cells, cells), min_size=n, max_size=n)))
    X[:, 1] = np.nan_to_num(np.round(X[:, 1]), nan=1.0) if data.draw(st.booleans()) else X[:, 1]
    y = np.array(data.draw(st.lists(labels, min_size=n, max_size=n)), dtype=np.int64)
    if data.draw(st.booleans(), label="float labels"):
        y = y * 0.5
    ids = np.arange(n, dtype=np.int64) * 3 + 1
    ref = Reference.fit(_mv(2), ids, X, y)
    alive = np.ones(n, dtype=bool)
    for _ in range(data.draw(st.integers(1, 4), label="removals")):
        gone = _draw_gone(data, alive, keep=1)
        if gone is None:
            break
        after = ref.remove(ids[gone], X[gone], y[gone])
        alive[gone] = False
        fresh = Reference.fit(_mv(2), ids[alive], X[alive], y[alive])
        if after is not None:
            _same(after, fresh)
        ref = fresh if after is None else after


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_references_sharing_parts_remove_rows_as_each_would_alone(data):
    """Three references of one data set: two on the same rows (one with its columns in
    another order, one label each), one on a subset. Shared parts and a common memo give
    each what a rebuild on its own rows gives."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(monitoring, "CATEGORY_MAX", 3)
        m.setattr(monitoring, "DISTINCT_MAX", 6)
        m.setattr(monitoring, "EXTREMES", 2)
        n = data.draw(st.integers(4, 40), label="n")
        X = np.array(data.draw(st.lists(st.tuples(cells, cells), min_size=n, max_size=n)))
        X[:, 1] = np.nan_to_num(np.round(X[:, 1]), nan=1.0)
        y = np.array(data.draw(st.lists(labels, min_size=n, max_size=n)), dtype=np.float64)
        ids = np.arange(n, dtype=np.int64) * 5 + 2
        sub = np.array(sorted(set(data.draw(st.lists(st.integers(0, n - 1), min_size=2)))))
        swap = data.draw(st.booleans(), label="swapped columns")
        cols = [1, 0] if swap else [0, 1]
        mv2 = SimpleNamespace(name="m2", version=1, features=["f1", "f0"] if swap else ["f0", "f1"])

        def fit(rows: np.ndarray, which: int) -> Reference:
            if which == 0:
                return Reference.fit(_mv(2), ids[rows], X[rows], y[rows])
            if which == 1:
                return Reference.fit(mv2, ids[rows], X[rows][:, cols], y[rows] * 2.0)
            return Reference.fit(_mv(2), ids[rows], X[rows], y[rows])

        rows_of = [np.arange(n), np.arange(n), sub]
        first = fit(rows_of[0], 0)
        second = fit(rows_of[1], 1).shared_with(first, same_label=False)
        refs: list[Reference | None] = [first, second]
        refs.append(fit(rows_of[2], 2).shared_with(first, same_label=True))
        theirs = second.columns[::-1] if swap else second.columns
        assert all(a is b for a, b in zip(first.columns, theirs, strict=True))
        alive = np.ones(n, dtype=bool)
        for _ in range(data.draw(st.integers(1, 3), label="removals")):
            gone = _draw_gone(data, alive, keep=2)
            if gone is None:
                break
            alive[gone] = False
            memo: dict = {}
            for i, ref in enumerate(refs):
                if ref is None:
                    continue
                mine = np.intersect1d(gone, rows_of[i])
                if mine.size == rows_of[i].size or not mine.size:
                    refs[i] = None if mine.size else ref  # (a subset may lose every row)
                    rows_of[i] = np.setdiff1d(rows_of[i], mine)
                    continue
                Xi = X[mine][:, cols] if i == 1 else X[mine]
                yi = y[mine] * (2.0 if i == 1 else 1.0)
                after = ref.remove(ids[mine], Xi, yi, memo=memo)
                rows_of[i] = np.setdiff1d(rows_of[i], mine)
                fresh = fit(rows_of[i], i)
                if after is not None:
                    _same(after, fresh)
                refs[i] = fresh if after is None else after


def test_a_label_range_follows_its_extremes_past_the_exact_counts(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(monitoring, "DISTINCT_MAX", 100)
    monkeypatch.setattr(monitoring, "EXTREMES", 3)
    y = np.arange(200, dtype=np.float64) * 0.5  # 200 distinct labels: counted no more
    X = np.zeros((200, 1)) + np.arange(200)[:, None] % 7
    ids = np.arange(200, dtype=np.int64)
    ref = Reference.fit(_mv(1), ids, X, y)
    assert ref.label is not None and ref.label.values is None and ref.out_range == (0.0, 99.5)
    top = np.array([199, 198])
    after = ref.remove(ids[top], X[top], y[top])
    assert after is not None and after.out_range == (0.0, 98.5)
    keep = np.setdiff1d(ids, top)
    _same(after, Reference.fit(_mv(1), keep, X[keep], y[keep]))
    # the third largest leaves too: no kept extreme says what the largest is now
    assert after.remove(ids[[197]], X[[197]], y[[197]]) is None
    # a label the column never held: the reference cannot be this one's; rebuild
    assert ref.remove(ids[[5]], X[[5]], np.array([1234.0])) is None


def test_a_restriction_takes_the_rows_out_of_the_references_and_a_lift_brings_them_back(
    store: ModelStore,
):
    """Restricted rows are not processed: the served versions' drift references (built from
    their training rows) lose the victim's values; the lift gives them back."""
    from api.service import Service

    victim_x = [7341.918273, 7342.918273]
    svc = Service(store, metrics=Metrics(runtime=False), batching=False, compile_forests=False)
    try:
        mon = svc.monitoring
        assert mon is not None
        for mv in _versions(store):
            x = mon.monitor(store, mv).monitor.profile.features[0]
            assert np.isin(victim_x, x.sample).all()  # the test bites
        svc.restrict(VICTIM)
        _assert_rebuilt_equal(store, mon)
        for mv in _versions(store):
            profile = mon.monitor(store, mv).monitor.profile
            assert not np.isin(victim_x, profile.features[0].sample).any()
            assert "7341.918273" not in profile.to_bytes().decode()
        svc.lift_restriction(VICTIM)
        _assert_rebuilt_equal(store, mon)
        for mv in _versions(store):
            x = mon.monitor(store, mv).monitor.profile.features[0]
            assert np.isin(victim_x, x.sample).all()
    finally:
        svc.close()
