"""What the registry records: version statuses, model versions and their lineage, forget
operations and their outcomes; and the checks and conversions around training a version.

>>> ForgetOp("risk", 1, 2, "er_0", (5, 9)).revision
2
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forget.base import Unlearnable
from store import data
from store.errors import EstimatorError, FeatureMismatchError

READY = "ready"
PENDING = "pending_retrain"
RETIRED = "retired"


@dataclass(frozen=True)
class Revision:
    """One forget operation on a version, and the erasure request that made it."""

    revision: int
    request_id: str
    rows_forgotten: int
    logged_at: str


@dataclass(frozen=True)
class Retrain:
    """A refit of a pending version on its remaining rows (``outcome`` ``"retrained"``), or
    its retirement when none remained or the estimator refused them (``"retired"``).

    ``revision`` is the version's revision it brought the model to; ``request_ids`` are the
    erasure requests that were waiting for it.
    """

    revision: int
    outcome: str
    request_ids: tuple[str, ...]
    training_rows: int | None
    artifact_sha256: str | None
    fit_seconds: float | None
    reason: str | None
    retrained_at: str


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version, its lineage of revisions and the retrains it had."""

    name: str
    version: int
    revision: int
    status: str
    dataset: str
    estimator: str
    params: Mapping[str, Any]
    seed: int | None
    code_version: str
    features: tuple[str, ...]
    label: str
    n_rows: int
    fit_sha256: str
    artifact_sha256: str | None
    checkpoint_revision: int
    created_at: str
    lineage: tuple[Revision, ...]
    retrains: tuple[Retrain, ...] = ()
    purpose: str | None = None  # None: unspecified (no objection to a purpose touches it)
    rows_withheld: int = 0  # dataset rows left out at training: objecting/restricted subjects


@dataclass(frozen=True)
class ForgetOp:
    model: str
    version: int
    revision: int
    request_id: str
    row_ids: tuple[int, ...]


@dataclass(frozen=True)
class ForgetOutcome:
    """How a version took a forget operation: ``action`` is one of ``ACTIONS``."""

    action: str
    guarantee: str | None
    seconds: float | None
    reason: str | None = None
    shards: tuple[int, ...] = ()  # a sharded model's shards left out until retrained (SISA)


EXACT, APPROXIMATE = "exact_unlearning", "approximate_unlearning"
ACTIONS = (EXACT, APPROXIMATE, PENDING)
LEARN = "learn"  # a forget_log entry that gave rows back (a restriction lifted: store.purposes)
# a forget_log entry (and a retrains row, outcome SHARDS_RETRAINED) of a sharded model that
# retrained the shards earlier erasures dropped: a revision of its own, replayed at open
SHARDS, SHARDS_RETRAINED = "retrain_shards", "shards_retrained"


def check_estimator(estimator: Any) -> None:
    if isinstance(estimator, type) or not isinstance(estimator, Unlearnable):
        raise EstimatorError(
            f"{estimator!r} does not follow forget.Unlearnable "
            "(fit with row_ids, predict, forget, to_bytes, guarantee)"
        )
    if not callable(getattr(type(estimator), "from_bytes", None)):
        raise EstimatorError(f"{type(estimator).__name__} has no classmethod from_bytes")


def check_columns(info: data.DatasetInfo, label: str, features: Sequence[str]) -> list[str]:
    if isinstance(features, str) or not features:
        raise FeatureMismatchError("features must be a non-empty list of column names")
    feats = list(features)
    if len(set(feats)) != len(feats):
        raise FeatureMismatchError(f"features name a column twice: {feats}")
    unknown = [f for f in [*feats, label] if info.column(f) is None]
    if unknown:
        names = [c.name for c in info.columns]
        raise FeatureMismatchError(
            f"{len(unknown)} columns not in dataset {info.name!r}: {unknown} (it has {names})"
        )
    if label in feats:
        raise FeatureMismatchError(f"label {label!r} is also a feature")
    if info.subject_column in [*feats, label]:
        raise FeatureMismatchError(f"the subject column {info.subject_column!r} cannot be used")
    cols = [(f, info.column(f)) for f in feats]
    bad = [f"{f} ({c.type})" for f, c in cols if c is not None and not c.numeric]
    if bad:
        raise FeatureMismatchError(f"features must be numeric columns; not numeric: {bad}")
    return feats


def json_params(est: Any) -> dict[str, Any]:
    params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
    out = {}
    for key, value in params.items():
        value = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
        if hasattr(value, "get_params") and not isinstance(value, type):
            # a wrapped learner (forget.Sharded's) as the spec it takes back: class and params
            cls = type(value)
            value = {"kind": f"{cls.__module__}.{cls.__qualname__}", "params": json_params(value)}
        try:
            json.dumps(value)
        except TypeError:
            value = repr(value)
        out[key] = value
    return out


def load_class(kind: str) -> Any:
    """The estimator class recorded as ``module:qualname`` (the store trusts its database)."""
    module, _, qualname = kind.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
