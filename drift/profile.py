"""The reference profile of a model version's training data: one marginal summary per feature.

A numeric feature keeps its count, missing count, mean, standard deviation and a **sorted
sample of at most** ``max_sample`` **of its values** (all of them when there are fewer). The
sample is a *keyed bottom-k sample by row id*: each row gets a priority, a keyed hash of
``(seed, feature index, row id)``, and the sample holds the values of the ``max_sample``
finite rows of smallest priority. A row's place in the order depends on nothing but its own
id, so the same data and seed give the same profile, and a profile can **forget rows**
(:meth:`ReferenceProfile.remove`) and hold exactly what :meth:`ReferenceProfile.fit` on the
remaining rows would: rows leaving the sample are replaced by the next rows in priority order,
held in a *reserve* beside it. Mean and std come from exact sums (``forget._exact``: the sum
and the sum of squares as exact digit sums, rounded once), so removal gives them bit for bit.
A categorical feature keeps its distinct values and their counts (and, optionally, names for
the codes).

What the profile holds about people. No training row is serialised: each feature's values are
sorted on their own, and each feature samples *different* rows (its own key), so nothing in
:meth:`~ReferenceProfile.to_dict` links a value of one feature to a value of another. What
remains are marginal values — a person's age may be among the 10,000 ages kept, as it is among
the training data's marginal counts — so a profile is still derived from personal data: keep
it with the model version it describes, and take erased rows out of it (``remove``) or rebuild
it. In memory, a fitted profile also holds the row ids, in priority order, of each numeric
feature's sample and reserve (:class:`Kept`): that is what lets it forget a row by id. They are
never serialised; a profile read back from bytes cannot forget rows (``remove`` says so by
returning None) and is rebuilt instead. It serialises to a JSON-able dict or UTF-8 JSON bytes
(:meth:`~ReferenceProfile.to_dict`, :meth:`~ReferenceProfile.to_bytes`); no pickle.

>>> import numpy as np
>>> X = np.array([[30.0, 0.0], [40.0, 1.0], [50.0, 1.0]])
>>> p = ReferenceProfile.fit(X, ["age", "sex"], categorical=["sex"])
>>> [f.kind for f in p.features], p.features[1].counts.tolist()
(['numeric', 'categorical'], [1, 2])
>>> ReferenceProfile.from_bytes(p.to_bytes()).to_dict() == p.to_dict()
True
>>> q = p.remove([1], X[[1]])  # row id 1 leaves: as if fitted on rows 0 and 2
>>> q.to_dict() == ReferenceProfile.fit(X[[0, 2]], ["age", "sex"], categorical=["sex"],
...                                      row_ids=[0, 2]).to_dict()
True
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.errors import DriftInputError, ProfileFormatError
from forget._exact import LIMBS, LOW_BIT, MAX_ABS, normalise, place_terms

__all__ = ["CategoricalFeature", "Kept", "NumericFeature", "ReferenceProfile", "priorities"]

FORMAT = "forget.drift.profile"
VERSION = 1
MAX_CATEGORIES = 10_000
MIN_RESERVE = 64
_CHUNK = 1 << 28  # values per carry pass: 3 terms each, a digit absorbs 2**30 terms


@dataclass(frozen=True, eq=False)
class Kept:
    """What a numeric feature needs to forget rows: in memory only, never serialised.

    ``row_ids`` and ``values`` are the sample's rows then the reserve's, in priority order
    (the order is all removal needs, so the priorities themselves are not kept); the first
    ``n_sample`` are the sample. ``sums`` are the exact sum and sum of squares of every
    finite value (two normalised digit rows of ``forget._exact``).
    """

    row_ids: np.ndarray
    values: np.ndarray
    n_sample: int
    sums: np.ndarray

    @property
    def reserve(self) -> np.ndarray:
        """The reserve's values, in priority order."""
        return self.values[self.n_sample :]


@dataclass(frozen=True, eq=False)
class NumericFeature:
    """A numeric feature's summary: a sorted sample of finite values, and exact moments.

    ``count`` and ``missing`` are the reference's finite and missing (NaN, ±inf) values;
    ``mean`` and ``std`` (population) are over all finite values, not just the sample (whose
    zeros are all +0.0). ``kept`` (not serialised, not compared) is what
    :meth:`ReferenceProfile.remove` needs; None in a profile read back from bytes.
    """

    name: str
    sample: np.ndarray
    count: int
    missing: int
    mean: float
    std: float
    kept: Kept | None = field(default=None, repr=False, compare=False)
    kind: str = field(default="numeric", init=False)

    @property
    def scale(self) -> float:
        """The unit effect sizes are measured in: the std, or 1.0 for a constant feature."""
        return self.std if self.std > 0 else 1.0


