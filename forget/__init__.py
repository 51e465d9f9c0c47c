"""forget: models that unlearn training records exactly, for GDPR's right to erasure.

The models load on first use (``forget.HedgeCutClassifier`` imports numba and the forest's
kernels then), so that ``import forget`` — and every ``forget`` command's ``--help`` — stays
quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import forget._jit_cache  # noqa: F401  (numba's cache out of the package, before any kernel)

if TYPE_CHECKING:
    from forget.base import ForgetResult, Guarantee, Path, Unlearnable
    from forget.hedgecut import HedgeCutClassifier
    from forget.knn import KNNClassifier, KNNRegressor
    from forget.linear import LinearRegression
    from forget.logistic import LogisticRegression
    from forget.naive_bayes import GaussianNB, MultinomialNB
    from forget.sharded import Sharded

_HOME = {
    "ForgetResult": "forget.base",
    "GaussianNB": "forget.naive_bayes",
    "Guarantee": "forget.base",
    "HedgeCutClassifier": "forget.hedgecut",
    "KNNClassifier": "forget.knn",
    "KNNRegressor": "forget.knn",
    "LinearRegression": "forget.linear",
    "LogisticRegression": "forget.logistic",
    "MultinomialNB": "forget.naive_bayes",
    "Path": "forget.base",
    "Sharded": "forget.sharded",
    "Unlearnable": "forget.base",
}
__all__ = [
    "ForgetResult",
    "GaussianNB",
    "Guarantee",
    "HedgeCutClassifier",
    "KNNClassifier",
    "KNNRegressor",
    "LinearRegression",
    "LogisticRegression",
    "MultinomialNB",
    "Path",
    "Sharded",
    "Unlearnable",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'forget' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
