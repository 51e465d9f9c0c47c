"""L2-regularised logistic regression with certified removal (Guo et al., ICML 2020).

Each binary problem minimises ``J_D(θ) = Σ_{i∈D} ℓ(t_i, a_iᵀθ) + λ|D|/2 ||θ||²`` over
``θ = (w, b)``, where ``a_i = (x_i, 1)``; as in Guo et al. the intercept is penalised too, so
``J_D`` is ``λ|D|``-strongly convex. Removing rows ``S`` takes one Newton step with the Hessian of
the remaining data, ``θ⁻ = θ + v`` with ``v = H⁻¹Δ`` and ``Δ = Σ_{i∈S} ∇ℓ_i(θ) + λ|S|θ``.

The bound. The step leaves the gradient residual ``Σ_i a_i r_i`` over the remaining rows ``A``,
where ``r_i = ℓ'(z_i + u_i) - ℓ'(z_i) - ℓ''(z_i) u_i`` and ``u = Av``; as ``ℓ''`` is
``γ``-Lipschitz (``γ = 1/4`` is above its constant, ``1/(6√3)``), ``|r_i| <= γ u_i²`` and the
residual is at most ``γ ||A|| ||u∘u||`` (plus ``||Hv - Δ||``, what the linear solve left).
Guo et al. bound ``||u∘u||`` by ``||v|| ||Av||``, which needs ``||a_i|| <= 1``: with larger
rows their bound was broken (up to 15x at feature scale 100). ``|u_i|`` itself needs no such
assumption, and is never larger when it holds, so the model neither rescales nor clips (a scaler
fitted on ``D`` would itself be state taken from rows that may be erased). Large features give
large, honest bounds, and more refits; standardise with a data-independent scale for smaller
ones. Residuals add up over deletions, starting from the (measured) residual of the fit. While
their sum ``β`` stays within ``removal_budget`` the model is within ``β / (λ n)`` (Euclidean) of
the exact minimiser on the remaining ``n`` rows; past the budget it refits exactly and ``β``
resets.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import cho_factor, cho_solve, eigvalsh
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from forget import _persist
from forget._rows import HoldsRows, RowIndex, as_row_ids
from forget.base import ForgetResult, Guarantee, Path
from forget.errors import ArtifactError, EmptyModelError

_GAMMA = 0.25  # Lipschitz constant used for ℓ'' of the logistic loss (Guo et al.)


class LogisticRegression(HoldsRows, ClassifierMixin, BaseEstimator):
    """Logistic regression whose ``forget`` is a Newton step within a certified bound.

    Binary, or one-vs-rest for more classes (one bound per class, the largest reported).

    Parameters
    ----------
    lam : float, default=1e-3
        L2 strength ``λ`` of the mean loss: the objective is ``mean ℓ + λ/2 ||θ||²``
        (``λ = 1 / (C n)`` in scikit-learn's terms). The intercept is penalised too.
    fit_intercept : bool, default=True
    max_iter : int, default=100
        Newton iterations for a (re)fit.
    tol : float, default=1e-10
        A fit stops when the gradient norm of the mean objective is below ``tol``.
    removal_budget : float, default=1.0
        Largest accumulated gradient-residual bound ``β`` (of the summed objective ``J``);
        the deletion that would exceed it is done by an exact refit instead. ``inf`` never
        refits; ``0`` refits on every deletion (then nothing in the model depends on erased
        rows, see Notes).
    classes : array-like or None, default=None
        The classes; taken from ``y`` when None, and then a class whose last row is forgotten
        leaves ``classes_`` (its one-vs-rest problem goes with it), as in a refit. Declared
        classes stay.

    Attributes
    ----------
    classes_, coef_ (n_problems, n_features), intercept_ (n_problems,), n_features_in_
    bound_ : float
        The accumulated bound ``β`` now.
    n_iter_ : ndarray
        Newton iterations of each problem's last (re)fit in this process; not saved.
    n_refits_ : int
        Refits triggered by ``forget`` since the model was fitted or loaded; not saved.

    Notes
    -----
    What the model keeps after ``forget(S)``, against a refit on ``D \\ S``: the rows (``A``,
    label codes, ids: the remaining rows only, in fit order), ``classes_`` and ``n`` are
    exactly the refit's; it keeps no means, scales or sums of the fit. Two numbers depend on
    the erased rows, and that is the approximation: the Newton-updated weights ``θ``
    (``coef_``, ``intercept_``), within ``β / (λ n)`` of the refit's, and ``β`` itself (a sum
    of the steps' bounds). This model does not add Guo et al.'s objective perturbation, so the
    bound is on the distance to the retrained model, not an (ε, δ) indistinguishability
    certificate: someone holding the remaining rows can search for the row whose
    fit-then-forget reproduces ``θ``, and find it. Where that matters, ``removal_budget=0``
    refits on every deletion; ``θ`` is then exactly a refit's.

    Examples
    --------
    >>> import numpy as np
    >>> from forget.logistic import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    >>> m = LogisticRegression(lam=1e-2).fit(X, y)
    >>> r = m.forget([0, 1, 2])
    >>> r.guarantee.value, r.bound < m.removal_budget, r.paths[0].value
    ('approximate', True, 'fast')
    >>> ref = LogisticRegression(lam=1e-2).fit(X[3:], y[3:])
    >>> bool(np.linalg.norm(m.coef_ - ref.coef_) <= r.details["distance_bound"])
    True
    >>> bool((m.gradient_norms() <= m.bound_).all())
    True
    """

    guarantee = Guarantee.APPROXIMATE
    _fitted_attr = "classes_"
    # artifact entries that depend on erased rows (the approximation, see Notes); the rest of
    # the artifact is exactly a refit's (checks.check_state_equals_refit compares it)
    _approximate_state = ("theta", "beta")

    def __init__(
        self,
        lam: float = 1e-3,
        fit_intercept: bool = True,
        max_iter: int = 100,
        tol: float = 1e-10,
        removal_budget: float = 1.0,
        classes: ArrayLike | None = None,
    ) -> None:
        self.lam = lam
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.removal_budget = removal_budget
        self.classes = classes

    # ------------------------------------------------------------------ fitting
    def fit(
        self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None
    ) -> LogisticRegression:
        """Fit on ``X, y`` by Newton's method; ``row_ids`` names the rows (``0..n-1``)."""
        for name in ("lam", "tol"):
            value = float(getattr(self, name))
            if not 0 < value < np.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not float(self.removal_budget) >= 0:
            raise ValueError(f"removal_budget must be a number >= 0, got {self.removal_budget!r}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter!r}")
        Xv, yv = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(yv)
        classes = np.unique(yv) if self.classes is None else np.unique(np.asarray(self.classes))
        unseen = ~np.isin(yv, classes)
        if unseen.any():
            raise ValueError(f"y holds labels not in classes: {np.unique(yv[unseen])[:10]}")
        if classes.size < 2:
            raise ValueError(f"LogisticRegression needs 2 classes; got {classes.size} class")
        ids = as_row_ids(row_ids, Xv.shape[0])
        ones = np.ones((Xv.shape[0], 1 if self.fit_intercept else 0))
        yk = np.searchsorted(classes, yv).astype(np.int64)
        self._install(np.ascontiguousarray(np.hstack([Xv, ones])), yk, ids, classes)
        n_problems = self._theta.shape[0]
        self.n_iter_ = np.zeros(n_problems, dtype=np.int64)
        self._refit(np.arange(n_problems))
        return self

    def _install(self, A: np.ndarray, yk: np.ndarray, ids: np.ndarray, classes: np.ndarray) -> None:
        """Take the rows (all alive) and classes; weights and bounds start at zero."""
        self.classes_ = classes
        self._index = RowIndex(ids)
        self._A, self._yk, self._n = A, yk, A.shape[0]
        self._counts = np.bincount(yk, minlength=classes.size)
        n_problems = 1 if classes.size == 2 else classes.size
        self._theta = np.zeros((n_problems, A.shape[1]))
        self._beta = np.zeros(n_problems)
        self.n_refits_ = 0

    def _targets(self, k: int, yk: np.ndarray) -> np.ndarray:
        return (yk == (1 if self._theta.shape[0] == 1 else k)).astype(np.float64)

    def _refit(self, problems: np.ndarray) -> None:
        """Exact (to ``tol``) fit of the given problems on the remaining rows; resets β."""
        alive = self._index.alive
        A, yk = self._A[alive], self._yk[alive]
        lam, n = float(self.lam), A.shape[0]
        for k in problems:
            t = self._targets(k, yk)
            theta, self.n_iter_[k], converged = _newton(
                A, t, lam * n, float(self.tol) * n, int(self.max_iter)
            )
            residual = float(np.linalg.norm(A.T @ (expit(A @ theta) - t) + lam * n * theta))
            if not converged:
                warnings.warn(
                    f"LogisticRegression did not reach tol={self.tol} in {self.max_iter} "
                    f"Newton iterations (gradient norm {residual / n:.3g}); "
                    "standardise the features or raise max_iter",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            self._theta[k] = theta
            self._beta[k] = residual  # the bound starts at the fit's own gradient residual

    # ------------------------------------------------------------------ predicting
    @property
    def coef_(self) -> np.ndarray:
        d = self.n_features_in_
        return self._theta[:, :d]

    @property
    def intercept_(self) -> np.ndarray:
        d = self.n_features_in_
        return self._theta[:, d] if self.fit_intercept else np.zeros(self._theta.shape[0])

    @property
    def bound_(self) -> float:
        return float(self._beta.max())

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Margins ``Xw + b``: shape (n,) for two classes, (n, n_classes) otherwise."""
        check_is_fitted(self, "classes_")
        Xv = validate_data(self, X, dtype=np.float64, reset=False)
        scores = Xv @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities (one-vs-rest scores normalised for more than two classes)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = expit(scores)
            return np.column_stack([1.0 - p, p])
        log_p = -np.logaddexp(0.0, -scores)  # log σ(s), normalised in log space (no 0/0)
        p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable class of each row of ``X``."""
        scores = self.decision_function(X)
        idx = (scores > 0).astype(np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[idx]

    # ------------------------------------------------------------------ forgetting
    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove rows by one Newton step each problem, or by a refit past the budget.

        Raises (changing nothing) ``UnknownRowIdsError`` (also for an id forgotten before),
        ``DuplicateRowIdsError`` or ``EmptyModelError`` (no rows, or, with ``classes`` not
        declared, a single class would be left).
        """
        start = time.perf_counter()
        pos = self._resolve_forget(row_ids)
        ids = tuple(self._index.ids[pos].tolist())  # before drop() scrubs them
        refit = np.zeros(self._theta.shape[0], dtype=np.bool_)
        n_dropped = 0
        if pos.size:
            A_S, y_S = self._A[pos].copy(), self._yk[pos].copy()
            counts = self._counts - np.bincount(y_S, minlength=self._counts.size)
            keep = counts > 0 if self.classes is None else np.ones(counts.size, dtype=np.bool_)
            if keep.sum() < 2:
                raise EmptyModelError(
                    f"forgetting {pos.size} rows would leave {type(self).__name__} with one "
                    f"class, {self.classes_[keep].tolist()}; declare classes when fitting "
                    "(a one-class model then predicts it), or delete the model"
                )
            problems = self._problems_kept(keep)
            # the removed rows' targets in the problems as they were (J_D), for Δ below
            T_S = np.array([self._targets(int(k), y_S) for k in problems])
            self._index.drop(pos)
            self._A[pos] = 0.0  # a zero row adds nothing to gradients, Hessians or the Gram
            self._yk[pos] = 0
            self._n -= pos.size
            self._counts = counts
            n_dropped = int((~keep).sum())
            if n_dropped:
                self._drop_classes(keep, problems)
            refit = self._newton_steps(A_S, T_S)
            if refit.any():
                self._refit(np.flatnonzero(refit))
                self.n_refits_ += 1
        path = Path.SLOW if refit.any() else Path.FAST
        return ForgetResult(
            row_ids=ids,
            guarantee=self.guarantee,
            paths=(path,) * len(ids),
            seconds=time.perf_counter() - start,
            bound=self.bound_,
            details={
                "refit": float(refit.any()),
                "distance_bound": self.bound_ / (float(self.lam) * self._n),
                "classes_dropped": float(n_dropped),
            },
        )

    def _problems_kept(self, keep: np.ndarray) -> np.ndarray:
        """Which problems stay when only the classes ``keep`` remain, in their new order.

        One-vs-rest problem ``k`` (class ``k`` against the rest) does not change when another
        class loses all its rows. Down to two classes ``a < b`` the binary problem is ``b``
        against ``a``: one-vs-rest problem ``b`` as it stands.
        """
        if self._theta.shape[0] == 1:
            return np.zeros(1, dtype=np.int64)
        kept = np.flatnonzero(keep)
        return kept[1:] if kept.size == 2 else kept

    def _drop_classes(self, keep: np.ndarray, problems: np.ndarray) -> None:
        alive = self._index.alive
        self._yk[alive] = (np.cumsum(keep) - 1)[self._yk[alive]]
        self.classes_, self._counts = self.classes_[keep], self._counts[keep]
        self._theta, self._beta = self._theta[problems], self._beta[problems]
        self.n_iter_ = self.n_iter_[problems]

    def _newton_steps(self, A_S: np.ndarray, T_S: np.ndarray) -> np.ndarray:
        """One Newton step per problem after removing rows ``A_S`` (targets ``T_S``).

        Adds each step's bound to ``β`` (see the module docstring); returns the problems whose
        step would take ``β`` past ``removal_budget``, left for an exact refit.
        """
        budget = float(self.removal_budget)
        if budget == 0:
            return np.ones(self._theta.shape[0], dtype=np.bool_)
        lam = float(self.lam)
        lam_n = lam * self._n
        A = self._A  # erased rows are zero here: they add nothing to any sum below
        norm_A = np.sqrt(max(float(eigvalsh(A.T @ A)[-1]), 0.0))
        Z = A @ self._theta.T
        refit = np.zeros(self._theta.shape[0], dtype=np.bool_)
        for k in range(self._theta.shape[0]):
            theta = self._theta[k]
            delta = A_S.T @ (expit(A_S @ theta) - T_S[k]) + lam * A_S.shape[0] * theta
            H = _hessian(A, Z[:, k], lam_n)
            v = cho_solve(cho_factor(H), delta)
            u = A @ v
            # ||u∘u|| as a plain sum: norm() of a long vector goes to a threaded BLAS dot
            step_bound = _GAMMA * norm_A * float(np.sqrt(np.sum(np.square(u * u))))
            step_bound += float(np.linalg.norm(H @ v - delta))
            if self._beta[k] + step_bound > budget:
                refit[k] = True
            else:
                self._theta[k] = theta + v
                self._beta[k] += step_bound
        return refit

    def gradient_norms(self) -> np.ndarray:
        """The actual gradient norm of each problem's objective ``J`` on the remaining rows.

        Never above the certified bound ``β``, whatever the scale of the features (see the
        module docstring); evaluating it in floating point adds rounding of order
        ``1e-16 · Σ ||a_i||``. Costs a pass over the data.
        """
        alive = self._index.alive
        A, yk, lam_n = self._A[alive], self._yk[alive], float(self.lam) * self._n
        return np.array(
            [
                np.linalg.norm(A.T @ (expit(A @ th) - self._targets(k, yk)) + lam_n * th)
                for k, th in enumerate(self._theta)
            ]
        )

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """Serialise the fitted model (no pickle; see :mod:`forget._persist`).

        The remaining rows only, in fit order: what a refit on them writes, but ``theta`` and
        ``beta`` (see Notes of the class).
        """
        check_is_fitted(self, "classes_")
        params = self.get_params()
        if params["classes"] is not None:
            params["classes"] = np.asarray(params["classes"]).tolist()
        params["removal_budget"] = float(params["removal_budget"])
        classes = self.classes_.astype(str) if self.classes_.dtype == object else self.classes_
        live = self._index.live()
        arrays = {
            "A": self._A[live],
            "yk": self._yk[live],
            "ids": self._index.ids[live],
            "classes": classes,
            "theta": self._theta,
            "beta": self._beta,
        }
        if hasattr(self, "feature_names_in_"):
            arrays["feature_names"] = np.asarray(self.feature_names_in_, dtype=str)
        state = {"n_features_in": int(self.n_features_in_)}
        return _persist.dump(type(self).__name__, params, state, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> LogisticRegression:
        """Load a model written by :meth:`to_bytes`; raise ``ArtifactError`` on bad bytes."""
        _, params, state, a = _persist.load(data, kind=cls.__name__)
        m = cls(**params)
        try:
            A, yk, classes = np.array(a["A"], dtype=np.float64), a["yk"], a["classes"]
            ids = as_row_ids(a["ids"], A.shape[0])
            theta, beta = np.array(a["theta"], dtype=np.float64), np.array(a["beta"])
            n_problems = 1 if classes.size == 2 else classes.size
            if yk.dtype != np.int64 or yk.shape != ids.shape or theta.shape[0] != n_problems:
                raise ValueError("label codes, ids and weights disagree")
            if yk.size and (yk.min() < 0 or yk.max() >= classes.size):
                raise ValueError("label codes out of range")
            m._install(A, yk.copy(), ids, classes)
            m._theta, m._beta = theta, beta
            m.n_iter_ = np.zeros(n_problems, dtype=np.int64)
            m.n_features_in_ = int(state["n_features_in"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ArtifactError(f"corrupt {cls.__name__} artifact: {exc}") from None
        if "feature_names" in a:
            m.feature_names_in_ = a["feature_names"].astype(object)
        return m


def _newton(
    A: np.ndarray, t: np.ndarray, ridge: float, gtol: float, max_iter: int
) -> tuple[np.ndarray, int, bool]:
    """Minimise ``J`` by damped Newton; stop at ``||∇J|| <= gtol`` or at rounding level."""
    theta = np.zeros(A.shape[1])
    for it in range(1, max_iter + 1):
        z = A @ theta
        g = A.T @ (expit(z) - t) + ridge * theta
        if np.linalg.norm(g) <= gtol:
            return theta, it, True
        step = -cho_solve(cho_factor(_hessian(A, z, ridge)), g)
        obj, decrease = _objective(z, t, theta, ridge), float(g @ step)
        s = 1.0
        # Backtracking (Armijo), unless the predicted decrease is below what float
        # arithmetic can see in J: then θ is at θ* up to rounding and Newton's step is safe.
        while -decrease > 1e-13 * (1.0 + abs(obj)) and s > 1e-10:
            if _objective(A @ (theta + s * step), t, theta + s * step, ridge) <= (
                obj + 1e-4 * s * decrease
            ):
                break
            s *= 0.5
        theta = theta + s * step
        if np.linalg.norm(s * step) <= 1e-15 * (1.0 + np.linalg.norm(theta)):
            return theta, it, True  # no further progress possible in float64
    return theta, max_iter, False


def _hessian(A: np.ndarray, z: np.ndarray, ridge: float) -> np.ndarray:
    """``Aᵀ diag(σ(z)(1 - σ(z))) A + ridge I`` (zeroed rows contribute nothing)."""
    p = expit(z)
    H = (A * (p * (1.0 - p))[:, None]).T @ A
    H.flat[:: H.shape[0] + 1] += ridge
    return H


def _objective(z: np.ndarray, t: np.ndarray, theta: np.ndarray, ridge: float) -> float:
    return float(np.logaddexp(0.0, z).sum() - t @ z + 0.5 * ridge * (theta @ theta))
