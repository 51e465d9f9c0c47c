"""drift: is a deployed model still seeing the data it was trained on?

The statistical core of drift monitoring, one :class:`Monitor` per model version:

- :class:`ReferenceProfile` — per-feature marginal summaries of the training data (a bounded
  sorted sample for numbers, frequencies for categories); JSON, no pickle, no training rows.
- :class:`Window` — the last N serving rows (inputs, outputs, optional erasure keys), with
  ``discard(keys)`` for erased subjects.
- per-feature tests (:mod:`drift.stats`): KS against the sorted reference sample, χ² with an
  unseen-value bucket, Holm (or Bonferroni) over the features, gated by an effect size
  (Wasserstein-1 in reference standard deviations, PSI).
- streaming detectors (:mod:`drift.detectors`): :class:`ADWIN` on output scores and
  :class:`DDM` on errors, restarted when the model's revision changes.
- performance prediction (:mod:`drift.performance`, imported on its own: it compiles kernels):
  a classifier's accuracy estimated from its output probabilities on unlabeled traffic.

Errors are in :mod:`drift.errors`.

>>> import numpy as np
>>> from drift import Monitor, ReferenceProfile
>>> rng = np.random.default_rng(1)
>>> mon = Monitor(ReferenceProfile.fit(rng.normal(size=(4000, 3)), ["a", "b", "c"]))
>>> mon.observe(rng.normal(size=(3000, 3)), outputs=rng.random(3000))
>>> mon.report()["drift"]
False
"""

from drift.detectors import ADWIN, DDM, Change
from drift.errors import DriftError, DriftInputError, ProfileFormatError
from drift.evaluate import FeatureResult, Thresholds
from drift.monitor import Monitor, MonitorConfig
from drift.profile import CategoricalFeature, NumericFeature, ReferenceProfile
from drift.window import Window

__all__ = [
    "ADWIN",
    "DDM",
    "CategoricalFeature",
    "Change",
    "DriftError",
    "DriftInputError",
    "FeatureResult",
    "Monitor",
    "MonitorConfig",
    "NumericFeature",
    "ProfileFormatError",
    "ReferenceProfile",
    "Thresholds",
    "Window",
]
