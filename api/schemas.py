"""Request and response bodies of the HTTP API (pydantic models, shown in OpenAPI at /docs).

Inputs are strict: feature values must be finite JSON numbers (no strings, booleans, NaN or
infinities) and unknown fields are refused, so a malformed request fails with a 4xx that says
what is wrong instead of being coerced into a wrong answer.

The schema declares every rule the server enforces that JSON Schema can state — name
patterns, the Art. 17(1) grounds, each estimator's parameters and their ranges, "rows or
csv, not both" — so that a request valid by ``/openapi.json`` is refused only for what the
schema cannot know: names of things that do not exist, columns that a dataset or a model
does not have.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from store.aliases import ALIAS_RE
from store.db import NAME_RE
from store.errors import InvalidPeriodError
from store.exports import RECIPIENT_RE

MAX_ROWS = 10_000
MAX_BATCH = 10_000  # subjects in one bulk erasure
MAX_COLUMNS = 1_000  # columns of an upload, features of a model: a wider one is refused at once
INT64 = (-(2**63), 2**63 - 1)
# The largest integer every JSON client carries exactly (RFC 8259 §6: IEEE doubles), a bound
# for numbers that are identifiers rather than data: seeds.
JSON_SAFE_INT = 2**53 - 1

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _integral(value: Any) -> Any:
    """3.0 for 3: JSON Schema counts a number without a fraction as an integer, and so does the
    API (strings and booleans stay refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Range constraints go before it (Annotated[int, Field(ge=...), Whole]): pydantic then states
# them in the JSON Schema even inside a union (``| None``).
Whole = BeforeValidator(_integral)
Int = Annotated[int, Field(strict=True), Whole]
Integer = Annotated[int, Field(strict=True, ge=INT64[0], le=INT64[1])]
Cell = Integer | Number | str | None  # a dataset value: integers stay integers
Name = Annotated[
    str,
    Field(
        pattern=NAME_RE.pattern,
        max_length=63,
        description="a lower-case identifier: a letter, then letters, digits or _",
    ),
]
Label = int | float | str
ALIAS_PATTERN = ALIAS_RE.pattern
RECIPIENT_PATTERN = RECIPIENT_RE.pattern
VersionNumber = Annotated[int, Field(strict=True, ge=1, le=2**31 - 1), Whole]
LegalGround = Literal[
    "art17-1-a", "art17-1-b", "art17-1-c", "art17-1-d", "art17-1-e", "art17-1-f"
]  # store.erasure.LEGAL_GROUNDS (a test holds them equal)


# RFC 3339's date-time (what OpenAPI's ``format: date-time`` means): T and Z in either case,
# any fraction of a second, a leap second.
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def period_bound(text: str | None, what: str) -> str | None:
    """A period bound (RFC 3339 date-time) as the store writes instants: ISO 8601 in UTC.

    Other ISO 8601 forms that Python reads are taken too, without an offset meaning UTC (as
    the store does). A leap second (``:60``) is the last microsecond of its minute, and an
    instant beyond what Python's datetime holds in UTC (year 1 with a positive offset) is its
    nearest end: as a period bound each selects the same requests.
    :class:`~store.errors.InvalidPeriodError` when ``text`` is none of these.

    >>> period_bound("2024-03-01T01:30:00+01:00", "since")
    '2024-03-01T00:30:00.000000+00:00'
    >>> period_bound("2016-12-31t23:59:60z", "until")
    '2016-12-31T23:59:59.999999+00:00'
    """
    if text is None:
        return None
    iso = text
    m = _RFC3339.match(text)
    if m is not None:
        day, hour_minute, second, fraction, offset = m.groups()
        fraction = (fraction or "")[:7]  # Python reads up to microseconds
        if second == "60":
            second, fraction = "59", ".999999"
        offset = "+00:00" if offset in ("Z", "z") else offset
        iso = f"{day}T{hour_minute}:{second}{fraction}{offset}"
    try:
        value = datetime.fromisoformat(iso)
    except ValueError:
        raise InvalidPeriodError(
            f"{what} {text!r} is not an RFC 3339 date-time (e.g. 2024-05-01T00:00:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)
    return value.isoformat(timespec="microseconds")


PURPOSE_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"  # as store.purposes.PURPOSE_RE


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- errors
class ErrorBody(BaseModel):
    type: str = Field(description="machine-readable error kind, e.g. unknown_model")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# ---------------------------------------------------------------------- predict
class AliasPredictRequest(Strict):
    """A predict body for ``/v1/models/{model}@{alias}/predict``: the alias picks the
    version."""

    rows: list[Annotated[dict[str, Number], Field(max_length=MAX_COLUMNS)]] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        description="rows keyed by feature name; every feature of the model, no others",
    )
    subject_ids: list[str | None] | None = Field(
        default=None,
        max_length=MAX_ROWS,
        description="optional: the data subject of each row (null when unknown); their rows "
        "leave the drift monitor's window when they are erased",
    )
    routing_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="sticks a caller to one version of an alias that splits traffic (the same "
        "key, the same version while the alias is unchanged); without it the split's "
        "heaviest version answers",
    )


