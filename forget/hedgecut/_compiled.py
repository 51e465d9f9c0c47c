"""The compiled form of a forest's trees: what ``HedgeCutClassifier.predict_proba`` scores with.

``forget.scoring`` compiles the active trees, as ``tree_structures`` gives them (split
features, cut-offs and leaf class counts: no row, no id), into compact traversal records that
score several times faster than a walk over the node arrays, and bitwise equal to it. The
compiled form is derived state, held beside the node arrays and never written to the artifact:

- it is compiled on the first prediction (a model that is only fitted and forgets never pays);
- ``forget`` marks the trees the forgotten rows trained (its kernel sets ``touched`` as it walks
  them; no other tree changes) and compiles nothing; later predictions recompile those trees
  alone, once they have scored enough rows to pay for it (below); a class dropped by ``forget``
  changes every tree's columns: the whole forest is compiled again;
- ``compact`` (and so the store's checkpoint) compiles the canonical trees again at once: the
  per-tree refreshes leave superseded records in the scorer's slots, with counts from before a
  deletion, and after ``compact`` no such record is left;
- pickling and copying drop it (it is compiled again on use).

Between a deletion and the refresh, predictions walk the node arrays, which are always current
and give the same numbers bit for bit. Recompiling a tree costs about what walking the node
arrays instead of the compiled records costs for one row per ``NODES_PER_ROW`` of its nodes
(adult, 100 trees: refreshing the ~10 trees one deletion touches takes ~1 ms, ~0.25 us a node;
a row walked costs ~16 us more in a batch, ~30 us alone), so the touched trees are recompiled
once the rows walked since the deletion would have paid for it: a rent-or-buy rule, never more
than twice the cheaper of the two. A server alternating erasures and single predictions keeps
walking (~60 us a prediction, not a 1 ms refresh each time); one that scores batches refreshes
at once.

The scorer is plain numba (``backend="numba"``): an estimator's ``predict_proba`` neither
imports torch nor takes a GPU. Its threads are the model's ``n_jobs`` (compiled again when
``n_jobs`` changes).

Threads: predictions may run beside each other. The first one to find the compiled form missing
or due for a refresh brings it up to date under a lock while the others wait; other predictions
take no lock. ``forget`` and ``compact`` must not run beside a prediction on the same model
(they rewrite the node arrays that predictions and the refresh read), as the store and API
already ensure.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from forget.scoring import CompiledForest

NODES_PER_ROW = 64  # a tree's nodes recompiled cost about one row walked (see above)


class CompiledTrees:
    """A forest's compiled scorer, brought up to date lazily; see the module docstring.

    ``touched`` (uint8, one per tree) is written by ``forget``'s kernel; ``stale`` is set by
    ``forget`` before it runs. ``model`` is the fitted ``HedgeCutClassifier`` it belongs to.
    """

    __slots__ = ("_forest", "_lock", "_n_jobs", "_nodes", "_walked", "stale", "touched")

    def __init__(self, n_trees: int) -> None:
        self._lock = threading.Lock()
        self._forest: CompiledForest | None = None
        self._n_jobs: Any = None
        self._nodes = np.zeros(n_trees, np.int64)  # nodes of each compiled tree
        self._walked = 0  # rows scored on the node arrays since the form went out of date
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
            if forest.n_classes == model.classes_.size:
                self._walked += X.shape[0]  # (threads may race here: a count, not a bound)
                if self._walked * NODES_PER_ROW < self._nodes[self.touched > 0].sum():
                    return model._walk(X)
        forest = None  # hold no reference to a form about to be replaced
        with self._lock:  # the first thread in brings it up to date, the others wait
            forest = self.sync(model)
        return forest.predict_proba(X)

    def sync(self, model: Any) -> CompiledForest:
        """Bring the compiled form up to date with ``model`` (the lock held, or no prediction
        running): compile it, or recompile only the trees ``forget`` touched."""
        forest = self._forest
        if (
            forest is None
            or forest.n_classes != model.classes_.size
            or self._n_jobs != model.n_jobs
        ):
            forest = None
            forest = self.compile(model)
        elif self.stale:
            trees = {t: model._tree_structure(t) for t in np.flatnonzero(self.touched).tolist()}
            forest.refresh(trees)
            for t, structure in trees.items():
                self._nodes[t] = structure.shape[0]
        self.touched[:] = 0
        self._walked = 0
        self.stale = False
        return forest

    def compile(self, model: Any) -> CompiledForest:
        """Compile every tree of ``model`` anew (the lock held, or no prediction running)."""
        from forget.scoring import CompiledForest  # loaded with the first prediction

        self._forest = None  # the old form goes first: never two forests in memory at once
        self._n_jobs = model.n_jobs
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
        self.touched[:] = 0
        self._walked = 0
        self.stale = False
        self._forest = forest
        return forest
