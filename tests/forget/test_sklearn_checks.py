"""scikit-learn's own estimator checks over every estimator of forget, in one place.

Each estimator is a scikit-learn estimator first (``clone``, pipelines, cross-validation,
scikit-learn's input checks and messages); forgetting comes on top. The forest runs at 10 trees:
the checks judge the API and input handling, not accuracy (``check_classifiers_train`` included).
No check is expected to fail; one that must would be declared here, with its reason, through
``parametrize_with_checks(expected_failed_checks=...)``.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from forget import (
    GaussianNB,
    HedgeCutClassifier,
    KNNClassifier,
    KNNRegressor,
    LinearRegression,
    LogisticRegression,
    MultinomialNB,
)

ESTIMATORS = [
    GaussianNB(),
    HedgeCutClassifier(n_estimators=10),
    KNNClassifier(),
    KNNRegressor(),
    LinearRegression(),
    LogisticRegression(),
    MultinomialNB(),
]


@parametrize_with_checks(ESTIMATORS)
def test_passes_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
