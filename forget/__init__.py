"""forget: models that unlearn training records exactly, for GDPR's right to erasure."""

from forget.base import ForgetResult, Guarantee, Path, Unlearnable
from forget.hedgecut import HedgeCutClassifier
from forget.knn import KNNClassifier, KNNRegressor
from forget.linear import LinearRegression
from forget.logistic import LogisticRegression
from forget.naive_bayes import GaussianNB, MultinomialNB

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
    "Unlearnable",
]
__version__ = "0.1.0"
