"""k-nearest neighbours that forget exactly: the model *is* its training rows.

The features are held once, in search order (leaf by leaf for the KD-tree). ``forget`` marks a
row dead (a tombstone), overwrites its features and label with zeros, scrubs its id and updates a
few counters; the KD-tree also refits the bounding boxes from the row's leaf up to the root, as
they are the min / max of their rows' values (O(leaf_size * d + depth * d)), so no box keeps a
coordinate of a forgotten row. Searches skip tombstones; when they exceed a quarter of the rows
the search structure was built over, it is rebuilt from the live rows alone, which drops the
zeroed rows (that deletion is ``Path.SLOW``; the time is reported, with its running average per
deletion, in ``ForgetResult.details``).

What is kept after ``forget(S)``. The artifact is byte for byte the one ``fit(D \\ S)`` writes
(same parameters, the remaining rows in the same order): their ids, features and targets, the
labels they hold, the parameters. It holds no search structure and no forget history: the
KD-tree is rebuilt on load (loading 30,000 rows of 14 features takes about 25 ms, the build
included) and ``algorithm="auto"`` is resolved again from the rows held. In memory the
forgotten row's id, features and target are overwritten; what a refit would not have is the
tree's shape until the next rebuild: the leaf that lost a row still says in which cell of about
``leaf_size`` rows the forgotten point lay (its boxes do not hold its coordinates), and the
counters of forgets and rebuild time.

Ties in distance go to the smaller row id, so the neighbours, labels and probabilities after
``forget(S)`` equal those of a model fitted on the remaining rows, in any order.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from forget import _knn_kernels as kern
from forget import _persist
from forget._rows import RowIndex, as_new_row_ids, as_row_ids
from forget.base import ForgetResult, Guarantee, Path
from forget.errors import ArtifactError, TooFewRowsError

__all__ = ["KNNClassifier", "KNNRegressor"]

_ALGORITHMS = ("brute", "index")
_REBUILD_FRACTION = 0.25  # rebuild once tombstones exceed this share of the indexed rows
_SERIAL_MAX_ROWS = 16  # up to this many queries, skip the thread pool's start-up
_AUTO_INDEX_MIN_ROWS = 2_000  # 'auto' uses the KD-tree from this many rows ...
_AUTO_INDEX_MAX_FEATURES = 16  # ... and up to this many features (beyond, it prunes little)
MAX_ABS = 1e150
"""Largest feature magnitude taken: squared distances of such rows stay finite (4 * d * 1e300
for d features); beyond, every distance may be infinite, and the neighbours' vote empty."""


def _as_matrix(X: ArrayLike, model: Any = None, *, bounded: bool = True) -> np.ndarray:
    """Finite float64 rows x features, C-ordered; scikit-learn's checks and messages.

    ``bounded``: refuse values beyond ``MAX_ABS`` too, naming their column.
    """
    if (  # the serving path skips check_array's fixed cost (~50 us); anything else goes there
        type(X) is np.ndarray
        and X.dtype == np.float64
        and X.ndim == 2
        and X.size
        and X.flags.c_contiguous
        and (np.abs(X) <= MAX_ABS).all()  # False for NaN too: one pass for both
    ):
        return X
    arr = check_array(X, dtype=np.float64, order="C", estimator=model, input_name="X")
    return _check_bounded(arr) if bounded else arr


def _check_bounded(X: np.ndarray) -> np.ndarray:
    """``X`` if every value is within ``MAX_ABS``; else a ``ValueError`` naming the column."""
    big = ~(np.abs(X) <= MAX_ABS)
    if big.any():
        col = int(np.flatnonzero(big.any(axis=0))[0])
        row = int(np.flatnonzero(big[:, col])[0])
        raise ValueError(
            f"Input X column {col} holds values beyond ±{MAX_ABS:g}, where squared distances "
            f"overflow: {float(X[row, col])!r} at row {row}; rescale the column"
        )
    return X