class PredictRequest(AliasPredictRequest):
    """A predict body for ``/v1/models/{model}/predict``: the model's ``default`` alias (while
    unset, its newest ready version) picks the version, unless ``version`` pins one."""

    version: VersionNumber | None = Field(
        default=None, description="a pinned version instead of the `default` alias"
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    revision: int
    alias: str | None = Field(
        default=None, description="the alias that routed it; null for a pinned version"
    )
    prediction_id: str | None = Field(
        default=None, description="give it back with true labels: POST .../feedback"
    )
    predictions: list[Label]
    probabilities: list[list[float]] | None = None
    classes: list[Label] | None = None


MODEL_REF_PATTERN = rf"^{NAME_RE.pattern[1:-1]}(@{ALIAS_RE.pattern[1:-1]})?$"
MAX_MODELS = 32  # models in one multi-model request


class ModelRefBody(Strict):
    """One model of a multi-model request, as an object: a pinned ``version`` or an
    ``alias`` (neither: the ``default`` alias, as a bare name)."""

    model: Name
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN, max_length=32)
    version: VersionNumber | None = None

    @model_validator(mode="after")
    def _one_choice(self) -> ModelRefBody:
        if self.alias is not None and self.version is not None:
            raise PydanticCustomError("alias_and_version", "give an alias or a version, not both")
        return self


ModelRef = Annotated[
    str,
    Field(
        pattern=MODEL_REF_PATTERN,
        max_length=96,
        description="a model's name (its `default` alias) or `name@alias`",
    ),
]


class MultiPredictRequest(AliasPredictRequest):
    """A predict body for ``/v1/datasets/{name}/predict``: several models of the dataset score
    the same rows (every feature any of them reads, no others)."""

    models: list[ModelRef | ModelRefBody] = Field(
        min_length=1,
        max_length=MAX_MODELS,
        description="the models, each once: `name`, `name@alias` or "
        '`{"model", "version"}` / `{"model", "alias"}`',
    )

    def refs(self) -> list[tuple[str, str | None, int | None]]:
        """``(model, alias, version)`` per model, in the order given."""
        out: list[tuple[str, str | None, int | None]] = []
        for m in self.models:
            if isinstance(m, str):
                name, _, alias = m.partition("@")
                out.append((name, alias or None, None))
            else:
                out.append((m.model, m.alias, m.version))
        return out


class MultiPredictResponse(BaseModel):
    dataset: str
    answers: list[PredictResponse] = Field(description="one per model, in the order asked")


class FeedbackRequest(Strict):
    prediction_id: str = Field(min_length=1, max_length=64)
    labels: list[Label] = Field(min_length=1, max_length=MAX_ROWS)


class FeedbackResponse(BaseModel):
    model: str
    version: int
    rows: int


class DriftFeature(BaseModel):
    name: str
    test: str | None
    statistic: float | None
    p_value: float | None
    effect: float | None
    drift: bool
    model_config = ConfigDict(extra="allow")


