"""Compile a model's kernels before its first request: a rehearsal on a small twin.

numba compiles a kernel on its first call (or loads it from the cache, ~0.1-1 s per module);
a server's first erasure would pay that under the service's lock (10 s on a fresh machine).
:func:`rehearse` runs ``fit``, ``predict``, single and batch ``forget`` (enough rows to take the
slow path too), ``to_bytes`` and ``compact`` on a twin of the model — same class, same
parameters, a small made-up data set of the same width and label kind — so every kernel the
model's own calls will run is compiled, with the same argument types. The model is untouched.

>>> import numpy as np
>>> from forget import HedgeCutClassifier
>>> m = HedgeCutClassifier(n_estimators=3, random_state=0).fit(np.eye(4), [0, 1, 0, 1])
>>> rehearse(m)
>>> compiled_signatures() > 0
True
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from sklearn.base import clone

ROWS = 512  # enough for kNN's neighbours, a forest's rebuilds, a budget's refit


def rehearse(model: Any) -> None:
    """Run every kind of call a fitted ``model`` serves on a small twin of it."""
    d = int(model.n_features_in_)
    n = max(ROWS, 4 * int(getattr(model, "n_neighbors", 0)))
    rng = np.random.default_rng(0)
    X = np.abs(rng.normal(size=(n, d))).round(2)  # non-negative: counts models accept it
    if hasattr(model, "classes_"):
        classes = np.asarray(model.classes_)
        y = classes[np.arange(n) % classes.size]
    else:
        y = rng.normal(size=n)
    twin = clone(model)
    resolved = getattr(model, "algorithm_", None)  # kNN: the search the model runs (its index),
    if resolved is not None and "algorithm" in twin.get_params():  # not what "auto" picks for
        twin.set_params(algorithm=resolved)  # the twin's few rows
    twin = twin.fit(X, y, row_ids=np.arange(n))
    twin.predict(X[:1])
    twin.predict(X[:64])
    if hasattr(twin, "predict_proba"):
        twin.predict_proba(X[:1])
    twin.forget([0])
    _refresh(twin)  # a server's erasure: leaves rewritten in place, reshaped trees recompiled
    twin.forget(list(range(1, n // 4)))  # a batch: subtree rebuilds, budgets spent
    _refresh(twin)
    twin.to_bytes()
    if hasattr(twin, "compaction"):  # a server's purge: built from copies of the arrays
        twin.compaction().build()
    if hasattr(twin, "compact"):
        twin.compact()
    twin.forget([n // 4])
    _refresh(twin)
    if hasattr(twin, "retrain_pending"):  # deferred work (SISA's shards, a forest's rebuilds)
        twin.retrain_pending()


def _refresh(model: Any) -> None:
    """What a server does after a deletion: bring a forest's compiled form up to date."""
    if hasattr(model, "refresh_compiled"):
        model.refresh_compiled()


def prepare(model: Any) -> None:
    """Build the lookups ``model``'s first ``forget`` would build from its own rows (the
    row-id index: O(n) once, ~5 ms at 12k rows, ~0.4 s at 1M): derived state only, nothing
    the model computes changes."""
    from forget._rows import RowIndex

    for value in vars(model).values():
        if isinstance(value, RowIndex):
            value.prepare()


def compiled_signatures() -> int:
    """How many compiled kernel signatures this process holds (forget's and drift's): a call
    that compiles something makes this grow."""
    from numba.core.registry import CPUDispatcher

    total = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("forget", "drift")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher):
                total += len(value.signatures)
    return total
