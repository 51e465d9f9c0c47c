"""Ridge regression that forgets exactly: its sufficient statistics are exact sums (Amnesia).

The model keeps ``Σxxᵀ``, ``Σxy``, ``Σx``, ``Σy`` and ``n`` over its rows, each sum held
*exactly*: as a fixed-point number wide enough for any sum of products of doubles (see "Exact
sums" below). Removing a row subtracts its terms exactly, so after ``forget(S)`` the sums are
bit for bit those of ``fit(D \\ S)`` — whatever the order of additions and subtractions, and
with no fit-time centre or shift that would still hold the removed row. The coefficients come
from the same numbers by the same (deterministic) solve, so they too equal a refit's bit for
bit. After each removal the small ``d × d`` system is formed in double-double precision and
solved by Cholesky (numba kernels, microseconds for tabular widths).

Exact sums
----------
A sum is ``LIMBS`` int64 digits of ``DIGIT_BITS`` bits, digit ``k`` weighing
``2**(LOW_BIT + DIGIT_BITS * k)``: every double down to the smallest subnormal lands on whole
digits, and products of values below ``MAX_ABS`` summed over up to 2**40 rows fit below the
top. A product ``a·b`` enters as the two doubles of its error-free split (Dekker), a
deterministic function of ``a`` and ``b``. Additions leave digits unnormalised (carry-save);
``normalise`` propagates the carries, after which the digits are the sum's unique (canonical)
form, and records each sum's leading digit (a function of its value) so that reading one, as a
double-double from its four leading digits (~1e-29 relative), needs no search. The models keep
nothing else of the sums' history: memory and artifact hold only canonical digits.
``naive_bayes`` uses the same kernels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike
from scipy.linalg.lapack import dpotrf, dpotrs
from sklearn.base import BaseEstimator, RegressorMixin
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
    What "exact" means numerically: the sums are exact, so after ``forget(S)`` every number
    the model keeps (sums, ``coef_``, ``intercept_``, the rows and their ids) is bit for bit
    what ``fit(D \\ S)`` keeps; nothing is left of the forgotten rows, nor of their order.
    How close ``coef_`` is to the true least-squares solution is a separate matter, the same
    for a forget and a refit: the centred normal equations are formed from the exact sums in
    double-double (~1e-30 relative to the raw sums) and solved in double, so ``coef_`` carries
    a relative error of about ``cond · 1e-16`` (``cond`` of the unit-scaled system). A
    feature whose spread is below ~1e-6 of its magnitude counts as constant (coefficient 0).
    Inputs must be below 2**480 (~3e144) in magnitude.

    The rows are kept (needed to subtract them later); a forgotten row is overwritten with
    zeros in memory and left out of the artifact, with its id.

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
    >>> refit = LinearRegression().fit(X[:4], y[:4], row_ids=[10, 11, 12, 13])
    >>> m.to_bytes() == refit.to_bytes()
    True
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
        check_range("X", Xv, "LinearRegression")
        check_range("y", yv, "LinearRegression")
        ids = as_row_ids(row_ids, Xv.shape[0])
        self._index = RowIndex(ids)
        self._X = np.array(Xv, dtype=np.float64, order="C")
        self._y = np.array(yv, dtype=np.float64)
        d = Xv.shape[1]
        self._sums = np.zeros((_n_sums(d), LIMBS), dtype=np.int64)
        self._lead = np.full(_n_sums(d), -1, dtype=np.int64)
        _linear_add(self._X, self._y, np.arange(Xv.shape[0]), self._sums, 1, self._lead)
        self._n = Xv.shape[0]
        self._solve()
        return self

    def _solve(self) -> None:
        """Solve the (ridge) normal equations from the current sums."""
        d, n, center = self._X.shape[1], float(self._n), bool(self.fit_intercept)
        coef = np.empty(d)
        sums, lead, alpha = self._sums, self._lead, float(self.alpha)
        status, intercept = _solve_sums(sums, lead, d, n, center, alpha, coef)
        if status != 0:  # constant or collinear features: the careful path
            A, b, raw, mx, my = _normal_equations(sums, lead, d, n, center)
            coef = self._solve_degenerate(A, b, raw)
            intercept = _intercept(mx, my, coef, center)
        self.coef_ = coef
        self.intercept_ = float(intercept)

    def _solve_degenerate(self, A: np.ndarray, b: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Zero coefficients for constant features; minimum-norm solution if still singular."""
        idx = np.flatnonzero(A.diagonal() > _CONSTANT_RTOL * raw)
        coef = np.zeros(A.shape[0])
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

        Raises (changing nothing) ``UnknownRowIdsError`` (for ids never trained on or already
        forgotten), ``DuplicateRowIdsError`` or ``EmptyModelError``.
        """
        start = time.perf_counter()
        pos = self._resolve_forget(row_ids)
        ids = tuple(self._index.ids[pos].tolist())  # before drop() scrubs them
        if pos.size:
            _linear_add(self._X, self._y, pos, self._sums, -1, self._lead)  # zeroes the rows
            self._n -= pos.size
            self._index.drop(pos)
            self._solve()
        return ForgetResult(
            row_ids=ids,
            guarantee=self.guarantee,
            paths=(Path.FAST,) * len(ids),
            seconds=time.perf_counter() - start,
        )

    # ------------------------------------------------------------------ learning
    def learn(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike) -> LinearRegression:
        """Add training rows exactly: the model then equals ``fit`` on the rows it held
        followed by these (same parameters), bit for bit — the sums are exact, so adding a
        row's terms is what a fit does.

        Raises (changing nothing) ``HeldRowIdsError`` for ids the model holds,
        ``DuplicateRowIdsError``, or ``ValueError`` for rows of the wrong width or range.
        """
        check_is_fitted(self)
        Xv = validate_data(self, X, dtype=np.float64, reset=False)
        yv = np.asarray(y, dtype=np.float64).reshape(-1)
        if yv.shape[0] != Xv.shape[0] or not np.isfinite(yv).all():
            raise ValueError(f"y must hold {Xv.shape[0]} finite numbers, got shape {yv.shape}")
        check_range("X", Xv, "LinearRegression")
        check_range("y", yv, "LinearRegression")
        ids = as_new_row_ids(row_ids, Xv.shape[0], self.row_ids_, "LinearRegression")
        live = self._index.live()  # forgotten rows (zeros) are left behind, as a fit has none
        self._X = np.ascontiguousarray(np.concatenate([self._X[live], Xv]), dtype=np.float64)
        self._y = np.concatenate([self._y[live], yv])
        self._index = RowIndex(np.concatenate([self._index.ids[live], ids]))
        new = np.arange(live.size, live.size + ids.size)
        _linear_add(self._X, self._y, new, self._sums, 1, self._lead)
        self._n += ids.size
        self._solve()
        return self

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """Serialise the fitted model (no pickle; see :mod:`forget._persist`).

        Only the rows still held are written (with their ids), and the exact sums: the same
        bytes as a model fitted on those rows.
        """
        check_is_fitted(self)
        live = self._index.live()
        d = self._X.shape[1]
        state: dict[str, Any] = {
            "n": int(self._n),
            "intercept": self.intercept_,
            "n_features_in": int(self.n_features_in_),
        }
        iu = np.triu_indices(d)
        xx = np.zeros((d, d, LIMBS), dtype=np.int64)
        xx[iu] = self._sums[: iu[0].size]
        xx[iu[1], iu[0]] = self._sums[: iu[0].size]
        arrays = {
            "X": self._X[live],
            "y": self._y[live],
            "ids": self._index.ids[live],
            "coef": self.coef_,
            "sum_xx": xx,
            "sum_xy": self._sums[iu[0].size : iu[0].size + d],
            "sum_x": self._sums[iu[0].size + d : iu[0].size + 2 * d],
            "sum_y": self._sums[-1],
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
        try:
            m._index = RowIndex(a["ids"].astype(np.int64))
            m._X, m._y = a["X"], a["y"]
            d = m._X.shape[1]
            xx = a["sum_xx"][np.triu_indices(d)]
            sums = [xx, a["sum_xy"], a["sum_x"], a["sum_y"][None]]
            m._sums = np.ascontiguousarray(np.concatenate(sums), dtype=np.int64)
            m._lead = np.empty(m._sums.shape[0], dtype=np.int64)
            leading(m._sums, m._lead)
            m._n, m.coef_, m.intercept_ = state["n"], a["coef"], state["intercept"]
            m.n_features_in_ = state["n_features_in"]
        except KeyError as exc:
            raise ArtifactError(f"{cls.__name__} artifact lacks {exc}") from exc
        if "feature_names" in a:
            m.feature_names_in_ = a["feature_names"].astype(object)
        return m


@dataclass(frozen=True)
class Int8Weights:
    """A linear model's weights as int8 steps of one scale, with a stated error bound.

    ``q = round(coef / scale)`` in ``[-127, 127]``, ``scale = max |coef| / 127``, and
    ``predict(X) = (X @ q) * scale + intercept``. Each weight moves by at most half a step, so
    a row's prediction is within ``error_bound`` of the model's ``X @ coef + intercept``:
    ``scale / 2 * Σ|x_j|`` plus the rounding of both double computations,
    ``4 (d + 2) ε (Σ|x_j| (max|coef| + scale) + |intercept|)`` (``ε = 2**-53``; a dot product
    of ``d`` terms in any order errs by at most ``d ε`` times the sum of the terms' magnitudes).
    The weights take 1 byte instead of 8; the rows stay doubles.

    >>> import numpy as np
    >>> from forget.linear import Int8Weights, LinearRegression
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 5.0]])
    >>> m = LinearRegression().fit(X, X @ [2.0, -0.5] + 1.0)
    >>> w = Int8Weights.from_model(m)
    >>> w.q.tolist(), bool((abs(w.predict(X) - m.predict(X)) <= w.error_bound(X)).all())
    ([127, -32], True)
    """

    q: np.ndarray  # int8, (n_features,)
    scale: float
    intercept: float
    coef_max: float  # max |coef|: the rounding term of the bound

    @classmethod
    def from_model(cls, model: Any) -> Int8Weights:
        """The int8 form of a fitted model with ``coef_`` (one output) and ``intercept_``."""
        check_is_fitted(model)
        coef = np.asarray(model.coef_, dtype=np.float64)
        if coef.ndim != 1 or not np.isfinite(coef).all():
            raise ValueError(f"int8 weights need one finite coefficient per feature: {coef.shape}")
        top = float(np.abs(coef).max()) if coef.size else 0.0
        scale = top / 127 if top > 0 else 1.0
        q = np.clip(np.rint(coef / scale), -127, 127).astype(np.int8)
        return cls(q, scale, float(model.intercept_), top)

    def _rows(self, X: ArrayLike) -> np.ndarray:
        Xv = np.asarray(X, dtype=np.float64)
        if Xv.ndim != 2 or Xv.shape[1] != self.q.size:
            raise ValueError(f"X must have shape (rows, {self.q.size}), got {Xv.shape}")
        if not np.isfinite(Xv).all():
            raise ValueError("X holds NaN or infinite values")
        return Xv

    def predict(self, X: ArrayLike) -> np.ndarray:
        """``(X @ q) * scale + intercept``, in double."""
        return (self._rows(X) @ self.q.astype(np.float64)) * self.scale + self.intercept

    def error_bound(self, X: ArrayLike) -> np.ndarray:
        """Per row, the most ``predict`` can differ from the model's own prediction."""
        l1 = np.abs(self._rows(X)).sum(axis=1)
        eps = 4 * (self.q.size + 2) * 2.0**-53
        rounding = eps * (l1 * (self.coef_max + self.scale) + abs(self.intercept))
        return self.scale / 2 * l1 + rounding