class PerformanceEstimate(BaseModel):
    """A classifier's estimated accuracy on the drift window (``--estimate-accuracy``)."""

    status: str = Field(description="ready, refitting (after start or a change) or unavailable")
    reason: str | None = None
    estimated_accuracy: float | None = Field(
        None, description="on the window's rows, from their probabilities alone"
    )
    validation_accuracy: float | None = Field(
        None, description="the twin's on its clean held-out rows"
    )
    alert: bool | None = None
    margin: float | None = None
    window_rows: int | None = None
    held_out_rows: int | None = None
    regressor: str | None = Field(
        None, description="ridge or knn: the one of lower leave-one-out error on the copies"
    )
    built_in_s: float | None = None
    observed_accuracy: float | None = Field(
        None, description="on the predictions whose labels came back (feedback) since the build"
    )
    observed_labels: int | None = None


class DriftReport(BaseModel):
    model: str
    version: int
    retrained: dict[str, Any] | None = None
    drift: bool
    revision: int | None
    features: list[DriftFeature]
    detectors: list[dict[str, Any]]
    window: dict[str, Any]
    alerts: list[str]
    performance: PerformanceEstimate | None = Field(
        None, description="estimated accuracy; classifiers, with forget serve --estimate-accuracy"
    )


# ---------------------------------------------------------------------- models
class RevisionOut(BaseModel):
    revision: int
    request_id: str
    rows_forgotten: int
    logged_at: str


class ModelVersionOut(BaseModel):
    name: str
    version: int
    revision: int
    status: str
    serving: bool
    dataset: str
    estimator: str
    guarantee: str | None
    deletion_budget_left: int | None
    params: dict[str, Any]
    seed: int | None
    code_version: str
    features: list[str]
    label: str
    n_rows: int
    rows_forgotten: int
    fit_sha256: str
    artifact_sha256: str | None
    created_at: str
    lineage: list[RevisionOut]
    purpose: str | None = Field(default=None, description="null: unspecified")
    rows_withheld: int = Field(
        default=0,
        description="dataset rows left out at training: restricted subjects', and those of "
        "subjects who objected to the purpose",
    )


class AliasOut(BaseModel):
    split: dict[str, float] = Field(description="answering versions and their traffic shares")
    shadow: int | None = Field(description="scored and monitored beside them, never answered")
    set_at: str
    set_by: str | None


class AliasSet(AliasOut):
    model: str
    alias: str


Share = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]


def _one_target_schema(schema: dict[str, Any]) -> None:
    """AliasIn's schema: exactly one of ``version`` and ``split``, no nulls (absent fields
    have no default to show)."""
    for prop in schema["properties"].values():
        prop.pop("default", None)
    schema["oneOf"] = [{"required": ["version"]}, {"required": ["split"]}]


class AliasIn(Strict):
    """An alias's target: one ``version``, or a ``split`` of versions by traffic share
    (weights > 0 summing to 1), and optionally a ``shadow`` version."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_target_schema)

    # not nullable: absent, or a value (the schema's oneOf says which)
    version: VersionNumber = None  # type: ignore[assignment]
    split: dict[Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$")], Share] = Field(
        default=None,  # type: ignore[arg-type]
        min_length=1,
        max_length=16,
        description='versions and traffic shares (> 0, summing to 1), e.g. {"3": 0.9, "4": 0.1}',
        json_schema_extra={"additionalProperties": False},
    )
    shadow: VersionNumber = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_target(self) -> AliasIn:
        if (self.version is None) == (self.split is None):
            raise PydanticCustomError("alias_target", "give exactly one of version and split")
        return self


class ExportOut(BaseModel):
    export_id: str
    model: str
    version: int
    revision: int
    recipient: str
    format: str
    sha256: str = Field(description="of the exported bytes (the store keeps no copy)")
    size: int
    exported_at: str
    exported_by: str | None
    stale: bool = Field(description="an erasure moved the version on, or it cannot serve")
    action: str | None = Field(description="what to do about a stale copy, in words")


class ExportList(BaseModel):
    exports: list[ExportOut]


class VersionDeleted(BaseModel):
    model: str
    version: int
    deleted: bool


class VersionRetentionSet(Strict):
    keep_last: Annotated[int, Field(strict=True, ge=1, le=1_000_000), Whole] | None = Field(
        description="versions of each model kept (those an alias names and the newest ready "
        "one always stay); null keeps all",
    )


class VersionRef(BaseModel):
    model: str
    version: int


class VersionRetentionOut(BaseModel):
    keep_last: int | None
    deleted: list[VersionRef] = Field(default_factory=list, description="deleted by this call")


class ModelOut(BaseModel):
    name: str
    serving_version: int | None = Field(description="the version the bare name answers with")
    aliases: dict[str, AliasOut] = Field(default_factory=dict)
    versions: list[ModelVersionOut]


class ModelList(BaseModel):
    models: list[ModelOut]


class Params(BaseModel):
    """An estimator's parameters: those it takes, each in its range; omitted ones take the
    estimator's defaults (shown here)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    estimator: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        unknown = sorted(set(data) - set(cls.model_fields)) if isinstance(data, dict) else []
        if unknown:
            raise PydanticCustomError(
                "unknown_parameters",
                "{estimator} does not take the parameters {unknown}; it takes {known}",
                {"estimator": cls.estimator, "unknown": unknown, "known": list(cls.model_fields)},
            )
        return data