@dataclass(frozen=True, eq=False)
class CategoricalFeature:
    """A categorical feature's summary: its distinct values (sorted) and their counts.

    ``labels[i]``, when given, names the integer code ``i`` (as in
    ``forget.datasets.Dataset.categories``); used only to word alerts.
    """

    name: str
    categories: np.ndarray
    counts: np.ndarray
    missing: int
    labels: tuple[str, ...] | None = None
    kind: str = field(default="categorical", init=False)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def describe(self, value: float) -> str:
        """``17``, or ``3 ('Private')`` when the code has a label."""
        v = int(value) if float(value).is_integer() else value
        text = str(v)
        if self.labels is not None and isinstance(v, int) and 0 <= v < len(self.labels):
            text += f" ({self.labels[v]!r})"
        return text


Feature = NumericFeature | CategoricalFeature


# ---------------------------------------------------------------------- keyed priorities
_GAMMA = np.array([0x9E3779B97F4A7C15], dtype=np.uint64)  # arrays: uint64 wraps silently


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that scrambles every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def priorities(row_ids: np.ndarray, seed: int, feature: int) -> np.ndarray:
    """Each row's priority in feature ``feature``'s sample: a keyed hash of the row id.

    The key is derived from ``(seed, feature)``, so features order the rows independently;
    for one key, distinct ids get distinct priorities (every step is a bijection of uint64),
    so the order has no ties.

    >>> p = priorities(np.arange(4), seed=0, feature=0)
    >>> p.dtype, len(set(p.tolist())), bool((p != priorities(np.arange(4), 0, 1)).all())
    (dtype('uint64'), 4, True)
    """
    key = _mix(np.array([seed % 2**64], dtype=np.uint64) + _GAMMA)
    key = _mix(key + _GAMMA * np.array([feature + 1], dtype=np.uint64))
    ids = np.ascontiguousarray(row_ids, dtype=np.int64).view(np.uint64)
    return _mix(ids * _GAMMA + key)


