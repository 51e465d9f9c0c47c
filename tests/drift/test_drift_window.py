"""drift.window: bounded memory, arrival order, and discard by key removing exactly those rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.errors import DriftInputError
from drift.window import Window, keys_for_batch

# a batch: (rows, key choice) where keys are None, one key for the batch, or one per row
batches = st.lists(
    st.tuples(st.integers(0, 9), st.sampled_from(["none", "batch", "rows"])),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(batches, st.integers(1, 12), st.lists(st.integers(0, 30), max_size=4))
def test_window_holds_the_last_rows_and_discard_removes_exactly_the_keyed_ones(
    plan, capacity, erase_after
):
    w = Window(n_features=2, capacity=capacity)
    model: list[tuple[float, object]] = []  # every row ever appended: (value, key)
    erased: set[object] = set()
    counter = 0
    for step, (n, how) in enumerate(plan):
        vals = np.arange(counter, counter + n, dtype=np.float64)
        counter += n
        keys = {"none": None, "batch": f"b{step}", "rows": [f"r{int(v) % 7}" for v in vals]}[how]
        w.append(np.c_[vals, -vals], outputs=vals / 10, keys=keys)
        model += list(zip(vals.tolist(), keys_for_batch(keys, n) or [None] * n, strict=True))
        if step in erase_after:
            victims = {f"r{step % 7}", f"b{step - 1}", "never-seen"}
            held = {v for v, k in model[-capacity:] if k in victims and v not in erased}
            assert w.discard(victims) == len(held)
            erased |= held
        want = [v for v, _ in model[-capacity:] if v not in erased]
        X, out = w.snapshot()
        assert X[:, 0].tolist() == want and X[:, 1].tolist() == [-v for v in want]
        np.testing.assert_allclose(out, np.array(want) / 10)
        assert w.rows == len(want) <= capacity
        assert w.seen == counter
        assert len(w._ids) <= 2 * capacity + 64 + 7 + len(plan)


def test_memory_is_fixed_by_capacity():
    w = Window(n_features=14, capacity=100)
    before = w._X.nbytes + w._out.nbytes + w._valid.nbytes + w._kid.nbytes
    for i in range(50):
        w.append(np.full((37, 14), float(i)), keys=[f"k{i}-{j}" for j in range(37)])
    assert w._X.nbytes + w._out.nbytes + w._valid.nbytes + w._kid.nbytes == before
    assert w.rows == 100 and w.seen == 50 * 37
    assert len(w._ids) <= 2 * 100 + 64 + 37  # aged-out keys are forgotten


def test_discard_overwrites_the_values_and_ignores_unknown_keys():
    w = Window(n_features=1, capacity=10)
    w.append(
        np.array([[1.0], [2.0], [3.0]]),
        outputs=np.array([0.1, 0.2, 0.3]),
        keys=["alice", "bob", "alice"],
    )
    assert w.discard(["alice", "nobody"]) == 2
    assert w.discard(["alice"]) == 0  # already gone
    assert w._X[~np.isnan(w._X)].tolist() == [2.0]  # alice's values are not in memory any more
    assert w.snapshot()[0].tolist() == [[2.0]] and w.discarded == 2
    w.append(np.array([[4.0]]))
    assert w.snapshot()[0].ravel().tolist() == [2.0, 4.0]


def test_a_batch_larger_than_the_window_keeps_its_last_rows():
    w = Window(n_features=1, capacity=4)
    w.append(np.arange(10.0)[:, None], keys=[str(i) for i in range(10)])
    assert w.snapshot()[0].ravel().tolist() == [6.0, 7.0, 8.0, 9.0]
    assert w.discard(["0", "7"]) == 1 and w.seen == 10


def test_keys_for_batch():
    assert keys_for_batch(None, 3) is None
    assert keys_for_batch("s1", 2) == ["s1", "s1"]
    assert keys_for_batch(7, 1) == [7]
    assert keys_for_batch(("a", None), 2) == ["a", None]
    with pytest.raises(DriftInputError, match="2 keys for 3 rows"):
        keys_for_batch(["a", "b"], 3)
    with pytest.raises(DriftInputError, match="hashable"):
        keys_for_batch([["a"]], 1)


def test_clear():
    w = Window(n_features=1, capacity=3)
    w.append(np.ones((2, 1)), keys=["a", "b"])
    w.clear()
    assert w.rows == 0 and w.seen == 0 and w.discard(["a"]) == 0
    assert len(w) == 0 and "rows=0" in repr(w)
