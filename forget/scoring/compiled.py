"""CompiledForest: a tree ensemble compiled for fast scoring, refreshed tree by tree.

Which strategy scores a batch (``Plan``) depends on the trees' depth, the batch size and the
backend; see ``CompiledForest.plan`` and the measurements in ``bench/scoring.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
from numpy.typing import ArrayLike

from forget.scoring import _gemm, _ptt, _torch
from forget.scoring import _kernels as K
from forget.scoring._gemm import GemmMatrices
from forget.scoring._parse import LEAVES, ParsedTree, parse_structure
from forget.scoring._ptt import PerfectTrees
from forget.scoring._quantized import QuantizedTrees
from forget.scoring._tt import TreePool

if TYPE_CHECKING:
    from forget.hedgecut import HedgeCutClassifier

STRATEGIES = ("gemm", "ptt", "tt", "qtt")
BACKENDS = ("numba", "torch")

# "auto": the deepest tree each strategy is picked for, per backend and device (measured in
# bench/scoring.py on a 2-core CPU). numba: TT, always; with flat unsigned indexing (see
# _kernels) PTT's fixed D branch-free steps are within 3-10 % of TT's early exits on 10,000
# rows up to depth 10, lose from 12, and lose on one row at every depth (adult, 100 trees,
# depth 3: 7.5 us TT vs 11 PTT), and a second layout would be refreshed at every erasure.
# GEMM's work grows with nodes², it never wins on a CPU. torch on a CPU: PTT to depth 10.
# On a GPU, Hummingbird's choice (GEMM to depth 3, PTT to 10): fewer, larger kernels; not
# measured here.
AUTO_MAX_DEPTH = {
    "numba": {"gemm": -1, "ptt": -1},
    "torch-cpu": {"gemm": -1, "ptt": 10},
    "torch-cuda": {"gemm": 3, "ptt": 10},
}
AUTO_PTT_BYTES = 256 << 20  # and no PTT layout past this size
PARALLEL_MIN_ROWS = 1024  # below this, threads cost more than they save
TORCH_MIN_ROWS = 20_000  # "auto" hands batches this large to torch, and only on a GPU
SMALL_ROWS = min(PARALLEL_MIN_ROWS, TORCH_MIN_ROWS)  # batches below it share one plan


@dataclass(frozen=True)
class Plan:
    """How a batch is scored: strategy, backend, device and the CPU threads used."""

    strategy: str
    backend: str
    device: str
    threads: int


def _n_threads(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if not isinstance(n_jobs, int | np.integer) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive int or -1, got {n_jobs!r}")
    return (os.cpu_count() or 1) if n_jobs < 0 else int(n_jobs)


class CompiledForest:
    """A forest of preorder tree structures, compiled to flat arrays for fast scoring.

    The probability of a row is the mean over trees of its leaf's class shares
    (counts / total); a leaf with no rows abstains, and a row no tree votes for gets
    ``1 / n_classes``. Rows are compared in float32 (``x <= cut-off`` goes left), as
    ``HedgeCutClassifier`` does. Every strategy returns exactly (bitwise) the forest's own
    ``predict_proba``: the trees' shares are added in tree order.

    A forest compiled from leaf values (``leaves="proba"`` or ``"values"``, as
    :func:`~forget.scoring.from_sklearn` does) averages the leaves' values over all trees
    instead: the sum in tree order divided by the number of trees, scikit-learn's
    ``predict_proba`` (classifiers) or ``predict`` (regressors) bit for bit.

    Parameters
    ----------
    structures : one array per tree, one row per node in preorder:
        ``(feature, cut-off, 0, ...)`` for a split, ``(-1, 0, class counts...)`` for a leaf
        (``HedgeCutClassifier.tree_structures()``); with ``leaves="proba"`` a leaf's tail is
        the class probabilities the tree predicts there, with ``"values"`` its regression
        values.
    n_classes, n_features : the forest's classes (a regression forest: its outputs) and the
        features rows must have.
    strategy : ``"auto"`` (per batch, see ``plan``), ``"tt"`` (tree traversal),
        ``"ptt"`` (perfect tree traversal), ``"gemm"``, or ``"qtt"``: tree traversal over
        rows quantized to the forest's own cut-offs (``_quantized``; numba only, opt-in).
    backend : ``"auto"``, ``"numba"`` (CPU) or ``"torch"`` (CUDA when available, else CPU).
    n_jobs : CPU threads for large batches (``None``: 1, ``-1``: all cores).
    classes : labels ``predict`` returns (default: class indices).
    device : torch device (default ``"cuda"`` when available, else ``"cpu"``).
    leaves : what a leaf's tail holds: ``"counts"`` (class counts, default), ``"proba"``
        (class probabilities) or ``"values"`` (a regression forest: ``predict`` returns the
        mean values and there is no ``predict_proba``).

    Examples
    --------
    >>> import numpy as np
    >>> from forget import HedgeCutClassifier
    >>> from forget.scoring import compile_forest
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4)); y = (X[:, 0] > 0).astype(int)
    >>> model = HedgeCutClassifier(n_estimators=8, random_state=0).fit(X, y)
    >>> scorer = compile_forest(model)
    >>> bool((scorer.predict_proba(X) == model.predict_proba(X)).all())
    True
    >>> before = model.tree_structures()
    >>> _ = model.forget([3, 4])
    >>> scorer.refresh(changed_trees(before, model.tree_structures()))
    >>> bool((scorer.predict_proba(X) == model.predict_proba(X)).all())
    True
    """

    def __init__(
        self,
        structures: Sequence[ArrayLike],
        n_classes: int,
        n_features: int,
        *,
        strategy: str = "auto",
        backend: str = "auto",
        n_jobs: int | None = None,
        classes: ArrayLike | None = None,
        device: str | None = None,
        leaves: str = "counts",
    ) -> None:
        if leaves not in LEAVES:
            raise ValueError(f"leaves must be one of {LEAVES}, got {leaves!r}")
        if strategy not in ("auto", *STRATEGIES):
            raise ValueError(f"strategy must be 'auto' or one of {STRATEGIES}, got {strategy!r}")
        if backend not in ("auto", *BACKENDS):
            raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
        if strategy == "qtt" and backend == "torch":
            raise ValueError("quantized tree traversal ('qtt') runs on numba only")
        for name, value in (("n_classes", n_classes), ("n_features", n_features)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if len(structures) == 0:
            raise ValueError("a forest needs at least one tree")
        self.n_classes = int(n_classes)
        self.n_features_in_ = int(n_features)
        self.leaves = leaves
        self.strategy = strategy
        self.backend = backend
        self.threads_ = _n_threads(n_jobs)
        self.classes_ = None if classes is None else np.asarray(classes)
        if self.classes_ is not None and self.classes_.shape != (self.n_classes,):
            raise ValueError(f"classes must list {self.n_classes} labels")
        if self.classes_ is not None and leaves == "values":
            raise ValueError("a regression forest (leaves='values') has no classes")
        self._device = device
        trees = [self._parse(s, t) for t, s in enumerate(structures)]
        self._pool = TreePool(trees, self.n_classes)
        self._ptt: PerfectTrees | None = None
        self._gemm: GemmMatrices | None = None
        self._qtt: QuantizedTrees | None = None
        self._torch: _torch.TorchScorer | None = None
        self._auto: dict[str, str] = {}  # "auto"'s strategy per AUTO_MAX_DEPTH key, until refresh
        self._small_plan: Plan | None = None  # the plan of batches below SMALL_ROWS, until refresh
        if backend == "torch":
            self._torch = _torch.TorchScorer(device)
        if strategy != "auto":
            self._layout(strategy)  # compile now: an impossible layout fails here

    # ------------------------------------------------------------------ inspection

    @property
    def n_trees(self) -> int:
        return self._pool.n_trees

    @property
    def depths_(self) -> np.ndarray:
        """Depth of every tree (a single leaf has depth 0); after :meth:`splice`, a bound
        (a splice raises it where the new subtree reaches deeper, never lowers it)."""
        return self._pool.depths.copy()

    @property
    def max_depth_(self) -> int:
        return self._pool.max_depth

    def plan(self, n_rows: int) -> Plan:
        """The strategy, backend, device and threads a batch of ``n_rows`` is scored with.

        Backend ``"auto"`` is numba, except batches of ``TORCH_MIN_ROWS`` rows or more when
        torch sees a GPU. Strategy ``"auto"``: GEMM, then PTT, up to the depths in
        ``AUTO_MAX_DEPTH`` for the backend and device, else TT. Threads: ``n_jobs`` for
        numba batches of ``PARALLEL_MIN_ROWS`` rows or more, else one.
        """
        backend = self.backend
        if backend == "auto" and self.strategy == "qtt":
            backend = "numba"
        elif backend == "auto":
            big = n_rows >= TORCH_MIN_ROWS and _torch.importable()
            backend = "torch" if big and _torch.cuda_available() else "numba"
        kind = backend
        if backend == "torch":
            scorer = self._scorer()
            kind = "torch-cuda" if scorer.device.type == "cuda" else "torch-cpu"
        strategy = self.strategy
        if strategy == "auto":
            strategy = self._auto.get(kind) or self._auto.setdefault(
                kind, self._auto_strategy(kind)
            )
        if backend == "torch":
            return Plan(strategy, backend, str(scorer.device), scorer.threads)
        threads = 1
        if n_rows >= PARALLEL_MIN_ROWS and strategy != "gemm":
            blocks = -(-n_rows // 128)
            threads = max(1, min(self.threads_, _max_numba_threads(), blocks))
        return Plan(strategy, backend, "cpu", threads)

    def _auto_strategy(self, kind: str) -> str:
        depth, limits = self.max_depth_, AUTO_MAX_DEPTH[kind]
        if depth <= limits["gemm"] and self._gemm_fits():
            return "gemm"
        if depth <= limits["ptt"] and self._ptt_fits(depth):
            return "ptt"
        return "tt"

    def _ptt_fits(self, depth: int) -> bool:
        size = _ptt.nbytes(self.n_trees, depth, self.n_classes)
        return depth <= _ptt.MAX_DEPTH and size <= AUTO_PTT_BYTES

    def _gemm_fits(self) -> bool:
        return _gemm.cells(self.n_trees, self._max_splits()) <= _gemm.MAX_CELLS

    def _max_splits(self) -> int:
        return int((self._pool.sizes.max() - 1) // 2)

    # ------------------------------------------------------------------ scoring

    @property
    def is_regressor(self) -> bool:
        """Compiled from regression values: ``predict`` returns their mean."""
        return self.leaves == "values"

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, shape ``(rows, n_classes)``: the forest's, bit for bit."""
        if self.is_regressor:
            raise ValueError("a regression forest has no class probabilities: use predict")
        return self._mean(X)

    def visited_nodes(self, X: ArrayLike) -> int:
        """Nodes that scoring ``X`` visits: the rows' path lengths (leaf included), summed
        over trees and rows; the work a traversal does, whatever the strategy."""
        Xf = self._rows(X)
        pool = self._pool
        return int(K.visited_nodes(Xf, pool.uroots, pool.flat, pool.flatf))

    def _mean(self, X: ArrayLike) -> np.ndarray:
        """The mean over trees of the leaves' values, ``(rows, n_classes)``."""
        return self._score(self._rows(X))

    def _score(self, Xf: np.ndarray) -> np.ndarray:
        """``_mean`` of rows already as ``_rows`` gives them (C-ordered finite float32 of the
        compiled width): forget's estimators call it with the rows they validated."""
        if Xf.shape[0] == 0:
            return np.zeros((0, self.n_classes))
        small = Xf.shape[0] < SMALL_ROWS
        plan = (small and self._small_plan) or self.plan(Xf.shape[0])
        if small:
            self._small_plan = plan
        layout = self._layout(plan.strategy)
        if plan.backend == "torch":
            return self._scorer().proba(plan.strategy, Xf, self._pool, layout)
        if isinstance(layout, GemmMatrices):
            return layout.proba(Xf)
        if plan.threads == 1:
            return layout.proba(Xf, parallel=False)
        before = numba.get_num_threads()
        numba.set_num_threads(plan.threads)
        try:
            return layout.proba(Xf, parallel=True)
        finally:
            numba.set_num_threads(before)

    def predict(self, X: ArrayLike, classes: ArrayLike | None = None) -> np.ndarray:
        """The most probable class of each row: a label of ``classes`` (or of ``classes_``,
        else its index); ties go to the first class, as ``argmax``. A regression forest:
        the mean of its trees' values, shape ``(rows,)`` for one output, else
        ``(rows, outputs)``."""
        if self.is_regressor:
            if classes is not None:
                raise ValueError("a regression forest has no classes")
            mean = self._mean(X)
            return mean[:, 0] if self.n_classes == 1 else mean
        best = np.argmax(self.predict_proba(X), axis=1)
        labels = self.classes_ if classes is None else np.asarray(classes)
        if labels is None:
            return best
        if labels.shape != (self.n_classes,):
            raise ValueError(f"classes must list {self.n_classes} labels, got {labels.shape}")
        return labels[best]

    def _rows(self, X: ArrayLike) -> np.ndarray:
        """X as C-contiguous float32 (the forest's own rounding), refused when malformed."""
        if isinstance(X, np.ndarray) and X.dtype == np.float32:
            arr = X
        else:
            try:
                arr = np.asarray(X, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"X must be a 2-d array of numbers: {exc}") from exc
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-d (rows, features), got shape {arr.shape}")
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, the forest was compiled for {self.n_features_in_}"
            )
        if not K.all_finite(arr):
            bad = np.argwhere(~np.isfinite(arr))[:5].tolist()
            raise ValueError(f"X holds NaN or infinite values at (row, column) {bad}")
        if arr.dtype == np.float32 and arr.flags.c_contiguous:
            return arr
        return K.as_float32(arr)[0]  # beyond float32's range: inf, as the forest

    def _scorer(self) -> _torch.TorchScorer:
        if self._torch is None:
            self._torch = _torch.TorchScorer(self._device)
        return self._torch

    def _layout(self, strategy: str) -> TreePool | PerfectTrees | GemmMatrices | QuantizedTrees:
        if strategy == "tt":
            return self._pool
        if strategy == "qtt":
            if self._qtt is None:
                self._qtt = QuantizedTrees(self._pool, self.n_features_in_)
            return self._qtt
        if strategy == "ptt":
            if self._ptt is None:
                self._ptt = PerfectTrees(self._pool, self.max_depth_)
            return self._ptt
        if self._gemm is None:
            self._gemm = GemmMatrices(self._pool, self._max_splits())
        return self._gemm

    # ------------------------------------------------------------------ refresh

    def _parse(self, structure: ArrayLike, t: int) -> ParsedTree:
        return parse_structure(structure, self.n_classes, self.n_features_in_, t, self.leaves)

    def update(self, model: Any, before: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Bring the forest up to date with ``model`` after it forgot rows, in place.

        ``before`` is the model's ``tree_structures()`` when this forest last matched it. The
        changed trees are recompiled (:meth:`refresh`), or every tree when the model's class
        list changed (a class no remaining row holds left it). Returns the structures now:
        the ``before`` of the next update.
        """
        after = model.tree_structures()
        classes = np.asarray(model.classes_)
        if classes.size == self.n_classes:
            self.refresh(changed_trees(before, after))
            if self.classes_ is not None:
                self.classes_ = classes
        else:
            self.__init__(  # type: ignore[misc]
                after,
                classes.size,
                self.n_features_in_,
                strategy=self.strategy,
                backend=self.backend,
                n_jobs=self.threads_,
                classes=None if self.classes_ is None else classes,
                device=self._device,
                leaves=self.leaves,
            )
        return list(after)

    def set_leaves(self, trees: ArrayLike, positions: ArrayLike, values: ArrayLike) -> list[int]:
        """Rewrite single leaves in place, the trees' shapes unchanged: leaf ``positions[i]``
        (its node's index in tree ``trees[i]``'s structure, preorder) takes ``values[i]``
        (what a leaf row of a structure holds after its feature and cut-off). Far cheaper than
        :meth:`refresh` when a deletion changed counts alone. Returns the trees where an entry
        named no leaf (its other entries may have been written): those need :meth:`refresh`.
        Not safe to run beside a ``predict_proba`` on another thread.
        """
        t = np.asarray(trees, dtype=np.int64).reshape(-1)
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        vals = np.ascontiguousarray(values, dtype=np.float64)
        if pos.shape != t.shape or vals.shape != (t.size, self.n_classes):
            raise ValueError(
                f"trees and positions must be 1-d of one length n, values of shape (n, "
                f"{self.n_classes})"
            )
        if t.size and (t.min() < 0 or t.max() >= self.n_trees):
            raise ValueError(f"tree indices must be in 0..{self.n_trees - 1}")
        bad = np.zeros(t.size, np.uint8)
        pool = self._pool
        K.set_leaves(
            pool.rec, pool.vals, pool.roots, pool.sizes, t, pos, vals, self.leaves == "counts",
            bad,
        )  # fmt: skip
        done = np.unique(t[bad == 0]).tolist()
        for tree in done:  # the derived layouts copy their leaves from the pool (QTT shares it)
            if self._ptt is not None:
                self._ptt.fill(pool, tree)
            if self._gemm is not None:
                self._gemm.fill(pool, tree)
        if self._torch is not None and done:
            self._torch.changed(set(done))
        return np.unique(t[bad == 1]).tolist()

    def warm(self) -> None:
        """Load the kernels that :meth:`set_leaves` and :meth:`splice` run (~10 ms each when
        first called in a process), by calls that change nothing: a server's first erasure
        must not load them with its model's gate closed."""
        self.set_leaves([], [], np.zeros((0, self.n_classes)))
        K.clear_below(np.zeros((1, 4), np.int32), np.zeros((1, self.n_classes + 1)), 0)

    def splice(self, t: int, at: int, structure: ArrayLike, depth: int) -> np.ndarray | None:
        """Replace one subtree of tree ``t`` by ``structure`` (a subtree in the form of a
        tree's, see the class docstring), the tree's other records left as they are: far
        cheaper than :meth:`refresh` when a deletion changed a small part of a big tree.

        ``at`` is the index of the old subtree's root in the tree's records (its node's row in
        the tree's structure as compiled, or as a splice returned it) and ``depth`` the new
        root's depth in the tree. Returns the index in the tree's records of each row of
        ``structure``, or None, changing nothing, when the tree has no room left for it or
        when this forest may score with a layout other than tree traversal (those copy whole
        trees): then :meth:`refresh` the tree. The records it replaces are zeroed. Not safe to
        run beside a ``predict_proba`` on another thread.
        """
        pool = self._pool
        if not 0 <= t < self.n_trees or not 0 <= at < pool.sizes[t]:
            raise ValueError(f"no record {at!r} in tree {t!r}")
        if not self._traversal_only():
            return None
        where = pool.splice(t, at, self._parse(structure, t), int(depth))
        if where is not None:
            self._auto.clear()
            self._small_plan = None
        return where

    def _traversal_only(self) -> bool:
        """Whether nothing but the tree-traversal pool scores this forest, now and later."""
        derived = (self._ptt, self._gemm, self._qtt, self._torch)  # numba "auto" builds none
        tt = self.backend == "numba" and self.strategy in ("auto", "tt")
        return tt and all(x is None for x in derived)

    def refresh(self, changed: Mapping[int, ArrayLike]) -> None:
        """Recompile the trees in ``changed`` (tree index → new structure), and only them.

        The whole request is checked first: a bad index or structure raises ValueError and
        changes nothing. Not safe to run beside a ``predict_proba`` on another thread.
        """
        trees: dict[int, ParsedTree] = {}
        for key, structure in changed.items():
            if not isinstance(key, int | np.integer) or not 0 <= key < self.n_trees:
                raise ValueError(f"tree index {key!r} is not in 0..{self.n_trees - 1}")
            trees[int(key)] = self._parse(structure, int(key))
        if not trees:
            return
        depths = self._pool.depths.copy()
        splits = (self._pool.sizes - 1) // 2
        for t, tr in trees.items():
            depths[t], splits[t] = tr.depth, tr.n_splits
        new_depth, new_splits = int(depths.max()), int(splits.max())
        if self.strategy == "ptt" and new_depth > _ptt.MAX_DEPTH:
            raise ValueError(
                f"tree depth {new_depth} is past perfect tree traversal's {_ptt.MAX_DEPTH}; "
                "compile with strategy 'tt' or 'auto'"
            )
        gemm_fits = _gemm.cells(self.n_trees, new_splits) <= _gemm.MAX_CELLS
        if self.strategy == "gemm" and not gemm_fits:
            raise ValueError(
                f"trees with {new_splits} internal nodes are too large for GEMM; compile with "
                "strategy 'tt' or 'auto'"
            )
        for t, tr in trees.items():
            self._pool.replace(t, tr)
        self._auto.clear()
        self._small_plan = None
        if self.strategy == "auto":  # keep only the layouts "auto" can still pick
            deepest = {k: max(v[k] for v in AUTO_MAX_DEPTH.values()) for k in ("gemm", "ptt")}
            if new_depth > deepest["ptt"]:
                self._ptt = None
            if new_depth > deepest["gemm"]:
                self._gemm = None
        if self._ptt is not None:
            if new_depth > self._ptt.depth:  # pad every tree deeper: a new layout
                fits = new_depth <= _ptt.MAX_DEPTH
                self._ptt = PerfectTrees(self._pool, new_depth) if fits else None
            else:
                for t in trees:
                    self._ptt.fill(self._pool, t)
        if self._gemm is not None:
            if not gemm_fits:
                self._gemm = None  # "auto" moves on to traversal
            else:
                for t in trees:
                    self._gemm.fill(self._pool, t)
        if self._qtt is not None:  # new cut-offs: new bin edges
            self._qtt.refresh(trees)
        if self._torch is not None:
            self._torch.changed(set(trees))


def _max_numba_threads() -> int:
    return int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))


def changed_trees(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> dict[int, Any]:
    """The trees of ``after`` that differ from ``before`` (for ``CompiledForest.refresh``)."""
    if len(before) != len(after):
        raise ValueError(f"{len(before)} trees before, {len(after)} after")
    return {
        t: b
        for t, (a, b) in enumerate(zip(before, after, strict=True))
        if a.shape != b.shape or not np.array_equal(a, b)
    }


def compile_forest(
    model: HedgeCutClassifier,
    strategy: str = "auto",
    backend: str = "auto",
    *,
    n_jobs: int | None = None,
    device: str | None = None,
) -> CompiledForest:
    """Compile a fitted ``HedgeCutClassifier``'s active trees (its ``n_jobs`` by default)."""
    return CompiledForest(
        model.tree_structures(),
        int(model.classes_.size),
        int(model.n_features_in_),
        strategy=strategy,
        backend=backend,
        n_jobs=model.n_jobs if n_jobs is None else n_jobs,
        classes=model.classes_,
        device=device,
    )