def _n_sums(d: int) -> int:
    """Sums kept for ``d`` features: ``Σxᵢxⱼ`` (i <= j), ``Σxᵢy``, ``Σxᵢ``, ``Σy``."""
    return d * (d + 1) // 2 + 2 * d + 1


# Normalise a fit's sums this often: a digit then never nears the int64 limit.
_ROWS_PER_CARRY = 1 << 20


@njit(cache=True, nogil=True)
def _linear_add(X, y, rows, sums, sign, lead):  # pragma: no cover - jitted
    """Add (``sign`` 1) or subtract (-1) the terms of ``rows`` to the sums, then normalise.

    Subtracted rows are overwritten with zeros.
    """
    d = X.shape[1]
    xy0 = d * (d + 1) // 2
    n_terms = 2 * xy0 + 3 * d + 1
    target = np.empty(n_terms, dtype=np.int64)
    terms = np.empty(n_terms)
    t = 0
    for e in range(xy0 + d):  # products: two doubles each
        target[t] = e
        target[t + 1] = e
        t += 2
    for e in range(xy0 + d, xy0 + 2 * d + 1):
        target[t] = e
        t += 1
    hi = np.empty(d)
    lo = np.empty(d)
    touched = np.array([LIMBS, -1])
    for r in range(rows.size):
        p = rows[r]
        for i in range(d):
            hi[i], lo[i] = split(X[p, i])
        yv = y[p]
        yh, yl = split(yv)
        t = 0
        for i in range(d):
            for j in range(i, d):
                terms[t], terms[t + 1] = two_prod(X[p, i], hi[i], lo[i], X[p, j], hi[j], lo[j])
                t += 2
        for i in range(d):
            terms[t], terms[t + 1] = two_prod(X[p, i], hi[i], lo[i], yv, yh, yl)
            t += 2
        for i in range(d):
            terms[t] = X[p, i]
            t += 1
        terms[t] = yv
        place_terms(sums, target, terms, n_terms, sign, touched)
        if sign < 0:
            X[p, :] = 0.0
            y[p] = 0.0
        if (r + 1) % _ROWS_PER_CARRY == 0:
            normalise(sums, 0, sums.shape[0], touched, lead)
            touched[0], touched[1] = LIMBS, -1
    terms[:] = 0.0  # the scratch held the rows' values
    normalise(sums, 0, sums.shape[0], touched, lead)


