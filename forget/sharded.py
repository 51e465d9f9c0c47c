"""SISA: any scikit-learn learner made exactly unlearnable by sharded retraining.

Bourtoule et al., "Machine Unlearning" (IEEE S&P 2021). The training rows are split into
``n_shards`` shards; one *constituent* (a clone of the wrapped estimator) is trained per shard
and the constituents' answers are aggregated. Forgetting a row touches only its shard.

Membership is keyed, not streamed: a row's shard (and slice) is a hash of ``(random_state,
row id)`` alone, so removing rows never moves another row, and each constituent's seed is a
hash of ``(random_state, shard index)`` alone. Within a shard the rows keep their fit order
(slice by slice). Hence ``forget(S)`` followed by :meth:`Sharded.retrain_pending` trains every
affected constituent on exactly the rows, in exactly the order, with exactly the seed that
``fit(D \\ S)`` gives it: bitwise the same model for a learner that is deterministic given its
``random_state``.

What is served between ``forget(S)`` and the retrain (``retrain="deferred"``): the affected
constituents are discarded at once (with their slice checkpoints from the earliest affected
slice on) and predictions aggregate the others. Each of those equals, bit for bit, the
constituent ``fit(D \\ S)`` has for its shard, as its shard held none of ``S``; so the served
model is ``fit(D \\ S)`` with the pending shards left out of the aggregate (the mean or the
vote over the served shards only). ``pending_`` names those shards: the one trace of the
request the model keeps, until :meth:`retrain_pending` (which a background worker calls).
With ``retrain="now"`` ``forget`` retrains before it returns and there is no such state.

What is kept. Per shard: the remaining rows' features, targets and ids, the constituent, and
for ``n_slices > 1`` a checkpoint after each slice; the class list is that of the remaining
rows. The artifact (:meth:`Sharded.to_bytes`, the library's ``.npz`` format, no pickle) holds
the parameters and the remaining rows only, byte for byte what ``fit(D \\ S)`` writes, pending
or not; :meth:`Sharded.from_bytes` trains the constituents again (deterministic learners come
back identical; the load costs one fit). Constituents are never pickled.

Corner cases, defined as a refit meets them: a shard without rows has no constituent (the
aggregate is over non-empty shards); a classifier's shard whose rows hold one class gets a
constant constituent (that class, probability 1) instead of the learner, which most learners
refuse to fit on one class; with ``n_slices > 1`` the learner is trained by ``partial_fit``
with ``classes=classes_`` (all remaining classes), so a class leaving the model makes every
shard pending.

>>> import numpy as np
>>> from sklearn.tree import DecisionTreeClassifier
>>> from forget.sharded import Sharded
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
>>> m = Sharded(DecisionTreeClassifier(max_depth=3), n_shards=4).fit(X, y)
>>> m.forget([5, 17]).needs_retrain, len(m.pending_) > 0
(True, True)
>>> m.retrain_pending().shards >= 1, m.pending_
(True, ())
>>> keep = ~np.isin(np.arange(200), [5, 17])
>>> ref = Sharded(DecisionTreeClassifier(max_depth=3), n_shards=4)
>>> ref = ref.fit(X[keep], y[keep], row_ids=np.arange(200)[keep])
>>> bool((m.predict_proba(X) == ref.predict_proba(X)).all()), m.to_bytes() == ref.to_bytes()
(True, True)
"""

from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, clone, is_classifier, is_regressor
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from forget import _persist
from forget._rows import as_row_ids, requested_row_ids
from forget.base import ForgetResult, Guarantee, Path, RetrainResult
from forget.errors import (
    ArtifactError,
    EmptyModelError,
    ForgetError,
    UnknownRowIdsError,
)

__all__ = ["PendingRetrainError", "RetrainResult", "Sharded", "learner"]

_AGGREGATES = ("mean_proba", "vote")
_RETRAIN = ("deferred", "now")
_SEED_MAX = 2**31 - 1  # seeds scikit-learn takes everywhere (np.random.RandomState's range)
_M = np.uint64(0xFFFFFFFFFFFFFFFF)


class PendingRetrainError(ForgetError, RuntimeError):
    """Every constituent is pending retrain after a deletion: call ``retrain_pending()``."""


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (wrapping arithmetic): a fixed, well-spread bijection."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _keys(seed: int, ids: np.ndarray) -> np.ndarray:
    """The keyed hash of ``(seed, id)`` per id: depends on that id and the seed, nothing else."""
    key = _mix(np.array([seed], dtype=np.uint64))
    return _mix(ids.astype(np.int64).view(np.uint64) ^ key)


