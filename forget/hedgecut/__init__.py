"""HedgeCut-style extremely randomized trees with exact unlearning."""

from forget.hedgecut.forest import HedgeCutClassifier

__all__ = ["HedgeCutClassifier"]