class _KNNBase(BaseEstimator):
    guarantee = Guarantee.EXACT
    _by_class = False

    def __init__(
        self,
        n_neighbors: int = 5,
        *,
        weights: str = "uniform",
        algorithm: str = "auto",
        leaf_size: int = 30,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size

    # -- fitting -------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("n_neighbors", "leaf_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.weights not in ("uniform", "distance"):
            raise ValueError(f"weights must be 'uniform' or 'distance', got {self.weights!r}")
        if self.algorithm not in ("auto", *_ALGORITHMS):
            raise ValueError(f"algorithm must be auto, brute or index, not {self.algorithm!r}")

    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> Any:
        """Store the rows ``X`` with targets ``y``, named by ``row_ids`` (default ``0..n-1``)."""
        self._check_params()
        features, target = check_X_y(X, y, dtype=np.float64, order="C", estimator=self)
        _check_bounded(features)
        codes = self._set_target(target)
        n, k = features.shape[0], int(self.n_neighbors)
        if n < k:  # such a model could answer no query; "1 sample" is what sklearn's checks read
            raise ValueError(
                f"n_neighbors={k} needs at least {k} rows; fit got {n} sample"
                f"{'s' if n != 1 else ''}: lower n_neighbors or fit on more rows"
            )
        ids = as_row_ids(row_ids, n)
        self._install(features, codes, RowIndex(ids))
        return self

    def _choose_algorithm(self, n: int) -> str:
        """The search a fit on ``n`` rows uses: ``algorithm``, or what ``"auto"`` picks."""
        if self.algorithm != "auto":
            return str(self.algorithm)
        small = n < _AUTO_INDEX_MIN_ROWS or self.n_features_in_ > _AUTO_INDEX_MAX_FEATURES
        return "brute" if small else "index"

    def _install(self, X: np.ndarray, y: np.ndarray, rows: RowIndex) -> None:
        """Take the rows' features (in fit order, all alive), then build the search structure."""
        self.y_, self._rows = y, rows
        self.n_features_in_ = X.shape[1]
        self.algorithm_ = self._choose_algorithm(X.shape[0])
        self._n_forgotten = 0  # forget history: in memory for the details, never saved
        self._rebuild_seconds = 0.0
        self._slot = np.full(rows.ids.size, -1, dtype=np.int64)  # fit position -> slot
        self._rebuild(np.ascontiguousarray(X.T), np.flatnonzero(rows.alive))

    def _rebuild(self, X: np.ndarray, perm: np.ndarray) -> None:
        """Search structure over the live columns of ``X`` (``d x m``; slot ``t`` is fit position
        ``perm[t]``): ``_index = (X, perm, tree, lo, hi)`` in search order, as kernels take it.
        """
        live = np.flatnonzero(self._rows.alive[perm])
        if self.algorithm_ == "index":
            order, tree, lo, hi, self._leaf_of = kern.build_kdtree(X, live, int(self.leaf_size))
        else:
            no_box = np.empty((0, X.shape[0]))
            order, tree, lo, hi = live, np.empty((0, 5), np.int64), no_box, no_box
        # a fresh array: the rows forgotten so far (already zeros) are left behind, not copied
        self._index = (np.ascontiguousarray(X[:, order]), perm[order], tree, lo, hi)
        self._slot.fill(-1)
        self._slot[perm[order]] = np.arange(order.size)
        self._tombstones = 0

    @property
    def row_ids_(self) -> np.ndarray:
        """Ids of the rows the model holds now (forgotten rows excluded), in fit order."""
        return self._rows.ids[self._rows.alive]

    @property
    def X_(self) -> np.ndarray:
        """Features of the rows the model holds now, in the order of ``row_ids_`` (a copy)."""
        return np.ascontiguousarray(self._index[0][:, self._slot[self._rows.alive]].T)

    # -- searching -----------------------------------------------------------------------
    def _search(self, X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "n_features_in_")
        self._check_params()  # set_params may have changed n_neighbors or weights since fit
        Q = _as_matrix(X, self)
        if Q.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Q.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        k = int(self.n_neighbors)
        if k > self._rows.n_alive:
            raise ValueError(
                f"n_neighbors={k} is larger than the {self._rows.n_alive} training rows the model "
                "holds (as scikit-learn refuses n_neighbors > n_samples_fit); lower n_neighbors"
            )
        small = Q.shape[0] <= _SERIAL_MAX_ROWS
        search = kern.kneighbors_serial if small else kern.kneighbors_parallel
        return search(*self._index, self._rows.ids, self._rows.alive, Q, k)

    def kneighbors(
        self, X: ArrayLike, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Distances to and *row ids* (not positions) of the ``n_neighbors`` nearest rows.

        Neighbours come in ascending distance, equal distances by ascending row id.
        """
        d2, pos = self._search(X)
        return (np.sqrt(d2), self._rows.ids[pos]) if return_distance else self._rows.ids[pos]

    def _aggregate(self, X: ArrayLike, n_out: int) -> np.ndarray:
        d2, pos = self._search(X)
        return kern.aggregate(d2, pos, self.y_, n_out, self._by_class, self.weights == "distance")

    # -- forgetting ----------------------------------------------------------------------
    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove rows exactly; a refused request (see ``forget.errors``) changes nothing.

        Refused with ``TooFewRowsError`` (an ``EmptyModelError``) when fewer than
        ``n_neighbors`` rows would remain: such a model could answer no query.
        """
        check_is_fitted(self, "n_features_in_")
        start = time.perf_counter()
        pos = self._rows.resolve(row_ids, model=type(self).__name__)
        left, k = self._rows.n_alive - pos.size, int(self.n_neighbors)
        if pos.size and left < k:
            raise TooFewRowsError(
                f"forgetting {pos.size} rows would leave {type(self).__name__} with {left} rows; "
                f"n_neighbors={k} needs at least {k}: retrain on more rows or delete the model"
            )
        ids = tuple(self._rows.ids[pos].tolist())  # before drop() scrubs them
        paths, rebuild_s = [], 0.0
        for i, p in enumerate(pos.tolist()):
            self._forget_target(p)
            slot = self._slot[p]
            self._rows.drop(pos[i : i + 1])  # one by one: a rebuild below sees the rows so far
            X = self._index[0]
            X[:, slot] = 0.0
            self.y_[p] = 0
            self._tombstones += 1
            if self._tombstones > _REBUILD_FRACTION * X.shape[1]:
                t0 = time.perf_counter()
                self._rebuild(X, self._index[1])
                rebuild_s += time.perf_counter() - t0
                paths.append(Path.SLOW)
                continue
            if self.algorithm_ == "index":  # boxes are min/max of rows: drop this row's values
                kern.shrink_boxes(*self._index, self._rows.alive, self._leaf_of, slot)
            paths.append(Path.FAST)
        if self._choose_algorithm(self._rows.n_alive) != self.algorithm_ and paths:
            # "auto" on fewer rows picks brute force, as a refit would
            t0 = time.perf_counter()
            self.algorithm_ = self._choose_algorithm(self._rows.n_alive)
            self._rebuild(self._index[0], self._index[1])
            rebuild_s += time.perf_counter() - t0
            paths[-1] = Path.SLOW
        dropped = self._drop_empty_classes()
        self._n_forgotten += len(paths)
        self._rebuild_seconds += rebuild_s
        details = {
            "rebuilds": float(sum(p is Path.SLOW for p in paths)),
            "rebuild_seconds": rebuild_s,
            "amortised_rebuild_seconds": self._rebuild_seconds / max(self._n_forgotten, 1),
            "tombstones": float(self._tombstones),
            "live_rows": float(self._rows.n_alive),
            "classes_dropped": float(dropped),
        }
        seconds = time.perf_counter() - start
        return ForgetResult(ids, self.guarantee, tuple(paths), seconds, details=details)

    # -- learning -----------------------------------------------------------------------
    def learn(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike) -> Any:
        """Add rows exactly: the model then equals ``fit`` on the rows it held followed by
        these (same parameters), bit for bit.

        A kNN model *is* its rows and a search structure over them, so learning appends the
        rows and rebuilds the structure (``O(n log n)``, what a fit costs). Raises (changing
        nothing) ``HeldRowIdsError`` for ids the model holds, ``DuplicateRowIdsError``, or
        ``ValueError`` for rows of the wrong width or range.
        """
        check_is_fitted(self, "n_features_in_")
        Q = _as_matrix(X, self)
        if Q.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Q.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        target = np.asarray(y).reshape(-1)
        if target.shape[0] != Q.shape[0]:
            raise ValueError(f"y must hold {Q.shape[0]} targets, got shape {target.shape}")
        ids = as_new_row_ids(row_ids, Q.shape[0], self.row_ids_, type(self).__name__)
        union = type(self)(**self.get_params()).fit(
            np.concatenate([self.X_, Q]),
            np.concatenate([self._held_targets(), target]),
            row_ids=np.concatenate([self.row_ids_, ids]),
        )
        self.__dict__.update(union.__dict__)
        return self

    def _held_targets(self) -> np.ndarray:
        """The targets of the rows held, in fit order, as ``fit`` takes them."""
        return self.y_[self._rows.alive]

    def _set_target(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _load_target(self, y: np.ndarray, arrays: dict) -> np.ndarray:
        raise NotImplementedError

    def _forget_target(self, pos: int) -> None:
        """Update the per-target counters before row ``pos`` goes (classifier: class counts)."""

    def _drop_empty_classes(self) -> int:
        return 0

    # -- persistence ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model as a ``forget`` artifact (``.npz``, no pickle): what a refit on the rows held
        would write, byte for byte.

        ``X``, ``y`` and ``row_ids`` hold the remaining rows in fit order; no search structure.
        """
        check_is_fitted(self, "n_features_in_")
        live = self._rows.live()
        arrays = {"X": self.X_, "y": self.y_[live], "row_ids": self._rows.ids[live]}
        arrays |= self._target_arrays()
        return _persist.dump(type(self).__name__, self.get_params(), {}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        """Load a model written by :meth:`to_bytes`; raise ``ArtifactError`` on bad bytes."""
        _, params, _, arrays = _persist.load(data, kind=cls.__name__)
        try:
            model = cls(**params)
            model._check_params()
            ids, y, X = arrays["row_ids"], arrays["y"], _as_matrix(arrays["X"], bounded=False)
            ids = as_row_ids(ids, ids.size)
            if X.shape[0] != ids.size or y.shape != ids.shape:
                raise ValueError("row_ids, X and y disagree")
            y = model._load_target(y, arrays)
            model._install(X, y, RowIndex(ids))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ArtifactError(f"corrupt {cls.__name__} artifact: {exc}") from None
        return model

    def _target_arrays(self) -> dict[str, np.ndarray]:
        return {}


class KNNClassifier(ClassifierMixin, _KNNBase):
    """k-nearest-neighbour classifier (euclidean) that forgets training rows exactly.

    Parameters
    ----------
    n_neighbors : int, default 5
        Neighbours that vote. ``fit`` refuses fewer rows (``ValueError``) and ``forget`` a
        request that would leave fewer (``TooFewRowsError``); predicting after ``set_params``
        raised it beyond the rows held raises ``ValueError``, as scikit-learn does.
    weights : {"uniform", "distance"}, default "uniform"
        ``"distance"`` weighs a neighbour by ``1 / distance``; a query equal to training points
        takes its vote from those points only.
    algorithm : {"auto", "brute", "index"}, default "auto"
        ``"brute"`` scans all rows; ``"index"`` searches a KD-tree; ``"auto"`` takes the
        tree from 2,000 rows and up to 16 features. Both give identical results.
    leaf_size : int, default 30
        Most rows in a KD-tree leaf.

    Attributes
    ----------
    classes_ : ndarray
        Labels of the rows the model holds (a label whose last row is forgotten is dropped).
    row_ids_, X_ : ndarray
        Ids and features of the rows held now (``X_`` is a copy).
    y_ : ndarray
        Label code per fitted row (zero at forgotten rows).

    Notes
    -----
    Equal distances are broken by the smaller row id, so ``forget(S)`` after ``fit(D)`` gives
    the same neighbours, labels and probabilities as ``fit(D \\ S)``. Feature values beyond
    ±1e150 (``MAX_ABS``) are refused at fit and predict, naming their column: their squared
    distances could overflow.

    Examples
    --------
    >>> import numpy as np
    >>> from forget.knn import KNNClassifier
    >>> X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]]); y = np.array([0, 0, 0, 1, 1])
    >>> m = KNNClassifier(n_neighbors=3).fit(X, y, row_ids=[10, 11, 12, 13, 14])
    >>> m.predict([[9.0]]).tolist()
    [1]
    >>> m.forget([12]).n_forgotten
    1
    >>> m.kneighbors([[9.0]], return_distance=False).tolist()
    [[13, 14, 11]]
    """

    _by_class = True

    def _set_target(self, y: np.ndarray) -> np.ndarray:
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.class_counts_ = np.bincount(codes, minlength=self.classes_.size).astype(np.int64)
        return codes.astype(np.int64)

    def _forget_target(self, pos: int) -> None:
        self.class_counts_[self.y_[pos]] -= 1

    def _held_targets(self) -> np.ndarray:
        return self.classes_[self.y_[self._rows.alive]]

    def _drop_empty_classes(self) -> int:
        keep = self.class_counts_ > 0
        if keep.all():
            return 0
        new_code = np.cumsum(keep) - 1
        alive = self._rows.alive
        self.y_[alive] = new_code[self.y_[alive]]
        self.classes_ = self.classes_[keep]
        self.class_counts_ = self.class_counts_[keep]
        return int((~keep).sum())

    def _target_arrays(self) -> dict[str, np.ndarray]:
        if self.classes_.dtype.kind == "O":
            raise ValueError("labels of dtype object cannot be saved; use numbers or strings")
        return {"classes": self.classes_}

    def _load_target(self, y: np.ndarray, arrays: dict) -> np.ndarray:
        self.classes_ = arrays["classes"]
        if y.dtype != np.int64 or y.min() < 0 or y.max() >= self.classes_.size:
            raise ValueError("label codes out of range")
        self.class_counts_ = np.bincount(y, minlength=self.classes_.size)
        if not self.class_counts_.all():
            raise ValueError("a class has no rows")
        return y.copy()

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self, "n_features_in_")
        return self._aggregate(X, self.classes_.size)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable class per row (the first in ``classes_`` on a tie)."""
        proba = self.predict_proba(X)  # first: it raises if the model is not fitted
        return self.classes_[np.argmax(proba, axis=1)]


