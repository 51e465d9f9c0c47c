"""RowIndex: a forgotten id leaves every array the index keeps, and is then unknown."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forget._rows import GONE, RowIndex, as_row_ids
from forget.errors import EmptyModelError, UnknownRowIdsError


@settings(max_examples=150, deadline=None)
@given(
    ids=st.lists(st.integers(-(2**40), 2**40), min_size=2, max_size=40, unique=True),
    data=st.data(),
)
def test_forgotten_ids_leave_the_index(ids, data):
    index = RowIndex(np.array(ids, dtype=np.int64))
    alive = list(ids)
    for _ in range(len(ids) - 1):
        victim = data.draw(st.sampled_from(alive))
        as_list = data.draw(st.booleans())
        index.drop(index.resolve([victim] if as_list else np.array([victim])))
        alive.remove(victim)
        # nothing the index keeps holds the id: not the ids, their sorted copy, nor the lookup
        # (the other arrays hold positions and flags, not ids)
        assert victim not in index.ids.tolist() and victim not in index._sorted.tolist()
        assert victim not in (index._lookup or {})
        assert (index._sorted[1:] >= index._sorted[:-1]).all()
        assert index.n_alive == len(alive) == index.live().size
        assert sorted(index.ids[index.live()].tolist()) == sorted(alive)
        for w in ids:
            for request in ([w], np.array([w])):
                if w not in alive:
                    with pytest.raises(UnknownRowIdsError, match="already forgotten"):
                        index.resolve(request)
                elif len(alive) > 1:
                    assert index.ids[index.resolve(request)[0]] == w
                else:
                    with pytest.raises(EmptyModelError):
                        index.resolve(request)


def test_the_sentinel_is_not_a_row_id():
    with pytest.raises(ValueError, match="reserved"):
        as_row_ids(np.array([1, GONE]), 2)
    index = RowIndex(np.array([1, 2, 3]), np.array([True, False, True]))
    assert index.ids.tolist() == [1, GONE, 3]
    with pytest.raises(UnknownRowIdsError):
        index.resolve([GONE])
    with pytest.raises(UnknownRowIdsError):
        index.resolve(np.array([2]))