def shard_seed(random_state: int, shard: int) -> int:
    """A constituent's seed: a hash of ``(random_state, shard index)`` only."""
    salt = _mix(np.array([shard], dtype=np.uint64)) ^ np.uint64(0x5AD0)
    return int(_keys(random_state, salt.view(np.int64))[0] % np.uint64(_SEED_MAX))


class _Constant:
    """The constituent of a classifier's shard whose rows hold one class."""

    def __init__(self, label: Any) -> None:
        self.classes_ = np.array([label])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.repeat(self.classes_, X.shape[0])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.ones((X.shape[0], 1))


@dataclass
class _Shard:
    """One shard's remaining rows (slice by slice, fit order within a slice) and its learner."""

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    slices: np.ndarray
    model: Any = None
    checkpoints: list[Any] = field(default_factory=list)  # state after slice 0, 1, ...


# -- the wrapped estimator in the artifact: class path and JSON parameters, never a pickle --
def _encode(value: Any) -> Any:
    if isinstance(value, BaseEstimator):
        cls = type(value)
        params = {k: _encode(v) for k, v in value.get_params(deep=False).items()}
        return {"__estimator__": f"{cls.__module__}.{cls.__qualname__}", "params": params}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v) for k, v in value.items()}
    raise ValueError(
        f"parameter value {value!r} of type {type(value).__name__} cannot be saved without "
        "pickle; give the estimator plain parameters (numbers, strings, lists, estimators)"
    )


def _sklearn_class(path: str) -> type:
    """The scikit-learn estimator class at dotted ``path``; ``ValueError`` for any other (to
    import what a request or an artifact names runs code: only ``sklearn.*`` is imported)."""
    module, _, name = path.rpartition(".")
    if not module.startswith("sklearn."):
        raise ValueError(
            f"{path!r} is not a scikit-learn estimator class: Sharded wraps only classes of "
            "modules under 'sklearn.' (e.g. 'sklearn.tree.DecisionTreeClassifier')"
        )
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"unknown scikit-learn estimator {path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise ValueError(f"{path!r} is not a scikit-learn estimator")
    return cls


