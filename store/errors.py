"""Errors raised by the model store.

Every error is a :class:`StoreError`, and where a caller would naturally catch a builtin
(``ValueError``, ``LookupError``) it is that too::

    StoreError
    ├── StoreLockedError              another process (or store object) has the store open
    ├── StoreNotFoundError (LookupError)  no store in the directory, and none was to be created
    ├── StoreClosedError              the store was closed
    ├── StoreReadOnlyError            a write (or predict) on a store opened read-only
    ├── StoreCorruptError             a missing key file, or an artifact whose hash is wrong
    ├── InvalidNameError (ValueError)     a dataset or model name outside ^[a-z][a-z0-9_]{0,62}$
    ├── InvalidPeriodError (ValueError)   report bounds that are not ISO 8601 / out of order
    ├── DatasetError
    │   ├── UnknownDatasetError (LookupError)
    │   ├── DatasetExistsError (ValueError)
    │   ├── DatasetInUseError (ValueError)    dropping a dataset that model versions name
    │   ├── SourceError (ValueError)          unreadable, unsupported or empty source
    │   ├── SchemaMismatchError (ValueError)  appended rows with other columns or types
    │   └── SubjectColumnError (ValueError)   subject column missing or holding nulls
    ├── TrainingError
    │   ├── FeatureMismatchError (ValueError) features/label not numeric columns of the dataset
    │   ├── EstimatorError (TypeError)        an estimator that is not Unlearnable
    │   ├── FitError (ValueError)             the estimator refused the training data
    │   └── RetrainError                      a pending version's parameters build no estimator
    ├── ModelError
    │   ├── UnknownModelError (LookupError)
    │   ├── ModelNotServableError             the version routed to awaits a retrain or is retired
    │   │   └── AliasNotServableError         ... and an alias routes to it (store.aliases)
    │   ├── AliasError                        (store.aliases)
    │   │   ├── InvalidAliasError (ValueError)    a bad alias name or split
    │   │   ├── UnknownAliasError (LookupError)
    │   │   └── UnservableTargetError (ValueError)  an alias moved to a pending or retired version
    │   ├── VersionInUseError (ValueError)    deleting a version an alias names (store.aliases)
    │   └── InvalidRetentionError (ValueError)  (store.aliases)
    ├── PredictInputError (ValueError)        rows that lack the model's features
    ├── UnknownSubjectError (LookupError)     no rows and no erasure request under a subject id
    ├── InvalidPurposeError (ValueError)      a purpose name outside ^[a-z][a-z0-9_-]{0,62}$
    ├── UnknownPurposeError (LookupError)     an objection to a purpose never declared or trained
    ├── NotRestrictedError                    lifting a restriction the subject does not have
    └── ErasureError
        ├── InvalidSubjectError (ValueError)
        ├── InvalidLegalGroundError (ValueError)
        ├── InvalidEvidenceRateError (ValueError)  a sampling rate outside [0, 1]
        └── UnknownRequestError (LookupError)

A refused call changes nothing: checks run before, or inside the transaction that they abort.
"""

from __future__ import annotations

import re


class StoreError(Exception):
    """Base class of every error raised by :mod:`store`."""


class StoreLockedError(StoreError):
    """The store directory is open for writing elsewhere (DuckDB allows one writer process)."""


class StoreClosedError(StoreError):
    """The store was closed; open it again."""


class StoreReadOnlyError(StoreError):
    """The store was opened read-only: it writes nothing and holds no models in memory."""


class StoreNotFoundError(StoreError, LookupError):
    """No store in the directory named (a mistyped path), and the caller did not ask to create
    one."""


class StoreCorruptError(StoreError):
    """The store directory is inconsistent (key file missing, artifact hash mismatch)."""


class InvalidNameError(StoreError, ValueError):
    """A dataset or model name that is not a lower-case identifier."""


class DatasetError(StoreError):
    """A problem with a dataset or its source."""


class UnknownDatasetError(DatasetError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no dataset named {name!r}")


class DatasetExistsError(DatasetError, ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"dataset {name!r} exists already")


class SourceError(DatasetError, ValueError):
    """A source that cannot be read: missing file, unknown format, no rows, bad columns."""


class SubjectColumnError(DatasetError, ValueError):
    """The subject column is missing from the source or holds nulls."""


class TrainingError(StoreError):
    """A training request that cannot be carried out."""


class FeatureMismatchError(TrainingError, ValueError):
    """Features or label that are not (numeric, non-null) columns of the dataset."""


class EstimatorError(TrainingError, TypeError):
    """An estimator that does not follow :class:`forget.Unlearnable`."""


class ModelError(StoreError):
    """A problem with a registered model."""


class UnknownModelError(ModelError, LookupError):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"model {name!r}" if version is None else f"model {name!r} v{version}"
        super().__init__(f"no {what}")


class ModelNotServableError(ModelError):
    """No version of the model can serve: each awaits a retrain after an erasure."""


class PredictInputError(StoreError, ValueError):
    """Rows to predict that lack the model's features or are not numbers."""


class ErasureError(StoreError):
    """A problem with an erasure request."""


class InvalidSubjectError(ErasureError, ValueError):
    """A subject id that is not a non-empty string."""


class InvalidLegalGroundError(ErasureError, ValueError):
    """A legal ground that is not one of Art. 17(1)(a)-(f)."""


class UnknownRequestError(ErasureError, LookupError):
    def __init__(self, request_id: str) -> None:
        from store.erasure import is_request_id

        if is_request_id(request_id):
            super().__init__(f"no erasure request {request_id!r}")
        else:  # perhaps a subject id pasted by mistake: not repeated
            super().__init__(
                "no erasure request with that id (request ids are 'er_' and 16 hex digits; "
                "the text given is not repeated, as it may be a subject id)"
            )


class UnknownSubjectError(StoreError, LookupError):
    """An access request (Art. 15) for a subject id under which the store holds no rows and
    records no erasure request. The message never repeats the id."""

    def __init__(self) -> None:
        super().__init__(
            "this store holds no data under that subject id, and no erasure request names it "
            "(the id is not repeated; check it)"
        )


class InvalidPurposeError(StoreError, ValueError):
    """A processing purpose that is not a lower-case name (``marketing``, ``credit-risk``)."""


class UnknownPurposeError(StoreError, LookupError):
    """An objection (Art. 21) to a purpose that no model version was trained for and that was
    never declared (:meth:`store.ModelStore.declare_purpose`): most likely a typo."""


class NotRestrictedError(StoreError):
    """Lifting a restriction (Art. 18) for a subject whose processing is not restricted. The
    message never repeats the id."""


class FitError(TrainingError, ValueError):
    """The estimator refused the training data (its own ``ValueError`` is the cause)."""


class SchemaMismatchError(DatasetError, ValueError):
    """Rows to append whose columns or column types differ from the dataset's."""


class DatasetInUseError(DatasetError, ValueError):
    """A dataset that model versions were trained on cannot be dropped."""


class InvalidEvidenceRateError(ErasureError, ValueError):
    """An evidence sampling rate that is not a number in [0, 1]."""


class InvalidPeriodError(StoreError, ValueError):
    """A report period whose bounds are not ISO 8601 timestamps (or ``since`` > ``until``)."""


class RetrainError(TrainingError):
    """A pending version whose recorded class or parameters no longer build an estimator."""


def kind(exc: BaseException) -> str:
    """An error's kind as the API names it: ``UnknownModelError`` -> ``unknown_model``."""
    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