PositiveInt = Annotated[int, Field(strict=True, ge=1, le=2**31 - 1), Whole]
Count = Annotated[int, Field(strict=True, ge=0, le=2**31 - 1), Whole]
Classes = Annotated[
    list[Label],
    Field(min_length=1, max_length=MAX_ROWS, description="the label set; from y when null"),
]


def _count_above_one(value: Any) -> Any:
    """A whole number above 1 is a count even when written 3.0; 1.0 stays the share 1."""
    return int(value) if isinstance(value, float) and value > 1 and value.is_integer() else value


class HedgeCutClassifierParams(Params):
    estimator = "HedgeCutClassifier"
    n_estimators: Int = Field(default=100, ge=1, le=1_000)
    max_depth: PositiveInt | None = None
    min_samples_leaf: PositiveInt = 2
    max_features: Annotated[
        Literal["sqrt", "log2"]
        | Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]
        | Annotated[float, Field(gt=0, le=1)],
        BeforeValidator(_count_above_one),
    ] = Field(
        default=0.6, description="per node: a share of the features, a count, sqrt or log2 of them"
    )
    deletion_budget: float = Field(default=0.001, ge=0, lt=1)
    feature_bounds: (
        Annotated[
            list[Annotated[list[Number], Field(min_length=2, max_length=1_024)]],
            Field(min_length=1, max_length=MAX_COLUMNS),
        ]
        | None
    ) = Field(default=None, description="per feature: (low, high), or non-decreasing knots")
    classes: Classes | None = None
    hedge_min_samples: Count = 256
    max_variants: Int = Field(default=0, ge=0, le=127)
    max_hedge_depth: Int = Field(default=1, ge=0, le=1_000)
    random_depth: Int = Field(default=0, ge=0, le=1_000)
    max_samples: float = Field(default=0.1, gt=0, le=1)
    defer_rows: PositiveInt | None = Field(
        default=None,
        description="rebuilds of subtrees of this many rows or more wait: their trees sit out "
        "of predictions until rebuilt in the background (null: none wait)",
    )
    n_jobs: Annotated[int, Field(strict=True, ge=-1, le=256), Whole] | None = Field(
        default=None, description="threads; -1: all"
    )
    random_state: Annotated[int, Field(strict=True, ge=0, le=JSON_SAFE_INT), Whole] | None = Field(
        default=None, description="the seed (null: one is drawn)"
    )


class _KNNParams(Params):
    n_neighbors: Int = Field(default=5, ge=1, le=MAX_ROWS)
    weights: Literal["uniform", "distance"] = "uniform"
    algorithm: Literal["auto", "brute", "index"] = "auto"
    leaf_size: Int = Field(default=30, ge=1, le=MAX_ROWS)


class KNNClassifierParams(_KNNParams):
    estimator = "KNNClassifier"


class KNNRegressorParams(_KNNParams):
    estimator = "KNNRegressor"


class LinearRegressionParams(Params):
    estimator = "LinearRegression"
    alpha: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    fit_intercept: bool = True


class LogisticRegressionParams(Params):
    estimator = "LogisticRegression"
    lam: float = Field(default=0.001, gt=0, allow_inf_nan=False)
    fit_intercept: bool = True
    max_iter: Int = Field(default=100, ge=1, le=10_000)
    tol: float = Field(default=1e-10, gt=0, allow_inf_nan=False)
    removal_budget: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    classes: Classes | None = None


