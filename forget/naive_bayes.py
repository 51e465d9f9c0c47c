"""Naive Bayes classifiers that forget exactly: their statistics are exact sums (Amnesia).

``GaussianNB`` keeps, per class and over all rows, the sums of ``x`` and ``x²`` of every
feature; ``MultinomialNB`` keeps the per-class sums of ``x`` (feature counts). Both keep the
class counts. The sums are exact (the fixed-point sums of :mod:`forget.linear`), so removing a
row subtracts its terms exactly: after ``forget(S)`` the sums are bit for bit those of
``fit(D \\ S)``, with no fit-time centre or reference that would still hold the removed row, and
so is everything derived from them (means, variances, ``epsilon_``, log-probabilities). A class
that no remaining row holds leaves ``classes_`` and every array, as in a refit, unless the user
declared ``classes``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from forget import _persist
from forget._exact import (
    LIMBS,
    check_range,
    dd_add,
    dd_div,
    dd_mul,
    leading,
    normalise,
    place_terms,
    read_sums,
    split,
    two_prod,
)
from forget._rows import HoldsRows, RowIndex, as_new_row_ids, as_row_ids
from forget.base import ForgetResult, Guarantee, Path
from forget.errors import ArtifactError

_NEGATIVE = "Negative values in data passed to MultinomialNB (it needs counts or frequencies)"


class _NaiveBayes(HoldsRows, ClassifierMixin, BaseEstimator):
    """Shared plumbing: classes, row ids, prediction from ``_jll``, forget, persistence.

    A subclass keeps its sums in ``_sums`` (first axis: the classes, then any sums over all
    rows), adds or subtracts rows with ``_add_rows`` and derives its fitted attributes with
    ``_refresh``.
    """

    guarantee = Guarantee.EXACT
    _fitted_attr = "classes_"
    classes: ArrayLike | None
    _sums: np.ndarray
    _cnt: np.ndarray

    def _prepare(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None) -> None:
        Xv, yv = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(yv)
        check_range("X", Xv, type(self).__name__)
        if self.classes is None:
            classes = np.unique(yv)
        else:
            classes = np.unique(np.asarray(self.classes))
            unseen = ~np.isin(yv, classes)
            if unseen.any():
                raise ValueError(f"y holds labels not in classes: {np.unique(yv[unseen])[:10]}")
        ids = as_row_ids(row_ids, Xv.shape[0])
        self.classes_ = classes
        self._index = RowIndex(ids)
        self._X = np.array(Xv, dtype=np.float64, order="C")
        self._yk = np.searchsorted(classes, yv).astype(np.int64)
        self._n = Xv.shape[0]

    def _fit_sums(self, shape: tuple[int, ...]) -> None:
        """Sum every row into fresh sums of ``shape`` and derive the fitted attributes."""
        self._sums = np.zeros((*shape, LIMBS), dtype=np.int64)
        self._lead = np.full(shape, -1, dtype=np.int64)
        self._cnt = np.zeros(self.classes_.size, dtype=np.int64)
        self._allocate()
        dirty = np.ones(self._sums.shape[0], dtype=np.bool_)
        self._add_rows(np.arange(self._n), 1)
        self._refresh(dirty)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        jll = self._jll(self._check_X(X))
        top = jll.max(axis=1, keepdims=True)
        return jll - (top + np.log(np.exp(jll - top).sum(axis=1, keepdims=True)))

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable class of each row of ``X``."""
        jll = self._jll(self._check_X(X))
        return self.classes_[np.argmax(jll, axis=1)]

    def _check_X(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False)

    def _log_prior(self, prior: np.ndarray) -> np.ndarray:
        # A declared class whose rows were all forgotten has prior 0: log -inf, no warning.
        return np.log(prior, out=np.full(prior.shape, -np.inf), where=prior > 0)

    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove training rows exactly; the model then equals a refit without them.

        Raises (changing nothing) ``UnknownRowIdsError`` (for ids never trained on or already
        forgotten), ``DuplicateRowIdsError`` or ``EmptyModelError``.
        """
        start = time.perf_counter()
        pos = self._resolve_forget(row_ids)
        ids = tuple(self._index.ids[pos].tolist())  # before drop() scrubs them
        if pos.size:
            dirty = self._add_rows(pos, -1)  # and zeroes the rows
            self._n -= pos.size
            self._index.drop(pos)
            if self.classes is None and not self._cnt.all():
                dirty = self._drop_classes(self._cnt > 0, dirty)
            self._refresh(dirty)
        return ForgetResult(
            row_ids=ids,
            guarantee=self.guarantee,
            paths=(Path.FAST,) * len(ids),
            seconds=time.perf_counter() - start,
        )

    def learn(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike) -> Any:
        """Add training rows exactly: the model then equals ``fit`` on the rows it held
        followed by these (same parameters), bit for bit.

        The rows' terms are added to the exact sums, as a fit adds them. A label the model
        holds no row of (with ``classes`` None) changes ``classes_`` as a fit would: then the
        model is refitted on the union (the same result, at the cost of a fit). Raises
        (changing nothing) ``HeldRowIdsError`` for ids the model holds,
        ``DuplicateRowIdsError``, or ``ValueError`` for bad rows or undeclared labels.
        """
        Xv = self._check_X(X)
        yv = np.asarray(y).reshape(-1)
        if yv.shape[0] != Xv.shape[0]:
            raise ValueError(f"y must hold {Xv.shape[0]} labels, got shape {yv.shape}")
        check_range("X", Xv, type(self).__name__)
        ids = as_new_row_ids(row_ids, Xv.shape[0], self.row_ids_, type(self).__name__)
        if self.classes is not None:
            unseen = ~np.isin(yv, self.classes_)
            if unseen.any():
                raise ValueError(f"y holds labels not in classes: {np.unique(yv[unseen])[:10]}")
        live = self._index.live()
        if not np.isin(yv, self.classes_).all():
            held = self.classes_[self._yk[live]]
            union = type(self)(**self.get_params()).fit(
                np.concatenate([self._X[live], Xv]),
                np.concatenate([held, yv.astype(held.dtype, copy=False)]),
                row_ids=np.concatenate([self._index.ids[live], ids]),
            )
            self.__dict__.update(union.__dict__)
            return self
        self._X = np.ascontiguousarray(np.concatenate([self._X[live], Xv]), dtype=np.float64)
        codes = np.searchsorted(self.classes_, yv).astype(np.int64)
        self._yk = np.concatenate([self._yk[live], codes])
        self._index = RowIndex(np.concatenate([self._index.ids[live], ids]))
        dirty = self._add_rows(np.arange(live.size, live.size + ids.size), 1)
        self._n += ids.size
        self._refresh(dirty)
        return self

    def _drop_classes(self, keep: np.ndarray, dirty: np.ndarray) -> np.ndarray:
        """Leave out the classes no remaining row holds, as a refit would never have had them.

        Returns ``dirty`` for the sums that are left.
        """
        rows = np.ones(self._sums.shape[0], dtype=np.bool_)
        rows[: keep.size] = keep
        self._yk = np.where(self._index.alive, np.cumsum(keep)[self._yk] - 1, 0)
        self.classes_ = self.classes_[keep]
        self._cnt = self._cnt[keep]
        self._sums, self._lead = self._sums[rows], self._lead[rows]
        self._keep_classes(keep)
        return dirty[rows]

    def _allocate(self) -> None:
        """Per-class fitted arrays for ``classes_`` and ``n_features_in_``, to be filled."""
        raise NotImplementedError

    def _add_rows(self, pos: np.ndarray, sign: int) -> np.ndarray:
        """Add (``sign`` 1) or subtract (-1) rows ``pos`` to the sums and class counts
        (zeroing subtracted rows); return which sums changed."""
        raise NotImplementedError

    def _refresh(self, dirty: np.ndarray) -> None:
        """Derive the fitted attributes, reading the sums flagged in ``dirty``."""
        raise NotImplementedError

    def _keep_classes(self, keep: np.ndarray) -> None:
        """Drop the per-class attributes of the classes not in ``keep``."""
        raise NotImplementedError

    def _jll(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise the fitted model (no pickle; see :mod:`forget._persist`).

        Only the rows still held are written (with their ids), and the exact sums: the same
        bytes as a model fitted on those rows.
        """
        check_is_fitted(self)
        live = self._index.live()
        classes = self.classes_.astype(str) if self.classes_.dtype == object else self.classes_
        params = self.get_params()
        if params.get("classes") is not None:
            params["classes"] = np.asarray(params["classes"]).tolist()
        arrays = {
            "X": self._X[live],
            "yk": self._yk[live],
            "ids": self._index.ids[live],
            "classes": classes,
            "counts": self._cnt,
            "sums": self._sums,
        }
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names"] = np.asarray(self.feature_names_in_, dtype=str)
        state = {"n": int(self._n), "n_features_in": int(self.n_features_in_)}
        return _persist.dump(type(self).__name__, params, state, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        """Load a model written by :meth:`to_bytes`."""
        _, params, state, a = _persist.load(data, kind=cls.__name__)
        m = cls(**params)
        try:
            m._index = RowIndex(a["ids"].astype(np.int64))
            m._X, m._yk, m.classes_ = a["X"], a["yk"].astype(np.int64), a["classes"]
            m._cnt, m._sums = a["counts"].astype(np.int64), a["sums"].astype(np.int64)
            m._lead = np.empty(m._sums.shape[:-1], dtype=np.int64)
            leading(m._sums.reshape(-1, LIMBS), m._lead.reshape(-1))
            m._n, m.n_features_in_ = state["n"], state["n_features_in"]
        except KeyError as exc:
            raise ArtifactError(f"{cls.__name__} artifact lacks {exc}") from exc
        if "feature_names" in a:
            m.feature_names_in_ = a["feature_names"].astype(object)
        m._allocate()
        m._refresh(np.ones(m._sums.shape[0], dtype=np.bool_))
        return m


class GaussianNB(_NaiveBayes):
    """Gaussian naive Bayes whose ``forget`` equals a refit on the remaining rows.

    Same model as :class:`sklearn.naive_bayes.GaussianNB` (priors from class frequencies).

    Parameters
    ----------
    var_smoothing : float, default=1e-9
        Share of the largest feature variance (over all rows) added to every variance. The
        result, ``epsilon_``, is floored at machine epsilon so constant data cannot divide by 0.
    classes : array-like or None, default=None
        The classes; taken from ``y`` when None, and then a class whose rows are all forgotten
        leaves ``classes_``. Declared, they all stay (a forgotten class with prior 0).

    Attributes
    ----------
    classes_, class_count_, class_prior_, theta_, var_, epsilon_, n_features_in_

    Notes
    -----
    Means and variances are computed from the exact sums in double-double
    (``(Σx² - (Σx)²/n) / n``, ~1e-30 relative to ``Σx²``) and rounded once, so they are as
    accurate as a two-pass computation unless a feature's spread is below ~1e-14 of its mean,
    and after ``forget`` bit for bit those of a refit. Inputs must be below 2**480 (~3e144).

    Examples
    --------
    >>> import numpy as np
    >>> from forget.naive_bayes import GaussianNB
    >>> X = np.array([[0.0], [0.2], [1.0], [1.2], [5.0]]); y = np.array([0, 0, 1, 1, 2])
    >>> m = GaussianNB().fit(X, y)
    >>> m.forget([4]).n_forgotten
    1
    >>> m.classes_.tolist(), m.theta_.ravel().round(6).tolist(), m.predict([[0.1], [1.1]]).tolist()
    ([0, 1], [0.1, 1.1], [0, 1])
    >>> m.to_bytes() == GaussianNB().fit(X[:4], y[:4]).to_bytes()
    True
    """

    def __init__(self, var_smoothing: float = 1e-9, classes: ArrayLike | None = None) -> None:
        self.var_smoothing = var_smoothing
        self.classes = classes

    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> GaussianNB:
        """Fit on ``X, y``; ``row_ids`` names the rows (``0..n-1`` when omitted)."""
        vs = float(self.var_smoothing)
        if not np.isfinite(vs) or vs < 0:
            raise ValueError(f"var_smoothing must be a finite number >= 0, got {vs!r}")
        self._prepare(X, y, row_ids)
        # per class, then over all rows (for epsilon_): Σx and Σx² of each feature
        self._fit_sums((self.classes_.size + 1, 2, self._X.shape[1]))
        return self

    def _allocate(self) -> None:
        shape = (self.classes_.size, int(self.n_features_in_))
        self.theta_, self._var = np.zeros(shape), np.zeros(shape)

    def _add_rows(self, pos: np.ndarray, sign: int) -> np.ndarray:
        return _gauss_add(self._X, self._yk, pos, self._sums, self._lead, self._cnt, sign)

    def _refresh(self, dirty: np.ndarray) -> None:
        """Means and variances of the classes flagged in ``dirty`` (the last flag: all rows)."""
        sums, lead, n = self._sums, self._lead, float(self._n)
        gmax = _gauss_moments(sums, lead, self._cnt, n, dirty, self.theta_, self._var)
        self.epsilon_ = max(float(self.var_smoothing) * gmax, float(np.finfo(np.float64).eps))
        self.var_ = self._var + self.epsilon_
        self.class_count_ = self._cnt.astype(np.float64)
        self.class_prior_ = self.class_count_ / self._n

    def _keep_classes(self, keep: np.ndarray) -> None:
        self.theta_, self._var = self.theta_[keep], self._var[keep]

    def _jll(self, X: np.ndarray) -> np.ndarray:
        log_prior = self._log_prior(self.class_prior_)
        norm = -0.5 * np.log(2.0 * np.pi * self.var_).sum(axis=1)
        jll = np.empty((X.shape[0], self.classes_.size))
        for k in range(self.classes_.size):
            jll[:, k] = norm[k] - 0.5 * (((X - self.theta_[k]) ** 2) / self.var_[k]).sum(axis=1)
        return jll + log_prior


class MultinomialNB(_NaiveBayes):
    """Multinomial naive Bayes (counts) whose ``forget`` equals a refit on the remaining rows.

    Same model as :class:`sklearn.naive_bayes.MultinomialNB`.

    Parameters
    ----------
    alpha : float, default=1.0
        Additive (Laplace/Lidstone) smoothing, ``> 0``.
    fit_prior : bool, default=True
        Learn class priors from frequencies; uniform priors otherwise.
    classes : array-like or None, default=None
        The classes; taken from ``y`` when None (see :class:`GaussianNB`).

    Attributes
    ----------
    classes_, class_count_, feature_count_, feature_log_prob_, class_log_prior_, n_features_in_

    Notes
    -----
    ``feature_count_`` is each exact sum rounded once: exact for counts, and for frequencies
    the nearest double to the true sum, after ``forget`` bit for bit a refit's. Inputs must be
    below 2**480 (~3e144).

    Examples
    --------
    >>> import numpy as np
    >>> from forget.naive_bayes import MultinomialNB
    >>> X = np.array([[3, 0], [2, 1], [0, 4], [1, 3], [9, 0]]); y = np.array([0, 0, 1, 1, 1])
    >>> m = MultinomialNB().fit(X, y, row_ids=[7, 8, 9, 10, 11])
    >>> m.forget([11]).n_forgotten
    1
    >>> m.feature_count_.tolist(), m.predict([[5, 1]]).tolist()
    ([[5.0, 1.0], [1.0, 7.0]], [0])
    """

    def __init__(
        self, alpha: float = 1.0, fit_prior: bool = True, classes: ArrayLike | None = None
    ) -> None:
        self.alpha = alpha
        self.fit_prior = fit_prior
        self.classes = classes

    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> MultinomialNB:
        """Fit on non-negative ``X`` (counts) and ``y``; ``row_ids`` names the rows."""
        alpha = float(self.alpha)
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        self._prepare(X, y, row_ids)
        if (self._X < 0).any():
            raise ValueError(_NEGATIVE)
        self._fit_sums((self.classes_.size, self._X.shape[1]))
        return self

    def _allocate(self) -> None:
        self.feature_count_ = np.zeros((self.classes_.size, int(self.n_features_in_)))

    def _add_rows(self, pos: np.ndarray, sign: int) -> np.ndarray:
        return _multinomial_add(self._X, self._yk, pos, self._sums, self._lead, self._cnt, sign)

    def _refresh(self, dirty: np.ndarray) -> None:
        _multinomial_counts(self._sums, self._lead, dirty, self.feature_count_)
        fc = self.feature_count_ + float(self.alpha)
        self.feature_log_prob_ = np.log(fc) - np.log(fc.sum(axis=1, keepdims=True))
        self.class_count_ = self._cnt.astype(np.float64)
        if self.fit_prior:
            self.class_log_prior_ = self._log_prior(self.class_count_ / self._n)
        else:
            self.class_log_prior_ = np.full(self.classes_.size, -np.log(self.classes_.size))

    def _keep_classes(self, keep: np.ndarray) -> None:
        self.feature_count_ = self.feature_count_[keep]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.classifier_tags.poor_score = True  # counts model; scikit-learn's says the same
        return tags

    def _check_X(self, X: ArrayLike) -> np.ndarray:
        Xv = super()._check_X(X)
        if (Xv < 0).any():
            raise ValueError(_NEGATIVE)
        return Xv

    def _jll(self, X: np.ndarray) -> np.ndarray:
        return X @ self.feature_log_prob_.T + self.class_log_prior_


# ---------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _gauss_add(X, yk, rows, sums, lead, cnt, sign):  # pragma: no cover - jitted
    """Add (``sign`` 1) or subtract (-1) the ``x``, ``x²`` terms of ``rows`` to their class's
    sums and to the sums over all rows, and the rows to ``cnt``; zero subtracted rows;
    normalise; return which classes' sums changed (the last flag: all rows)."""
    K1, _, d, _ = sums.shape
    flat = sums.reshape((-1, LIMBS))
    flead = lead.reshape(-1)
    n_terms = 6 * d
    target = np.empty(n_terms, dtype=np.int64)
    terms = np.empty(n_terms)
    touched = np.array([LIMBS, -1])
    dirty = np.zeros(K1, dtype=np.bool_)
    dirty[K1 - 1] = True
    every = (K1 - 1) * 2 * d  # first sum over all rows
    for r in range(rows.size):
        p = rows[r]
        k = yk[p]
        dirty[k] = True
        own = k * 2 * d
        for j in range(d):
            v = X[p, j]
            h, lo = split(v)
            sq, err = two_prod(v, h, lo, v, h, lo)
            t = 6 * j
            terms[t], terms[t + 1], terms[t + 2] = v, sq, err
            terms[t + 3], terms[t + 4], terms[t + 5] = v, sq, err
            target[t], target[t + 1], target[t + 2] = own + j, own + d + j, own + d + j
            target[t + 3], target[t + 4] = every + j, every + d + j
            target[t + 5] = every + d + j
        place_terms(flat, target, terms, n_terms, sign, touched)
        _count_row(X, yk, p, cnt, sign)
        if (r + 1) % (1 << 20) == 0:
            normalise(flat, 0, flat.shape[0], touched, flead)
            touched[0], touched[1] = LIMBS, -1
    terms[:] = 0.0  # the scratch held the rows' values
    for k in range(K1):
        if dirty[k]:
            normalise(flat, k * 2 * d, (k + 1) * 2 * d, touched, flead)
    return dirty


@njit(cache=True, inline="always")
def _count_row(X, yk, p, cnt, sign):  # pragma: no cover - jitted
    cnt[yk[p]] += sign
    if sign < 0:
        X[p, :] = 0.0
        yk[p] = 0


@njit(cache=True)
def _gauss_moments(sums, lead, cnt, n, dirty, theta, var):  # pragma: no cover - jitted
    """Means and variances (``theta``, ``var``) of the classes flagged in ``dirty``, from the
    exact sums in double-double; return the largest variance over all rows."""
    K1, _, d, _ = sums.shape
    flat = sums.reshape((-1, LIMBS))
    flead = lead.reshape(-1)
    hi = np.empty(2 * d)
    lo = np.empty(2 * d)
    gmax = 0.0
    for k in range(K1):
        if not dirty[k]:
            continue
        c = float(cnt[k]) if k < K1 - 1 else n
        block = slice(k * 2 * d, (k + 1) * 2 * d)
        read_sums(flat[block], 0, 2 * d, flead[block], hi, lo)
        for j in range(d):
            if c == 0.0:  # a declared class with no rows left
                m, v = 0.0, 0.0
            else:
                mh, ml = dd_div(hi[j], lo[j], c)
                ph, pl = dd_mul(hi[j], lo[j], mh, ml)  # (Σx)² / n
                sh, sl = dd_add(hi[d + j], lo[d + j], -ph, -pl)
                vh, vl = dd_div(sh, sl, c)
                m, v = mh + ml, max(vh + vl, 0.0)
            if k < K1 - 1:
                theta[k, j], var[k, j] = m, v
            else:
                gmax = max(gmax, v)
    return gmax


@njit(cache=True, nogil=True)
def _multinomial_add(X, yk, rows, sums, lead, cnt, sign):  # pragma: no cover - jitted
    """Add (``sign`` 1) or subtract (-1) ``rows`` to their class's sums and to ``cnt``; zero
    subtracted rows; normalise; return which classes' sums changed."""
    K, d, _ = sums.shape
    flat = sums.reshape((-1, LIMBS))
    flead = lead.reshape(-1)
    target = np.empty(d, dtype=np.int64)
    terms = np.empty(d)
    touched = np.array([LIMBS, -1])
    dirty = np.zeros(K, dtype=np.bool_)
    for r in range(rows.size):
        p = rows[r]
        k = yk[p]
        dirty[k] = True
        for j in range(d):
            terms[j] = X[p, j]
            target[j] = k * d + j
        place_terms(flat, target, terms, d, sign, touched)
        _count_row(X, yk, p, cnt, sign)
        if (r + 1) % (1 << 20) == 0:
            normalise(flat, 0, flat.shape[0], touched, flead)
            touched[0], touched[1] = LIMBS, -1
    terms[:] = 0.0  # the scratch held the rows' values
    for k in range(K):
        if dirty[k]:
            normalise(flat, k * d, (k + 1) * d, touched, flead)
    return dirty


@njit(cache=True)
def _multinomial_counts(sums, lead, dirty, fc):  # pragma: no cover - jitted
    """``fc[k]``: the exact feature sums of each class flagged in ``dirty``, rounded."""
    K, d, _ = sums.shape
    flat = sums.reshape((-1, LIMBS))
    flead = lead.reshape(-1)
    hi = np.empty(d)
    lo = np.empty(d)
    for k in range(K):
        if dirty[k]:
            read_sums(flat[k * d : (k + 1) * d], 0, d, flead[k * d : (k + 1) * d], hi, lo)
            for j in range(d):
                fc[k, j] = hi[j] + lo[j]
