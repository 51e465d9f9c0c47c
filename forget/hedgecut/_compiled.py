"""The compiled form of a forest's trees: what ``HedgeCutClassifier.predict_proba`` scores with.

``forget.scoring`` compiles the active trees, as ``tree_structures`` gives them (split
features, cut-offs and leaf class counts: no row, no id), into compact traversal records that
score several times faster than a walk over the node arrays, and bitwise equal to it. The
compiled form is derived state, held beside the node arrays and never written to the artifact:

- it is compiled on the first prediction (a model that is only fitted and forgets never pays);
- ``forget`` marks the trees the forgotten rows trained (its kernel sets ``touched`` as it walks
  them; no other tree changes) and compiles nothing. A tree whose active structure stayed as it
  was (most deletions: only leaf counts change) is marked ``LEAVES``, and the kernel logs the
  leaf each forgotten row reached in it (``leaf_log``: node ids, no row, until the next
  refresh); a later prediction rewrites those leaves in place (adult, 100 trees: ~0.07 ms for
  one deletion against ~0.8 ms to recompile its trees). A tree whose structure changed (a split
  switched, a subtree was cut or rebuilt), or whose leaves overflowed the log, is marked
  ``RESHAPED`` and recompiled alone; when more than half the trees were reshaped, the whole
  forest is compiled again instead (as fast: 1M rows, 100 trees, all touched: 0.42 s to
  refresh, 0.37 s to compile, and no superseded record is left), as it is when a class dropped
  by ``forget`` changed every tree's columns;
- ``compact`` (and so the store's checkpoint) compiles the canonical trees again at once: the
  per-tree refreshes leave superseded records in the scorer's slots, with counts from before a
  deletion, and after ``compact`` no such record is left;
- pickling and copying drop it (it is compiled again on use).

When to refresh: a rent-or-buy rule, in measured seconds. Between a deletion and the refresh,
predictions may walk the node arrays instead (always current, the same numbers bit for bit) as
long as the time spent walking since the deletion, this batch's estimated walk included, stays
within what the refresh is estimated to cost (the reshaped trees' nodes times the seconds per
node the last compile or refresh took, plus the logged leaves times the seconds per leaf the
last rewrite took); then the refresh is paid once. The total never exceeds about twice
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
A refresh may run beside predictions too (a server refreshes after answering an erasure): while
the form is out of date no prediction scores with it, and the refresh marks it current only once
it is whole. ``forget`` and ``compact`` must not run beside a prediction on the same model (they
rewrite the node arrays that predictions and the refresh read), as the store and API ensure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from forget.hedgecut._common import LEAVES, RESHAPED

LEAF_LOG = 8192  # leaves logged between refreshes; past it, a tree is recompiled whole

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
        "_per_leaf_s",
        "_per_node_s",
        "_pos",
        "_per_row_s",
        "_walked_s",
        "leaf_log",
        "leaf_n",
        "stale",
        "touched",
    )

    def __init__(self, n_trees: int) -> None:
        self._lock = threading.Lock()
        self._forest: CompiledForest | None = None
        self._n_jobs: Any = None
        self._nodes = np.zeros(n_trees, np.int64)  # nodes of each compiled tree
        self._per_node_s = 0.0  # seconds per node the last compile or refresh took
        self._per_leaf_s = 0.0  # seconds per leaf the last rewrite of leaves took
        self._pos = np.zeros(0, np.int32)  # each active node's index in its tree's structure
        self._per_row_s = 0.0  # seconds per row the last walk took
        self._walked_s = 0.0  # seconds spent walking since the form went out of date
        self.touched = np.zeros(n_trees, np.uint8)
        # the leaves forget changed in trees whose shape it left alone: (tree, node) rows
        self.leaf_log = np.zeros((LEAF_LOG, 2), np.int64)
        self.leaf_n = np.zeros(1, np.int64)
        self.stale = False

    def __reduce__(self) -> tuple[type[CompiledTrees], tuple[int]]:
        # derived state: a pickled or copied model compiles its trees again on use
        return type(self), (int(self.touched.size),)

    @property
    def built(self) -> bool:
        return self._forest is not None

    def proba(self, model: Any, X: np.ndarray) -> np.ndarray:
        """Class probabilities of float32 rows ``X``: the forest's, bit for bit."""
        # ``stale`` read before the form: a refresh on another thread clears it last
        stale = self.stale
        forest = self._forest
        if forest is not None and self._n_jobs == model.n_jobs:
            if not stale:
                return forest._score(X)  # rows validated by the estimator
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
        return forest._score(X)

    def _walk_pays(self, rows: int) -> bool:
        """Whether walking ``rows`` keeps the walking since the deletion within a refresh."""
        refresh_s = self._per_node_s * float(self._nodes[self.touched == RESHAPED].sum())
        refresh_s += self._per_leaf_s * float(self.leaf_n[0])
        return self._walked_s + rows * self._per_row_s <= refresh_s

    def refresh(self, model: Any) -> None:
        """Bring a compiled form that ``forget`` left out of date up to date now (a server
        does this right after an erasure, so that predictions neither pay for the refresh
        nor walk the node arrays for long); nothing when none was compiled or none is due."""
        if self._forest is not None and self.stale:
            with self._lock:
                if self.stale:  # not brought up to date meanwhile by a prediction
                    self.sync(model)

    def sync(self, model: Any) -> CompiledForest:
        """Bring the compiled form up to date with ``model`` (the lock held, or no prediction
        running): compile it, or rewrite the leaves whose counts alone changed and recompile
        the trees whose structure changed."""
        forest = self._forest
        reshaped = np.flatnonzero(self.touched == RESHAPED)
        if (
            forest is None
            or forest.n_classes != model.classes_.size
            or self._n_jobs != model.n_jobs
            or 2 * reshaped.size > self.touched.size  # then compiling anew is as fast
        ):
            forest = None
            forest = self.compile(model)
        elif self.stale and self.touched.any():
            t0 = time.perf_counter()
            n = int(self.leaf_n[0])
            if n:
                failed = self._set_leaves(model, forest, self.leaf_log[:n])
                t1 = time.perf_counter()
                self._per_leaf_s = (t1 - t0) / n
                t0 = t1
                reshaped = np.union1d(reshaped, failed).astype(np.int64)
            if reshaped.size:
                trees = dict(self._structures(model, reshaped.tolist()))
                forest.refresh(trees)
                nodes = sum(structure.shape[0] for structure in trees.values())
                self._per_node_s = (time.perf_counter() - t0) / max(nodes, 1)
        self.settled()
        return forest

    def _set_leaves(self, model: Any, forest: CompiledForest, log: np.ndarray) -> list[int]:
        """Rewrite the logged leaves of the trees whose counts alone changed; the trees that
        could not be (to recompile)."""
        log = log[self.touched[log[:, 0]] == LEAVES]
        nodes, first = np.unique(log[:, 1], return_index=True)  # a leaf may be logged twice
        trees = log[first, 0]
        pos = self._pos
        inside = nodes < pos.size
        at = np.where(inside, pos[np.where(inside, nodes, 0)], -1)
        return forest.set_leaves(trees, at, model._S[0][nodes])

    def _structures(self, model: Any, trees: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """The structures of ``trees``, noting where each node lands in its tree's."""
        need = model._S[0].shape[0]
        if self._pos.size < need:  # the node arrays grew
            self._pos = np.concatenate([self._pos, np.full(need - self._pos.size, -1, np.int32)])
        for t in trees:
            structure, order = model._tree_structure_order(t)
            self._pos[order] = np.arange(order.size, dtype=np.int32)
            self._nodes[t] = structure.shape[0]
            yield t, structure

    def compile(self, model: Any) -> CompiledForest:
        """Compile every tree of ``model`` anew (the lock held, or no prediction running)."""
        from forget.scoring import CompiledForest  # loaded with the first prediction

        self._forest = None  # the old form goes first: never two forests in memory at once
        self._n_jobs = model.n_jobs
        t0 = time.perf_counter()
        self._pos = np.full(model._S[0].shape[0], -1, np.int32)
        structures = [s for _, s in self._structures(model, list(range(self.touched.size)))]
        forest = CompiledForest(
            structures,
            int(model.classes_.size),
            int(model.n_features_in_),
            backend="numba",
            n_jobs=model.n_jobs,
            classes=model.classes_,
        )
        self._per_node_s = (time.perf_counter() - t0) / max(int(self._nodes.sum()), 1)
        probe = np.zeros((1, int(model.n_features_in_)), np.float32)
        model._walk(probe)  # a first call may load the kernel: time the second
        t0 = time.perf_counter()
        model._walk(probe)
        self._per_row_s = time.perf_counter() - t0
        # the leaf rewrite's kernel, loaded now (nothing rewritten): a server's first erasure
        # whose trees kept their shape must not load it (~10 ms) with the model's gate closed
        forest.set_leaves([], [], np.zeros((0, forest.n_classes)))
        self.settled()
        self._forest = forest
        return forest

    def settled(self) -> None:
        """Up to date: the marks of the trees ``forget`` touched and the leaves its rows
        reached are zeroed (they tell, in part, where a forgotten row was: none outlives the
        refresh, nor a deletion while nothing is compiled)."""
        self.touched[:] = 0
        self.leaf_log[: int(self.leaf_n[0])] = 0
        self.leaf_n[0] = 0
        self._walked_s = 0.0
        self.stale = False
