"""The unlearning contract shared by every model in forget.

A model is *unlearnable* when it can name its training rows and remove any of them on request:

>>> from forget import HedgeCutClassifier
>>> import numpy as np
>>> X = np.arange(40, dtype=float).reshape(20, 2); y = (X[:, 0] > 18).astype(int)
>>> m = HedgeCutClassifier(n_estimators=5, random_state=0).fit(X, y, row_ids=np.arange(100, 120))
>>> m.forget([100, 101]).n_forgotten
2
>>> m.guarantee
<Guarantee.EXACT: 'exact'>
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike


class Guarantee(enum.StrEnum):
    """What ``forget(S)`` promises about the model it leaves behind.

    - ``EXACT``: equal to a model fitted on the remaining rows (same seed), always.
    - ``EXACT_WITHIN_BUDGET``: equal as long as the deletion budget lasts; past it the model
      must be retrained (``ForgetResult.needs_retrain`` says so).
    - ``APPROXIMATE``: within a stated bound of the retrained model (``ForgetResult.bound``).
    """

    EXACT = "exact"
    EXACT_WITHIN_BUDGET = "exact_within_budget"
    APPROXIMATE = "approximate"


class Path(enum.StrEnum):
    """How one deletion was carried out."""

    FAST = "fast"  # statistics updated in place (and, for forests, hedged variants switched)
    SLOW = "slow"  # part of the model was rebuilt from the rows it still holds


@dataclass(frozen=True)
class ForgetResult:
    """What one ``forget`` call did.

    ``paths[i]`` tells how ``row_ids[i]`` was removed. ``details`` holds model-specific
    counters (for forests: subtrees rebuilt, rows they held, variant switches).
    """

    row_ids: tuple[int, ...]
    guarantee: Guarantee
    paths: tuple[Path, ...]
    seconds: float
    bound: float | None = None
    needs_retrain: bool = False
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def n_forgotten(self) -> int:
        return len(self.row_ids)

    @property
    def n_slow(self) -> int:
        return sum(p is Path.SLOW for p in self.paths)


@dataclass(frozen=True)
class RetrainResult:
    """What one ``retrain_pending`` call did: the parts that a deletion left pending and that
    it trained again (``shards``: a sharded model's shards, a forest's trees), the rows they
    trained on, and the seconds it took."""

    shards: int
    rows: int
    seconds: float


@runtime_checkable
class Unlearnable(Protocol):
    """The protocol every model in forget follows (scikit-learn estimator plus ``forget``)."""

    guarantee: Guarantee

    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> Any: ...

    def predict(self, X: ArrayLike) -> np.ndarray: ...

    def forget(self, row_ids: ArrayLike) -> ForgetResult: ...

    def to_bytes(self) -> bytes: ...
