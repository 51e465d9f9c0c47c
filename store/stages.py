"""Shared stages for multi-model requests (PRETZEL's idea, for tabular rows).

Several models trained on one dataset score the same rows. A multi-model request reads its
rows once, into one matrix over the union of the models' features, and each distinct feature
list takes its columns from that matrix: one parse, one matrix per feature list, however many
models share it. The plan — the union and, per feature list, its columns in the union — is
computed once per set of feature lists and kept (it depends on nothing else: a model
version's features never change).

>>> p = plan([("a", "b"), ("b", "c"), ("a", "b")])
>>> p.union, p.lists
(('a', 'b', 'c'), (('a', 'b'), ('b', 'c')))
>>> import numpy as np
>>> X = np.array([[1.0, 2.0, 3.0]])
>>> {f: m.tolist() for f, m in p.split(X).items()}
{('a', 'b'): [[1.0, 2.0]], ('b', 'c'): [[2.0, 3.0]]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

Features = tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """How one parsed matrix over ``union`` becomes each feature list's matrix."""

    union: Features
    lists: tuple[Features, ...]  # the distinct feature lists, in first-seen order
    columns: tuple[np.ndarray, ...]  # per list, its features' columns in the union

    def split(self, X: np.ndarray) -> dict[Features, np.ndarray]:
        """Each feature list's matrix (``X`` itself where a list is the union, in order)."""
        out: dict[Features, np.ndarray] = {}
        for features, cols in zip(self.lists, self.columns, strict=True):
            out[features] = X if features == self.union else np.ascontiguousarray(X[:, cols])
        return out


def plan(feature_lists: Sequence[Features]) -> Plan:
    """The plan of these feature lists (cached: a server sees few distinct sets)."""
    return _plan(tuple(feature_lists))


@lru_cache(maxsize=256)
def _plan(feature_lists: tuple[Features, ...]) -> Plan:
    lists = tuple(dict.fromkeys(feature_lists))
    union = tuple(dict.fromkeys(f for features in lists for f in features))
    at = {f: i for i, f in enumerate(union)}
    columns = tuple(np.array([at[f] for f in features], dtype=np.intp) for features in lists)
    return Plan(union, lists, columns)
