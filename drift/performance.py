"""Performance prediction: estimate a classifier's accuracy on unlabeled traffic.

After Schelter, Rukat & Bießmann, "Learning to Validate the Predictions of Black Box
Classifiers on Unseen Data" (SIGMOD 2020). Drift says the inputs moved; this says whether the
*accuracy* moved, before labels arrive:

1. **Error generators** corrupt a held-out split the way broken pipelines do: missing values,
   Gaussian noise, scaling, swapped columns, category flips, outliers. Each is a small pure
   function ``(X, columns, rng, fraction) -> X'`` over a float matrix; ``columns``
   (:class:`Columns`) says which columns are numbers and which hold category codes.
2. For each of ``n_corruptions`` corrupted copies (a window-sized sample of the held-out rows,
   a random mix of generators at random fractions) the model scores the copy; its **features**
   are the percentiles 0, 5, …, 100 of the top-class probability and of each class's
   probability (one class for two), its **target** the model's true accuracy on the copy.
3. A regressor maps features to accuracy. :meth:`PerformancePredictor.estimate` reads a
   window of served probabilities and returns the estimated accuracy.

Decisions
---------
- **Missing values** are imputed as the serving path would for a model that cannot take NaN:
  by the column's mean (numbers) or most frequent code (categories), taken from the rows the
  predictor is fit on unless ``fill`` is given (pass the training split's when serving imputes
  with those). A NaN-capable model passes ``fill=np.full(d, np.nan)``.
- **Regressor**: ridge on standardised features, its penalty picked by exact leave-one-out
  error (``"ridge"``), or the mean accuracy of the ``k`` nearest corrupted copies (``"knn"``).
  The default, ``"auto"``, fits both and keeps the one of lower leave-one-out mean absolute
  error on the corrupted copies (``loo_mae_`` holds both, ``chosen_`` the one kept): ridge
  wins where accuracy moves smoothly with the score percentiles (the forests of
  ``bench.ppm``), kNN where it does not (a logistic model whose confident rows are the
  corrupted ones); on all six data set × model pairs of ``bench.ppm`` the choice was the one
  of lower test error. Both persist as plain arrays.
- **Erasure**: every meta-example is a function of many held-out rows, so no aggregate can
  shed one row. :meth:`~PerformancePredictor.forget` therefore **retrains** on the remaining
  rows with the same seed; the result equals a fresh ``fit`` without them bit for bit (the
  randomness is keyed by ``(seed, copy)``, not by the rows). Its cost is one fit: ``n_corruptions``
  window scorings plus the regression (a second or two for a 100-tree forest). To retrain, the
  predictor holds its held-out rows (``X``, codes, ids) in memory and in its artifact, as the
  models of :mod:`forget` hold theirs; a forgotten row leaves both.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 3))
>>> y = (X[:, 0] + 0.5 * rng.normal(size=2000) > 0).astype(int)
>>> def proba(Z):
...     p = 0.5 + 0.5 * np.tanh(2 * Z[:, 0])
...     return np.column_stack([1 - p, p])
>>> pp = PerformancePredictor(n_corruptions=60, window=300, seed=1)
>>> pp = pp.fit(proba, X, y, ["numeric"] * 3)
>>> round(pp.validation_accuracy_, 2), 0.5 <= pp.estimate(proba(X[:300])) <= 1.0
(0.86, True)
>>> PerformancePredictor.from_bytes(pp.to_bytes()).estimate(proba(X[:300])) == pp.estimate(
...     proba(X[:300]))
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

import forget._jit_cache  # noqa: F401  (numba's cache out of the package: before njit)
from drift.errors import DriftInputError
from forget import _persist
from forget.base import ForgetResult, Guarantee, Path
from forget.errors import ArtifactError, DuplicateRowIdsError, UnknownRowIdsError

__all__ = [
    "GENERATORS",
    "Columns",
    "PerformancePredictor",
    "category_flips",
    "corrupt",
    "gaussian_noise",
    "missing_values",
    "outliers",
    "random_mix",
    "scaling",
    "score_features",
    "swapped_columns",
]

PERCENTILES = np.arange(0.0, 101.0, 5.0)
NOISE_STD = 1.0  # Gaussian noise: this many column standard deviations
SCALE_FACTORS = (10.0, 100.0, 1000.0)  # scaling: a unit mix-up (Schelter et al.)
OUTLIER_STD = (4.0, 8.0)  # outliers: |mean ± U(4, 8)·std|
ALPHAS = 10.0 ** np.arange(-3.0, 4.5, 0.5)  # ridge penalties tried by leave-one-out

Proba = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class Columns:
    """What the generators know about the columns of ``X``.

    ``categorical[j]``: column ``j`` holds category codes; ``fill[j]``: the imputed value of a
    missing cell; ``scale[j]``: the column's standard deviation (1 where it is 0);
    ``n_codes[j]``: ``max code + 1`` of a categorical column (0 for numbers).
    """

    categorical: np.ndarray
    fill: np.ndarray
    scale: np.ndarray
    n_codes: np.ndarray

    @classmethod
    def describe(
        cls, X: np.ndarray, kinds: Sequence[str], fill: ArrayLike | None = None
    ) -> Columns:
        """Columns of ``X`` with ``kinds[j]`` in ``{"numeric", "categorical"}``."""
        d = X.shape[1]
        kinds = list(kinds)
        if len(kinds) != d:
            raise DriftInputError(f"kinds names {len(kinds)} columns, X has {d}")
        bad = sorted({k for k in kinds if k not in ("numeric", "categorical")})
        if bad:
            raise DriftInputError(f"kinds must be 'numeric' or 'categorical', got {bad}")
        cat = np.array([k == "categorical" for k in kinds], dtype=np.bool_)
        scale = X.std(axis=0)
        scale[~(scale > 0)] = 1.0
        n_codes = np.zeros(d, dtype=np.int64)
        auto = X.mean(axis=0)
        for j in np.flatnonzero(cat):
            col = X[:, j]
            if np.any(col < 0) or np.any(col != np.round(col)):
                raise DriftInputError(f"categorical column {j} holds values that are not codes")
            counts = np.bincount(col.astype(np.int64))
            n_codes[j], auto[j] = counts.size, float(np.argmax(counts))
        f = auto if fill is None else np.asarray(fill, dtype=np.float64)
        if f.shape != (d,):
            raise DriftInputError(f"fill must hold {d} values, got shape {f.shape}")
        return cls(cat, f, scale, n_codes)


# ---------------------------------------------------------------------------- generators
def _pick(eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random non-empty subset of the eligible columns, of 1 to ⌈half⌉ of them."""
    idx = np.flatnonzero(eligible)
    if idx.size == 0:
        return idx
    k = int(rng.integers(1, (idx.size + 1) // 2 + 1))
    return np.sort(rng.choice(idx, size=k, replace=False))


def _cells(
    X: np.ndarray, cols: np.ndarray, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    if not 0.0 <= fraction <= 1.0:
        raise DriftInputError(f"fraction must be in [0, 1], got {fraction}")
    return rng.random((X.shape[0], cols.size)) < fraction


def missing_values(
    X: np.ndarray, c: Columns, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    """Cells of some columns go missing, then are imputed (``c.fill``; NaN stays NaN)."""
    cols = _pick(np.ones(X.shape[1], dtype=np.bool_), rng)
    hit = _cells(X, cols, rng, fraction)
    out = X.copy()
    out[:, cols] = np.where(hit, c.fill[cols], X[:, cols])
    return out


def gaussian_noise(
    X: np.ndarray, c: Columns, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    """Cells of some numeric columns get N(0, (``NOISE_STD``·std)²) added."""
    cols = _pick(~c.categorical, rng)
    hit = _cells(X, cols, rng, fraction)
    out = X.copy()
    noise = rng.normal(size=hit.shape) * (NOISE_STD * c.scale[cols])
    out[:, cols] = X[:, cols] + np.where(hit, noise, 0.0)
    return out


def scaling(X: np.ndarray, c: Columns, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Cells of some numeric columns are multiplied by 10, 100 or 1000 (one factor a column)."""
    cols = _pick(~c.categorical, rng)
    hit = _cells(X, cols, rng, fraction)
    factor = np.asarray(SCALE_FACTORS)[rng.integers(0, len(SCALE_FACTORS), size=cols.size)]
    out = X.copy()
    out[:, cols] = np.where(hit, X[:, cols] * factor, X[:, cols])
    return out


def swapped_columns(
    X: np.ndarray, c: Columns, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    """In a share of rows, the values of two columns of the same kind trade places."""
    kinds = [k for k in (~c.categorical, c.categorical) if k.sum() >= 2]
    out = X.copy()
    if not kinds:
        return out
    pool = np.flatnonzero(kinds[int(rng.integers(0, len(kinds)))])
    a, b = rng.choice(pool, size=2, replace=False)
    hit = _cells(X, np.array([a]), rng, fraction)[:, 0]
    out[hit, a], out[hit, b] = X[hit, b], X[hit, a]
    return out


def category_flips(
    X: np.ndarray, c: Columns, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    """Cells of some categorical columns take a uniformly random code of their column."""
    cols = _pick(c.categorical, rng)
    hit = _cells(X, cols, rng, fraction)
    codes = np.floor(rng.random(hit.shape) * c.n_codes[cols])
    out = X.copy()
    out[:, cols] = np.where(hit, codes, X[:, cols])
    return out


def outliers(X: np.ndarray, c: Columns, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Cells of some numeric columns become ``|mean ± U(4, 8)·std|`` (far tails, sign kept)."""
    cols = _pick(~c.categorical, rng)
    hit = _cells(X, cols, rng, fraction)
    mag = rng.uniform(*OUTLIER_STD, size=hit.shape) * c.scale[cols]
    sign = np.where(rng.random(hit.shape) < 0.5, -1.0, 1.0)
    mean = np.nanmean(X[:, cols], axis=0) if X.shape[0] else np.zeros(cols.size)
    out = X.copy()
    out[:, cols] = np.where(hit, mean + sign * mag, X[:, cols])
    return out


Generator = Callable[[np.ndarray, Columns, np.random.Generator, float], np.ndarray]
GENERATORS: dict[str, Generator] = {
    "category_flips": category_flips,
    "gaussian_noise": gaussian_noise,
    "missing_values": missing_values,
    "outliers": outliers,
    "scaling": scaling,
    "swapped_columns": swapped_columns,
}


def random_mix(
    rng: np.random.Generator, kinds: Sequence[str], max_kinds: int = 3, clean: float = 0.1
) -> dict[str, float]:
    """1 to ``max_kinds`` of ``kinds``, each at a fraction drawn from U(0, 1); empty (a clean
    copy) with probability ``clean``."""
    unknown = sorted(set(kinds) - set(GENERATORS))
    if unknown:
        raise DriftInputError(f"unknown error generators {unknown}; known: {sorted(GENERATORS)}")
    if rng.random() < clean:
        return {}
    k = int(rng.integers(1, min(max_kinds, len(kinds)) + 1))
    chosen = rng.choice(len(kinds), size=k, replace=False)
    return {kinds[i]: float(rng.random()) for i in sorted(chosen)}


def corrupt(
    X: np.ndarray, c: Columns, rng: np.random.Generator, mix: Mapping[str, float]
) -> np.ndarray:
    """``X`` through the generators of ``mix`` (name -> fraction), in ``mix``'s order."""
    for name, fraction in mix.items():
        if name not in GENERATORS:
            raise DriftInputError(f"unknown error generator {name!r}; known: {sorted(GENERATORS)}")
        X = GENERATORS[name](X, c, rng, fraction)
    return X


# ---------------------------------------------------------------------------- features
def _check_proba(proba: Any, n_classes: int | None = None) -> np.ndarray:
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] < 1 or P.shape[1] < 2:
        raise DriftInputError(f"proba must be (rows, classes >= 2) with rows >= 1, got {P.shape}")
    if n_classes is not None and P.shape[1] != n_classes:
        raise DriftInputError(f"proba has {P.shape[1]} classes, the predictor {n_classes}")
    if not np.all(np.isfinite(P)):
        raise DriftInputError(f"proba holds {int((~np.isfinite(P)).sum())} NaN or inf values")
    return P


def score_features(proba: ArrayLike) -> np.ndarray:
    """The window's features: percentiles 0, 5, …, 100 (linear, ``np.percentile``'s default,
    up to rounding) of the top-class probability and of each class's probability (of class 1
    only when there are two), then the means of those columns, then the share of rows
    predicted as each class."""
    P = np.ascontiguousarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] < 1 or P.shape[1] < 2:
        raise DriftInputError(f"proba must be (rows, classes >= 2) with rows >= 1, got {P.shape}")
    n, k = P.shape
    cols = np.empty((2 if k == 2 else 1 + k, n), dtype=np.float64)
    out = np.empty(_n_features(k), dtype=np.float64)
    bad = _columns(P, PERCENTILES.size, cols, out)
    if bad:
        raise DriftInputError(
            f"proba holds {bad} values that are NaN, inf or outside [0, 1]: not probabilities"
        )
    cols.sort(axis=1)  # numpy's vectorised sort: 3x numba's (1,000 rows: 11 against 35 us)
    _percentiles(cols, PERCENTILES, out)
    return out


def _n_features(n_classes: int) -> int:
    c = 2 if n_classes == 2 else 1 + n_classes
    return c * (PERCENTILES.size + 1) + n_classes


@njit(cache=True)
def _columns(P, q, cols, out):  # pragma: no cover - jitted
    """Fill ``cols`` with the window's columns (top-class probability, then each class's, or
    class 1's for two), and ``out``'s means (after the ``q`` percentiles of each column) and
    class shares; the number of values outside [0, 1] or NaN (then nothing is usable).
    One pass over the rows, ``P`` read flat (it is C-contiguous)."""
    n, k = P.shape
    flat = P.ravel()
    c = cols.shape[0]
    sums = np.zeros(c)
    share = np.zeros(k)
    bad = 0
    for i in range(n):
        row = i * k
        best = 0
        top = flat[row]
        for j in range(k):
            x = flat[row + j]
            if not (0.0 <= x <= 1.0):
                bad += 1
            if x > top:
                best, top = j, x
        share[best] += 1.0
        cols[0, i] = top
        sums[0] += top
        if k == 2:
            x = flat[row + 1]
            cols[1, i] = x
            sums[1] += x
        else:
            for j in range(k):
                x = flat[row + j]
                cols[1 + j, i] = x
                sums[1 + j] += x
    if bad:
        return bad
    for m in range(c):
        out[c * q + m] = sums[m] / n
    for j in range(k):
        out[c * (q + 1) + j] = share[j] / n
    return 0


@njit(cache=True)
def _percentiles(S, pct, out):  # pragma: no cover - jitted
    """``out[m * q + t]``: percentile ``pct[t]`` of row ``m`` of ``S`` (each row sorted),
    interpolated linearly between the two order statistics around it."""
    c, n = S.shape
    q = pct.size
    for t in range(q):
        pos = pct[t] / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        w = pos - lo
        for m in range(c):
            out[m * q + t] = S[m, lo] * (1.0 - w) + S[m, hi] * w


# ---------------------------------------------------------------------------- regressors
def _standardise(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu, sd = F.mean(axis=0), F.std(axis=0)
    sd[~(sd > 1e-12)] = 1.0
    return mu, sd, (F - mu) / sd


def _fit_ridge(F: np.ndarray, t: np.ndarray) -> tuple[dict[str, np.ndarray], float]:
    """Ridge on standardised features; the penalty with the least leave-one-out error (exact:
    the hat matrix's diagonal). Its arrays, and the mean absolute leave-one-out error."""
    mu, sd, Z = _standardise(F)
    tm = t.mean()
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    Ut = U.T @ (t - tm)
    best: tuple[float, float, np.ndarray] = (np.inf, ALPHAS[0], t)
    for a in ALPHAS:
        shrink = s**2 / (s**2 + a)
        resid = (t - tm) - U @ (shrink * Ut)
        h = (U**2) @ shrink + 1.0 / t.size
        loo = resid / np.maximum(1.0 - h, 1e-12)
        mse = float(np.mean(loo**2))
        if mse < best[0]:
            best = (mse, a, loo)
    a = best[1]
    coef = Vt.T @ ((s / (s**2 + a)) * Ut)
    arrays = {"mu": mu, "sd": sd, "coef": coef, "intercept": np.array([tm]), "alpha": np.array([a])}
    return arrays, float(np.abs(best[2]).mean())


def _fit_knn(F: np.ndarray, t: np.ndarray, k: int) -> tuple[dict[str, np.ndarray], float]:
    """The copies standardised, and the mean absolute error of each copy estimated by the
    others (leave-one-out)."""
    mu, sd, Z = _standardise(F)
    Z = np.ascontiguousarray(Z)
    loo = np.array([_knn_mean(Z, t, Z[i], k, i) for i in range(t.size)]) - t
    return {"mu": mu, "sd": sd, "Z": Z, "t": t.copy()}, float(np.abs(loo).mean())


@njit(cache=True)
def _knn_mean(Z, t, z, k, skip):  # pragma: no cover - jitted
    """The mean of ``t`` over the ``k`` rows of ``Z`` nearest to ``z`` (squared Euclidean;
    of equal distances the lower row first, as a stable sort), row ``skip`` left out (-1:
    none). One pass over ``Z`` keeping the ``k`` best in order (no distance array, no sort); a
    row's distance stops being summed once it is no better than the ``k``-th best."""
    n, d = Z.shape
    kk = min(k, n - (1 if 0 <= skip < n else 0))
    if kk < 1:
        return np.nan  # no row to average (fit needs two copies: never from the predictor)
    best_d = np.empty(kk)
    best_i = np.empty(kk, dtype=np.int64)
    held = 0
    for i in range(n):
        if i == skip:
            continue
        bound = best_d[kk - 1] if held == kk else np.inf
        dist = 0.0
        for j in range(d):  # a partial sum only grows: stop once it is no better
            x = Z[i, j] - z[j]
            dist += x * x
            if not dist < bound:
                break
        if not dist < bound:
            continue
        m = held if held < kk else kk - 1  # the slot freed: the end, or the worst one's
        while m > 0 and dist < best_d[m - 1]:
            best_d[m] = best_d[m - 1]
            best_i[m] = best_i[m - 1]
            m -= 1
        best_d[m] = dist
        best_i[m] = i
        if held < kk:
            held += 1
    total = 0.0
    for m in range(kk):
        total += t[best_i[m]]
    return total / kk


# ---------------------------------------------------------------------------- the predictor
class PerformancePredictor:
    """Estimates a classifier's accuracy on a window of its output probabilities.

    Parameters
    ----------
    n_corruptions : corrupted copies of the held-out rows the regressor learns from.
    window : rows in each copy (a sample of the held-out rows); use the size of the serving
        window estimated on (the default is the monitor's ``recheck_rows``).
    kinds : error generators used in training (names in :data:`GENERATORS`).
    max_kinds : at most this many generators per copy.
    regressor : ``"auto"`` (the default: both fitted, the one of lower leave-one-out error
        kept), ``"ridge"`` or ``"knn"``; k : neighbours of ``"knn"``.
    seed : everything random derives from ``(seed, copy number)``.

    Fitted attributes: ``validation_accuracy_`` (clean held-out accuracy), ``row_ids_``,
    ``n_classes_``, ``features_`` and ``targets_`` (the meta-examples), ``chosen_`` (the
    regressor estimating: ``"ridge"`` or ``"knn"``), ``regressor_`` (its arrays), ``loo_mae_``
    (each fitted regressor's leave-one-out mean absolute error on the copies).
    ``guarantee`` is exact: :meth:`forget` retrains.
    """

    guarantee = Guarantee.EXACT

    def __init__(
        self,
        n_corruptions: int = 500,
        window: int = 1000,
        kinds: Sequence[str] = ("gaussian_noise", "missing_values", "scaling", "category_flips"),
        max_kinds: int = 3,
        regressor: str = "auto",
        k: int = 10,
        seed: int = 0,
    ) -> None:
        if regressor not in ("auto", "ridge", "knn"):
            raise ValueError(f"regressor must be 'auto', 'ridge' or 'knn', not {regressor!r}")
        if n_corruptions < 2 or window < 1 or max_kinds < 1 or k < 1:
            raise ValueError("n_corruptions >= 2, window >= 1, max_kinds >= 1 and k >= 1 needed")
        unknown = sorted(set(kinds) - set(GENERATORS))
        if unknown or not kinds:
            raise ValueError(f"kinds must name generators of {sorted(GENERATORS)}, got {unknown}")
        self.n_corruptions = n_corruptions
        self.window = window
        self.kinds = tuple(kinds)
        self.max_kinds = max_kinds
        self.regressor = regressor
        self.k = k
        self.seed = seed
        self._proba: Proba | None = None

    # -------------------------------------------------------------- fitting
    def fit(
        self,
        predict_proba: Proba,
        X: ArrayLike,
        y: ArrayLike,
        kinds: Sequence[str],
        *,
        row_ids: ArrayLike | None = None,
        fill: ArrayLike | None = None,
    ) -> PerformancePredictor:
        """Learn from corrupted copies of the held-out rows ``X`` with true classes ``y``.

        ``y[i]`` is the column of ``predict_proba``'s output that holds row ``i``'s class;
        ``kinds`` gives each column's kind; ``row_ids`` name the rows (for :meth:`forget`).
        """
        Xv = np.asarray(X, dtype=np.float64)
        if Xv.ndim != 2:
            raise DriftInputError(f"X must be 2-d, got shape {Xv.shape}")
        n = Xv.shape[0]
        yv = np.asarray(y)
        if yv.shape != (n,):
            raise DriftInputError(f"y must hold {n} classes, got shape {yv.shape}")
        if n < 20:
            raise DriftInputError(f"a performance predictor needs >= 20 held-out rows, got {n}")
        if not np.all(np.isfinite(Xv)):
            raise DriftInputError("X holds NaN or inf: pass held-out rows as the model sees them")
        ids = np.arange(n, dtype=np.int64) if row_ids is None else np.asarray(row_ids)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise DriftInputError(f"row_ids must be {n} integers, got {ids.dtype} {ids.shape}")
        uniq, counts = np.unique(ids, return_counts=True)
        if uniq.size != n:
            raise DuplicateRowIdsError(uniq[counts > 1].tolist())
        cols = Columns.describe(Xv, kinds, fill)
        clean = _check_proba(predict_proba(Xv))
        k = clean.shape[1]
        if not (np.issubdtype(yv.dtype, np.integer) and yv.min() >= 0 and yv.max() < k):
            raise DriftInputError(f"y must be class columns 0..{clean.shape[1] - 1} of the proba")
        self._X, self._y, self._kinds = Xv.copy(), yv.astype(np.int64), list(kinds)
        self._fill = None if fill is None else np.asarray(fill, dtype=np.float64).copy()
        self.row_ids_ = ids.astype(np.int64)
        self.n_classes_ = int(clean.shape[1])
        self.validation_accuracy_ = float(np.mean(clean.argmax(axis=1) == self._y))
        self._proba = predict_proba
        m = min(self.window, n)
        copies, truth = [], []
        for i in range(self.n_corruptions):
            rng = np.random.default_rng([self.seed, i])
            pos = np.sort(rng.choice(n, size=m, replace=False))
            mix = random_mix(rng, self.kinds, self.max_kinds)
            copies.append(corrupt(Xv[pos], cols, rng, mix))
            truth.append(self._y[pos])
        P = _check_proba(predict_proba(np.vstack(copies)), self.n_classes_)
        feats, acc = [], []
        for i in range(self.n_corruptions):
            Pi = P[i * m : (i + 1) * m]
            feats.append(score_features(Pi))
            acc.append(np.mean(Pi.argmax(axis=1) == truth[i]))
        self.features_, self.targets_ = np.array(feats), np.array(acc, dtype=np.float64)
        fitted = {}
        if self.regressor in ("auto", "ridge"):
            fitted["ridge"] = _fit_ridge(self.features_, self.targets_)
        if self.regressor in ("auto", "knn"):
            fitted["knn"] = _fit_knn(self.features_, self.targets_, self.k)
        self.loo_mae_ = {name: loo for name, (_, loo) in fitted.items()}
        self.chosen_ = min(fitted, key=lambda name: self.loo_mae_[name])  # a tie: ridge
        self.regressor_ = fitted[self.chosen_][0]
        return self

    # -------------------------------------------------------------- estimating
    def estimate(self, proba: ArrayLike) -> float:
        """Estimated accuracy of the model on the rows whose probabilities are ``proba``."""
        if not hasattr(self, "regressor_"):
            raise DriftInputError("the performance predictor is not fitted")
        P = np.asarray(proba)
        if P.ndim != 2 or P.shape[1] != self.n_classes_:
            raise DriftInputError(
                f"proba must be (rows, {self.n_classes_}) for this predictor, got {P.shape}"
            )
        f = score_features(P)
        r = self.regressor_
        z = (f - r["mu"]) / r["sd"]
        if self.chosen_ == "ridge":
            est = float(z @ r["coef"] + r["intercept"][0])
        else:
            est = _knn_mean(r["Z"], r["t"], z, self.k, -1)
        return min(1.0, max(0.0, est))

    # -------------------------------------------------------------- erasure
    def forget(self, row_ids: ArrayLike, predict_proba: Proba | None = None) -> ForgetResult:
        """Retrain without the held-out rows ``row_ids`` (same seed): equal to a fresh fit.

        Pass the model's current ``predict_proba`` when the model itself changed (it forgot
        the same subject) or after :meth:`from_bytes`; otherwise the one given to ``fit`` is
        used. Unknown or repeated ids are refused before anything changes.
        """
        t0 = time.perf_counter()
        proba = predict_proba if predict_proba is not None else self._proba
        if proba is None:
            raise DriftInputError("forget needs the model's predict_proba after from_bytes")
        ids = np.asarray(row_ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise DriftInputError(f"row_ids must be a 1-d array of integers, got {ids.dtype}")
        uniq, counts = np.unique(ids.astype(np.int64), return_counts=True)
        if uniq.size != ids.size:
            raise DuplicateRowIdsError(uniq[counts > 1].tolist())
        unknown = uniq[~np.isin(uniq, self.row_ids_)]
        if unknown.size:
            raise UnknownRowIdsError(unknown.tolist(), "performance predictor")
        keep = ~np.isin(self.row_ids_, uniq)
        self.fit(
            proba, self._X[keep], self._y[keep], self._kinds,
            row_ids=self.row_ids_[keep], fill=self._fill,
        )  # fmt: skip
        return ForgetResult(
            row_ids=tuple(int(i) for i in ids),
            guarantee=Guarantee.EXACT,
            paths=tuple(Path.SLOW for _ in range(ids.size)),
            seconds=time.perf_counter() - t0,
            details={"rows_left": float(keep.sum())},
        )

    # -------------------------------------------------------------- persistence
    def _params(self) -> dict[str, Any]:
        return {
            "n_corruptions": self.n_corruptions,
            "window": self.window,
            "kinds": list(self.kinds),
            "max_kinds": self.max_kinds,
            "regressor": self.regressor,
            "k": self.k,
            "seed": self.seed,
        }

    def to_bytes(self) -> bytes:
        """An ``.npz`` artifact (:mod:`forget._persist`): arrays and JSON, no pickle."""
        if not hasattr(self, "regressor_"):
            raise DriftInputError("the performance predictor is not fitted")
        state = {
            "validation_accuracy": self.validation_accuracy_,
            "n_classes": self.n_classes_,
            "column_kinds": self._kinds,
            "chosen": self.chosen_,
            "loo_mae": self.loo_mae_,
        }
        arrays = {
            "X": self._X, "y": self._y, "row_ids": self.row_ids_,
            "features": self.features_, "targets": self.targets_,
            **{f"reg_{k}": v for k, v in self.regressor_.items()},
        }  # fmt: skip
        if self._fill is not None:
            arrays["fill"] = self._fill
        return _persist.dump("PerformancePredictor", self._params(), state, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformancePredictor:
        """The predictor :meth:`to_bytes` wrote (``forget.errors.ArtifactError`` otherwise)."""
        _, params, state, arrays = _persist.load(data, "PerformancePredictor")
        pp = cls(**params)
        pp._X, pp._y, pp.row_ids_ = arrays["X"], arrays["y"], arrays["row_ids"]
        pp._kinds = list(state["column_kinds"])
        pp._fill = arrays.get("fill")
        pp.features_, pp.targets_ = arrays["features"], arrays["targets"]
        pp.regressor_ = {k[4:]: v for k, v in arrays.items() if k.startswith("reg_")}
        pp.validation_accuracy_ = float(state["validation_accuracy"])
        pp.n_classes_ = int(state["n_classes"])
        pp.chosen_ = str(state.get("chosen", pp.regressor))  # before "auto": the one fitted
        pp.loo_mae_ = {str(k): float(v) for k, v in state.get("loo_mae", {}).items()}
        if pp.chosen_ not in ("ridge", "knn") or pp.regressor not in ("auto", pp.chosen_):
            raise ArtifactError(f"the artifact's regressor {pp.chosen_!r} is not one it fits")
        return pp
