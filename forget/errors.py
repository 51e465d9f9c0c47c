"""Errors raised by forget's models.

Every error is a subclass of :class:`ForgetError` and of the builtin error a caller would
naturally catch, so ``except ValueError`` keeps working::

    ForgetError
    ├── RowIdError (KeyError-free, a ValueError)
    │   ├── UnknownRowIdsError      ids the model does not hold: never trained on, or forgotten
    │   ├── DuplicateRowIdsError    an id given twice in one request, or at fit
    │   └── HeldRowIdsError         ids given to ``learn`` that the model already holds
    ├── EmptyModelError (ValueError)  a request would leave the model without training rows
    │   └── TooFewRowsError             ... or with fewer than it needs to predict (kNN)
    └── ArtifactError (ValueError)    bytes that are not a model artifact of this library

A refused request changes nothing: models check the whole request before touching state.

A forgotten id leaves the model with its row: no model remembers that it was ever trained on it,
so forgetting it again is an unknown id (``AlreadyForgottenError`` is that same class, kept as a
name for callers written before erased ids left the models' state).
"""

from __future__ import annotations

from collections.abc import Sequence


def _preview(ids: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in list(ids)[:limit])
    more = f", ... (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return f"[{shown}{more}]"


class ForgetError(Exception):
    """Base class of every error raised by this package."""


class RowIdError(ForgetError, ValueError):
    """A forget or fit request names row ids that cannot be used."""

    def __init__(self, message: str, row_ids: Sequence[int]) -> None:
        super().__init__(message)
        self.row_ids = tuple(int(i) for i in row_ids)


class UnknownRowIdsError(RowIdError):
    def __init__(self, row_ids: Sequence[int], model: str = "model") -> None:
        super().__init__(
            f"{len(row_ids)} row ids not held by {model} (never trained on, or already "
            f"forgotten): {_preview(row_ids)}",
            row_ids,
        )


AlreadyForgottenError = UnknownRowIdsError


class DuplicateRowIdsError(RowIdError):
    def __init__(self, row_ids: Sequence[int]) -> None:
        super().__init__(
            f"{len(row_ids)} row ids given more than once: {_preview(row_ids)}", row_ids
        )


class HeldRowIdsError(RowIdError):
    def __init__(self, row_ids: Sequence[int], model: str = "model") -> None:
        super().__init__(
            f"{len(row_ids)} row ids already held by {model} (learn adds new rows only): "
            f"{_preview(row_ids)}",
            row_ids,
        )


class EmptyModelError(ForgetError, ValueError):
    """Forgetting would leave the model with no training rows; retrain or delete it instead."""


class TooFewRowsError(EmptyModelError):
    """Forgetting would leave fewer training rows than the model needs to predict (a kNN
    model's ``n_neighbors``); as for no rows: retrain on more data, or delete the model."""


class ArtifactError(ForgetError, ValueError):
    """Bytes that are not a valid model artifact (wrong format, version or kind)."""
