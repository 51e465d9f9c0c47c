"""forget: models that unlearn training records exactly, for GDPR's right to erasure."""

from forget.base import ForgetResult, Guarantee, Path, Unlearnable
from forget.hedgecut import HedgeCutClassifier

__all__ = ["ForgetResult", "Guarantee", "HedgeCutClassifier", "Path", "Unlearnable"]
__version__ = "0.1.0"