@njit(cache=True)
def _normal_equations(sums, lead, d, n, center):  # pragma: no cover - jitted
    """The normal equations ``A w = b`` from the exact sums, centred when ``center``.

    Also returns each feature's raw ``Σx²`` (to tell constant features) and the means.
    Centring ``Σxᵢxⱼ - ΣxᵢΣxⱼ/n`` is done in double-double, then rounded.
    """
    xy0 = d * (d + 1) // 2
    H = np.empty(sums.shape[0])
    L = np.empty(sums.shape[0])
    read_sums(sums, 0, sums.shape[0], lead, H, L)
    x0 = xy0 + d
    A = np.empty((d, d))
    b = np.empty(d)
    raw = np.empty(d)
    mh = np.empty(d + 1)  # the means, in double-double (the target's last)
    ml = np.empty(d + 1)
    for i in range(d + 1):
        mh[i], ml[i] = dd_div(H[x0 + i], L[x0 + i], n)
    e = 0
    for i in range(d):
        for j in range(i, d):
            gh, gl = H[e], L[e]
            if i == j:
                raw[i] = gh
            if center:  # Σxᵢxⱼ - Σxᵢ · mean(xⱼ)
                ph, pl = dd_mul(H[x0 + i], L[x0 + i], mh[j], ml[j])
                gh, gl = dd_add(gh, gl, -ph, -pl)
            A[i, j] = gh + gl
            A[j, i] = A[i, j]
            e += 1
        ch, cl = H[xy0 + i], L[xy0 + i]
        if center:
            ph, pl = dd_mul(H[x0 + i], L[x0 + i], mh[d], ml[d])
            ch, cl = dd_add(ch, cl, -ph, -pl)
        b[i] = ch + cl
    return A, b, raw, mh[:d] + ml[:d], mh[d] + ml[d]