class GaussianNBParams(Params):
    estimator = "GaussianNB"
    var_smoothing: float = Field(default=1e-09, ge=0, allow_inf_nan=False)
    classes: Classes | None = None


class MultinomialNBParams(Params):
    estimator = "MultinomialNB"
    alpha: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    fit_prior: bool = True
    classes: Classes | None = None


class EstimatorSpec(Strict):
    kind: str
    params: Params

    def kwargs(self) -> dict[str, Any]:
        """The parameters given (the estimator's defaults stand for the rest)."""
        return self.params.model_dump(exclude_unset=True)


class HedgeCutClassifierSpec(EstimatorSpec):
    kind: Literal["HedgeCutClassifier"]
    params: HedgeCutClassifierParams = Field(default_factory=HedgeCutClassifierParams)


class KNNClassifierSpec(EstimatorSpec):
    kind: Literal["KNNClassifier"]
    params: KNNClassifierParams = Field(default_factory=KNNClassifierParams)


class KNNRegressorSpec(EstimatorSpec):
    kind: Literal["KNNRegressor"]
    params: KNNRegressorParams = Field(default_factory=KNNRegressorParams)


class LinearRegressionSpec(EstimatorSpec):
    kind: Literal["LinearRegression"]
    params: LinearRegressionParams = Field(default_factory=LinearRegressionParams)


class LogisticRegressionSpec(EstimatorSpec):
    kind: Literal["LogisticRegression"]
    params: LogisticRegressionParams = Field(default_factory=LogisticRegressionParams)


class GaussianNBSpec(EstimatorSpec):
    kind: Literal["GaussianNB"]
    params: GaussianNBParams = Field(default_factory=GaussianNBParams)


class MultinomialNBSpec(EstimatorSpec):
    kind: Literal["MultinomialNB"]
    params: MultinomialNBParams = Field(default_factory=MultinomialNBParams)


SKLEARN_KIND = r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$"


def _sklearn_kind(value: Any) -> Any:
    """Refuse, by name, an inner learner that is not a scikit-learn class (the server imports
    what it names: only ``sklearn.*``)."""
    if isinstance(value, str) and not re.fullmatch(SKLEARN_KIND, value):
        raise PydanticCustomError(
            "not_sklearn",
            "Sharded's estimator kind {kind} is not a scikit-learn class: Sharded wraps only "
            "estimator classes of modules under 'sklearn.', named by their dotted path (e.g. "
            "'sklearn.ensemble.HistGradientBoostingClassifier')",
            {"kind": repr(value)},
        )
    return value


class SklearnSpec(Strict):
    """A scikit-learn estimator: its class by dotted path, and its constructor's parameters."""

    kind: Annotated[str, BeforeValidator(_sklearn_kind)] = Field(
        pattern=SKLEARN_KIND, description="e.g. sklearn.ensemble.HistGradientBoostingClassifier"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="its parameters (JSON values); its defaults otherwise"
    )


class ShardedParams(Strict):
    """forget.Sharded's parameters (SISA: one constituent per shard, dropped by an erasure and
    retrained by the purger, the version serving meanwhile)."""

    estimator: SklearnSpec = Field(description="the learner each shard trains a clone of")
    n_shards: Int = Field(default=5, ge=1, le=10_000)
    n_slices: Int = Field(default=1, ge=1, le=1_000)
    aggregate: Literal["mean_proba", "vote"] = "mean_proba"
    random_state: Annotated[int, Field(strict=True, ge=0, le=JSON_SAFE_INT), Whole] = 0


class ShardedSpec(Strict):
    kind: Literal["Sharded"]
    params: ShardedParams

    def kwargs(self) -> dict[str, Any]:
        """The parameters given, the learner as its full spec (kind and params)."""
        given = self.params.model_dump(exclude_unset=True)
        return given | {"estimator": self.params.estimator.model_dump()}


