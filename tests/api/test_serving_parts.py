"""The prediction cache and the micro-batcher on their own, and the service's fence.

The property the serving layer owes: under any interleaving of predictions and erasures, no
answer comes from a revision that still holds an erased record — through the cache, the
batcher, or neither.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from api.batching import Batcher, Overloaded
from api.cache import PredictionCache
from api.service import Service
from forget import KNNRegressor
from store.errors import PredictInputError
from tests.store.helpers import FEATURES, people

# ---------------------------------------------------------------------- cache

ops = st.lists(
    st.one_of(
        st.tuples(st.just("current"), st.sampled_from("ab"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("put"), st.sampled_from("ab"), st.integers(0, 2), st.integers(0, 3)),
        st.tuples(st.just("invalidate"), st.sampled_from(["a", "b", None]), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@given(ops, st.integers(450, 3000))
def test_the_cache_answers_only_for_the_current_revision(ops: list, max_bytes: int):
    cache = PredictionCache(max_bytes=max_bytes)
    current: dict[tuple[str, int], int] = {}  # several versions of a model may serve at once
    for i, (op, model, version, revision) in enumerate(ops):
        if op == "current":
            cache.set_current(model, version, revision)
            current[(model, version)] = revision
        elif op == "invalidate":
            cache.invalidate(None if model is None else {model})
            for mv in [mv for mv in current if model is None or mv[0] == model]:
                del current[mv]
        else:
            key = (model, version, revision, bytes([i % 7]))
            stored = cache.put(key, [model, version, revision])
            assert stored == (current.get((model, version)) == revision)
        assert cache.bytes <= max_bytes
        for k in list(cache._entries):
            assert current.get(k[:2]) == k[2]
            assert cache.get(k) == list(k[:3])


# ---------------------------------------------------------------------- batcher


def _echo(model: str, payloads: Sequence[Any], wait: bool) -> list[Any]:
    return [ValueError(p) if p == "bad" else (model, p) for p in payloads]


def test_calls_of_one_round_are_scored_together_and_each_gets_its_own_answer():
    seen: list[int] = []

    def score(model: str, payloads: Sequence[Any], wait: bool) -> list[Any]:
        seen.append(len(payloads))
        return _echo(model, payloads, wait)

    async def go() -> list[Any]:
        b = Batcher(score, start_rows=8)
        calls = [b.submit("m", i, 1) for i in range(20)] + [b.submit("m", "bad", 1)]
        calls += [b.submit("other", "x", 1)]
        return await asyncio.gather(*calls, return_exceptions=True)

    out = asyncio.run(go())
    assert out[:20] == [("m", i) for i in range(20)]
    assert isinstance(out[20], ValueError) and out[21] == ("other", "x")
    assert sum(seen) == 22 and seen[0] == 8  # batches of the model's limit, then the rest


def test_a_busy_lock_sends_the_batch_to_a_thread():
    threads: list[str] = []

    def score(model: str, payloads: Sequence[Any], wait: bool) -> list[Any] | None:
        threads.append(threading.current_thread().name)
        return list(payloads) if wait else None  # as if an erasure held the lock

    async def go() -> list[Any]:
        b = Batcher(score)
        return await asyncio.gather(*(b.submit("m", i, 1) for i in range(3)))

    assert asyncio.run(go()) == [0, 1, 2]
    assert threads[0] == "MainThread" and threads[1] != "MainThread"


def test_aimd_grows_when_fast_and_halves_when_slow():
    delay = {"s": 0.0}

    def timed(model: str, payloads: Sequence[Any], wait: bool) -> list[Any]:
        time.sleep(delay["s"])
        return list(payloads)

    async def go() -> Batcher:
        b = Batcher(timed, start_rows=64, step=16, objective=0.05)
        for _ in range(3):
            await b.submit("m", 0, 64)
        assert b.limit["m"] == 64 + 3 * 16
        delay["s"] = 0.08
        await b.submit("m", 0, 100)
        return b

    assert asyncio.run(go()).limit["m"] == (64 + 3 * 16) // 2


def test_a_full_queue_refuses_with_overloaded():
    async def go() -> None:
        b = Batcher(lambda m, p, w: list(p), max_queue_rows=10)
        first = asyncio.ensure_future(b.submit("m", 0, 6))
        second = asyncio.ensure_future(b.submit("m", 1, 4))
        await asyncio.sleep(0)  # both queued, not yet flushed
        with pytest.raises(Overloaded):
            await b.submit("m", 2, 1)
        assert await first == 0 and await second == 1
        assert await b.submit("m", 3, 1) == 3  # room again once flushed

    asyncio.run(go())


def test_a_scorer_that_raises_fails_the_batch_not_the_batcher():
    calls = {"n": 0}

    def flaky(model: str, payloads: Sequence[Any], wait: bool) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return list(payloads)

    async def go() -> None:
        b = Batcher(flaky)
        with pytest.raises(RuntimeError):
            await b.submit("m", 1, 1)
        assert await b.submit("m", 2, 1) == 2

    asyncio.run(go())


# ---------------------------------------------------------------------- the service's fence


class FenceMachine(RuleBasedStateMachine):
    """Predictions (cached or not, batched or not) and erasures in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.svc: Service | None = None

    @initialize(batching=st.booleans())
    def open(self, batching: bool) -> None:
        import tempfile

        rows = people(n_subjects=12, seed=5)
        first: dict[str, dict] = {}
        for r in rows:
            first.setdefault(r["subject_id"], r)
        self.subjects = sorted(first)
        self.probe = [{f: first[s][f] for f in FEATURES} for s in self.subjects]
        self.truth = [first[s]["score"] for s in self.subjects]
        self.erased: set[int] = set()
        self.revision = 0
        self.dir = Path(tempfile.mkdtemp())
        self.svc = Service.open(self.dir, purge_interval=0, evidence_rate=0, batching=batching)
        self.svc.store.ingest("people", rows, subject_column="subject_id")
        self.svc.store.train(
            "nn", dataset="people", estimator=KNNRegressor(n_neighbors=1), label="score",
            features=FEATURES,
        )  # fmt: skip

    def _check(self, res: dict[str, Any], which: list[int]) -> None:
        assert res["revision"] == self.revision
        for j, i in enumerate(which):
            if i in self.erased:
                assert res["predictions"][j] != self.truth[i]
            else:
                assert res["predictions"][j] == self.truth[i]

    @precondition(lambda self: self.svc is not None)
    @rule(which=st.lists(st.integers(0, 11), min_size=1, max_size=4), sync=st.booleans())
    def predict(self, which: list[int], sync: bool) -> None:
        assert self.svc is not None
        rows = [self.probe[i] for i in which]
        if sync:
            res = self.svc.predict("nn", rows)
        else:
            res = asyncio.run(self.svc.predict_async("nn", rows))
        self._check(res, which)

    @precondition(lambda self: self.svc is not None)
    @rule(i=st.integers(0, 11))
    def erase(self, i: int) -> None:
        assert self.svc is not None
        receipt = self.svc.erase(self.subjects[i], "art17-1-b")
        if i not in self.erased:
            self.revision += 1
            self.erased.add(i)
            assert [a["revision"] for a in receipt["models"]] == [self.revision]
        else:
            assert receipt["repeat"]

    @precondition(lambda self: self.svc is not None)
    @rule()
    def purge(self) -> None:
        assert self.svc is not None
        self.svc.purge()

    @invariant()
    def cache_holds_only_the_current_revision(self) -> None:
        if self.svc is not None:
            for _, _, revision, _ in self.svc.cache._entries:
                assert revision == self.revision

    def teardown(self) -> None:
        if self.svc is not None:
            self.svc.close()


