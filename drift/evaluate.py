"""Per-feature drift verdicts for a window of rows against a reference profile, and their words.

For each feature: the share of missing values (NaN, ±inf), then — when the window holds at
least ``min_rows`` values of it — KS + Wasserstein-1 (numbers) or χ² + PSI (categories). The
p-values of all tested features are corrected together (Holm by default). A feature drifts when

- its corrected p-value is below ``alpha`` **and** its effect reaches the threshold
  (``numeric_effect`` standard deviations of Wasserstein-1 distance, ``categorical_effect`` of
  PSI): large windows make tiny shifts significant, the effect gate keeps those quiet; or
- its missing share exceeds the reference's by ``missing_rise`` (the rows lack the feature); or
- values the reference never had make up at least ``unseen_share`` of its rows.

>>> import numpy as np
>>> from drift.profile import ReferenceProfile
>>> rng = np.random.default_rng(0)
>>> ref = ReferenceProfile.fit(rng.normal(size=(5000, 2)), ["a", "b"])
>>> Xw = rng.normal(size=(1000, 2)) + [1.0, 0.0]
>>> [(r.name, r.drift) for r in evaluate_features(ref, Xw, Thresholds())]
[('a', True), ('b', False)]
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from drift._kernels import mean_std
from drift.errors import DriftInputError
from drift.profile import CategoricalFeature, NumericFeature, ReferenceProfile
from drift.stats import bonferroni, compare_categorical, compare_numeric, holm

__all__ = ["FeatureResult", "Thresholds", "evaluate_features", "feature_alerts"]


@dataclass(frozen=True)
class Thresholds:
    """When a feature counts as drifted (see the module docstring); defaults meet the bench.

    ``alpha`` is the family-wise error rate over the features of one evaluation.
    """

    alpha: float = 0.01
    correction: str = "holm"
    min_rows: int = 500
    numeric_effect: float = 0.1
    categorical_effect: float = 0.1
    missing_rise: float = 0.05
    unseen_share: float = 0.01

    def __post_init__(self) -> None:
        if self.correction not in ("holm", "bonferroni"):
            raise ValueError(f"correction must be 'holm' or 'bonferroni', not {self.correction!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_rows < 1:
            raise ValueError(f"min_rows must be >= 1, got {self.min_rows}")


@dataclass(frozen=True)
class FeatureResult:
    """One feature's verdict. ``test`` is ``"ks"``, ``"chi2"`` or ``None`` (too few values).

    ``effect`` is Wasserstein-1 over the reference std (numbers) or PSI (categories);
    ``reasons`` lists why ``drift`` is true: ``"distribution"``, ``"missing"``, ``"unseen"``.
    ``rows`` counts the window's rows, ``values`` its non-missing values of this feature.
    """

    name: str
    kind: str
    test: str | None
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    effect: float | None
    effect_name: str
    drift: bool
    reasons: tuple[str, ...]
    rows: int
    values: int
    missing: float
    missing_reference: float
    mean: float | None = None
    reference_mean: float | None = None
    std: float | None = None
    reference_std: float | None = None
    unseen_share: float | None = None
    unseen: tuple[tuple[float, int], ...] = ()
    largest_change: tuple[float, float, float] | None = None  # (category, ref share, share)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _FIELDS}
        d["reasons"] = list(self.reasons)
        d["unseen"] = [list(u) for u in self.unseen]
        d["largest_change"] = None if self.largest_change is None else list(self.largest_change)
        return d


_FIELDS = tuple(f.name for f in fields(FeatureResult))


def _missing_ref(f: NumericFeature | CategoricalFeature) -> float:
    total = f.count + f.missing
    return f.missing / total if total else 0.0


def _test_one(
    f: NumericFeature | CategoricalFeature, col: np.ndarray, th: Thresholds
) -> dict[str, Any]:
    n_rows = col.size
    vals = col[np.isfinite(col)]
    out: dict[str, Any] = {
        "name": f.name,
        "kind": f.kind,
        "rows": int(n_rows),
        "values": int(vals.size),
        "missing": float(1.0 - vals.size / n_rows) if n_rows else 0.0,
        "missing_reference": _missing_ref(f),
        "test": None,
        "statistic": None,
        "p_value": None,
        "effect": None,
    }
    if isinstance(f, NumericFeature):
        out["effect_name"] = "wasserstein_std"
        out["reference_mean"], out["reference_std"] = f.mean, f.std
        if vals.size:
            mean, std = mean_std(vals)
            out["mean"], out["std"] = float(mean), float(std)
        if vals.size >= th.min_rows and f.sample.size:
            r = compare_numeric(vals, f.sample, scale=f.scale)
            out.update(test="ks", statistic=r.statistic, p_value=r.p_value, effect=r.effect)
        return out
    out["effect_name"] = "psi"
    if vals.size >= th.min_rows and f.categories.size:
        c = compare_categorical(vals, f.categories, f.counts)
        out.update(test="chi2", statistic=c.statistic, p_value=c.p_value, effect=c.effect)
        out["unseen_share"] = c.unseen_rows / c.n
        out["unseen"] = c.unseen
        ref_shares = f.counts / f.counts.sum()
        delta = np.asarray(c.shares) - ref_shares
        i = int(np.argmax(np.abs(delta)))
        out["largest_change"] = (float(f.categories[i]), float(ref_shares[i]), c.shares[i])
    return out


def evaluate_features(
    profile: ReferenceProfile, X: np.ndarray, th: Thresholds
) -> list[FeatureResult]:
    """Verdicts for every feature of ``profile`` on the window ``X`` (rows × features)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != profile.n_features:
        raise DriftInputError(
            f"X has shape {X.shape}; the profile has {profile.n_features} features"
        )
    cols = np.ascontiguousarray(X.T)
    parts = [_test_one(f, cols[j], th) for j, f in enumerate(profile.features)]
    tested = [i for i, p in enumerate(parts) if p["test"] is not None]
    pvals = np.array([parts[i]["p_value"] for i in tested])
    adjusted = holm(pvals) if th.correction == "holm" else bonferroni(pvals)
    results = []
    for i, p in enumerate(parts):
        p["p_adjusted"] = None
        reasons = []
        if i in tested:
            p["p_adjusted"] = float(adjusted[tested.index(i)])
            gate = th.numeric_effect if p["kind"] == "numeric" else th.categorical_effect
            if p["p_adjusted"] < th.alpha and p["effect"] >= gate:
                reasons.append("distribution")
        if p["rows"] >= th.min_rows and p["missing"] - p["missing_reference"] >= th.missing_rise:
            reasons.append("missing")
        if p.get("unseen_share") is not None and p["unseen_share"] >= th.unseen_share:
            reasons.append("unseen")
        results.append(FeatureResult(drift=bool(reasons), reasons=tuple(reasons), **p))
    return results


