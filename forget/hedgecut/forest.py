"""HedgeCutClassifier: an extremely randomized forest that forgets training rows exactly."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from forget import _persist
from forget._rows import RowIndex, as_row_ids
from forget.base import ForgetResult, Guarantee, Path, RetrainResult
from forget.hedgecut import _kernels as K
from forget.hedgecut._compiled import CompiledTrees
from forget.hedgecut._nodes import NODE_FIELDS, alloc_nodes, canonical_forest, grow_nodes
from forget.hedgecut._validate import (
    check_params,
    check_seed,
    cutoff_domain,
    features,
    label_codes,
    training_data,
    width_kept_if_refused,
)

_SMALL_BATCH = 64  # below this many rows, predict serially (no thread start-up)
_PATHS = (Path.FAST, Path.SLOW)


# ---------------------------------------------------------------------- fitting trees

Tree: TypeAlias = tuple[tuple[np.ndarray, ...], np.ndarray, int, int]
"""One fitted tree: its node arrays, its row pool, the nodes and pool rows it uses."""


@dataclass(frozen=True, eq=False)
class ForestInputs:
    """Everything a fit's trees read; a tree is a pure function of these and its index.

    ``X`` float32 features, ``y`` int32 class codes, ``ids`` int64 row ids, ``prm`` the kernels'
    int64 parameters, ``bounds`` the cut-off distribution per feature, ``seed`` the forest's seed.
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    prm: np.ndarray
    bounds: np.ndarray
    seed: int


# A forget of at least 1 / REFIT_SHARE of the live rows fits again on the rest: one deletion
# costs 15-20x a fit's share of one row (100 trees, adult and 100k synthetic rows, 2 cores),
# so a refit is as fast from ~6 % of the rows and faster beyond (bulk erasures, retention).
REFIT_SHARE = 16


# Entries the list of deferred rebuilds starts with (``defer_rows``); forget doubles it as
# needed (rarely: a stale node blocks the rebuilds below it).
DEFERRED = 64


def _room(nodes: int, n: int) -> int:
    """Node records to allocate for a forest of ``nodes`` nodes over ``n`` rows: room for a
    rebuild of a whole tree (2n), and for the forest to double. Deletions that flip a hedged
    decision keep the superseded subtree beside the new one, so the forest grows with them
    (adult, 22,400 rows: 56k nodes, 97k after 3,000 single-row deletions, level after). The
    room is untouched memory until a node takes it (:func:`alloc_nodes`); growing later copies
    the forest while a deletion and the predictions behind it wait."""
    return 2 * nodes + 2 * n + 64