PARAMS: tuple[type[Params], ...] = (
    GaussianNBParams,
    HedgeCutClassifierParams,
    KNNClassifierParams,
    KNNRegressorParams,
    LinearRegressionParams,
    LogisticRegressionParams,
    MultinomialNBParams,
)
# api.service.ESTIMATORS (a test holds them equal); Sharded's parameters wrap a learner
KINDS = (*(p.estimator for p in PARAMS), "Sharded")


def _known_kind(value: Any) -> Any:
    """Refuse an unknown estimator kind by name, before the union tries its members."""
    if isinstance(value, dict) and value.get("kind") not in KINDS:
        raise PydanticCustomError(
            "unknown_estimator",
            "unknown estimator {kind}; forget offers {kinds}",
            {"kind": repr(value.get("kind")), "kinds": list(KINDS)},
        )
    return value


AnyEstimatorSpec = Annotated[
    HedgeCutClassifierSpec
    | KNNClassifierSpec
    | KNNRegressorSpec
    | LinearRegressionSpec
    | LogisticRegressionSpec
    | GaussianNBSpec
    | MultinomialNBSpec
    | ShardedSpec,
    Discriminator("kind"),
]


class TrainRequest(Strict):
    name: Name
    dataset: Name
    estimator: Annotated[AnyEstimatorSpec, BeforeValidator(_known_kind)] = Field(
        description="a forget estimator class (kind) and its parameters"
    )
    label: str = Field(min_length=1)
    features: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, max_length=MAX_COLUMNS
    )
    purpose: str | None = Field(
        default=None,
        pattern=PURPOSE_PATTERN,
        description="what the version is processed for (objections name it, Art. 21); "
        "null: unspecified, which no objection to a purpose touches",
    )


# ---------------------------------------------------------------------- datasets
Record = Annotated[
    dict[Annotated[str, Field(min_length=1)], Cell],
    Field(min_length=1, max_length=MAX_COLUMNS, description="a row, keyed by column name"),
]
CsvText = Annotated[
    str,
    Field(
        min_length=1,
        description=f"CSV text: a header line naming at most {MAX_COLUMNS} columns, then rows",
    ),
]


class _DatasetCreate(Strict):
    name: Name
    subject_column: str = Field(
        min_length=1, description="the column naming each row's data subject (text)"
    )


class DatasetCreateRows(_DatasetCreate):
    rows: list[Record] = Field(min_length=1, description="records; each names the subject")


class DatasetCreateCsv(_DatasetCreate):
    csv: CsvText


class DatasetAppendRows(Strict):
    rows: list[Record] = Field(min_length=1, description="records with the dataset's columns")


class DatasetAppendCsv(Strict):
    csv: CsvText


def _rows_or_csv(value: Any) -> str | None:
    """Which upload a body is: ``rows`` or ``csv``; None (refused) when it has both or neither."""
    if not isinstance(value, dict):
        return "rows"  # its model says what is wrong: not an object
    given = [key for key in ("rows", "csv") if key in value]
    return given[0] if len(given) == 1 else None


def _upload(rows: type[BaseModel], csv: type[BaseModel]) -> Any:
    return Annotated[
        Annotated[rows, Tag("rows")] | Annotated[csv, Tag("csv")],
        Discriminator(
            _rows_or_csv,
            custom_error_type="rows_or_csv",
            custom_error_message="give exactly one of rows or csv",
        ),
    ]


DatasetCreate = _upload(DatasetCreateRows, DatasetCreateCsv)
DatasetAppend = _upload(DatasetAppendRows, DatasetAppendCsv)


class AppendOut(BaseModel):
    dataset: str
    rows: int
    first_row_id: int
    last_row_id: int
    n_rows: int


class ColumnOut(BaseModel):
    name: str
    type: str


class DatasetOut(BaseModel):
    name: str
    subject_column: str
    rows: int
    columns: list[ColumnOut]


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


# ---------------------------------------------------------------------- erasure
class ErasureCreate(Strict):
    subject_id: str = Field(min_length=1, max_length=256)
    legal_ground: LegalGround = Field(
        default="art17-1-b", description="Art. 17(1) ground: (a) ... (f)"
    )


class ErasureBatch(Strict):
    subject_ids: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="each subject gets its own request and receipt, in this order",
    )
    legal_ground: LegalGround = Field(
        default="art17-1-b", description="Art. 17(1) ground: (a) ... (f), for every request"
    )


