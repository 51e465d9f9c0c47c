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
  switched, a subtree was cut or rebuilt) is marked ``SPLICED`` and the node where it changed
  logged (``shape_log``); the refresh replaces the subtrees under the topmost logged nodes
  still in their trees, in place (``CompiledForest.splice``), then rewrites the logged leaves
  still leaves. The cost follows the subtrees, not the trees: on 300,000 rows (100 trees of
  ~9,700 nodes, ~3 reshaped per deletion) a deletion's refresh took 0.15 ms p50, 2.2 ms p99,
  against 3.8 and 20 ms when each reshaped tree was recompiled whole. A tree whose slot has no
  room left for a subtree, whose logs overflowed, or that held a deferred rebuild is marked
  ``RESHAPED`` and recompiled whole; when more than half the trees were, the whole forest is
  compiled again instead (as fast: 1M rows, 100 trees, all touched: 0.42 s to refresh, 0.37 s
  to compile), as it is when a class dropped by ``forget`` changed every tree's columns;
- records a refresh supersedes (a spliced-out subtree, a recompiled tree's old slot) are zeroed
  as it goes, and where the nodes ``forget`` freed were compiled is forgotten: the scorer holds
  no leaf counts from before a deletion. ``compact`` (and so the store's checkpoint) compiles
  the canonical trees again at once, dropping the zeroed records;
- pickling and copying drop it (it is compiled again on use).

When to refresh: a rent-or-buy rule, in measured seconds. Between a deletion and the refresh,
predictions may walk the node arrays instead (always current, the same numbers bit for bit) as
long as the time spent walking since the deletion, this batch's estimated walk included, stays
within what the refresh is estimated to cost (the reshaped trees' nodes times the seconds per
node the last compile or refresh took, plus the logged leaves times the seconds per leaf the
last rewrite took, plus the logged shape changes times the seconds each took to splice); then
the refresh is paid once. The total never exceeds about twice the cheaper choice. A walk's cost
per row is timed at each walk (and on one row at compile time, after a first call that loads
the kernel). Both costs depend on the data: on adult (100 trees) one deletion's refresh takes
~1 ms and a row walked ~50 us; at 1M rows ~30 ms and ~150 us (batches walk at ~120 us a row,
the compiled form scores one at ~6 us). A server alternating erasures and single predictions
mostly walks; a large batch refreshes first.

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

from forget.hedgecut._common import RESHAPED, SPLICED

LEAF_LOG = 8192  # leaves logged between refreshes; past it, a tree is recompiled whole
SHAPE_LOG = 4096  # nodes where structures changed, likewise

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
        "_per_splice_s",
        "_pos",
        "_per_row_s",
        "_walked_s",
        "leaf_log",
        "leaf_n",
        "shape_log",
        "shape_n",
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
        self._per_splice_s = 0.0  # seconds per logged node the last splices took
        self._pos = np.zeros(0, np.int32)  # each active node's index in its tree's structure
        self._per_row_s = 0.0  # seconds per row the last walk took
        self._walked_s = 0.0  # seconds spent walking since the form went out of date
        self.touched = np.zeros(n_trees, np.uint8)
        # the leaves forget changed in trees whose shape it left alone: (tree, node) rows
        self.leaf_log = np.zeros((LEAF_LOG, 2), np.int64)
        self.leaf_n = np.zeros(1, np.int64)
        # the nodes where forget changed the active structure of trees it left SPLICED
        self.shape_log = np.zeros((SHAPE_LOG, 2), np.int64)
        self.shape_n = np.zeros(1, np.int64)
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
        refresh_s += self._per_splice_s * float(self.shape_n[0])
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
            whole = self.touched == RESHAPED
            t0 = time.perf_counter()
            n = int(self.shape_n[0])
            if n:  # first: the leaves logged may lie in the subtrees replaced
                whole[self._splice(model, forest, self.shape_log[:n])] = True
                t1 = time.perf_counter()
                self._per_splice_s = (t1 - t0) / n
                t0 = t1
            n = int(self.leaf_n[0])
            if n:
                whole[self._set_leaves(model, forest, self.leaf_log[:n], whole)] = True
                t1 = time.perf_counter()
                self._per_leaf_s = (t1 - t0) / n
                t0 = t1
            reshaped = np.flatnonzero(whole)
            if reshaped.size:
                trees = dict(self._structures(model, reshaped.tolist()))
                forest.refresh(trees)
                nodes = sum(structure.shape[0] for structure in trees.values())
                self._per_node_s = (time.perf_counter() - t0) / max(nodes, 1)
            freed = model._freed()  # where nodes forget freed were compiled: no longer kept
            self._pos[freed[freed < self._pos.size]] = -1
        self.settled()
        return forest

    def _splice(self, model: Any, forest: CompiledForest, log: np.ndarray) -> list[int]:
        """Replace the subtrees under the logged nodes of the trees left ``SPLICED`` (each
        change once: the topmost logged nodes still in their trees); the trees where that
        could not be done (to recompile)."""
        log = log[self.touched[log[:, 0]] == SPLICED]
        self._cover(model)
        failed: list[int] = []
        for t, v in log[model._splice_points(log)].tolist():
            if t in failed:
                continue
            structure, order = model._structure_order(v)
            where = forest.splice(t, int(self._pos[v]), structure, model._depth(v))
            if where is None:
                failed.append(t)
            else:
                self._pos[order] = where
        return failed

    def _set_leaves(
        self, model: Any, forest: CompiledForest, log: np.ndarray, whole: np.ndarray
    ) -> list[int]:
        """Rewrite the logged leaves, but in the trees to recompile ``whole`` and in spliced
        trees those no longer leaves there (spliced with the rest); the trees where that could
        not be done (to recompile)."""
        log = log[~whole[log[:, 0]]]
        log = log[(self.touched[log[:, 0]] != SPLICED) | model._live_leaves(log)]
        nodes, first = np.unique(log[:, 1], return_index=True)  # a leaf may be logged twice
        trees = log[first, 0]
        pos = self._pos
        inside = nodes < pos.size
        at = np.where(inside, pos[np.where(inside, nodes, 0)], -1)
        return forest.set_leaves(trees, at, model._S[0][nodes])

    def _structures(self, model: Any, trees: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """The structures of ``trees``, noting where each node lands in its tree's."""
        self._cover(model)
        for t in trees:
            structure, order = model._tree_structure_order(t)
            self._pos[order] = np.arange(order.size, dtype=np.int32)
            self._nodes[t] = structure.shape[0]
            yield t, structure

    def _cover(self, model: Any) -> None:
        """``_pos`` as long as the node arrays (they may have grown)."""
        need = model._S[0].shape[0]
        if self._pos.size < need:
            self._pos = np.concatenate([self._pos, np.full(need - self._pos.size, -1, np.int32)])

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
        # the kernels of a refresh, loaded now (nothing changed): a server's first erasure must
        # not load them (~10 ms each) with the model's gate closed
        forest.warm()
        model._splice_points(self.shape_log[:0])
        model._live_leaves(self.leaf_log[:0])
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
        self.shape_log[: int(self.shape_n[0])] = 0
        self.shape_n[0] = 0
        self._walked_s = 0.0
        self.stale = False