class _Lock:
    """A lock that a copied or unpickled model gets afresh (``retrain_pending``'s)."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __reduce__(self) -> tuple[type[_Lock], tuple[()]]:
        return type(self), ()


def _with_room(pool: np.ndarray) -> np.ndarray:
    """The forest's row pool with as much room again after it, for the subtrees that deletions
    build beside the ones they supersede (each takes a range of its node's live rows). The room
    is zeros no one touches until a subtree takes it (the system maps them then, as the node
    arrays' room): no byte of an earlier array. Growing the pool later copies it while a
    deletion waits (at 1M rows: ~110 ms, on the first such subtree)."""
    out = np.zeros(2 * pool.size + 1024, np.int32)
    out[: pool.size] = pool
    return out


def fit_tree(inputs: ForestInputs, t: int) -> Tree:
    """Fit tree ``t`` of the forest on its share of the rows."""
    members = K.tree_rows(inputs.seed, t, inputs.ids, inputs.prm[K.P_SAMPLE])
    n = members.size
    # the tree's rows, gathered: the build reads each once per level, and in place they lie
    # scattered over X (a cache miss per read on big data); the pool maps back at the end
    X, y = inputs.X[members], inputs.y[members]
    k, c = int(inputs.prm[K.P_K]), int(inputs.prm[K.P_C])
    cap, pool_cap = 2 * n + 16, 2 * n + 16
    while True:
        S = alloc_nodes(cap, k, c)
        rows = np.empty(pool_cap, np.int32)
        rows[:n] = np.arange(n, dtype=np.int32)
        meta = np.array([1, 0, n, 0, 0], dtype=np.int64)
        free = np.empty(0, np.int32)
        S[8][0], S[9][0], S[10][0], S[11][0] = -1, -1, 0, 0
        S[12][0] = K.root_path(inputs.seed, t)
        S[13][0], S[14][0] = 0, n
        status = K.build(S, 0, X, y, rows, meta, free, inputs.prm, inputs.bounds, True)
        if status == K.OK:
            used, pool_used = int(meta[K.M_TAIL]), int(meta[K.M_POOL])
            # compact copies: the buffers were sized for the worst case (2n + 16 nodes)
            return tuple(a[:used].copy() for a in S), members[rows[:pool_used]], used, pool_used
        if status == K.NEED_NODES:
            cap *= 2
        else:
            pool_cap *= 2


def fit_trees(inputs: ForestInputs, trees: Iterable[int]) -> list[Tree]:
    """Fit the given trees one after the other, in this process: the serial tree fitter."""
    return [fit_tree(inputs, t) for t in trees]


TreeFitter: TypeAlias = Callable[[ForestInputs, Sequence[int]], Sequence[Tree]]
"""Fits trees ``trees`` of a forest and returns them in that order, as :func:`fit_trees` does."""

_FITTER: ContextVar[TreeFitter | None] = ContextVar("forget.hedgecut.tree_fitter", default=None)


@contextmanager
def tree_fitter(fitter: TreeFitter | None) -> Iterator[None]:
    """Fit the trees of every :class:`HedgeCutClassifier` fitted in this block with ``fitter``.

    The default (``None``) fits them on ``n_jobs`` threads. Another fitter (e.g.
    :class:`cluster.training.RayTreeFitter`) must give the same trees, so the forest stays the
    same. The setting is a context variable: it holds in this thread (or task) until the block
    ends, exception or not.

    >>> import numpy as np
    >>> from forget.hedgecut import HedgeCutClassifier, fit_trees, tree_fitter
    >>> X = np.arange(40.0).reshape(20, 2); y = np.arange(20) % 2
    >>> with tree_fitter(fit_trees):
    ...     serial = HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, y)
    >>> serial.to_bytes() == HedgeCutClassifier(n_estimators=3, random_state=0).fit(X, y).to_bytes()
    True
    """
    token = _FITTER.set(fitter)
    try:
        yield
    finally:
        _FITTER.reset(token)


class HedgeCutClassifier(ClassifierMixin, BaseEstimator):
    """Extremely randomized trees that unlearn single training rows in microseconds, exactly.

    Every random choice is keyed by ``(random_state, tree, node path)`` and cut-offs are drawn in
    the node's region of ``feature_bounds``, so training is a pure function of the data. After
    ``fit(X, y, row_ids=ids)`` and any sequence of ``forget`` calls, the forest (its predictions
    and the structure of every tree) equals the forest that ``fit`` on the remaining rows builds
    with the same parameters and ``feature_bounds=model.feature_bounds_``.

    Deletions take the *fast path* when they only update counts: a node whose decision is
    robust (no ``deletion_budget`` share of deletions can change it) is merely decremented, and a
    non-robust node switches to a pre-built variant subtree of the runner-up (HedgeCut's hedge).
    When a deletion changes a decision that was not hedged, the *slow path* rebuilds just that
    subtree from the rows it still holds (DaRE). ``ForgetResult.paths`` says which path each
    deletion took.

    What it keeps. After ``forget(S)``, ``to_bytes()`` is byte for byte what
    ``fit(D \\ S, feature_bounds=feature_bounds_)`` writes (same parameters and seed; with bounds
    declared, the very same parameters): only the remaining rows (ids, features, labels), the
    remaining labels as ``classes_``, each tree in a canonical order with the counts, slacks
    and hedged variants a fit on those rows computes, and no freed node. Data-independent
    configuration: the parameters and ``seed_``; ``feature_bounds_`` is fixed at fit (robust,
    see ``feature_bounds``). In memory, a forgotten row's id is scrubbed, its features and
    label overwritten, freed nodes cleared, and every count is exact at once; what ``forget``
    does not rewrite, to stay fast, is layout: the row pool still has the forgotten rows'
    slots (range lengths and positions say which leaves they reached), slacks are bounds
    decremented along their paths, nodes keep their allocation order and the variants hedged
    at fit (rebuilt subtrees have none), and ``budget_``, ``n_forgotten_`` and the row count
    in the kernels' parameters are the fit's. ``compact()`` replaces all of that by the
    canonical form (what a refit keeps); so does reloading the artifact. With ``defer_rows``,
    until :meth:`retrain_pending` a pending tree's subtree under a node whose rebuild was
    deferred still holds what the forgotten rows left there (cut-offs chosen with them, their
    counts below that node): no prediction reads it, and ``to_bytes``, ``compact`` and
    ``tree_structures`` rebuild it first. Beside the node
    arrays, ``predict_proba`` keeps the active trees compiled for scoring (derived from
    ``tree_structures``, never written to the artifact; see ``forget.hedgecut._compiled``).

    Parameters
    ----------
    n_estimators : number of trees.
    max_depth : depth limit, ``None`` for none.
    min_samples_leaf : fewest rows a leaf may hold.
    max_features : candidate features per node: a fraction of the feature count (rounded), an
        int, or ``"sqrt"`` / ``"log2"`` of it (rounded, as HedgeCut). The default, 0.6, is more
        than ExtraTrees' square root: cut-offs are drawn in the node's region, not between
        its rows' extremes, so fewer of them split its rows, and with few informative
        features a node of square-root candidates often has none of them. Against ``"sqrt"``
        (100 trees, 2 cores): at 1M synthetic rows accuracy +0.3 / +0.35 points (within 0.3
        of ExtraTrees) and deletion p99 3-16x lower, at 100k +3.3 / +0.9 points; on adult and
        shopping +0.45 / +0.3 points for a deletion p50 1.6-1.9x higher; memory 1.6-1.9x.
    deletion_budget : share of the training rows the hedges are built to absorb (HedgeCut's ε).
    feature_bounds : the distribution cut-offs are drawn from, per feature: ``(low, high)`` for
        uniform draws in a range, or a row of q non-decreasing knots (cut-offs uniform on the
        piecewise-linear scale between them). ``None`` takes 65 knots from the training data,
        kept as ``feature_bounds_`` (a refit pins them): the ends are the 10th smallest and
        largest values (0.1 % of the rows when more; a quarter below 40 rows) rounded outward
        to 2 significant digits of their span, the inner knots quantiles clipped to those
        values and rounded to 3 significant digits (dense where the data is dense). No knot
        depends on the most extreme rows' values, and none is one row's value. No cut-off lies
        beyond the ends, so all values beyond an end route alike (clipping them would change
        no routing): the rows of a tail are not told apart by that feature. Cost against
        the data's extremes: accuracy -0.01 points on adult, +0.3 on shopping (100 trees,
        5 seeds). Where a domain is known, pass it from the schema.
    classes : the label set; taken from ``y`` when ``None``, and then a label that no
        remaining row holds leaves ``classes_`` (and ``predict_proba``'s columns) when its last
        row is forgotten, as a refit would not know it. Declare it to keep a fixed label set.
    hedge_min_samples : nodes with fewer rows are not hedged (rebuilding them is cheap).
    max_variants : runners-up hedged per node.
    max_hedge_depth : variant edges allowed on one root-to-leaf path.
    random_depth : the top levels take the first balanced candidate instead of the best one
        (DaRE's random levels): large nodes then almost never change on deletion.
    max_samples : share of the rows each tree trains on, chosen by a hash of (seed, tree, row
        id), so a deletion touches only that share of the trees (as DynFrs).
    defer_rows : ``None`` (every deletion leaves the forest exact at once), or a row count: a
        deletion that calls for rebuilding a subtree of at least this many live rows defers
        that rebuild and returns; the tree is then *pending* (``pending_``) until
        :meth:`retrain_pending` rebuilds it. Predictions average the other trees
        (``served_``), each the very tree a fit on the remaining rows builds: no pending
        tree's state is scored. ``retrain_pending`` may run beside predictions (a server runs
        it in the background), not beside ``forget``; ``to_bytes``, ``compact`` and
        ``tree_structures`` run it first, and ``forget`` does when more than half the trees
        would be pending. Bounds the rows one deletion rebuilds, which otherwise grow with the
        data (at 1M rows the slowest deletions rebuild ~100,000).
    n_jobs : threads for ``fit`` and large ``predict`` calls (``None``: 1, ``-1``: all cores);
        :func:`tree_fitter` can hand the trees of ``fit`` to another fitter (e.g. Ray).
    random_state : int seed in ``[0, 2**63)`` (``None`` draws one, kept as ``seed_``); others
        are refused at fit.

    Inputs are validated as scikit-learn's estimators do (dense, real, 2-d ``X``; classification
    labels), then compared as float32: ``fit`` and ``predict_proba`` refuse a NaN, an infinity
    or a value beyond the float32 range (|x| > 3.4e38, which float32 would make infinite),
    naming its column and row, rather than answer NaN or learn an infinite cut-off domain.

    Examples
    --------
    >>> import numpy as np
    >>> from forget import HedgeCutClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
    >>> m = HedgeCutClassifier(n_estimators=10, random_state=1).fit(X, y)
    >>> r = m.forget([3, 17])
    >>> refit = HedgeCutClassifier(n_estimators=10, random_state=1,
    ...                            feature_bounds=m.feature_bounds_).fit(
    ...     np.delete(X, [3, 17], axis=0), np.delete(y, [3, 17]),
    ...     row_ids=np.delete(np.arange(200), [3, 17]))
    >>> bool((m.predict_proba(X) == refit.predict_proba(X)).all())
    True
    """

    guarantee = Guarantee.EXACT

    # the kernels' working state (``_working_state``): the free list, the pending-rebuild stack
    _free: np.ndarray
    _pending: np.ndarray
    # deferred rebuilds (``defer_rows``): the stale nodes, ``_dn[0]`` of them (ancestors first
    # once noted), the trees holding them, and the roots predictions walk meanwhile (None: all)
    _deferred: np.ndarray
    _dn: np.ndarray
    _pending_trees: np.ndarray
    _served: np.ndarray | None
    _settling: _Lock

    def __init__(
        self,
        n_estimators: int = 100,
        max_depth: int | None = None,
        min_samples_leaf: int = 2,
        max_features: str | int | float = 0.6,
        deletion_budget: float = 0.001,
        feature_bounds: ArrayLike | None = None,
        classes: ArrayLike | None = None,
        hedge_min_samples: int = 256,
        max_variants: int = 0,
        max_hedge_depth: int = 1,
        random_depth: int = 0,
        max_samples: float = 0.1,
        defer_rows: int | None = None,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.deletion_budget = deletion_budget
        self.feature_bounds = feature_bounds
        self.classes = classes
        self.hedge_min_samples = hedge_min_samples
        self.max_variants = max_variants
        self.max_hedge_depth = max_hedge_depth
        self.random_depth = random_depth
        self.max_samples = max_samples
        self.defer_rows = defer_rows
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers

    def _threads(self) -> int:
        import os

        if self.n_jobs is None:
            return 1
        if self.n_jobs < 0:
            return os.cpu_count() or 1
        return max(1, int(self.n_jobs))

    # ------------------------------------------------------------------ fit

    def fit(
        self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None
    ) -> HedgeCutClassifier:
        """Fit the forest on ``X, y``; ``row_ids`` name the rows for ``forget`` (default 0..n-1).

        Raises ``ValueError`` for what scikit-learn's estimators refuse, for a feature value
        beyond the float32 range (naming its column), and for ``random_state`` outside
        ``[0, 2**63)``.
        """
        with width_kept_if_refused(self):
            Xf, y_arr = training_data(self, X, y)
            n, d = Xf.shape
            ids = as_row_ids(row_ids, n)
            k = check_params(self, d)
            classes, codes = label_codes(self.classes, y_arr)
            bounds = cutoff_domain(self.feature_bounds, Xf)
            seed = check_seed(self.random_state)

        self.classes_ = classes
        self.n_features_in_ = d
        self.feature_bounds_ = bounds
        self.seed_ = seed
        self.n_candidates_ = k
        self._X = Xf
        self._y = codes.astype(np.int32)
        self._rows = RowIndex(ids)
        self._ccount = np.bincount(self._y, minlength=classes.size).astype(np.int64)
        self.budget_ = self._budget(n)
        self.n_forgotten_ = 0
        self._prm = np.array(
            [
                k,
                classes.size,
                self.min_samples_leaf,
                self.max_depth if self.max_depth is not None else 2**30,
                seed,
                self.budget_,
                self.hedge_min_samples,
                self.max_variants,
                self.max_hedge_depth,
                n,
                self.random_depth,
                round(float(self.max_samples) * 2**32),
            ],
            dtype=np.int64,
        )
        inputs = ForestInputs(self._X, self._y, self._rows.ids, self._prm, bounds, seed)
        indices = range(self.n_estimators)
        fitter = _FITTER.get()
        if fitter is None:
            with ThreadPoolExecutor(max_workers=self._threads()) as pool:
                trees = list(pool.map(partial(fit_tree, inputs), indices))
        else:
            trees = list(fitter(inputs, indices))
            if len(trees) != self.n_estimators:
                raise RuntimeError(
                    f"tree fitter {fitter!r} returned {len(trees)} trees for {self.n_estimators}"
                )
        self._assemble(trees)
        return self

    def _assemble(self, trees: list[Tree]) -> None:
        """Concatenate per-tree arrays into one flat forest (node and row indices offset)."""
        n_nodes = sum(t[2] for t in trees)
        n = self._X.shape[0]
        S = alloc_nodes(_room(n_nodes, n), int(self._prm[K.P_K]), int(self._prm[K.P_C]))
        roots = np.empty(len(trees), np.int64)
        rows_parts = []
        off = pool_off = 0
        for t, (ts, trows, used, pool_used) in enumerate(trees):
            roots[t] = off
            sl = slice(off, off + used)
            for name, dst, src in zip(NODE_FIELDS, S, ts, strict=True):
                dst[sl] = src
                if name in ("child", "parent"):
                    dst[sl] = np.where(src >= 0, src + off, -1)
                elif name in ("start", "stop"):
                    dst[sl] = src + pool_off
            rows_parts.append(trows)
            off += used
            pool_off += pool_used
        self._S = S
        self._roots = roots
        self._pool = _with_room(np.concatenate(rows_parts))
        self._meta = np.array([off, 0, pool_off, 0, 0], dtype=np.int64)
        self._working_state()

    # ------------------------------------------------------------------ forget

    @property
    def n_rows_(self) -> int:
        """Training rows the model still holds."""
        self._require_fitted()
        return self._rows.n_alive

    @property
    def budget_left_(self) -> int:
        """Deletions left before the hedges built at fit time no longer cover the budget."""
        self._require_fitted()
        return max(0, self.budget_ - self.n_forgotten_)

    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove training rows; the forest becomes the one ``fit`` on the remaining rows gives.

        A big share of the live rows at once (``1 / REFIT_SHARE`` or more: bulk erasures,
        retention) is forgotten by fitting again on the rest, which is then cheaper: the same
        model, in its canonical form (what ``compact`` would make of it; ``budget_`` anew).

        With ``defer_rows``, rebuilds of that many rows or more are left to
        :meth:`retrain_pending` (``needs_retrain`` is then set, and ``pending_`` names the
        trees that wait: until then predictions average the others).

        Raises (changing nothing) on unknown, repeated or already forgotten ids, and when the
        request would leave no training rows. Not to be run beside a ``predict_proba`` of the
        same model on another thread: the trees it changes are recompiled for scoring on the
        next prediction (see ``predict_proba``), not here, to keep deletions short.
        """
        t0 = time.perf_counter()
        self._require_fitted()
        pos = self._rows.resolve(row_ids, "HedgeCutClassifier")
        m = pos.size
        gone = tuple(self._rows.ids[pos].tolist())  # before the index scrubs them
        if m * REFIT_SHARE >= self._rows.n_alive:
            self._refit_without(pos)
            return ForgetResult(
                gone,
                Guarantee.EXACT,
                (Path.SLOW,) * m,
                time.perf_counter() - t0,
                details={
                    "subtrees_rebuilt": self.n_estimators,
                    "rows_rebuilt": self._rows.n_alive,
                    "variant_switches": 0,
                    "budget_left": self.budget_,
                    "refit": 1,
                },
            )
        # per row: subtrees rebuilt, rows they held, variant switches, rebuilds deferred
        counts = np.zeros((4, m), np.int64)
        compiled = self._compiled
        compiled.stale = True  # first: whatever happens below, the next prediction re-checks
        defer = int(self.defer_rows or 0)
        i = 0
        while True:
            status, i, need = K.forget_rows(
                self._S, self._X, self._y, self._rows.ids, self._rows.alive, self._pool, self._meta,
                self._free, self._pending, self._prm, self.feature_bounds_, self._roots, pos, i,
                counts, self._ccount, compiled.touched, compiled.leaf_log, compiled.leaf_n,
                compiled.shape_log, compiled.shape_n, defer, self._deferred, self._dn,
            )  # fmt: skip
            if status == K.OK:
                break
            if status == K.NEED_POOL:  # a subtree built beside the one it supersedes
                self._grow_pool(int(need))
            elif status == K.NEED_DEFER:
                self._deferred = np.concatenate([self._deferred, np.zeros_like(self._deferred)])
            else:
                self._grow(int(need))
        if not compiled.built:  # nothing to bring up to date: the marks and leaves go at once
            compiled.settled()
        self._rows.dropped(pos)  # the kernel cleared their alive flags as it went
        self.n_forgotten_ += m
        if self._meta[K.M_EMPTIED]:
            self._drop_empty_classes()
        if self._dn[0]:
            self._note_pending()
            if 2 * self._pending_trees.size > self._roots.size:  # too few trees left to serve
                self.retrain_pending()
        rebuilt, rows, switches, deferred = counts.tolist()
        return ForgetResult(
            gone,
            Guarantee.EXACT,
            tuple([_PATHS[r + d > 0] for r, d in zip(rebuilt, deferred, strict=True)]),
            time.perf_counter() - t0,
            needs_retrain=bool(self._pending_trees.size),
            details={
                "subtrees_rebuilt": sum(rebuilt),
                "rows_rebuilt": sum(rows),
                "variant_switches": sum(switches),
                "budget_left": max(0, self.budget_ - self.n_forgotten_),
                "subtrees_deferred": sum(deferred),
                "trees_pending": int(self._pending_trees.size),
            },
        )

    # ------------------------------------------------------------------ deferred rebuilds

    @property
    def pending_(self) -> tuple[int, ...]:
        """The trees whose rebuild ``forget`` deferred (``defer_rows``): left out of
        predictions until :meth:`retrain_pending`."""
        self._require_fitted()
        return tuple(self._pending_trees.tolist())

    @property
    def served_(self) -> tuple[int, ...]:
        """The trees predictions average: all but ``pending_``."""
        self._require_fitted()
        return tuple(np.setdiff1d(np.arange(self._roots.size), self._pending_trees).tolist())

    def retrain_pending(self) -> RetrainResult:
        """Do the subtree rebuilds ``forget`` deferred (``defer_rows``), each from the rows its
        node holds now: then every tree is the tree a fit on the remaining rows builds, and
        predictions average all of them again. The result counts the trees (``shards``) and
        the rows rebuilt.

        May run beside ``predict_proba`` on other threads (they score the served trees, which
        it neither reads nor writes; its kernel releases the GIL), and beside itself (calls
        take turns: ``to_bytes`` and the other readers that call it first then read a forest
        with nothing pending); not beside ``forget``, ``compact`` or ``fit``.
        """
        self._require_fitted()
        with self._settling.lock:
            return self._retrain_pending()

    def _retrain_pending(self) -> RetrainResult:
        t0 = time.perf_counter()
        trees = self._pending_trees
        counts = np.zeros(2, np.int64)
        if not trees.size:
            if self.defer_rows is not None:  # the kernels loaded, nothing done: a server's
                self._note_pending()  # first deferral must not load them (~10 ms)
                self._rebuild(np.zeros(0, np.int64), counts)
            return RetrainResult(0, 0, 0.0)
        self._rebuild(self._deferred[: int(self._dn[0])].copy(), counts)  # ancestors first
        compiled = self._compiled
        compiled.touched[trees] = K.RESHAPED
        compiled.stale = True
        if not compiled.built:
            compiled.settled()
        self._no_deferred()  # last: predictions score every tree from here on
        return RetrainResult(int(trees.size), int(counts[1]), time.perf_counter() - t0)

    def _rebuild(self, todo: np.ndarray, counts: np.ndarray) -> None:
        """Rebuild the subtrees of the stale nodes ``todo``, growing the node arrays as asked."""
        i = 0
        while True:
            status, i, need = K.rebuild_deferred(
                self._S, self._X, self._y, self._rows.alive, self._pool, self._meta, self._free,
                self._prm, self.feature_bounds_, todo, i, counts,
            )  # fmt: skip
            if status == K.OK:
                break
            self._grow(int(need))

    def _note_pending(self) -> None:
        """Drop the entries of freed nodes from the deferred list, order it ancestors first,
        and note the trees that hold a stale node (those predictions leave out)."""
        S = self._S
        flags = np.zeros(self._roots.size, np.bool_)
        live = K.pending_trees(self._deferred[: int(self._dn[0])], S[11], S[8], S[10],
                               self._roots, flags)  # fmt: skip
        self._deferred[: live.size] = live
        self._dn[0] = live.size
        self._pending_trees = np.flatnonzero(flags)
        self._served = self._roots[~flags] if live.size else None

    def _no_deferred(self) -> None:
        self._deferred = np.zeros(DEFERRED, np.int64)
        self._dn = np.zeros(1, np.int64)
        self._pending_trees = np.zeros(0, np.int64)
        self._served = None

    def _refit_without(self, pos: np.ndarray) -> None:
        """Forget the rows at ``pos`` by fitting again on the rest (same parameters, seed and
        cut-off domain): the very model the deletions lead to, and ``compact``'s canonical form
        at once (no forgotten row's slot, a fresh budget). Chosen for a big share of the rows,
        where it is cheaper (see ``REFIT_SHARE``). The rest are rows a fit took (finite,
        float32, at least one: ``resolve`` refuses to forget the last), so the fit takes them."""
        keep = self._rows.alive.copy()
        keep[pos] = False
        live = np.flatnonzero(keep)
        fresh = copy.copy(self)  # the parameters shared; fit sets every fitted attribute anew
        fresh.set_params(feature_bounds=self.feature_bounds_, random_state=self.seed_)
        fresh.fit(self._X[live], self.classes_[self._y[live]], self._rows.ids[live])
        fresh.set_params(feature_bounds=self.feature_bounds, random_state=self.random_state)
        self._derive_for(fresh)  # scoring goes on compiled, as after ``compact``
        self.__dict__.update(fresh.__dict__)

    def _derive_for(self, fresh: HedgeCutClassifier) -> None:
        """Build on ``fresh`` (this model fitted or compacted anew, about to be taken over)
        the derived state this model had built: its compiled trees and its row-id lookups,
        so that neither is built on the next prediction or erasure (each O(n))."""
        _derive(fresh, *self._derived())

    def _derived(self) -> tuple[bool, bool]:
        """Which derived state this model built: its compiled trees, its row-id lookups."""
        return self._compiled.built, self._rows.prepared

    def _budget(self, n: int) -> int:
        return max(1, round(float(self.deletion_budget) * n)) if self.deletion_budget else 0

    def _drop_empty_classes(self) -> None:
        """Drop the labels no live row holds any more, unless the user declared ``classes``.

        A refit would not know them; kept, they would name what only forgotten rows were.
        Rare (a class loses its last row), so the node arrays are simply laid out again
        without their columns (all zero: a class without rows weighs nothing in a decision).
        """
        self._meta[K.M_EMPTIED] = 0
        if self.classes is not None:
            return
        keep = self._ccount > 0
        S = self._S
        fresh = alloc_nodes(S[0].shape[0], int(self._prm[K.P_K]), int(keep.sum()))
        for name, old, new in zip(NODE_FIELDS, S, fresh, strict=True):
            new[:] = old[:, keep] if name == "ncls" else old[:, :, keep] if name == "left" else old
        code = np.cumsum(keep) - 1
        self._y = np.where(self._rows.alive, code[self._y], 0).astype(np.int32)
        self._S = fresh
        self._ccount = self._ccount[keep]
        self.classes_ = self.classes_[keep]
        self._prm[K.P_C] = keep.sum()

    def _require_fitted(self) -> None:
        if not hasattr(self, "_S"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X, y) first"
            )

    def _grow(self, need: int) -> None:
        m = self._S[0].shape[0]
        new_m = max(2 * m, m + need + 64)
        self._S = grow_nodes(self._S, new_m)
        free = np.empty(new_m, np.int32)
        free[:m] = self._free
        self._free = free
        pending = np.empty(new_m, np.int64)
        pending[:m] = self._pending
        self._pending = pending

    def _grow_pool(self, need: int) -> None:
        used = int(self._meta[K.M_POOL])
        pool = np.empty(max(used + used // 2, used + need + 1024), np.int32)
        pool[:used] = self._pool[:used]
        self._pool = pool

    # ------------------------------------------------------------------ predict

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities: the mean over trees of the leaf's class shares.

        Scored by the trees' compiled form (``forget.scoring``: bitwise the numbers a walk
        over the node arrays gives, several times faster), compiled on the first call. After
        ``forget``, the trees it changed are recompiled, alone, once predictions have scored
        enough rows to repay it; until then they walk the node arrays (see ``_compiled``).
        Predictions may run on several threads at once; ``forget``, ``compact`` and ``fit``
        must not run beside them on the same model.

        Raises ``ValueError`` for rows of another width and for values float32 cannot hold
        (NaN, infinite, or beyond its range), naming their column.
        """
        self._require_fitted()
        Xf = features(self, X)
        if self._served is not None:  # trees wait for a deferred rebuild: walk the others
            return self._walk(Xf)
        return self._compiled.proba(self, Xf)

    def refresh_compiled(self) -> None:
        """Recompile now the trees ``forget`` changed, when the compiled form was built (else
        nothing): what the next ``predict_proba`` would otherwise do or defer. May run beside
        ``predict_proba`` on other threads (they walk the node arrays or wait for it), not
        beside ``forget`` or ``compact``."""
        self._require_fitted()
        if self._served is None:  # (while trees wait, predictions walk the others)
            self._compiled.refresh(self)

    def _node_proba(self, X: ArrayLike) -> np.ndarray:
        """``predict_proba`` by walking the node arrays themselves: the reference the compiled
        form is tested against (and the numbers it must give, bit for bit)."""
        self._require_fitted()
        return self._walk(features(self, X))

    def _walk(self, Xf: np.ndarray) -> np.ndarray:
        """Class probabilities of float32 rows, walking the node arrays (of the served trees:
        all but ``pending_``)."""
        roots = self._served
        S = self._S
        args = (Xf, self._roots if roots is None else roots, S[0], S[6], S[2], S[3], S[5])
        if Xf.shape[0] < _SMALL_BATCH or self._threads() == 1:
            return K.predict_proba_serial(*args)
        return K.predict_proba_parallel(*args)

    def predict(self, X: ArrayLike) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    # ------------------------------------------------------------------ inspection

    def tree_structures(self) -> list[np.ndarray]:
        """The active structure of every tree, in preorder: one row per node,
        ``(feature, cut-off, 0...)`` for a split and ``(-1, 0, class counts...)`` for a leaf.
        Deferred rebuilds (``pending_``) are done first."""
        self._require_fitted()
        self.retrain_pending()
        return [self._tree_structure(t) for t in range(self._roots.size)]

    def _tree_structure(self, t: int) -> np.ndarray:
        S = self._S
        return K.active_structure(self._roots[t], S[0], S[6], S[2], S[3], S[5])

    def _tree_structure_order(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_tree_structure`, and the node behind each of its rows."""
        return self._structure_order(int(self._roots[t]))

    def _structure_order(self, v: int) -> tuple[np.ndarray, np.ndarray]:
        """The active structure under node ``v`` (as :meth:`_tree_structure` gives a tree's),
        and the node behind each of its rows."""
        S = self._S
        return K.active_structure_order(v, S[0], S[6], S[2], S[3], S[5])

    def _depth(self, v: int) -> int:
        return int(self._S[10][v])

    def _freed(self) -> np.ndarray:
        """The nodes on the free list (freed by ``forget``, not used again yet)."""
        return self._free[: int(self._meta[K.M_NFREE])]

    def _splice_points(self, log: np.ndarray) -> np.ndarray:
        """The indices of the (tree, node) entries of ``log`` whose node is on its tree's
        active structure with no other such entry above it, once each."""
        S = self._S
        return K.splice_points(log, S[8], S[6], S[5], self._roots)

    def _live_leaves(self, log: np.ndarray) -> np.ndarray:
        """Which (tree, node) entries of ``log`` name a leaf of its tree's active structure."""
        S = self._S
        return K.on_active(log, S[8], S[6], S[5], self._roots) & (S[6][log[:, 1]] < 0)

    @property
    def nbytes_(self) -> int:
        """Bytes held by the fitted forest (node records in use, row pool, training rows); the
        room after the records in use is memory no one touched (:func:`alloc_nodes`)."""
        self._require_fitted()
        tail = int(self._meta[K.M_TAIL])
        nodes = [a[:tail] for a in (*self._S, self._free)]
        pool = self._pool[: int(self._meta[K.M_POOL])]
        arrays = [*nodes, pool, self._X, self._y, self._rows.ids]
        return int(sum(a.nbytes for a in arrays))

    # ------------------------------------------------------------------ persistence

    def to_bytes(self) -> bytes:
        """Serialise to the documented npz artifact (see ``forget._persist``): no pickle.

        The artifact is the forest's canonical form (see ``_canon``): after ``forget(S)`` it is
        byte for byte what ``fit(D \\ S, feature_bounds=feature_bounds_)`` writes, holding only
        the remaining rows.
        """
        self._require_fitted()
        arrays, state = self._canonical()
        return _persist.dump(type(self).__name__, self._json_params(), state, arrays)

    def compact(self, swap: AbstractContextManager[Any] | None = None) -> HedgeCutClassifier:
        """Replace what the model keeps in memory by its canonical form (what ``to_bytes``
        writes and a refit on the remaining rows holds); returns the model.

        ``forget`` keeps the hot path short: until this is called, memory still holds layout
        that a refit would not (see the class docstring). The canonical form, and its compiled
        trees and row-id lookups when the model had them, are built beside the model, which
        only reads its own state meanwhile (so ``predict_proba`` may go on on other threads);
        the model then takes them in one step of attribute assignments, inside ``swap`` when
        given (a server closes the model's gate there: microseconds, not the build). Both
        forms are in memory until that step. Like ``forget``, not to be run beside another
        ``forget`` or ``compact``.
        """
        self._compact(swap)
        return self

    def compact_to_bytes(self, swap: AbstractContextManager[Any] | None = None) -> bytes:
        """:meth:`compact`, then :meth:`to_bytes`, from one canonical form: the compacted
        model's artifact byte for byte, at the cost of one (a store's checkpoint does both:
        on 300,000 rows the canonical form takes ~1-2.5 s)."""
        arrays, state = self._compact(swap)
        return _persist.dump(type(self).__name__, self._json_params(), state, arrays)

    def compaction(self) -> Compaction:
        """:meth:`compact_to_bytes` in two steps, for a caller that must not keep ``forget``
        waiting through the build (a server's purge). This call, like ``forget`` not beside
        it, copies what the canonical form is built from (the node slots and rows in use: on
        300,000 rows ~0.2-1 s against ~6 s for the whole); :meth:`Compaction.build` then
        builds the compacted twin and its artifact on any thread while this model serves and
        forgets on. The caller makes the twin forget what this model forgot since, and has
        this model take it (:meth:`adopt`); or drops it."""
        self._require_fitted()
        self.retrain_pending()
        tail, pool_tail = int(self._meta[K.M_TAIL]), int(self._meta[K.M_POOL])
        inputs = self._canon_inputs(
            tuple(a[:tail].copy() for a in self._S),
            self._roots.copy(),
            self._pool[:pool_tail].copy(),
            self._rows.alive.copy(),
        )
        return Compaction(copy.copy(self), inputs, self._derived())

    def adopt(self, twin: HedgeCutClassifier, swap: AbstractContextManager[Any] | None) -> None:
        """Take ``twin``'s state (a :class:`Compaction`'s, made to forget what this model
        forgot since) in one step of attribute assignments, inside ``swap`` when given."""
        with swap if swap is not None else nullcontext():
            self.__dict__.update(twin.__dict__)

    def _compact(
        self, swap: AbstractContextManager[Any] | None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """:meth:`compact`; the canonical arrays and state the model took (it may hold some
        of the very arrays, ``X`` among them: write them before it forgets again)."""
        self._require_fitted()
        fresh = copy.copy(self)  # the parameters shared; every fitted attribute set anew
        arrays, state = self._canonical()
        fresh._install(arrays, state)
        self._derive_for(fresh)  # superseded records of refreshed trees go too
        self.adopt(fresh, swap)
        return arrays, state

    def _canonical(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The artifact's arrays and state: only live rows, nodes in the canonical form
        (deferred rebuilds done first)."""
        self.retrain_pending()
        inputs = self._canon_inputs(self._S, self._roots, self._pool, self._rows.alive)
        return _canon_from(inputs)

    def _canon_inputs(
        self, S: tuple[np.ndarray, ...], roots: np.ndarray, pool: np.ndarray, alive: np.ndarray
    ) -> dict[str, Any]:
        """What :func:`_canon_from` builds the canonical form from: the node arrays, roots,
        pool and live-row marks given (the model's own, or copies), and copies of the rest."""
        live = np.flatnonzero(alive)
        n = live.size
        newpos = np.full(alive.size, -1, dtype=np.int64)
        newpos[live] = np.arange(n)
        budget = self._budget(n)
        prm = self._prm.copy()
        prm[K.P_N], prm[K.P_BUDGET] = n, budget  # what a fit on the remaining rows has
        return {
            "forest": (S, roots, pool, alive, newpos, prm, self.feature_bounds_),
            "X": self._X[live],
            "y": self._y[live],
            "row_ids": self._rows.ids[live],
            # object labels (strings from pandas) as numpy strings: npz holds no objects
            "classes": (
                self.classes_.astype(str) if self.classes_.dtype == object else self.classes_
            ),
            "state": {"seed": self.seed_, "budget": budget, "n_forgotten": 0},
        }

    def _json_params(self) -> dict[str, Any]:
        params = self.get_params()
        for key in ("feature_bounds", "classes"):
            if params[key] is not None:
                params[key] = np.asarray(params[key]).tolist()
        return params

    @classmethod
    def from_bytes(cls, data: bytes) -> HedgeCutClassifier:
        _, params, state, a = _persist.load(data, cls.__name__)
        model = cls(**params)
        model._install(a, state)
        return model

    def _install(self, a: dict[str, np.ndarray], state: dict[str, Any]) -> None:
        """Take the arrays and state of an artifact as the model's own (copies)."""
        self.classes_ = a["classes"]
        self.feature_bounds_ = a["bounds"]
        self.n_features_in_ = int(a["X"].shape[1])
        self.seed_ = int(state["seed"])
        self.budget_ = int(state["budget"])
        self.n_forgotten_ = int(state["n_forgotten"])
        self._prm = a["prm"].astype(np.int64)
        self.n_candidates_ = int(self._prm[K.P_K])
        self._X = np.ascontiguousarray(a["X"], dtype=np.float32)
        self._y = a["y"].astype(np.int32)
        self._rows = RowIndex(a["row_ids"].astype(np.int64))
        self._ccount = np.bincount(self._y, minlength=self.classes_.size).astype(np.int64)
        used = int(a["meta"][K.M_TAIL])
        n = self._X.shape[0]
        S = alloc_nodes(_room(used, n), self.n_candidates_, self.classes_.size)
        for name, dst in zip(NODE_FIELDS, S, strict=True):
            dst[:used] = a[f"node_{name}"]
        self._S = S
        self._roots = a["roots"].astype(np.int64)
        self._pool = _with_room(a["pool"].astype(np.int32))
        self._meta = a["meta"].astype(np.int64).copy()
        self._working_state()

    def _working_state(self) -> None:
        """What the kernels work in beside the node arrays (``_S`` and ``_roots`` set): the
        free list and pending-rebuild stack, the compiled form (built on first use), no
        deferred rebuild."""
        m = self._S[0].shape[0]
        self._free = np.empty(m, np.int32)
        self._pending = np.empty(m, np.int64)
        self._compiled = CompiledTrees(self._roots.size)
        self._settling = _Lock()
        self._no_deferred()


class Compaction:
    """A forest's :meth:`~HedgeCutClassifier.compaction`: copies of its state at one moment.
    :meth:`build` (any thread, once) makes :attr:`model`, the compacted twin, and returns its
    artifact: byte for byte what ``compact_to_bytes`` gives at that moment."""

    def __init__(
        self, twin: HedgeCutClassifier, inputs: dict[str, Any], derived: tuple[bool, bool]
    ) -> None:
        self._twin, self._inputs, self._derived = twin, inputs, derived
        self.model: HedgeCutClassifier | None = None

    def build(self) -> bytes:
        arrays, state = _canon_from(self._inputs)
        twin = self._twin
        twin._install(arrays, state)
        _derive(twin, *self._derived)  # the built forms the model had, built here
        self.model = twin
        return _persist.dump(type(twin).__name__, twin._json_params(), state, arrays)


def _canon_from(inputs: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The canonical form (artifact arrays and state) from
    :meth:`HedgeCutClassifier._canon_inputs`."""
    S, roots, pool, alive, newpos, prm, bounds = inputs["forest"]
    S, roots, pool = canonical_forest(
        S, roots, pool, alive, newpos, prm, bounds, inputs["X"], inputs["y"]
    )
    arrays: dict[str, np.ndarray] = {
        f"node_{name}": a for name, a in zip(NODE_FIELDS, S, strict=True)
    }
    meta = np.zeros(K.N_META, dtype=np.int64)
    meta[K.M_TAIL], meta[K.M_POOL] = S[0].shape[0], pool.size
    arrays.update(
        roots=roots, pool=pool, meta=meta, X=inputs["X"], y=inputs["y"],
        row_ids=inputs["row_ids"], classes=inputs["classes"], bounds=bounds, prm=prm,
    )  # fmt: skip
    return arrays, dict(inputs["state"])


def _derive(fresh: HedgeCutClassifier, compiled: bool, prepared: bool) -> None:
    """Build on ``fresh`` the derived state asked for: compiled trees, row-id lookups."""
    if compiled:
        fresh._compiled.compile(fresh)
    if prepared:
        fresh._rows.prepare()
