"""Naive Bayes classifiers that forget exactly: their statistics are sums over rows (Amnesia).

``GaussianNB`` keeps, per class, the count and the sums of ``x - c`` and ``(x - c)²`` around a
fixed shift ``c`` (the class mean when the sums were last computed), plus the same sums over all
rows for ``var_smoothing``. Removing a row subtracts its terms. Subtraction loses relative
precision when a class's spread shrinks far below what it was (its last rows are removed); the
model then recomputes that class from the rows it still holds (a ``Path.SLOW`` deletion), so the
variances stay within ~1e-12 relative of a refit. ``MultinomialNB`` keeps feature counts.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
from numba import njit
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from forget import _persist
from forget._rows import HoldsRows, RowIndex, as_row_ids
from forget.base import ForgetResult, Guarantee, Path
from forget.errors import ArtifactError

# Recompute a class's sums when its centred sum of squares falls below this share of its sum of
# squares when last computed: downdating then has lost at most ~3 digits of ~16.
_RECOMPUTE = 1e-3
_NEGATIVE = "Negative values in data passed to MultinomialNB (it needs counts or frequencies)"


class _NaiveBayes(HoldsRows, ClassifierMixin, BaseEstimator):
    """Shared plumbing: classes, row ids, prediction from ``_jll``, forget, persistence."""

    guarantee = Guarantee.EXACT
    _fitted_attr = "classes_"
    _arrays: ClassVar[tuple[str, ...]] = ()  # fitted array attributes written by to_bytes
    _scalars: ClassVar[tuple[str, ...]] = ()  # fitted scalar attributes written by to_bytes

    def _prepare(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None) -> None:
        Xv, yv = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(yv)
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
        # A class whose rows were all forgotten has prior 0: log -inf, without a warning.
        return np.log(prior, out=np.full(prior.shape, -np.inf), where=prior > 0)

    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove training rows exactly; the model then equals a refit without them.

        Raises (changing nothing) ``UnknownRowIdsError``, ``AlreadyForgottenError``,
        ``DuplicateRowIdsError`` or ``EmptyModelError``.
        """
        start = time.perf_counter()
        pos = self._resolve_forget(row_ids)
        slow = np.zeros(pos.size, dtype=np.bool_)
        if pos.size:
            self._index.drop(pos)
            self._n -= pos.size
            slow = self._remove(pos)
            self._X[pos] = 0.0
            self._yk[pos] = 0
            self._refresh()
        return ForgetResult(
            row_ids=tuple(self._index.ids[pos].tolist()),
            guarantee=self.guarantee,
            paths=tuple(Path.SLOW if s else Path.FAST for s in slow.tolist()),
            seconds=time.perf_counter() - start,
            details={"recomputed": float(slow.sum())},
        )

    def _remove(self, pos: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _refresh(self) -> None:
        raise NotImplementedError

    def _jll(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise the fitted model (no pickle; see :mod:`forget._persist`)."""
        check_is_fitted(self)
        classes = self.classes_.astype(str) if self.classes_.dtype == object else self.classes_
        params = self.get_params()
        if params.get("classes") is not None:
            params["classes"] = np.asarray(params["classes"]).tolist()
        arrays = {name: getattr(self, name) for name in self._arrays}
        arrays |= {
            "X": self._X,
            "yk": self._yk,
            "ids": self._index.ids,
            "alive": self._index.alive,
            "classes": classes,
        }
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names"] = np.asarray(self.feature_names_in_, dtype=str)
        state = {name: float(getattr(self, name)) for name in self._scalars}
        state |= {"n": int(self._n), "n_features_in": int(self.n_features_in_)}
        return _persist.dump(type(self).__name__, params, state, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Any:
        """Load a model written by :meth:`to_bytes`."""
        _, params, state, a = _persist.load(data, kind=cls.__name__)
        m = cls(**params)
        try:
            for name in cls._arrays:
                setattr(m, name, a[name])
            for name in cls._scalars:
                setattr(m, name, state[name])
            m._index = RowIndex(a["ids"].astype(np.int64), a["alive"].astype(np.bool_))
            m._X, m._yk, m.classes_ = a["X"], a["yk"].astype(np.int64), a["classes"]
            m._n, m.n_features_in_ = state["n"], state["n_features_in"]
        except KeyError as exc:
            raise ArtifactError(f"{cls.__name__} artifact lacks {exc}") from exc
        if "feature_names" in a:
            m.feature_names_in_ = a["feature_names"].astype(object)
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
        The classes; taken from ``y`` when None. Fixing them keeps a class whose rows are all
        forgotten (with prior 0), so the model stays comparable with a refit.

    Attributes
    ----------
    classes_, class_count_, class_prior_, theta_, var_, epsilon_, n_features_in_

    Examples
    --------
    >>> import numpy as np
    >>> from forget.naive_bayes import GaussianNB
    >>> X = np.array([[0.0], [0.2], [1.0], [1.2], [5.0]]); y = np.array([0, 0, 1, 1, 1])
    >>> m = GaussianNB().fit(X, y)
    >>> m.forget([4]).n_forgotten
    1
    >>> m.theta_.ravel().round(6).tolist(), m.predict([[0.1], [1.1]]).tolist()
    ([0.1, 1.1], [0, 1])
    """

    _arrays = (
        "_shift",
        "_s1",
        "_s2",
        "_ref",
        "_cnt",
        "_gshift",
        "_gs1",
        "_gs2",
        "_gref",
        "theta_",
        "var_",
        "class_count_",
        "class_prior_",
    )
    _scalars = ("epsilon_",)

    def __init__(self, var_smoothing: float = 1e-9, classes: ArrayLike | None = None) -> None:
        self.var_smoothing = var_smoothing
        self.classes = classes

    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> GaussianNB:
        """Fit on ``X, y``; ``row_ids`` names the rows (``0..n-1`` when omitted)."""
        vs = float(self.var_smoothing)
        if not np.isfinite(vs) or vs < 0:
            raise ValueError(f"var_smoothing must be a finite number >= 0, got {vs!r}")
        self._prepare(X, y, row_ids)
        K, d = self.classes_.size, self._X.shape[1]
        self._shift, self._s1, self._s2, self._ref = (np.zeros((K, d)) for _ in range(4))
        self._cnt = np.bincount(self._yk, minlength=K).astype(np.int64)
        for k in range(K):
            self._recompute_class(k, self._yk == k)
        self._recompute_global()
        self._refresh()
        return self

    def _recompute_class(self, k: int, rows: np.ndarray) -> None:
        self._shift[k], self._s1[k], self._s2[k] = _shifted_sums(self._X[rows])
        self._ref[k] = self._s2[k]

    def _recompute_global(self) -> None:
        self._gshift, self._gs1, self._gs2 = _shifted_sums(self._X[self._index.alive])
        self._gref = self._gs2.copy()

    def _remove(self, pos: np.ndarray) -> np.ndarray:
        stale = np.zeros(self.classes_.size, dtype=np.bool_)
        stale_global = _gauss_downdate(
            self._X,
            self._yk,
            pos,
            self._shift,
            self._s1,
            self._s2,
            self._ref,
            self._cnt,
            self._gshift,
            self._gs1,
            self._gs2,
            self._gref,
            stale,
        )
        for k in np.flatnonzero(stale).tolist():
            self._recompute_class(k, self._index.alive & (self._yk == k))
        if stale_global:
            self._recompute_global()
            return np.ones(pos.size, dtype=np.bool_)
        return stale[self._yk[pos]]

    def _refresh(self) -> None:
        self.theta_, self.var_ = np.empty(self._s1.shape), np.empty(self._s1.shape)
        self.epsilon_ = _gauss_refresh(
            self._shift,
            self._s1,
            self._s2,
            self._cnt,
            self._gs1,
            self._gs2,
            float(self._n),
            float(self.var_smoothing),
            self.theta_,
            self.var_,
        )
        self.class_count_ = self._cnt.astype(np.float64)
        self.class_prior_ = self.class_count_ / self._n

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

    _arrays = ("_cnt", "feature_count_", "class_count_", "feature_log_prob_", "class_log_prior_")

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
        K, d = self.classes_.size, self._X.shape[1]
        self._cnt = np.bincount(self._yk, minlength=K).astype(np.int64)
        self.feature_count_ = np.zeros((K, d))
        for k in range(K):
            self.feature_count_[k] = self._X[self._yk == k].sum(axis=0)
        self._refresh()
        return self

    def _remove(self, pos: np.ndarray) -> np.ndarray:
        _multinomial_downdate(self._X, self._yk, pos, self.feature_count_, self._cnt)
        # Rounding can leave -1e-17 where a count should be 0; an empty class is exactly 0.
        np.maximum(self.feature_count_, 0.0, out=self.feature_count_)
        self.feature_count_[self._cnt == 0] = 0.0
        return np.zeros(pos.size, dtype=np.bool_)

    def _refresh(self) -> None:
        fc = self.feature_count_ + float(self.alpha)
        self.feature_log_prob_ = np.log(fc) - np.log(fc.sum(axis=1, keepdims=True))
        self.class_count_ = self._cnt.astype(np.float64)
        if self.fit_prior:
            self.class_log_prior_ = self._log_prior(self.class_count_ / self._n)
        else:
            self.class_log_prior_ = np.full(self.classes_.size, -np.log(self.classes_.size))

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


def _shifted_sums(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``X`` (the shift) and the sums of ``X - mean`` and of its squares."""
    if X.shape[0] == 0:
        z = np.zeros(X.shape[1])
        return z, z.copy(), z.copy()
    shift = X.mean(axis=0)
    Z = X - shift
    return shift, Z.sum(axis=0), np.einsum("ij,ij->j", Z, Z)


@njit(cache=True)
def _gauss_downdate(X, yk, pos, shift, s1, s2, ref, cnt, gshift, gs1, gs2, gref, stale):
    """Subtract rows ``pos``; flag classes (in ``stale``) and return True for the global sums
    when cancellation has eaten ~3 digits, so they are recomputed from the rows."""
    K, d = s1.shape
    for p in pos:
        k = yk[p]
        cnt[k] -= 1
        for j in range(d):
            z = X[p, j] - shift[k, j]
            s1[k, j] -= z
            s2[k, j] -= z * z
            g = X[p, j] - gshift[j]
            gs1[j] -= g
            gs2[j] -= g * g
    for k in range(K):
        if cnt[k] == 0:  # the class is gone: exactly what a fit without its rows holds
            shift[k, :] = 0.0
            s1[k, :] = 0.0
            s2[k, :] = 0.0
            ref[k, :] = 0.0
            continue
        for j in range(d):
            if ref[k, j] > 0 and s2[k, j] - s1[k, j] * s1[k, j] / cnt[k] < _RECOMPUTE * ref[k, j]:
                stale[k] = True
    n = cnt.sum()
    for j in range(d):
        if gref[j] > 0 and gs2[j] - gs1[j] * gs1[j] / n < _RECOMPUTE * gref[j]:
            return True
    return False


@njit(cache=True)
def _gauss_refresh(shift, s1, s2, cnt, gs1, gs2, n, var_smoothing, theta, var):
    """Means and smoothed variances from the sums (into ``theta``, ``var``); return epsilon."""
    K, d = s1.shape
    gmax = 0.0
    for j in range(d):
        gmax = max(gmax, (gs2[j] - gs1[j] * gs1[j] / n) / n)
    eps = max(var_smoothing * gmax, np.finfo(np.float64).eps)
    for k in range(K):
        c = max(cnt[k], 1)
        for j in range(d):
            theta[k, j] = shift[k, j] + s1[k, j] / c if cnt[k] > 0 else 0.0
            var[k, j] = max((s2[k, j] - s1[k, j] * s1[k, j] / c) / c, 0.0) + eps
    return eps


@njit(cache=True)
def _multinomial_downdate(X, yk, pos, fc, cnt):  # pragma: no cover
    for p in pos:
        k = yk[p]
        cnt[k] -= 1
        for j in range(X.shape[1]):
            fc[k, j] -= X[p, j]