# ---------------------------------------------------------------------- exact moments
def _square(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v·v`` as ``p + e`` exactly (Dekker's product; exact while ``v²`` does not underflow,
    and the same two doubles for the same ``v`` whatever else is summed)."""
    c = 134217729.0 * v
    hi = c - (c - v)
    lo = v - hi
    p = v * v
    return p, ((hi * hi - p) + 2.0 * (hi * lo)) + lo * lo


def _place(sums: np.ndarray, values: np.ndarray, sign: int) -> None:
    """Add (``sign`` 1) or subtract (-1) ``values`` and their squares to ``sums`` (exact)."""
    lead = np.full(2, -1, dtype=np.int64)
    for start in range(0, values.size, _CHUNK):
        v = np.ascontiguousarray(values[start : start + _CHUNK], dtype=np.float64)
        p, e = _square(v)
        terms = np.concatenate([v, p, e])
        target = np.repeat(np.array([0, 1, 1], dtype=np.int64), v.size)
        touched = np.array([LIMBS, -1], dtype=np.int64)
        place_terms(sums, target, terms, terms.size, sign, touched)
        normalise(sums, 0, 2, touched, lead)


def _integer(digits: np.ndarray) -> int:
    """A normalised digit row as an exact integer (in units of ``2**LOW_BIT``)."""
    low = int.from_bytes(digits[:-1].astype("<u4").tobytes(), "little")
    return low + (int(digits[-1]) << (32 * (LIMBS - 1)))


def _moments(sums: np.ndarray, n: int) -> tuple[float, float]:
    """Mean and population std from the exact sums: ``Σx / n`` correctly rounded, and the
    square root of the correctly rounded ``(nΣx² - (Σx)²) / n²`` (exact integers, so a
    constant feature has std 0.0 exactly)."""
    if n == 0:
        return 0.0, 0.0
    s1, s2 = _integer(sums[0]), _integer(sums[1])
    unit = 1 << -LOW_BIT
    mean = s1 / (n * unit)  # int / int: correctly rounded
    var = (n * s2 * unit - s1 * s1) / (n * n * unit * unit)
    return mean, math.sqrt(max(var, 0.0))


def _check_magnitude(name: str, values: np.ndarray) -> None:
    if values.size and float(np.abs(values).max()) >= MAX_ABS:
        raise DriftInputError(
            f"numeric feature {name!r} has values of magnitude {float(np.abs(values).max()):.3g}:"
            " the profile keeps exact sums of squares, values must be below 2**480 (~3e144)"
        )


def _finite(col: np.ndarray) -> np.ndarray:
    return col[np.isfinite(col)]


def _row_ids(row_ids: Any, n: int) -> np.ndarray:
    if row_ids is None:
        return np.arange(n, dtype=np.int64)
    try:
        ids = np.asarray(row_ids)
    except (TypeError, ValueError) as e:  # pragma: no cover - ragged input
        raise DriftInputError(f"row_ids must be integers: {e}") from None
    if ids.ndim != 1 or ids.size != n or (ids.size and ids.dtype.kind not in "iu"):
        raise DriftInputError(f"row_ids must be {n} integers, one per row; got shape {ids.shape}")
    ids = ids.astype(np.int64)
    if (len(set(ids.tolist())) if ids.size <= _FEW else np.unique(ids).size) != ids.size:
        raise DriftInputError("row_ids are not unique")
    return ids


_FEW = 16  # at most this many values: counted in Python, cheaper than numpy's sorting


def counted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_counts=True)`` (counts as int64); for the handful of values
    an erasure removes, counted without numpy's sort machinery (a tenth of the time)."""
    if values.size > _FEW:
        distinct, counts = np.unique(values, return_counts=True)
        return distinct, counts.astype(np.int64)
    tally = Counter(values.tolist())
    keys = sorted(tally)
    return np.array(keys, dtype=values.dtype), np.array([tally[k] for k in keys], np.int64)


def _member(a: np.ndarray, few: np.ndarray) -> np.ndarray:
    """``np.isin(a, few)``; for a handful of ids (an erasure's), one pass each, no sort."""
    if few.size > 16:
        return np.isin(a, few, kind="sort")
    hit = np.zeros(a.size, dtype=bool)
    for v in few.tolist():
        hit |= a == v
    return hit


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of ``wanted`` (all among ``ids``) is in ``ids``."""
    order = np.argsort(ids)
    return order[np.searchsorted(ids, wanted, sorter=order)]


def _resample(sample: np.ndarray, leaving: np.ndarray, entering: np.ndarray) -> np.ndarray:
    """The sorted ``sample`` less one instance of each ``leaving`` value, plus ``entering``:
    what sorting the new values gives (sample values carry no -0.0, so equal values are
    equal bits and it does not matter which instance goes), at the cost of a move."""
    if leaving.size:
        out = np.sort(leaving + 0.0)
        nth = np.arange(out.size) - np.searchsorted(out, out)  # among equal values
        sample = np.delete(sample, np.searchsorted(sample, out) + nth)
    if entering.size:
        into = np.sort(entering + 0.0)
        sample = np.insert(sample, np.searchsorted(sample, into), into)
    return sample


def _fit_numeric(
    name: str, col: np.ndarray, ids: np.ndarray, j: int, seed: int, max_sample: int, reserve: int
) -> NumericFeature:
    finite = np.isfinite(col)
    vals, rid = col[finite], ids[finite]
    _check_magnitude(name, vals)
    sums = np.zeros((2, LIMBS), dtype=np.int64)
    _place(sums, vals, 1)
    mean, std = _moments(sums, vals.size)
    k = min(vals.size, max_sample + reserve)
    prio = priorities(rid, seed, j)
    top = np.argpartition(prio, k - 1)[:k] if 0 < k < vals.size else np.arange(vals.size)
    top = top[np.argsort(prio[top])]
    n_sample = min(max_sample, vals.size)
    kept = Kept(rid[top], vals[top], n_sample, sums)
    sample = np.sort(kept.values[:n_sample]) + 0.0  # -0.0 -> 0.0: equal values, equal bits
    return NumericFeature(name, sample, int(vals.size), int(col.size - vals.size), mean, std, kept)


def _remove_numeric(
    f: NumericFeature, ids: np.ndarray, col: np.ndarray, max_sample: int
) -> NumericFeature | None:
    kept = f.kept
    if kept is None:
        return None
    finite = np.isfinite(col)
    vals = col[finite]
    count, missing = f.count - vals.size, f.missing - (col.size - vals.size)
    if count < 0 or missing < 0:
        raise DriftInputError(
            f"feature {f.name!r}: removing {vals.size} finite and {col.size - vals.size} missing"
            f" values from a profile holding {f.count} and {f.missing}"
        )
    _check_magnitude(f.name, vals)
    at = np.flatnonzero(_member(kept.row_ids, ids))  # the kept rows that leave
    n_sample = min(max_sample, count)
    if not at.size and n_sample == kept.n_sample:  # the usual case: sample and reserve stay
        sums = kept.sums.copy()
        _place(sums, vals, -1)
        mean, std = _moments(sums, count)
        new = Kept(kept.row_ids, kept.values, n_sample, sums)
        return NumericFeature(f.name, f.sample, count, missing, mean, std, new)
    wrong = ~(col[_positions(ids, kept.row_ids[at])] == kept.values[at])
    if wrong.any():
        raise DriftInputError(
            f"feature {f.name!r}: {int(wrong.sum())} removed rows do not have the values "
            f"the profile holds for them, e.g. row {int(kept.row_ids[at][wrong][0])}"
        )
    # the arrays are never written: without a hit they are shared
    left_ids = np.delete(kept.row_ids, at) if at.size else kept.row_ids
    left_vals = np.delete(kept.values, at) if at.size else kept.values
    if left_ids.size < n_sample:
        return None  # the reserve ran out while rows remain beyond it: only a refit knows
    sums = kept.sums.copy()
    _place(sums, vals, -1)
    mean, std = _moments(sums, count)
    # the sample's old rows that stay come first in left_vals: the next ones (from the
    # reserve) enter, and past ``n_sample`` old ones leave (fewer rows than max_sample)
    gone = at[at < kept.n_sample]
    stay = kept.n_sample - gone.size
    leaving = np.concatenate([kept.values[gone], left_vals[n_sample:stay]])
    sample = _resample(f.sample, leaving, left_vals[stay:n_sample])
    new = Kept(left_ids, left_vals, n_sample, sums)
    return NumericFeature(f.name, sample, count, missing, mean, std, new)


def _same_feature(f: Feature, g: Feature | None) -> bool:
    """Whether ``f`` and ``g`` summarise the same values the same way, removal state
    included (so that removing the same rows from either gives equal features)."""
    if type(f) is not type(g) or f.name != g.name or f.missing != g.missing:
        return False
    if isinstance(f, CategoricalFeature):
        assert isinstance(g, CategoricalFeature)
        return (
            f.labels == g.labels
            and np.array_equal(f.categories, g.categories)
            and np.array_equal(f.counts, g.counts)
        )
    assert isinstance(g, NumericFeature)
    a, b = f.kept, g.kept
    return (
        a is not None
        and b is not None
        and (f.count, f.mean, f.std, a.n_sample) == (g.count, g.mean, g.std, b.n_sample)
        and np.array_equal(f.sample, g.sample)
        and np.array_equal(a.row_ids, b.row_ids)
        and np.array_equal(a.values, b.values)
        and np.array_equal(a.sums, b.sums)
    )


def _remove_categorical(f: CategoricalFeature, col: np.ndarray) -> CategoricalFeature:
    vals = _finite(col)
    missing = f.missing - (col.size - vals.size)
    cats, counts = counted(vals)
    left = f.counts.copy()
    if cats.size:
        pos = np.minimum(np.searchsorted(f.categories, cats), max(f.categories.size - 1, 0))
        if not f.categories.size or not np.array_equal(f.categories[pos], cats):
            unknown = cats[~np.isin(cats, f.categories)]
            raise DriftInputError(
                f"feature {f.name!r}: removed values {unknown[:5].tolist()} are not among the "
                "profile's categories"
            )
        left[pos] -= counts
    if missing < 0 or (left < 0).any():
        raise DriftInputError(f"feature {f.name!r}: removing more values than the profile counts")
    keep = left > 0  # a category whose last row left is gone, as a refit would have it
    if keep.all():  # the categories stay: shared (never written)
        return CategoricalFeature(f.name, f.categories, left, missing, f.labels)
    return CategoricalFeature(f.name, f.categories[keep], left[keep], missing, f.labels)


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Per-feature marginal summaries of a training set (see the module docstring).

    Build with :meth:`fit`; ``meta`` is free JSON-able metadata (model, version, ...).
    """

    features: tuple[Feature, ...]
    n_rows: int
    seed: int = 0
    max_sample: int = 10_000
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @classmethod
    def fit(
        cls,
        X: Any,
        feature_names: Sequence[str],
        *,
        categorical: Iterable[str] = (),
        labels: Mapping[str, Sequence[str]] | None = None,
        max_sample: int = 10_000,
        seed: int = 0,
        meta: Mapping[str, Any] | None = None,
        row_ids: Any = None,
        reserve: int | None = None,
    ) -> ReferenceProfile:
        """Summarise ``X`` (rows × features, numbers; NaN/±inf count as missing).

        Parameters
        ----------
        feature_names : one name per column, unique.
        categorical : names of the columns holding category codes (tested with χ²); every
            other column is numeric (tested with KS), including small-integer ones such as
            ``education-num``: a shift there reads better as a shift than as new categories.
        labels : optional names of the codes of categorical features (``Dataset.categories``).
        max_sample : the most values kept per numeric feature.
        seed : keys the per-feature sample (see :func:`priorities`).
        row_ids : one unique integer per row, naming it for :meth:`remove` (default
            ``0 .. n-1``). The sample depends on the ids, not on the rows' order.
        reserve : how many rows past the sample each numeric feature holds in memory to
            refill it after a removal (default ``max(max_sample // 4, 64)``).

        Raises :class:`DriftInputError` on bad arguments, and on numeric values of
        magnitude 2**480 (~3e144) or more (the exact sums of squares cannot hold them).
        """
        names = tuple(str(n) for n in feature_names)
        if len(set(names)) != len(names):
            raise DriftInputError(f"feature names are not unique: {list(names)}")
        if max_sample < 1:
            raise DriftInputError(f"max_sample must be at least 1, got {max_sample}")
        reserve = max(max_sample // 4, MIN_RESERVE) if reserve is None else int(reserve)
        if reserve < 0:
            raise DriftInputError(f"reserve must not be negative, got {reserve}")
        cat = set(categorical)
        unknown = sorted(cat - set(names))
        if unknown:
            raise DriftInputError(f"categorical features not among the feature names: {unknown}")
        labels = dict(labels or {})
        bad = sorted(set(labels) - cat)
        if bad:
            raise DriftInputError(f"labels given for features that are not categorical: {bad}")
        M = _as_float_matrix(X, len(names))
        if M.shape[0] == 0:
            raise DriftInputError("the reference data has no rows")
        ids = _row_ids(row_ids, M.shape[0])
        feats: list[Feature] = []
        for j, name in enumerate(names):
            col = M[:, j]
            if name in cat:
                vals = _finite(col)
                cats, counts = np.unique(vals, return_counts=True)
                if cats.size > MAX_CATEGORIES:
                    raise DriftInputError(
                        f"categorical feature {name!r} has {cats.size} distinct values (at most "
                        f"{MAX_CATEGORIES}); treat it as numeric or leave it out"
                    )
                lab = tuple(str(s) for s in labels[name]) if name in labels else None
                cats = cats + 0.0  # -0.0 -> 0.0: the code does not depend on which row came first
                missing = int(col.size - vals.size)
                feats.append(CategoricalFeature(name, cats, counts.astype(np.int64), missing, lab))
            else:
                feats.append(_fit_numeric(name, col, ids, j, int(seed), max_sample, reserve))
        return cls(tuple(feats), int(M.shape[0]), int(seed), int(max_sample), dict(meta or {}))

    def shared_with(self, other: ReferenceProfile) -> ReferenceProfile:
        """This profile, with each feature that equals ``other``'s at the same position (name,
        summary and removal state) replaced by ``other``'s object: profiles of models trained
        on the same rows share their features, and a :meth:`remove` with a ``memo`` common to
        them takes rows out of a shared feature once."""
        if (self.seed, self.max_sample) != (other.seed, other.max_sample):
            return self
        theirs = (*other.features, *(None,) * self.n_features)[: self.n_features]
        feats = tuple(
            g if g is not None and _same_feature(f, g) else f
            for f, g in zip(self.features, theirs, strict=True)
        )
        return ReferenceProfile(feats, self.n_rows, self.seed, self.max_sample, dict(self.meta))

    def remove(
        self, row_ids: Any, X: Any, *, memo: dict[Any, Any] | None = None
    ) -> ReferenceProfile | None:
        """The profile without the rows ``row_ids`` (whose values are ``X``, rows × features
        in the profile's order): what :meth:`fit` on the remaining rows, with the same seed,
        ``max_sample`` and ``reserve``, would give — equal :meth:`to_dict` and moments bit
        for bit. Each numeric feature's reserve becomes a prefix of the one such a fit would
        hold (it is not refilled), and holds no removed row.

        Returns None when it cannot: a removal took more rows out of a numeric feature's
        sample than its reserve could replace while rows remain beyond it, no rows would be
        left, or the profile was read back from bytes (it holds no row ids). The caller
        then fits anew. Raises :class:`DriftInputError` when the rows cannot be this
        profile's: repeated ids, values other than those held for an id, more rows than the
        profile counts. Rows must leave once: the profile cannot tell a row it never held
        from one it held beyond its sample.

        ``memo``: a dict shared by the removals of the same rows (same ids, same values) from
        several profiles; a feature object they share (:meth:`shared_with`) is worked on once
        and stays shared.
        """
        M = _as_float_matrix(X, self.n_features, self.names)
        try:
            ids = np.asarray(row_ids).reshape(-1)
        except (TypeError, ValueError) as e:  # pragma: no cover - ragged input
            raise DriftInputError(f"row_ids must be integers: {e}") from None
        ids = _row_ids(ids, M.shape[0])
        if ids.size == 0:
            return self
        if ids.size > self.n_rows:
            raise DriftInputError(f"removing {ids.size} rows from a profile of {self.n_rows}")
        if ids.size == self.n_rows:
            return None  # fit refuses an empty reference
        feats: list[Feature] = []
        rows = ids.tobytes()
        for j, f in enumerate(self.features):
            key = (id(f), self.max_sample, rows)
            if memo is not None and key in memo:
                g = memo[key][1]
            elif isinstance(f, CategoricalFeature):
                g = _remove_categorical(f, M[:, j])
            else:
                g = _remove_numeric(f, ids, M[:, j], self.max_sample)
            if memo is not None:
                memo[key] = (f, g)  # f kept alive: its id names it while the memo lives
            if g is None:
                return None
            feats.append(g)
        return ReferenceProfile(
            tuple(feats), self.n_rows - ids.size, self.seed, self.max_sample, dict(self.meta)
        )

    # ------------------------------------------------------------------ input
    def as_matrix(self, X: Any) -> np.ndarray:
        """A batch as a float matrix in the profile's feature order.

        Accepts a 2-D array-like of numbers (``None`` and NaN become NaN, i.e. missing) or a
        sequence of mappings ``{feature name: number}`` (absent names become NaN). Raises
        :class:`DriftInputError` on a wrong number of features, unknown names or non-numbers.
        """
        if (
            type(X) is np.ndarray
            and X.dtype == np.float64
            and X.ndim == 2
            and X.shape[1] == self.n_features
        ):
            return X  # the serving path: already a float matrix (callers copy, never write)
        if isinstance(X, Sequence) and X and isinstance(X[0], Mapping):
            return self._from_mappings(X)
        return _as_float_matrix(X, self.n_features, self.names)

    def _from_mappings(self, rows: Sequence[Any]) -> np.ndarray:
        index = {n: j for j, n in enumerate(self.names)}
        M = np.full((len(rows), self.n_features), np.nan)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise DriftInputError(f"row {i} is not a mapping of feature names to numbers")
            extra = [k for k in row if k not in index]
            if extra:
                raise DriftInputError(f"row {i} has unknown features {sorted(map(str, extra))}")
            for k, v in row.items():
                M[i, index[k]] = _number(v, f"row {i}, feature {k!r}")
        return M

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (finite floats, ints, strings, lists); see :meth:`from_dict`."""
        feats: list[dict[str, Any]] = []
        for f in self.features:
            if isinstance(f, NumericFeature):
                feats.append(
                    {
                        "name": f.name,
                        "kind": "numeric",
                        "count": f.count,
                        "missing": f.missing,
                        "mean": f.mean,
                        "std": f.std,
                        "sample": f.sample.tolist(),
                    }
                )
            else:
                feats.append(
                    {
                        "name": f.name,
                        "kind": "categorical",
                        "missing": f.missing,
                        "categories": f.categories.tolist(),
                        "counts": f.counts.tolist(),
                        "labels": None if f.labels is None else list(f.labels),
                    }
                )
        return {
            "format": FORMAT,
            "version": VERSION,
            "n_rows": self.n_rows,
            "seed": self.seed,
            "max_sample": self.max_sample,
            "meta": dict(self.meta),
            "features": feats,
        }

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON of :meth:`to_dict` (floats written to round-trip exactly)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        try:
            obj = json.loads(data)
        except (UnicodeDecodeError, ValueError) as e:
            raise ProfileFormatError(f"not a JSON reference profile: {e}") from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Any) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict`'s output, checking every field."""
        if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
            raise ProfileFormatError(f"not a reference profile (expected format {FORMAT!r})")
        if obj.get("version") != VERSION:
            raise ProfileFormatError(f"profile version {obj.get('version')!r} is not {VERSION}")
        try:
            feats = tuple(_feature_from(f) for f in obj["features"])
            names = [f.name for f in feats]
            if not feats or len(set(names)) != len(names):
                raise ProfileFormatError("features must be a non-empty list of unique names")
            meta = obj["meta"]
            if not isinstance(meta, Mapping):
                raise ProfileFormatError("meta must be a mapping")
            return cls(
                feats, _int(obj["n_rows"]), _int(obj["seed"]), _int(obj["max_sample"]), dict(meta)
            )
        except (KeyError, TypeError) as e:
            raise ProfileFormatError(f"malformed reference profile: {e!r}") from None


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileFormatError(f"expected an integer, got {v!r}")
    return v


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ProfileFormatError(f"expected a finite number, got {v!r}")
    return float(v)


def _array(v: Any, what: str) -> np.ndarray:
    if not isinstance(v, list):
        raise ProfileFormatError(f"{what} must be a list")
    return np.array([_float(x) for x in v], dtype=np.float64)


def _feature_from(f: Any) -> Feature:
    if not isinstance(f, Mapping) or not isinstance(f.get("name"), str):
        raise ProfileFormatError("each feature must be a mapping with a string name")
    name = f["name"]
    if f.get("kind") == "numeric":
        sample = _array(f["sample"], f"{name}.sample")
        count = _int(f["count"])
        if np.any(np.diff(sample) < 0) or sample.size > count:
            raise ProfileFormatError(f"{name}.sample must be sorted and at most count long")
        return NumericFeature(
            name, sample, count, _int(f["missing"]), _float(f["mean"]), _float(f["std"])
        )
    if f.get("kind") == "categorical":
        cats = _array(f["categories"], f"{name}.categories")
        counts = np.array([_int(c) for c in f["counts"]], dtype=np.int64)
        if np.any(np.diff(cats) <= 0) or counts.shape != cats.shape or np.any(counts < 0):
            raise ProfileFormatError(
                f"{name}: categories must be strictly increasing with one count each"
            )
        labels = f.get("labels")
        if labels is not None and not (
            isinstance(labels, list) and all(isinstance(s, str) for s in labels)
        ):
            raise ProfileFormatError(f"{name}.labels must be a list of strings or null")
        return CategoricalFeature(
            name, cats, counts, _int(f["missing"]), None if labels is None else tuple(labels)
        )
    raise ProfileFormatError(f"feature {name!r} has unknown kind {f.get('kind')!r}")


def _number(v: Any, where: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str | bytes) or not isinstance(v, int | float | np.number | np.bool_):
        raise DriftInputError(f"{where}: expected a number, got {type(v).__name__} {v!r}")
    return float(v)


def _as_float_matrix(X: Any, n_features: int, names: Sequence[str] = ()) -> np.ndarray:
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as e:  # ragged rows
        raise DriftInputError(f"X is not a rows × features table: {e}") from None
    if arr.dtype.kind in "USa":
        raise DriftInputError("X holds strings; features must be numbers (categories as codes)")
    if arr.dtype.kind == "O":
        try:
            arr = np.array(arr, dtype=np.float64)  # None -> NaN
        except (TypeError, ValueError) as e:
            raise DriftInputError(f"X holds values that are not numbers: {e}") from None
    elif arr.dtype.kind not in "biuf":
        raise DriftInputError(f"X must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DriftInputError(
            f"X must be 2-D (rows × features), got shape {arr.shape}; pass one row as [row]"
        )
    if arr.shape[1] != n_features:
        named = f": {list(names)}" if names else ""
        raise DriftInputError(f"X has {arr.shape[1]} features, the profile has {n_features}{named}")
    return np.asarray(arr, dtype=np.float64)
