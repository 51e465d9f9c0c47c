"""Row-id bookkeeping shared by all models: map external ids to positions, refuse bad requests.

Every model names its training rows by integer ids. ``RowIndex.resolve`` checks a whole forget
request (unknown or repeated ids) *before* anything is changed, so a refused request leaves the
model untouched.

A forgotten row's id leaves the index with it: ``drop`` overwrites it with ``GONE`` in every
array the index keeps (the ids, their sorted copy, the lookup table), so neither the model's
memory nor its artifact says that the id was ever trained on. Forgetting it again is an unknown
id, the same answer as for an id the model never saw.

>>> index = RowIndex(np.array([30, 10, 20]))
>>> index.drop(index.resolve([10]))
>>> index.ids.tolist() == [30, GONE, 20], index.live().tolist()
(True, [0, 2])
>>> index.resolve([10])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
forget.errors.UnknownRowIdsError: 1 row ids not held by model (never trained on, or already ...
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils.validation import check_is_fitted

from forget.errors import (
    DuplicateRowIdsError,
    EmptyModelError,
    HeldRowIdsError,
    UnknownRowIdsError,
)

GONE = int(np.iinfo(np.int64).min)
"""What a forgotten row's id is overwritten with; refused as a training row id."""


def as_row_ids(row_ids: ArrayLike | None, n: int) -> np.ndarray:
    """Validate the ids given to ``fit``: ``n`` unique integers (``0..n-1`` when omitted)."""
    if row_ids is None:
        return np.arange(n, dtype=np.int64)
    ids = np.asarray(row_ids)
    if ids.ndim != 1 or ids.shape[0] != n:
        raise ValueError(f"row_ids must be a 1-d array of {n} ids, got shape {ids.shape}")
    if (
        ids.size
        and not np.issubdtype(ids.dtype, np.integer)
        and (not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)))
    ):
        raise ValueError("row_ids must be integers")
    ids = ids.astype(np.int64)
    if ids.size and int(ids.min()) == GONE:
        raise ValueError(f"row id {GONE} is reserved (it marks forgotten rows)")
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size != ids.size:
        raise DuplicateRowIdsError(uniq[counts > 1].tolist())
    return ids


def requested_row_ids(row_ids: ArrayLike) -> np.ndarray:
    """Validate the ids of a ``forget`` request: one id or a 1-d sequence of unique
    integer-valued numbers, as int64 (whether the model holds them is the caller's check)."""
    req = np.asarray(row_ids)
    if req.ndim == 0:
        req = req.reshape(1)
    if req.ndim != 1:
        raise ValueError(f"row_ids must be 1-d, got shape {req.shape}")
    if (
        req.size
        and not np.issubdtype(req.dtype, np.integer)
        and (not np.issubdtype(req.dtype, np.number) or not np.all(req == np.round(req)))
    ):
        raise ValueError("row_ids must be integers")
    req = req.astype(np.int64)
    uniq, counts = np.unique(req, return_counts=True)
    if uniq.size != req.size:
        raise DuplicateRowIdsError(uniq[counts > 1].tolist())
    return req


def as_new_row_ids(row_ids: ArrayLike, n: int, held: np.ndarray, model: str) -> np.ndarray:
    """Validate the ids given to ``learn``: ``n`` unique integers, none of them in ``held``
    (the ids the model holds now)."""
    if row_ids is None:
        raise ValueError("learn needs the row_ids of the rows it adds")
    ids = as_row_ids(row_ids, n)
    again = ids[np.isin(ids, held)]
    if again.size:
        raise HeldRowIdsError(np.sort(again).tolist(), model)
    return ids


