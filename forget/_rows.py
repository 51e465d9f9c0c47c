"""Row-id bookkeeping shared by all models: map external ids to positions, refuse bad requests.

Every model names its training rows by integer ids. ``RowIndex.resolve`` checks a whole forget
request (unknown, repeated, already forgotten ids) *before* anything is changed, so a refused
request leaves the model untouched.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils.validation import check_is_fitted

from forget.errors import (
    AlreadyForgottenError,
    DuplicateRowIdsError,
    EmptyModelError,
    UnknownRowIdsError,
)


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
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size != ids.size:
        raise DuplicateRowIdsError(uniq[counts > 1].tolist())
    return ids


class RowIndex:
    """Training row ids, their positions, and which are still alive."""

    def __init__(self, ids: np.ndarray, alive: np.ndarray | None = None) -> None:
        self.ids = ids
        self.alive = np.ones(ids.size, dtype=np.bool_) if alive is None else alive
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]
        self._lookup: dict[int, int] | None = None
        self._n_alive = int(np.count_nonzero(self.alive))

    @property
    def n_alive(self) -> int:
        return self._n_alive

    def drop(self, pos: np.ndarray) -> None:
        """Mark the rows at ``pos`` (from ``resolve``) forgotten; models call this, nothing else."""
        self._n_alive -= int(np.count_nonzero(self.alive[pos]))
        self.alive[pos] = False

    def dropped(self, n: int) -> None:
        """Count ``n`` rows (resolved, distinct) whose ``alive`` flags a kernel cleared itself."""
        self._n_alive -= n

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
        where = np.searchsorted(self._sorted, req)
        where = np.minimum(where, max(self._sorted.size - 1, 0))
        known = self._sorted.size > 0
        found = (self._sorted[where] == req) if known else np.zeros(req.size, dtype=bool)
        if not found.all():
            raise UnknownRowIdsError(req[~found].tolist(), model)
        pos = self._order[where]
        dead = ~self.alive[pos]
        if dead.any():
            raise AlreadyForgottenError(req[dead].tolist(), model)
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
            self._lookup = {int(v): p for p, v in enumerate(self.ids.tolist())}
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