class KNNRegressor(RegressorMixin, _KNNBase):
    """k-nearest-neighbour regressor (euclidean) that forgets training rows exactly.

    The parameters, tie-break and guarantees are those of :class:`KNNClassifier`; the
    prediction is the (``1 / distance``-weighted, with ``weights="distance"``) mean target of
    the neighbours.

    Examples
    --------
    >>> import numpy as np
    >>> from forget.knn import KNNRegressor
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0.0, 1.0, 2.0, 30.0])
    >>> m = KNNRegressor(n_neighbors=2).fit(X, y)
    >>> m.predict([[2.6]]).tolist()
    [16.0]
    >>> m.forget([3]).paths[0].value
    'fast'
    >>> m.predict([[2.6]]).tolist()
    [1.5]
    """

    def _set_target(self, y: np.ndarray) -> np.ndarray:
        try:
            out = np.array(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must be numeric: {exc}") from None
        if not np.isfinite(out).all():  # e.g. "inf" given as text
            raise ValueError("y contains NaN or infinity")
        return out

    def _load_target(self, y: np.ndarray, arrays: dict) -> np.ndarray:
        if y.dtype != np.float64 or not np.isfinite(y).all():
            raise ValueError("targets must be finite float64")
        return y.copy()

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Mean target of the nearest rows."""
        return self._aggregate(X, 1)[:, 0]
