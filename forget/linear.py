"""Ridge regression that forgets exactly by downdating its sufficient statistics (Amnesia).

The model keeps ``ZᵀZ``, ``Zᵀt``, ``ΣZ``, ``Σt`` and ``n`` for ``Z = X - m`` and ``t = y - c``,
where ``m`` and ``c`` are the means at fit. Shifting by a *fixed* point keeps the sums small (no
catastrophic cancellation when centring later) and makes removing a row a plain subtraction.
After each removal the small ``d × d`` system is solved again by Cholesky (a numba kernel, so a
deletion costs microseconds for tabular widths); unlike a Sherman–Morrison update of an inverse,
a re-solve never accumulates error over many deletions.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike
from scipy.linalg.lapack import dpotrf, dpotrs
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from forget import _persist
from forget._rows import HoldsRows, RowIndex, as_row_ids
from forget.base import ForgetResult, Guarantee, Path

# A feature whose centred sum of squares is below this fraction of its raw sum of squares is
# constant up to rounding; it gets a zero coefficient instead of a noise-driven one.
_CONSTANT_RTOL = 1e-12
# Below this pivot (on the unit-diagonal scaled system) the system is treated as singular.
_PIVOT_MIN = 1e-7


class LinearRegression(HoldsRows, RegressorMixin, BaseEstimator):
    """Least squares / ridge regression whose ``forget`` equals a refit on the remaining rows.

    Minimises ``||y - X w - b||² + alpha ||w||²`` (the intercept ``b`` is not penalised).

    Parameters
    ----------
    alpha : float, default=0.0
        L2 penalty on the coefficients, ``>= 0``. With ``alpha=0`` and exactly collinear
        features the minimum-norm solution is returned; prefer a small ``alpha`` there.
    fit_intercept : bool, default=True
        Whether to fit an unpenalised intercept.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_features_in_ : int
    n_rows_ : int
        Training rows still held (not forgotten).

    Notes
    -----
    The model keeps the training rows (needed to subtract them later); a forgotten row is
    overwritten with zeros, so neither its features nor its label remain in the model.

    Examples
    --------
    >>> import numpy as np
    >>> from forget.linear import LinearRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]]); y = np.array([1.0, 3.0, 5.0, 7.0, 0.0])
    >>> m = LinearRegression().fit(X, y, row_ids=[10, 11, 12, 13, 14])
    >>> m.forget([14]).n_forgotten
    1
    >>> round(float(m.coef_[0]), 6), round(float(m.intercept_), 6)
    (2.0, 1.0)
    """

    guarantee = Guarantee.EXACT
    _fitted_attr = "coef_"

    def __init__(self, alpha: float = 0.0, fit_intercept: bool = True) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    # ------------------------------------------------------------------ fitting
    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> LinearRegression:
        """Fit on ``X, y``; ``row_ids`` names the rows (``0..n-1`` when omitted)."""
        alpha = float(self.alpha)
        if not np.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        Xv, yv = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        ids = as_row_ids(row_ids, Xv.shape[0])
        self._index = RowIndex(ids)
        self._X = np.array(Xv, dtype=np.float64, order="C")
        self._y = np.array(yv, dtype=np.float64)
        if self.fit_intercept:
            self._x_shift = self._X.mean(axis=0)
            self._y_shift = float(self._y.mean())
        else:
            self._x_shift = np.zeros(Xv.shape[1])
            self._y_shift = 0.0
        Z = self._X - self._x_shift
        t = self._y - self._y_shift
        self._gram = Z.T @ Z
        self._zty = Z.T @ t
        self._zsum = Z.sum(axis=0)
        self._tsum = float(t.sum())
        self._n = Xv.shape[0]
        self._solve()
        return self

    def _solve(self) -> None:
        """Solve the (ridge) normal equations from the current statistics."""
        coef = np.empty(self._gram.shape[0])
        status = _solve_kernel(
            self._gram,
            self._zty,
            self._zsum,
            self._x_shift,
            self._tsum,
            float(self._n),
            float(self.alpha),
            bool(self.fit_intercept),
            coef,
        )
        if status != 0:  # constant or collinear features: the careful path
            coef = self._solve_degenerate()
        self.coef_ = coef
        n = self._n
        if self.fit_intercept:
            self.intercept_ = float(
                self._y_shift + self._tsum / n - (self._x_shift + self._zsum / n) @ coef
            )
        else:
            self.intercept_ = 0.0

    def _solve_degenerate(self) -> np.ndarray:
        """Zero coefficients for constant features; minimum-norm solution if still singular."""
        n, d = self._n, self._gram.shape[0]
        A = self._gram.copy()
        b = self._zty.copy()
        if self.fit_intercept:
            A -= np.outer(self._zsum, self._zsum / n)
            b -= self._zsum * (self._tsum / n)
        raw = self._gram.diagonal() + self._x_shift * (2.0 * self._zsum + n * self._x_shift)
        idx = np.flatnonzero(A.diagonal() > _CONSTANT_RTOL * raw)
        coef = np.zeros(d)
        if idx.size:
            A_l = A[np.ix_(idx, idx)]
            A_l.flat[:: idx.size + 1] += float(self.alpha)
            s = 1.0 / np.sqrt(A_l.diagonal())
            A_s = A_l * np.outer(s, s)
            b_s = b[idx] * s
            chol, info = dpotrf(A_s, lower=1)
            if info == 0 and chol.diagonal().min() > _PIVOT_MIN:
                sol = dpotrs(chol, b_s, lower=1)[0]
            else:
                sol = np.linalg.lstsq(A_s, b_s, rcond=None)[0]
            coef[idx] = sol * s
        return coef

    # ------------------------------------------------------------------ predicting
    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted targets for ``X``."""
        check_is_fitted(self)
        Xv = validate_data(self, X, dtype=np.float64, reset=False)
        return Xv @ self.coef_ + self.intercept_

    @property
    def n_rows_(self) -> int:
        return self._n

    # ------------------------------------------------------------------ forgetting
    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove training rows exactly; the model then equals a refit without them.

        Raises (changing nothing) ``UnknownRowIdsError``, ``AlreadyForgottenError``,
        ``DuplicateRowIdsError`` or ``EmptyModelError``.
        """
        start = time.perf_counter()
        pos = self._resolve_forget(row_ids)
        if pos.size:
            self._tsum -= _downdate(
                self._X,
                self._y,
                pos,
                self._x_shift,
                self._y_shift,
                self._gram,
                self._zty,
                self._zsum,
            )
            self._n -= pos.size
            self._index.drop(pos)
            self._solve()
        ids = tuple(self._index.ids[pos].tolist())
        return ForgetResult(
            row_ids=ids,
            guarantee=self.guarantee,
            paths=(Path.FAST,) * len(ids),
            seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """Serialise the fitted model (no pickle; see :mod:`forget._persist`)."""
        check_is_fitted(self)
        state: dict[str, Any] = {
            "n": int(self._n),
            "tsum": self._tsum,
            "y_shift": self._y_shift,
            "intercept": self.intercept_,
            "n_features_in": int(self.n_features_in_),
        }
        arrays = {
            "X": self._X,
            "y": self._y,
            "ids": self._index.ids,
            "alive": self._index.alive,
            "x_shift": self._x_shift,
            "gram": self._gram,
            "zty": self._zty,
            "zsum": self._zsum,
            "coef": self.coef_,
        }
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names"] = np.asarray(self.feature_names_in_, dtype=str)
        params = {"alpha": float(self.alpha), "fit_intercept": bool(self.fit_intercept)}
        return _persist.dump(type(self).__name__, params, state, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearRegression:
        """Load a model written by :meth:`to_bytes`."""
        _, params, state, a = _persist.load(data, kind=cls.__name__)
        m = cls(**params)
        m._index = RowIndex(a["ids"].astype(np.int64), a["alive"].astype(np.bool_))
        m._X, m._y = a["X"], a["y"]
        m._x_shift, m._gram, m._zty, m._zsum = a["x_shift"], a["gram"], a["zty"], a["zsum"]
        m._n, m._tsum, m._y_shift = state["n"], state["tsum"], state["y_shift"]
        m.coef_, m.intercept_ = a["coef"], state["intercept"]
        m.n_features_in_ = state["n_features_in"]
        if "feature_names" in a:
            m.feature_names_in_ = a["feature_names"].astype(object)
        return m


@njit(cache=True)
def _downdate(X, y, pos, x_shift, y_shift, gram, zty, zsum):  # pragma: no cover - jitted
    """Subtract rows ``pos`` from the shifted statistics, then zero them; return their Σt."""
    d = X.shape[1]
    z = np.empty(d)
    tsum = 0.0
    for p in pos:
        for i in range(d):
            z[i] = X[p, i] - x_shift[i]
        t = y[p] - y_shift
        for i in range(d):
            zty[i] -= z[i] * t
            zsum[i] -= z[i]
            for j in range(d):
                gram[i, j] -= z[i] * z[j]
        tsum += t
        X[p, :] = 0.0
        y[p] = 0.0
    return tsum


@njit(cache=True)
def _solve_kernel(gram, zty, zsum, x_shift, tsum, n, alpha, center, coef):  # pragma: no cover
    """Centre, ridge and unit-scale the normal equations, solve by Cholesky into ``coef``.

    Returns 0 on success, 1 when a feature is constant, 2 when the system is singular.
    """
    d = gram.shape[0]
    A = np.empty((d, d))
    b = np.empty(d)
    s = np.empty(d)
    for i in range(d):
        b[i] = zty[i] - (zsum[i] * tsum / n if center else 0.0)
        for j in range(d):
            A[i, j] = gram[i, j] - (zsum[i] * zsum[j] / n if center else 0.0)
        raw = gram[i, i] + x_shift[i] * (2.0 * zsum[i] + n * x_shift[i])
        if not A[i, i] > _CONSTANT_RTOL * raw:
            return 1
    for i in range(d):
        s[i] = 1.0 / np.sqrt(A[i, i] + alpha)
    for i in range(d):
        b[i] *= s[i]
        for j in range(d):
            A[i, j] = (A[i, j] + (alpha if i == j else 0.0)) * s[i] * s[j]
    for j in range(d):  # Cholesky, lower triangle in place
        acc = A[j, j]
        for k in range(j):
            acc -= A[j, k] * A[j, k]
        if not acc > _PIVOT_MIN * _PIVOT_MIN:
            return 2
        A[j, j] = np.sqrt(acc)
        for i in range(j + 1, d):
            acc = A[i, j]
            for k in range(j):
                acc -= A[i, k] * A[j, k]
            A[i, j] = acc / A[j, j]
    for i in range(d):  # L u = b
        acc = b[i]
        for k in range(i):
            acc -= A[i, k] * b[k]
        b[i] = acc / A[i, i]
    for i in range(d - 1, -1, -1):  # Lᵀ v = u
        acc = b[i]
        for k in range(i + 1, d):
            acc -= A[k, i] * b[k]
        b[i] = acc / A[i, i]
    for i in range(d):
        coef[i] = b[i] * s[i]
    return 0