class RowIndex:
    """Training row ids, their positions, and which are still alive.

    ``ids[p]`` is the id of the row at position ``p``, or ``GONE`` once it is forgotten. A row
    handed over as dead (``alive[p]`` False) is scrubbed at once.
    """

    def __init__(self, ids: np.ndarray, alive: np.ndarray | None = None) -> None:
        self.ids = ids
        self.alive = np.ones(ids.size, dtype=np.bool_) if alive is None else alive
        self.ids[~self.alive] = GONE
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self._rank: np.ndarray | None = None  # position -> index in _sorted, built on first drop
        self._lookup: dict[int, int] | None = None
        self._n_alive = int(np.count_nonzero(self.alive))

    @property
    def n_alive(self) -> int:
        return self._n_alive

    def live(self) -> np.ndarray:
        """Positions of the rows still held, ascending: what an artifact keeps."""
        return np.flatnonzero(self.alive)

    def drop(self, pos: np.ndarray) -> None:
        """Forget the rows at ``pos`` (from ``resolve``): mark them dead and scrub their ids."""
        pos = np.asarray(pos, dtype=np.int64)
        self.alive[pos] = False
        self.dropped(pos)

    @property
    def prepared(self) -> bool:
        """Whether the lookups are built (:meth:`prepare`, or a ``resolve`` or ``drop``)."""
        return self._lookup is not None and self._rank is not None

    def prepare(self) -> None:
        """Build now the lookups the first ``resolve`` and ``drop`` would build (each O(n)):
        a server does this at startup, so that its first erasure costs what the next do."""
        self._positions()
        self._ranks()

    def _ranks(self) -> np.ndarray:
        if self._rank is None:
            self._rank = np.empty(self._order.size, dtype=np.int64)
            self._rank[self._order] = np.arange(self._order.size)
        return self._rank

    def dropped(self, pos: np.ndarray) -> None:
        """Scrub the ids at ``pos`` (resolved, distinct), whose ``alive`` flags a kernel cleared."""
        pos = np.asarray(pos, dtype=np.int64)
        self._n_alive -= pos.size
        rank = self._ranks()
        srt = self._sorted
        for p in pos.tolist():
            old = int(self.ids[p])
            if self._lookup is not None:
                self._lookup.pop(old, None)
            self.ids[p] = GONE
            # Keep _sorted sorted without the id: its slot (and the run of earlier copies of it
            # to its right) takes the value on its left, whose leftmost copy is its own row.
            k = int(rank[p])
            new = srt[k - 1] if k > 0 else GONE
            while k < srt.size and srt[k] == old:
                srt[k] = new
                k += 1

    def resolve(self, row_ids: ArrayLike, model: str = "model") -> np.ndarray:
        """Positions of ``row_ids``; raise, changing nothing, if any id cannot be forgotten."""
        if isinstance(row_ids, (list, tuple)) and len(row_ids) <= 16:  # noqa: UP038
            if len(row_ids) == 1 and type(row_ids[0]) is int and self._n_alive > 1:
                # one row of one subject: the hot path of an erasure service
                p = self._positions().get(row_ids[0], -1)
                if p >= 0 and self.alive[p]:
                    return np.array([p])
            small = self._resolve_small(row_ids, model)
            if small is not None:
                return small
        req = requested_row_ids(row_ids)
        where = np.searchsorted(self._sorted, req)
        where = np.minimum(where, max(self._sorted.size - 1, 0))
        known = self._sorted.size > 0
        found = (self._sorted[where] == req) if known else np.zeros(req.size, dtype=bool)
        if not found.all():
            raise UnknownRowIdsError(req[~found].tolist(), model)
        pos = self._order[where]
        dead = ~self.alive[pos]  # only GONE itself can land on a forgotten row's slot
        if dead.any():
            raise UnknownRowIdsError(req[dead].tolist(), model)
        self._check_not_empty(pos.size, model)
        return pos

    def _resolve_small(self, row_ids: list | tuple, model: str) -> np.ndarray | None:
        """The common request (one subject, a few rows) without numpy's fixed costs.

        Returns None for anything unusual, which the general path then judges.
        """
        if not all(type(i) is int for i in row_ids) or len(set(row_ids)) != len(row_ids):
            return None
        lookup = self._positions()
        pos = [lookup.get(i, -1) for i in row_ids]
        if min(pos, default=0) < 0 or not all(self.alive[p] for p in pos):
            return None
        self._check_not_empty(len(pos), model)
        return np.array(pos, dtype=np.int64)

    def _positions(self) -> dict[int, int]:
        if self._lookup is None:
            self._lookup = {v: p for p, v in enumerate(self.ids.tolist()) if v != GONE}
        return self._lookup

    def _check_not_empty(self, n_request: int, model: str) -> None:
        if n_request and n_request >= self.n_alive:
            raise EmptyModelError(
                f"forgetting {n_request} rows would leave {model} with no training rows; "
                "retrain on other data or delete the model"
            )


class HoldsRows:
    """Mixin for models that keep their training rows' ids in a ``RowIndex`` at ``_index``."""

    _index: RowIndex
    _fitted_attr = "n_features_in_"  # what check_is_fitted looks for before a fit

    @property
    def row_ids_(self) -> np.ndarray:
        """Ids of the training rows still held."""
        return self._index.ids[self._index.alive]

    def _resolve_forget(self, row_ids: ArrayLike) -> np.ndarray:
        """Positions of ``row_ids``, the whole request checked before anything changes."""
        if not hasattr(self, "_index"):
            check_is_fitted(self, self._fitted_attr)  # raises NotFittedError
        return self._index.resolve(row_ids, model=type(self).__name__)
