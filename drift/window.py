"""A bounded window of recent serving rows: inputs, model outputs and optional erasure keys.

A ring buffer of the last ``capacity`` rows (fixed memory: ``capacity × (n_features + 2)``
numbers). Each appended row may carry an opaque, hashable key — a keyed pseudonym of the
subject, a request id — and :meth:`Window.discard` removes every row still held under the
given keys, overwriting their values, so an erased subject's inputs leave the window at once
rather than when they age out.

>>> import numpy as np
>>> w = Window(n_features=2, capacity=3)
>>> w.append(np.array([[1.0, 2.0], [3.0, 4.0]]), keys=["a", "b"])
>>> w.append(np.array([[5.0, 6.0], [7.0, 8.0]]))   # the oldest row ("a") falls out
>>> w.discard(["b", "a"]), w.rows
(1, 2)
>>> w.snapshot()[0].tolist()
[[5.0, 6.0], [7.0, 8.0]]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

from drift.errors import DriftInputError

__all__ = ["Window", "keys_for_batch"]


def keys_for_batch(keys: Any, n: int) -> list[Hashable] | None:
    """``keys`` as one key per row: ``None``, a single key for the whole batch, or n keys."""
    if keys is None:
        return None
    if isinstance(keys, str | bytes | int) or not isinstance(keys, Iterable):
        return [keys] * n
    out = list(keys)
    if len(out) != n:
        raise DriftInputError(f"got {len(out)} keys for {n} rows; give one key per row")
    for k in out:
        if k is not None and not isinstance(k, Hashable):
            raise DriftInputError(f"keys must be hashable, got {type(k).__name__}")
    return out


class Window:
    """The last ``capacity`` rows appended, in arrival order, minus discarded ones.

    Parameters
    ----------
    n_features : columns of every appended batch.
    capacity : the most rows held; older rows are overwritten.
    n_outputs : outputs per row: 1 keeps one score (a 1-d output array), ``k`` keeps ``k``
        columns (a classifier's probabilities, for performance prediction).
    """

    def __init__(self, n_features: int, capacity: int = 5000, n_outputs: int = 1) -> None:
        if capacity < 1 or n_features < 1 or n_outputs < 1:
            raise ValueError("capacity, n_features and n_outputs must be positive")
        self.n_features = n_features
        self.capacity = capacity
        self.n_outputs = n_outputs
        self.clear()

    def clear(self) -> None:
        """Drop every row and key."""
        capacity, n_features = self.capacity, self.n_features
        self._X = np.full((capacity, n_features), np.nan)
        shape = capacity if self.n_outputs == 1 else (capacity, self.n_outputs)
        self._out = np.full(shape, np.nan)
        self._valid = np.zeros(capacity, dtype=bool)
        self._kid = np.full(capacity, -1, dtype=np.int64)  # key id per slot, -1: no key
        self._ids: dict[Hashable, int] = {}
        self._next_id = 0
        self._head = 0  # the slot the next row goes to
        self.seen = 0  # rows ever appended
        self.discarded = 0  # rows removed by discard()
        self.rows = 0  # rows held now

    def _put(self, arr: np.ndarray, m: int, values: np.ndarray | Any) -> None:
        # write m rows at head.. (wrapping); ``values`` has m <= capacity rows or is a scalar
        h = self._head
        if h + m <= self.capacity:
            arr[h : h + m] = values
        elif np.ndim(values) == 0:
            arr[h:] = values
            arr[: h + m - self.capacity] = values
        else:
            first = self.capacity - h
            arr[h:] = values[:first]
            arr[: m - first] = values[first:]

    def append(self, X: np.ndarray, *, outputs: np.ndarray | None = None, keys: Any = None) -> None:
        """Append rows (an ``(n, n_features)`` float array), their outputs and keys.

        ``keys``: ``None``, one key for the whole batch, or one key (or ``None``) per row (see
        :func:`keys_for_batch`). Shapes are the caller's to check (:class:`drift.Monitor`
        does).
        """
        n = X.shape[0]
        keys = keys_for_batch(keys, n)
        if n == 0:
            return
        if n > self.capacity:  # only the last `capacity` rows can stay
            cut = n - self.capacity
            X = X[cut:]
            outputs = None if outputs is None else outputs[cut:]
            keys = None if keys is None else keys[cut:]
        m = X.shape[0]
        cap, h = self.capacity, self._head
        occupied = min(self.seen, cap)
        if occupied == self.rows:  # no holes: the overwritten slots were all held rows
            evicted = max(0, occupied + m - cap)
        else:
            end = min(h + m, cap)
            evicted = int(self._valid[h:end].sum()) + int(self._valid[: h + m - end].sum())
        self._put(self._X, m, X)
        self._put(self._out, m, np.nan if outputs is None else outputs)
        self._put(self._valid, m, True)
        if keys is None:
            if self._ids:  # keyed rows may be overwritten; unkeyed slots are already -1
                self._put(self._kid, m, -1)
        else:
            self._put(self._kid, m, np.array([self._id(k) for k in keys], dtype=np.int64))
            if len(self._ids) > 2 * cap + 64:
                self._collect_ids()
        self._head = (h + m) % cap
        self.seen += n
        self.rows += m - evicted

    def _id(self, key: Hashable) -> int:
        if key is None:
            return -1
        i = self._ids.get(key)
        if i is None:
            i = self._ids[key] = self._next_id
            self._next_id += 1
        return i

    def _collect_ids(self) -> None:
        # forget keys whose rows have all aged out (amortised: runs once per `capacity` keys)
        live = set(np.unique(self._kid[self._kid >= 0]).tolist())
        self._ids = {k: i for k, i in self._ids.items() if i in live}

    def discard(self, keys: Iterable[Hashable]) -> int:
        """Remove every held row appended under one of ``keys``; returns how many.

        The rows' inputs and outputs are overwritten with NaN; unknown keys (never seen, or
        whose rows have aged out) are ignored.
        """
        ids = [self._ids.pop(k) for k in set(keys) if k in self._ids]
        if not ids:
            return 0
        hit = np.isin(self._kid, ids) & self._valid
        count = int(hit.sum())
        self._X[hit] = np.nan
        self._out[hit] = np.nan
        self._valid[hit] = False
        self._kid[np.isin(self._kid, ids)] = -1
        self.rows -= count
        self.discarded += count
        return count

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the held rows' inputs ``(rows, n_features)`` and outputs (``(rows,)``, or
        ``(rows, n_outputs)``), oldest first."""
        h = self._head
        if self.seen >= self.capacity:
            X = np.concatenate([self._X[h:], self._X[:h]])
            out = np.concatenate([self._out[h:], self._out[:h]])
            valid = np.concatenate([self._valid[h:], self._valid[:h]])
        else:
            X, out, valid = self._X[:h].copy(), self._out[:h].copy(), self._valid[:h]
        if self.rows != valid.size:  # some rows were discarded
            X, out = X[valid], out[valid]
        return X, out

    def __len__(self) -> int:
        return self.rows

    def __repr__(self) -> str:
        return f"Window(rows={self.rows}, capacity={self.capacity}, seen={self.seen})"