TestFence = FenceMachine.TestCase
TestFence.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


def test_bad_rows_in_a_batch_fail_alone(tmp_path: Path):
    svc = Service.open(tmp_path / "s", purge_interval=0)
    svc.store.ingest("people", people(), subject_column="subject_id")
    svc.store.train(
        "nn", dataset="people", estimator=KNNRegressor(n_neighbors=1), label="score",
        features=FEATURES,
    )  # fmt: skip

    async def both() -> list[Any]:
        good = svc.predict_async("nn", [dict.fromkeys(FEATURES, 0.0)])
        bad = svc.predict_async("nn", [{"a": 1.0}])
        return await asyncio.gather(good, bad, return_exceptions=True)

    good, bad = asyncio.run(both())
    assert isinstance(bad, PredictInputError) and "missing features" in str(bad)
    assert isinstance(good, dict) and np.isfinite(good["predictions"][0])
    svc.close()


def test_the_compiled_forest_stays_exact_through_erasures(tmp_path: Path):
    from tests.store.helpers import populate

    rows = people(n_subjects=40, seed=2)
    svc = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0, cache_bytes=0)
    populate(svc.store, rows)
    probe = [dict(zip(FEATURES, map(float, x), strict=True)) for x in
             np.random.default_rng(0).normal(size=(200, 3))]  # fmt: skip
    X = np.array([[r[f] for f in FEATURES] for r in probe])
    subjects = sorted({r["subject_id"] for r in rows})
    for s in [None, *subjects[:12]]:
        if s is not None:
            svc.erase(s, "art17-1-b")
        if s is not None:  # the erasure refreshed the compiled trees before it answered
            _, est = svc.store.serving("risk")
            assert est._compiled.built and not est._compiled.stale
        res = svc.predict("risk", probe)
        _, est = svc.store.serving("risk")
        assert res["probabilities"] == est._node_proba(X).tolist()  # bitwise
        assert res["revision"] == svc.store.get_model("risk").revision
    assert res["revision"] == 12
    svc.close()


