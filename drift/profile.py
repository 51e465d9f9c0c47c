"""The reference profile of a model version's training data: one marginal summary per feature.

A numeric feature keeps its count, missing count, mean, standard deviation and a **sorted
sample of at most** ``max_sample`` **of its values** (all of them when there are fewer),
drawn without replacement with a generator keyed by ``(seed, feature index)``: the same data
and seed give the same profile. A categorical feature keeps its distinct values and their
counts (and, optionally, names for the codes).

What the profile holds about people. No training row is kept: each feature's values are sorted
on their own, and each feature samples *different* rows, so nothing links a value of one
feature to a value of another (a row cannot be rebuilt by joining columns). What remains are
marginal values — a person's age may be among the 10,000 ages kept, as it is among the
training data's marginal counts — so a profile is still derived from personal data: keep it
with the model version it describes, and rebuild it (:meth:`ReferenceProfile.fit` on the
remaining rows) when a version is retrained. It serialises to a JSON-able dict or UTF-8 JSON
bytes (:meth:`~ReferenceProfile.to_dict`, :meth:`~ReferenceProfile.to_bytes`); no pickle.

>>> import numpy as np
>>> X = np.array([[30.0, 0.0], [40.0, 1.0], [50.0, 1.0]])
>>> p = ReferenceProfile.fit(X, ["age", "sex"], categorical=["sex"])
>>> [f.kind for f in p.features], p.features[1].counts.tolist()
(['numeric', 'categorical'], [1, 2])
>>> ReferenceProfile.from_bytes(p.to_bytes()).to_dict() == p.to_dict()
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.errors import DriftInputError, ProfileFormatError

__all__ = ["CategoricalFeature", "NumericFeature", "ReferenceProfile"]

FORMAT = "forget.drift.profile"
VERSION = 1
MAX_CATEGORIES = 10_000


@dataclass(frozen=True, eq=False)
class NumericFeature:
    """A numeric feature's summary: a sorted sample of finite values, and exact moments.

    ``count`` and ``missing`` are the reference's finite and missing (NaN, ±inf) values;
    ``mean`` and ``std`` (population) are over all finite values, not just the sample.
    """

    name: str
    sample: np.ndarray
    count: int
    missing: int
    mean: float
    std: float
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


def _finite(col: np.ndarray) -> np.ndarray:
    return col[np.isfinite(col)]


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
        seed : keys the per-feature sample.
        """
        names = tuple(str(n) for n in feature_names)
        if len(set(names)) != len(names):
            raise DriftInputError(f"feature names are not unique: {list(names)}")
        if max_sample < 1:
            raise DriftInputError(f"max_sample must be at least 1, got {max_sample}")
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
        feats: list[Feature] = []
        for j, name in enumerate(names):
            col = M[:, j]
            vals = _finite(col)
            missing = int(col.size - vals.size)
            if name in cat:
                cats, counts = np.unique(vals, return_counts=True)
                if cats.size > MAX_CATEGORIES:
                    raise DriftInputError(
                        f"categorical feature {name!r} has {cats.size} distinct values (at most "
                        f"{MAX_CATEGORIES}); treat it as numeric or leave it out"
                    )
                lab = tuple(str(s) for s in labels[name]) if name in labels else None
                feats.append(CategoricalFeature(name, cats, counts.astype(np.int64), missing, lab))
                continue
            if vals.size > max_sample:
                rng = np.random.default_rng([seed, j])
                sample = np.sort(vals[rng.choice(vals.size, size=max_sample, replace=False)])
            else:
                sample = np.sort(vals)
            mean = float(vals.mean()) if vals.size else 0.0
            std = float(vals.std()) if vals.size else 0.0
            feats.append(NumericFeature(name, sample, int(vals.size), missing, mean, std))
        return cls(tuple(feats), int(M.shape[0]), int(seed), int(max_sample), dict(meta or {}))

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
