"""Request and response bodies of the HTTP API (pydantic models, shown in OpenAPI at /docs).

Inputs are strict: feature values must be finite JSON numbers (no strings, booleans, NaN or
infinities) and unknown fields are refused, so a malformed request fails with a 4xx that says
what is wrong instead of being coerced into a wrong answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Integer = Annotated[int, Field(strict=True)]
Cell = Integer | Number | str | None  # a dataset value: integers stay integers
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Label = int | float | str
MAX_ROWS = 10_000


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
class PredictRequest(Strict):
    rows: list[dict[str, Number]] = Field(
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


class PredictResponse(BaseModel):
    model: str
    version: int
    revision: int
    prediction_id: str | None = Field(
        default=None, description="give it back with true labels: POST .../feedback"
    )
    predictions: list[Label]
    probabilities: list[list[float]] | None = None
    classes: list[Label] | None = None


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


class ModelOut(BaseModel):
    name: str
    serving_version: int | None
    versions: list[ModelVersionOut]


class ModelList(BaseModel):
    models: list[ModelOut]


class EstimatorSpec(Strict):
    kind: str = Field(description="a forget estimator class, e.g. HedgeCutClassifier")
    params: dict[str, Any] = Field(default_factory=dict)


class TrainRequest(Strict):
    name: Name
    dataset: Name
    estimator: EstimatorSpec
    label: str = Field(min_length=1)
    features: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


# ---------------------------------------------------------------------- datasets
class DatasetCreate(Strict):
    name: Name
    subject_column: str = Field(min_length=1)
    rows: list[dict[str, Cell]] | None = Field(
        default=None, description="records; give either rows or csv"
    )
    csv: str | None = Field(default=None, description="CSV text with a header line")


class DatasetAppend(Strict):
    rows: list[dict[str, Cell]] | None = Field(
        default=None, description="records with the dataset's columns; give either rows or csv"
    )
    csv: str | None = Field(default=None, description="CSV text with a header line")


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
    legal_ground: str = Field(
        default="art17-1-b", description="Art. 17(1) ground: art17-1-a ... art17-1-f"
    )


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