@njit(cache=True)
def _intercept(mx, my, coef, center):  # pragma: no cover - jitted
    if not center:
        return 0.0
    acc = my
    for i in range(coef.size):
        acc -= mx[i] * coef[i]
    return acc


@njit(cache=True)
def _solve_sums(sums, lead, d, n, center, alpha, coef):  # pragma: no cover - jitted
    """Solve from the sums into ``coef``; return the status of :func:`_cholesky_solve` and
    the intercept."""
    A, b, raw, mx, my = _normal_equations(sums, lead, d, n, center)
    status = _cholesky_solve(A, b, raw, alpha, coef)
    return status, _intercept(mx, my, coef, center)


@njit(cache=True)
def _cholesky_solve(A, b, raw, alpha, coef):  # pragma: no cover - jitted
    """Ridge and unit-scale the normal equations, solve by Cholesky into ``coef``.

    Returns 0 on success, 1 when a feature is constant, 2 when the system is singular.
    """
    d = A.shape[0]
    L = np.empty((d, d))
    u = np.empty(d)
    s = np.empty(d)
    for i in range(d):
        if not A[i, i] > _CONSTANT_RTOL * raw[i]:
            return 1
        s[i] = 1.0 / np.sqrt(A[i, i] + alpha)
    for i in range(d):
        u[i] = b[i] * s[i]
        for j in range(d):
            L[i, j] = (A[i, j] + (alpha if i == j else 0.0)) * s[i] * s[j]
    for j in range(d):  # Cholesky, lower triangle in place
        acc = L[j, j]
        for k in range(j):
            acc -= L[j, k] * L[j, k]
        if not acc > _PIVOT_MIN * _PIVOT_MIN:
            return 2
        L[j, j] = np.sqrt(acc)
        for i in range(j + 1, d):
            acc = L[i, j]
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            L[i, j] = acc / L[j, j]
    for i in range(d):  # L v = u
        acc = u[i]
        for k in range(i):
            acc -= L[i, k] * u[k]
        u[i] = acc / L[i, i]
    for i in range(d - 1, -1, -1):  # Lᵀ w = v
        acc = u[i]
        for k in range(i + 1, d):
            acc -= L[k, i] * u[k]
        u[i] = acc / L[i, i]
    for i in range(d):
        coef[i] = u[i] * s[i]
    return 0