# ---------------------------------------------------------------------- words


def fmt_p(p: float) -> str:
    """``p=1e-30``, ``p=0.003``; ``p<1e-300`` where the p-value underflows."""
    if p <= 0:
        return "p<1e-300"
    return f"p={p:.0e}" if p < 1e-3 else f"p={p:.2g}"


def _num(v: float) -> str:
    return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:,.0f}"


def _pct(share: float) -> str:
    pct = 100 * share
    return f"{pct:.0f}%" if pct >= 10 or pct == 0 else f"{pct:.1f}%"


def feature_alerts(profile: ReferenceProfile, results: list[FeatureResult]) -> list[str]:
    """One sentence per reason a feature drifted, in words an operator can act on."""
    by_name = {f.name: f for f in profile.features}
    alerts: list[str] = []
    for r in results:
        f = by_name[r.name]
        if "missing" in r.reasons:
            alerts.append(
                f"input rows lack feature {r.name!r}: missing in {_pct(r.missing)} of the last "
                f"{r.rows:,} rows ({_pct(r.missing_reference)} in training)"
            )
        if "unseen" in r.reasons and isinstance(f, CategoricalFeature):
            names = ", ".join(f.describe(v) for v, _ in r.unseen)
            word = "a new category" if len(r.unseen) == 1 else "new categories"
            alerts.append(
                f"feature {r.name!r} has {word} {names} in {_pct(r.unseen_share or 0.0)} of rows"
            )
        if "distribution" not in r.reasons:
            continue
        assert r.p_value is not None and r.effect is not None
        if isinstance(f, NumericFeature):
            assert r.mean is not None and r.std is not None
            shift = (r.mean - f.mean) / f.scale
            if abs(shift) >= 0.5 * r.effect:
                alerts.append(
                    f"feature {r.name!r} shifted by {shift:+.2f} std (mean {_num(f.mean)} → "
                    f"{_num(r.mean)}), KS {fmt_p(r.p_value)}"
                )
            else:
                alerts.append(
                    f"feature {r.name!r} changed shape: std {_num(f.std)} → {_num(r.std)}, "
                    f"mean {_num(f.mean)} → {_num(r.mean)} (distance {r.effect:.2f} std), "
                    f"KS {fmt_p(r.p_value)}"
                )
        elif r.largest_change is not None:
            v, before, after = r.largest_change
            if "unseen" in r.reasons and (r.unseen_share or 0.0) >= abs(after - before):
                continue  # the new-category alert already says it
            verb = "rose" if after > before else "fell"
            alerts.append(
                f"feature {r.name!r}: share of {f.describe(v)} {verb} from {_pct(before)} to "
                f"{_pct(after)} (PSI {r.effect:.2f}), χ² {fmt_p(r.p_value)}"
            )
    return alerts
