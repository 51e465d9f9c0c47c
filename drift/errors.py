"""Errors raised by the drift package.

Every error is a subclass of :class:`DriftError` and of the builtin error a caller would
naturally catch, so ``except ValueError`` keeps working::

    DriftError
    ├── DriftInputError (ValueError)    a batch that does not fit the profile: wrong number of
    │                                   features, unknown feature names, strings where numbers
    │                                   belong, keys or outputs of the wrong length
    └── ProfileFormatError (ValueError) a serialised profile that is not one this package wrote

Missing values (NaN, ``None``, ±inf) are not errors: they are counted per feature and reported.
A refused batch changes nothing.
"""

from __future__ import annotations

__all__ = ["DriftError", "DriftInputError", "ProfileFormatError"]


class DriftError(Exception):
    """Base class of every error raised by this package."""


class DriftInputError(DriftError, ValueError):
    """A batch handed to a window or monitor does not fit the reference profile."""


class ProfileFormatError(DriftError, ValueError):
    """Bytes or a dict that are not a reference profile of a version this package reads."""