class ErasureBatchItem(BaseModel):
    index: int = Field(description="the subject's place in subject_ids")
    request_id: str | None = None
    status: str | None = None
    repeat: bool | None = None
    rows_erased: int | None = None
    error: ErrorBody | None = Field(default=None, description="why this request failed alone")


class ErasureBatchOut(BaseModel):
    requests: list[ErasureBatchItem]
    by_status: dict[str, int]
    failed: int


class ModelActionOut(BaseModel):
    model: str
    version: int
    revision: int
    action: str
    guarantee: str | None
    forget_seconds: float | None
    evidence: dict[str, Any]


class ErasureOut(BaseModel):
    request_id: str
    status: Literal["pending", "erased", "completed", "no_data"] = Field(
        description="pending: a model awaits its retrain; erased: rows deleted and every model "
        "forgot them, purge to follow; completed: purged too; no_data: the store held no data "
        "under this subject id, nothing was erased"
    )
    subject_key: str
    legal_ground: str
    received_at: str
    erased_at: str | None
    completed_at: str | None
    deadline: str
    datasets: dict[str, int]
    rows_erased: int
    models: list[ModelActionOut]
    repeat: bool
    requested_by: str | None = Field(
        description="who asked: the name of the API key that filed it (FORGET_API_KEYS), "
        "cli:<user>, or as given; null for requests made before forget recorded requesters"
    )
    handled_by: str | None = Field(
        description="the forget instance that carried it out: "
        "forget <version> (<channel>) on <host>"
    )


# ---------------------------------------------------------------------- audit, health
class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    head: str
    problems: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    models: int
    version: str


# ---------------------------------------------------------------------- access (Art. 15, 20)
SUBJECT_HEADER = "Forget-Subject-Id"
# What an HTTP header carries reliably: printable ASCII, without the spaces at either end that
# HTTP strips (an id with other characters is POSTed in a JSON body instead).
SUBJECT_HEADER_PATTERN = r"^[!-~](?:[ -~]{0,254}[!-~])?$"


class AccessCreate(Strict):
    subject_id: str = Field(
        min_length=1,
        max_length=256,
        description="the subject's id as the datasets hold it: in the body, never in the URL",
    )


class AccessDataset(BaseModel):
    dataset: str
    subject_column: str
    columns: list[ColumnOut]
    rows: int
    row_ids: list[int] = Field(description="the store's row ids, in the order of records")
    records: list[dict[str, Any]] = Field(
        description="the rows, every column (the subject column too), as JSON values"
    )


class AccessModel(BaseModel):
    model: str
    version: int
    dataset: str
    trained_at: str
    rows: int = Field(description="how many of the subject's rows it was trained on")
    status: str | None
    revision: int
    served: bool = Field(description="the bare model name or an alias routes requests to it")
    served_by: list[str] = Field(description="the aliases that route to it; default: bare name")


class AccessForgotten(BaseModel):
    request_id: str
    model: str
    version: int
    revision: int
    action: str
    version_status: str


class AccessExport(BaseModel):
    export_id: str
    recipient: str
    model: str
    version: int
    revision: int
    exported_at: str
    stale: bool
    action: str | None = Field(description="what to do about the copy, in words")
    reason: Literal["trained_on_rows", "exported_before_erasure"]
    request_id: str | None = Field(description="the erasure the copy predates")
    replaced_by: str | None = Field(description="the export of a revision without the rows")


class AccessErasureRequest(BaseModel):
    request_id: str
    status: str
    status_text: str
    legal_ground: str
    received_at: str
    erased_at: str | None
    completed_at: str | None
    deadline: str
    rows_erased: int


class AccessCounts(BaseModel):
    datasets: int
    rows: int
    models_trained: int
    models_served: int
    models_forgot: int
    exports: int
    erasure_requests: int
    objections: int = 0
    restrictions: int = 0


class ObjectionCreate(Strict):
    subject_id: str = Field(
        min_length=1, max_length=256, description="in the body, never in the URL"
    )
    purpose: str = Field(
        pattern=PURPOSE_PATTERN,
        description="the processing purpose objected to (Art. 21): one models were trained "
        "for (train ... purpose) or one declared",
    )


