"""The compiled form of a forest's trees: what ``HedgeCutClassifier.predict_proba`` scores with.

``forget.scoring`` compiles the active trees, as ``tree_structures`` gives them (split
features, cut-offs and leaf class counts: no row, no id), into compact traversal records that
score several times faster than a walk over the node arrays, and bitwise equal to it. The
compiled form is derived state, held beside the node arrays and never written to the artifact:

- it is compiled on the first prediction (a model that is only fitted and forgets never pays);
- ``forget`` marks the trees the forgotten rows trained (its kernel sets ``touched`` as it walks
  them; no other tree changes) and compiles nothing; a later prediction recompiles those trees
  alone (below); when more than half the trees were touched, the whole forest is compiled
  again instead (as fast: 1M rows, 100 trees, all touched: 0.42 s to refresh, 0.37 s to
  compile, and no superseded record is left), as it is when a class dropped by ``forget``
  changed every tree's columns;
- ``compact`` (and so the store's checkpoint) compiles the canonical trees again at once: the
  per-tree refreshes leave superseded records in the scorer's slots, with counts from before a
  deletion, and after ``compact`` no such record is left;
- pickling and copying drop it (it is compiled again on use).

When to refresh: a rent-or-buy rule, in measured seconds. Between a deletion and the refresh,
predictions may walk the node arrays instead (always current, the same numbers bit for bit) as
long as the time spent walking since the deletion, this batch's estimated walk included, stays
within what the refresh is estimated to cost (its nodes times the seconds per node the last
compile or refresh took); then the refresh is paid once. The total never exceeds about twice
the cheaper choice. A walk's cost per row is timed at each walk (and on one row at compile
time, after a first call that loads the kernel). Both costs depend on the data: on adult (100
trees) one deletion's refresh takes ~1 ms and a row walked ~50 us; at 1M rows ~30 ms and
~150 us (batches walk at ~120 us a row, the compiled form scores one at ~6 us). A server
alternating erasures and single predictions mostly walks; a large batch refreshes first.

The scorer is plain numba (``backend="numba"``): an estimator's ``predict_proba`` neither
imports torch nor takes a GPU. Its threads are the model's ``n_jobs`` (compiled again when
``n_jobs`` changes).

Threads: predictions may run beside each other. The first one to find the compiled form missing
or due for a refresh brings it up to date under a lock while the others wait; other predictions
take no lock (the rule's running totals are approximate under races, never the numbers).
``forget`` and ``compact`` must not run beside a prediction on the same model (they rewrite the
node arrays that predictions and the refresh read), as the store and API already ensure.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from forget.scoring import CompiledForest


class CompiledTrees:
    """A forest's compiled scorer, brought up to date lazily; see the module docstring.

    ``touched`` (uint8, one per tree) is written by ``forget``'s kernel; ``stale`` is set by
    ``forget`` before it runs. ``model`` is the fitted ``HedgeCutClassifier`` it belongs to.
    """

    __slots__ = (
        "_forest",
        "_lock",
        "_n_jobs",
        "_nodes",
        "_per_node_s",
        "_per_row_s",
        "_walked_s",
        "stale",
        "touched",
    )

    def __init__(self, n_trees: int) -> None:
        self._lock = threading.Lock()
        self._forest: CompiledForest | None = None
        self._n_jobs: Any = None
        self._nodes = np.zeros(n_trees, np.int64)  # nodes of each compiled tree
        self._per_node_s = 0.0  # seconds per node the last compile or refresh took
        self._per_row_s = 0.0  # seconds per row the last walk took
        self._walked_s = 0.0  # seconds spent walking since the form went out of date
        self.touched = np.zeros(n_trees, np.uint8)
        self.stale = False

    def __reduce__(self) -> tuple[type[CompiledTrees], tuple[int]]:
        # derived state: a pickled or copied model compiles its trees again on use
        return type(self), (int(self.touched.size),)

    @property
    def built(self) -> bool:
        return self._forest is not None

    def proba(self, model: Any, X: np.ndarray) -> np.ndarray:
        """Class probabilities of float32 rows ``X``: the forest's, bit for bit."""
        forest = self._forest
        if forest is not None and self._n_jobs == model.n_jobs:
            if not self.stale:
                return forest.predict_proba(X)
            if forest.n_classes == model.classes_.size and self._walk_pays(X.shape[0]):
                t0 = time.perf_counter()
                out = model._walk(X)
                spent = time.perf_counter() - t0
                self._walked_s += spent
                self._per_row_s = spent / X.shape[0]
                return out
        forest = None  # hold no reference to a form about to be replaced
        with self._lock:  # the first thread in brings it up to date, the others wait
            forest = self.sync(model)
        return forest.predict_proba(X)

    def _walk_pays(self, rows: int) -> bool:
        """Whether walking ``rows`` keeps the walking since the deletion within a refresh."""
        refresh_s = self._per_node_s * float(self._nodes[self.touched > 0].sum())
        return self._walked_s + rows * self._per_row_s <= refresh_s

    def refresh(self, model: Any) -> None:
        """Bring a compiled form that ``forget`` left out of date up to date now (a server
        does this after an erasure, before answering it, so that no prediction pays for the
        refresh or walks the node arrays); nothing when none was compiled or none is due."""
        if self._forest is not None and self.stale:
            with self._lock:
                self.sync(model)

    def sync(self, model: Any) -> CompiledForest:
        """Bring the compiled form up to date with ``model`` (the lock held, or no prediction
        running): compile it, or recompile only the trees ``forget`` touched."""
        forest = self._forest
        if (
            forest is None
            or forest.n_classes != model.classes_.size
            or self._n_jobs != model.n_jobs
            or 2 * int(self.touched.sum()) > self.touched.size  # then compiling anew is as fast
        ):
            forest = None
            forest = self.compile(model)
        elif self.stale and self.touched.any():
            t0 = time.perf_counter()
            trees = {t: model._tree_structure(t) for t in np.flatnonzero(self.touched).tolist()}
            forest.refresh(trees)
            nodes = 0
            for t, structure in trees.items():
                self._nodes[t] = structure.shape[0]
                nodes += structure.shape[0]
            self._per_node_s = (time.perf_counter() - t0) / max(nodes, 1)
        self._settled()
        return forest

    def compile(self, model: Any) -> CompiledForest:
        """Compile every tree of ``model`` anew (the lock held, or no prediction running)."""
        from forget.scoring import CompiledForest  # loaded with the first prediction

        self._forest = None  # the old form goes first: never two forests in memory at once
        self._n_jobs = model.n_jobs
        t0 = time.perf_counter()
        structures = model.tree_structures()
        forest = CompiledForest(
            structures,
            int(model.classes_.size),
            int(model.n_features_in_),
            backend="numba",
            n_jobs=model.n_jobs,
            classes=model.classes_,
        )
        self._nodes[:] = [s.shape[0] for s in structures]
        self._per_node_s = (time.perf_counter() - t0) / max(int(self._nodes.sum()), 1)
        probe = np.zeros((1, int(model.n_features_in_)), np.float32)
        model._walk(probe)  # a first call may load the kernel: time the second
        t0 = time.perf_counter()
        model._walk(probe)
        self._per_row_s = time.perf_counter() - t0
        self._settled()
        self._forest = forest
        return forest

    def _settled(self) -> None:
        self.touched[:] = 0
        self._walked_s = 0.0
        self.stale = False