def learner(spec: Mapping[str, Any]) -> BaseEstimator:
    """A scikit-learn estimator from ``{"kind": "sklearn.<module>.<Class>", "params": {...}}``
    (what the store records, and the HTTP API and the CLI take, as ``Sharded``'s estimator).

    >>> learner({"kind": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 2}})
    DecisionTreeClassifier(max_depth=2)
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
        raise ValueError(f"an estimator spec is {{'kind': 'sklearn...', 'params': {{}}}}: {spec!r}")
    unknown = sorted(set(spec) - {"kind", "params"})
    if unknown:
        raise ValueError(f"an estimator spec has only 'kind' and 'params', not {unknown}")
    params = spec.get("params") or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"the params of {spec['kind']!r} must be a mapping, got {params!r}")
    cls = _sklearn_class(spec["kind"])
    try:
        return cls(**{str(k): _decode(v) for k, v in params.items()})
    except TypeError as exc:
        raise ValueError(f"{spec['kind']} does not take these parameters: {exc}") from None


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__estimator__" in value:
        path = str(value["__estimator__"])
        if not path.rpartition(".")[0].startswith("sklearn."):
            raise ArtifactError(f"artifact names estimator {path!r}: only sklearn.* are loaded")
        try:
            cls = _sklearn_class(path)
        except ValueError as exc:
            raise ArtifactError(f"artifact names unknown estimator {path!r}: {exc}") from None
        return cls(**{k: _decode(v) for k, v in value["params"].items()})
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


class Sharded(BaseEstimator):
    """Any scikit-learn classifier or regressor, exactly unlearnable by sharding (SISA).

    Parameters
    ----------
    estimator : scikit-learn classifier or regressor, or its spec
        The learner, or ``{"kind": "sklearn.<module>.<Class>", "params": {...}}`` (see
        :func:`learner`; what the store and the API record and take). One clone per shard,
        its ``random_state`` (if it has one) set to :func:`shard_seed`
        ``(random_state, shard)``. Never fitted itself.
    n_shards : int, default 5
        Shards; a row's shard is a keyed hash of ``(random_state, row id)``.
    n_slices : int, default 1
        SISA's slices: with more than one, each constituent is trained by ``partial_fit`` slice
        after slice and checkpointed after each, and a deletion retrains from the checkpoint
        before the earliest affected slice. Needs a learner with ``partial_fit``.
    aggregate : {"mean_proba", "vote"}, default "mean_proba"
        Classifiers: average the constituents' ``predict_proba``, or count their ``predict``
        (``predict_proba`` is then the vote shares; a tie goes to the first class). Regressors
        average ``predict`` either way (``"vote"`` is refused).
    random_state : int, default 0
        Keys shard and slice membership and every constituent's seed.
    retrain : {"deferred", "now"}, default "deferred"
        ``"deferred"``: ``forget`` drops the affected constituents and returns at once
        (``needs_retrain=True``); :meth:`retrain_pending` retrains them. ``"now"``: ``forget``
        retrains them before it returns.

    Attributes
    ----------
    classes_ : ndarray
        Labels of the remaining rows (classifiers).
    pending_ : tuple of int
        Shards whose constituent was dropped by a deletion and awaits retraining.
    row_ids_ : ndarray
        Ids of the rows held, shard by shard.

    Notes
    -----
    The guarantee is ``EXACT``: once nothing is pending the model (its predictions and its
    artifact) is that of ``fit(D \\ S)``, bitwise for a learner deterministic given its seed.
    While shards are pending, see the module docstring for what is served.
    """

    guarantee = Guarantee.EXACT

    def __init__(
        self,
        estimator: Any,
        *,
        n_shards: int = 5,
        n_slices: int = 1,
        aggregate: str = "mean_proba",
        random_state: int = 0,
        retrain: str = "deferred",
    ) -> None:
        self.estimator = estimator
        self.n_shards = n_shards
        self.n_slices = n_slices
        self.aggregate = aggregate
        self.random_state = random_state
        self.retrain = retrain

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters (the estimator itself, not its parameters flattened:
        ``type(m)(**m.get_params())`` rebuilds the model; ``set_params(estimator__x=...)``
        still reaches the estimator's)."""
        return super().get_params(deep=False)

    @property
    def _base(self) -> Any:
        """The learner: ``estimator``, or the estimator its spec names (built once per spec)."""
        est = self.estimator
        if not isinstance(est, Mapping):
            return est
        built = self.__dict__.get("_built")
        if built is None or built[0] is not est:
            built = self._built = (est, learner(est))
        return built[1]

    # -- fitting -------------------------------------------------------------------------
    def _check_params(self) -> None:
        est = self._base
        if not (is_classifier(est) or is_regressor(est)):
            raise ValueError(f"estimator must be a scikit-learn classifier or regressor: {est!r}")
        for name in ("n_shards", "n_slices"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        rs = self.random_state
        if isinstance(rs, bool) or not isinstance(rs, int | np.integer) or not 0 <= rs < 2**63:
            raise ValueError(f"random_state must be an int in [0, 2**63), got {rs!r}")
        if self.aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate must be one of {_AGGREGATES}, got {self.aggregate!r}")
        if is_regressor(est) and self.aggregate == "vote":
            raise ValueError("aggregate='vote' needs a classifier; regressors average predict")
        if self.retrain not in _RETRAIN:
            raise ValueError(f"retrain must be one of {_RETRAIN}, got {self.retrain!r}")
        if self.n_slices > 1 and not hasattr(est, "partial_fit"):
            raise ValueError(
                f"n_slices={self.n_slices} needs a learner with partial_fit; "
                f"{type(est).__name__} has none: use n_slices=1"
            )
        if (
            is_classifier(est)
            and self.aggregate == "mean_proba"
            and not hasattr(est, "predict_proba")
        ):
            raise ValueError(
                f"{type(est).__name__} has no predict_proba (e.g. SVC without probability=True):"
                " use aggregate='vote'"
            )

    def _nan_ok(self) -> str | bool:
        return "allow-nan" if get_tags(self._base).input_tags.allow_nan else True

    def fit(self, X: ArrayLike, y: ArrayLike, row_ids: ArrayLike | None = None) -> Sharded:
        """Train one constituent per shard on rows ``X``, ``y`` named by ``row_ids``."""
        self._check_params()
        Xa, ya = check_X_y(X, y, dtype=np.float64, ensure_all_finite=self._nan_ok(), estimator=self)
        ids = as_row_ids(row_ids, Xa.shape[0])
        if is_classifier(self._base):
            check_classification_targets(ya)
            self.classes_, counts = np.unique(ya, return_counts=True)
            self._class_counts = counts.astype(np.int64)
        else:
            ya = ya.astype(np.float64)
        self.n_features_in_ = Xa.shape[1]
        k, r = int(self.n_shards), int(self.n_slices)
        key = _keys(int(self.random_state), ids)
        shard = (key % np.uint64(k)).astype(np.int64)
        slices = ((key // np.uint64(k)) % np.uint64(r)).astype(np.int64)
        order = np.lexsort((slices, shard))  # shard, then slice, then fit order (stable)
        bounds = np.searchsorted(shard[order], np.arange(k + 1))
        self._shards = []
        for s in range(k):
            rows = order[bounds[s] : bounds[s + 1]]
            self._shards.append(_Shard(Xa[rows], ya[rows], ids[rows], slices[rows]))
        self._where = dict(zip(ids.tolist(), shard.tolist(), strict=True))
        self._resume = {s: 0 for s in range(k)}  # shard -> first slice to retrain
        self.retrain_pending()
        return self

    def _train(self, s: int, start: int) -> None:
        """Train shard ``s``'s constituent from slice ``start`` (its checkpoint before)."""
        sh = self._shards[s]
        if sh.ids.size == 0:
            sh.model, sh.checkpoints = None, []
            return
        est = clone(self._base)
        if "random_state" in est.get_params(deep=False):
            est.set_params(random_state=shard_seed(int(self.random_state), s))
        if self.n_slices == 1:
            if is_classifier(est) and np.unique(sh.y).size == 1:
                sh.model = _Constant(sh.y[0])
            else:
                sh.model = est.fit(sh.X, sh.y)
            return
        del sh.checkpoints[start:]
        model = copy.deepcopy(sh.checkpoints[start - 1]) if start > 0 else est
        extra = {"classes": self.classes_} if is_classifier(est) else {}
        for j in range(start, int(self.n_slices)):
            rows = np.flatnonzero(sh.slices == j)
            if rows.size:
                model.partial_fit(sh.X[rows], sh.y[rows], **extra)
            if j < self.n_slices - 1:
                sh.checkpoints.append(copy.deepcopy(model))
        sh.model = model if hasattr(model, "n_features_in_") else None

    def retrain_pending(self) -> RetrainResult:
        """Retrain the constituents dropped by deletions (what a background worker calls);
        afterwards the model is ``fit(D \\ S)``'s."""
        t0 = time.perf_counter()
        todo = sorted(self._resume.items())
        for s, start in todo:
            self._train(s, start)
            del self._resume[s]
        rows = sum(self._shards[s].ids.size for s, _ in todo)
        return RetrainResult(len(todo), rows, time.perf_counter() - t0)

    @property
    def pending_(self) -> tuple[int, ...]:
        """Shards awaiting retrain (left out of predictions until then)."""
        return tuple(sorted(self._resume))

    @property
    def served_(self) -> tuple[int, ...]:
        """Shards whose constituent serves (empty: every trained one awaits retrain)."""
        return tuple(s for s, sh in enumerate(self._shards) if sh.model is not None)

    @property
    def row_ids_(self) -> np.ndarray:
        return np.concatenate([sh.ids for sh in self._shards])

    # -- forgetting ----------------------------------------------------------------------
    def _request(self, row_ids: ArrayLike) -> list[int]:
        ids = requested_row_ids(row_ids).tolist()
        unknown = [i for i in ids if i not in self._where]
        if unknown:
            raise UnknownRowIdsError(unknown, type(self).__name__)
        if ids and len(ids) >= len(self._where):
            raise EmptyModelError(
                f"forgetting {len(ids)} rows would leave {type(self).__name__} with no "
                "training rows; retrain on other data or delete the model"
            )
        return ids

    def forget(self, row_ids: ArrayLike) -> ForgetResult:
        """Remove rows: drop their shards' constituents (and later checkpoints) at once, then
        retrain them now or on :meth:`retrain_pending` (``retrain``). A refused request (see
        ``forget.errors``) changes nothing."""
        check_is_fitted(self, "n_features_in_")
        t0 = time.perf_counter()
        ids = self._request(row_ids)
        by_shard: dict[int, list[int]] = {}
        for i in ids:
            by_shard.setdefault(self._where.pop(i), []).append(i)
        gone_labels = []
        for s, drop in by_shard.items():
            sh = self._shards[s]
            hit = np.isin(sh.ids, drop)
            first = int(sh.slices[hit].min())
            if is_classifier(self._base):
                gone_labels.append(sh.y[hit])
            sh.X[hit] = 0.0  # overwritten before the arrays are replaced: no copy keeps them
            sh.ids[hit] = 0
            keep = ~hit
            sh.X, sh.y, sh.ids, sh.slices = sh.X[keep], sh.y[keep], sh.ids[keep], sh.slices[keep]
            sh.model = None  # discarded at once, not kept until the retrain
            del sh.checkpoints[first:]
            self._resume[s] = min(first, self._resume.get(s, first))
        dropped = self._drop_classes(gone_labels) if gone_labels else 0
        if dropped and self.n_slices > 1:  # every constituent was trained with classes_
            for s, sh in enumerate(self._shards):
                sh.model, sh.checkpoints = None, []
                self._resume[s] = 0
        pending = len(self._resume)
        if self.retrain == "now":
            self.retrain_pending()
        details = {
            "shards_affected": float(len(by_shard)),
            "shards_dropped": float(pending),  # every shard pending when forget answered
            "shards_pending": float(len(self._resume)),  # ... and after a retrain="now"
            "classes_dropped": float(dropped),
        }
        return ForgetResult(
            tuple(ids),
            self.guarantee,
            (Path.SLOW,) * len(ids),
            time.perf_counter() - t0,
            needs_retrain=bool(self._resume),
            details=details,
        )

    def _drop_classes(self, labels: list[np.ndarray]) -> int:
        gone = np.concatenate(labels)
        np.subtract.at(self._class_counts, np.searchsorted(self.classes_, gone), 1)
        keep = self._class_counts > 0
        if keep.all():
            return 0
        self.classes_, self._class_counts = self.classes_[keep], self._class_counts[keep]
        return int((~keep).sum())

    # -- predicting ----------------------------------------------------------------------
    def _served(self) -> list[Any]:
        return [sh.model for sh in self._shards if sh.model is not None]

    def _constituents(self, X: ArrayLike) -> tuple[np.ndarray, list[Any]]:
        check_is_fitted(self, "n_features_in_")
        Q = check_array(X, dtype=np.float64, ensure_all_finite=self._nan_ok(), estimator=self)
        if Q.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Q.shape[1]} features, but Sharded is expecting "
                f"{self.n_features_in_} features as input"
            )
        served = self._served()
        if not served:
            raise PendingRetrainError(
                f"all {len(self._resume)} constituents await retrain after a deletion; "
                "call retrain_pending()"
            )
        return Q, served

    @available_if(lambda self: is_classifier(self._base))
    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Mean of the served constituents' probabilities (or their vote shares), columns in
        the order of ``classes_``; shards are summed in index order."""
        Q, served = self._constituents(X)
        out = np.zeros((Q.shape[0], self.classes_.size))
        rows = np.arange(Q.shape[0])
        for model in served:
            if self.aggregate == "vote":
                out[rows, np.searchsorted(self.classes_, model.predict(Q))] += 1.0
            else:
                out[:, np.searchsorted(self.classes_, model.classes_)] += model.predict_proba(Q)
        return out / len(served)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable class (first in ``classes_`` on a tie), or the mean prediction."""
        if is_classifier(self._base):
            return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        Q, served = self._constituents(X)
        out = np.zeros(Q.shape[0])
        for model in served:
            out += np.asarray(model.predict(Q), dtype=np.float64)
        return out / len(served)

    # -- persistence ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The parameters and the remaining rows (shard by shard) as a ``forget`` artifact;
        what ``fit(D \\ S)`` writes, byte for byte, whether or not shards are pending."""
        check_is_fitted(self, "n_features_in_")
        # the learner as built, whether given as an estimator or as its spec: the same bytes
        params = {k: _encode(v) for k, v in self.get_params().items()}
        params["estimator"] = _encode(self._base)
        y = np.concatenate([sh.y for sh in self._shards])
        if y.dtype.kind == "O":
            raise ValueError("labels of dtype object cannot be saved; use numbers or strings")
        arrays = {
            "X": np.concatenate([sh.X for sh in self._shards]).reshape(-1, self.n_features_in_),
            "y": y,
            "row_ids": self.row_ids_,
        }
        return _persist.dump(type(self).__name__, params, {}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Sharded:
        """Load an artifact of :meth:`to_bytes`: the constituents are trained again (one fit's
        time), identical for a learner deterministic given its seed."""
        _, params, _, arrays = _persist.load(data, kind=cls.__name__)
        try:
            model = cls(**{k: _decode(v) for k, v in params.items()})
            model.fit(arrays["X"], arrays["y"], row_ids=arrays["row_ids"])
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"corrupt {cls.__name__} artifact: {exc}") from None
        return model