class RestrictionCreate(Strict):
    subject_id: str = Field(
        min_length=1, max_length=256, description="in the body, never in the URL"
    )


class StepOut(BaseModel):
    model: str
    version: int
    revision: int = Field(description="the version's revision after this step")
    action: Literal["exact_unlearning", "approximate_unlearning", "pending_retrain", "learn"] = (
        Field(
            description="forgot the rows in place; learnt them back in place (a lift); or "
            "awaits a retrain (not served until the purger refits it)"
        )
    )
    guarantee: str | None
    rows: int
    reason: str | None = None


class PurposeDeclared(BaseModel):
    purpose: str
    created: bool = Field(description="false: the purpose was known already")


class PurposeModel(BaseModel):
    model: str
    version: int
    status: str


class PurposeOut(BaseModel):
    purpose: str
    models: list[PurposeModel] = Field(description="the versions processed for it")
    objections: int = Field(description="subjects who objected to it")


class PurposesOut(BaseModel):
    purposes: list[PurposeOut]


class ObjectionOut(BaseModel):
    objection_id: str
    subject_key: str = Field(description="the subject's keyed pseudonym")
    purpose: str
    objected_at: str
    objected_by: str | None
    rows: int = Field(description="the subject's rows: they stay in the datasets")
    models: list[StepOut] = Field(description="what each version of the purpose did")
    repeat: bool = Field(description="an earlier objection to this purpose, answered again")


class RestrictionOut(BaseModel):
    restriction_id: str
    subject_key: str = Field(description="the subject's keyed pseudonym")
    status: Literal["restricted", "lifted"]
    since: str
    restricted_by: str | None
    rows: int = Field(description="the subject's rows when restricted: they stay")
    lifted_at: str | None
    lifted_by: str | None
    models: list[StepOut] = Field(description="what each version did in this step")
    repeat: bool = Field(description="the restriction in force, answered again")


class AccessObjection(BaseModel):
    objection_id: str
    purpose: str
    objected_at: str
    objected_by: str | None
    rows: int


class AccessRestriction(BaseModel):
    restriction_id: str
    status: Literal["restricted", "lifted"]
    since: str
    restricted_by: str | None
    rows: int
    lifted_at: str | None
    lifted_by: str | None


class AccessOut(BaseModel):
    subject_key: str = Field(description="the subject's keyed pseudonym")
    generated_at: str
    found: bool
    datasets: list[AccessDataset]
    models: list[AccessModel]
    forgotten: list[AccessForgotten]
    exports: list[AccessExport]
    erasure_requests: list[AccessErasureRequest]
    counts: AccessCounts
    objections: list[AccessObjection] = Field(default_factory=list)
    restrictions: list[AccessRestriction] = Field(default_factory=list)


# ---------------------------------------------------------------------- retention (Art. 5(1)(e))
ISO_DURATION = r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$"


class RetentionSet(Strict):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")  # the look-aheads

    time_column: str = Field(
        min_length=1,
        max_length=256,
        description="the column holding each row's time: timestamps, dates, ISO 8601 text or "
        "seconds since 1970 (a row without one never expires)",
    )
    period: str = Field(
        pattern=ISO_DURATION,
        max_length=64,
        description="an ISO 8601 duration, not zero, under 1000 years: rows older expire",
        examples=["P30D", "P6M", "P1Y6M", "P2W", "PT36H"],
    )


class RetentionPolicyOut(BaseModel):
    dataset: str
    time_column: str
    period: str
    set_at: str
    set_by: str | None


class ExpiryAction(BaseModel):
    model: str
    version: int
    action: str


class ExpiryOut(BaseModel):
    request_id: str = Field(description="the erasure request the expiry was carried out as")
    dataset: str
    expired_at: str
    before: str | None = Field(description="the cutoff: rows whose time was before it expired")
    rows: int
    status: str
    models: list[ExpiryAction]


class RetentionOut(BaseModel):
    policies: list[RetentionPolicyOut]
    expiries: list[ExpiryOut]


class ExpireOut(BaseModel):
    requests: list[ErasureOut] = Field(
        description="one erasure request per dataset with rows past its period (legal ground "
        "art5-1-e, no subject); none when nothing expired"
    )