def test_what_the_server_keeps_per_prediction_gives_the_cycle_collector_nothing_to_walk(
    tmp_path: Path,
):
    """A full collection stops the server while it walks every object it tracks: kept as dicts
    and lists, a full answer cache and the 100k predictions remembered for feedback made each
    one 10-100 ms (bench.api_erasure's idle predictions). Answers cached, predictions
    remembered and rows fed to the drift monitor must leave nothing for it to walk."""
    from tests.store.helpers import populate

    svc = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0, batching=False)
    populate(svc.store, people(n_subjects=20, seed=4))
    probe = np.random.default_rng(1).normal(size=(2_000, len(FEATURES)))
    rows = [dict(zip(FEATURES, map(float, x), strict=True)) for x in probe]
    for name in ("risk", "score"):
        svc.predict(name, rows[:1])  # loaded, compiled, monitored
    gc.collect()
    before = len(gc.get_objects())
    for row in rows:
        for name in ("risk", "score"):
            assert "prediction_id" in svc.predict(name, [row])
    assert svc.predict("risk", rows[7:8]) == svc.predict("risk", rows[7:8]) | {
        "prediction_id": ANY
    }  # a cache hit: the same answer
    gc.collect()
    assert svc.cache.hits and len(svc.cache) >= 2 * len(rows) - 2
    assert len(gc.get_objects()) - before < 200  # 4,000 answers kept: ~24,000 objects once
    svc.close()


def _service_samples(svc: Service) -> list[Any]:
    """The service's series, not the process's (CPU, memory and GC move on their own)."""
    return [
        s
        for f in svc.metrics.families()
        if not f.name.startswith(("process_", "python_"))
        for s in f.samples
    ]


def test_warm_loads_and_compiles_every_serving_model_and_leaves_no_trace(tmp_path: Path):
    from tests.store.helpers import populate

    svc = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(svc.store, people(n_subjects=20, seed=4))
    before = _service_samples(svc)
    assert svc.warm() == sorted({mv.name for mv in svc.store.list_models()})
    assert svc.store.serving("risk")[1]._compiled.built  # compiled before the first request
    assert _service_samples(svc) == before  # no prediction counted
    assert len(svc.cache) == 0 and svc.cache.bytes == 0  # nothing cached
    if svc.monitoring is not None:  # its drift monitor is ready, and saw no row of zeros
        feed = svc.monitoring.current("risk", 1, 0)
        assert feed is not None
        feed.flush()
        assert feed.monitor._window.seen == 0
    svc.close()


def test_an_erasure_moves_the_serving_entries_without_reading_the_registry(tmp_path: Path):
    from tests.store.helpers import populate

    rows = people(n_subjects=30, seed=3)
    svc = Service.open(tmp_path / "s", purge_interval=0, evidence_rate=0)
    populate(svc.store, rows)
    probe = [dict(zip(FEATURES, (0.1, -0.2, 0.3), strict=True))]
    first = svc.predict("risk", probe)

    def refused(*args, **kwargs):
        raise AssertionError("the registry was read again")

    real = svc.store.serving
    svc.store.serving = refused  # type: ignore[method-assign]
    subjects = sorted({r["subject_id"] for r in rows})
    svc.erase(subjects[0], "art17-1-b")
    after = svc.predict("risk", probe)
    svc.store.serving = real  # type: ignore[method-assign]
    mv, est = real("risk")
    assert after["revision"] == mv.revision == first["revision"] + 1
    assert (
        after["probabilities"]
        == est._node_proba(np.array([[probe[0][f] for f in FEATURES]])).tolist()
    )
    assert svc.cache.current("risk", mv.version) == mv.revision
    svc.close()
