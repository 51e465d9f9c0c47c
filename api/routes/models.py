"""Models: predict, list, describe, train."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status

from api.deps import ServiceDep, require
from api.schemas import (
    DriftReport,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelList,
    ModelOut,
    ModelVersionOut,
    PredictRequest,
    PredictResponse,
    TrainRequest,
)

router = APIRouter(prefix="/v1/models", tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 401, 403, 404, 409, 413, 422, 503)
}


@router.post(
    "/{model}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    dependencies=[Depends(require("predict"))],
)
async def predict(model: str, body: PredictRequest, svc: ServiceDep) -> dict[str, Any]:
    """Predictions (and class probabilities, for classifiers) of the serving version.

    Labels are the classes of highest probability. 503 with Retry-After when the batching
    queue is full.
    """
    return await svc.predict_async(model, body.rows, body.subject_ids)


@router.get(
    "",
    response_model=ModelList,
    responses=ERRORS,
    dependencies=[Depends(require("predict", "erase", "audit"))],
)
def list_models(svc: ServiceDep) -> dict[str, Any]:
    return {"models": svc.models()}


@router.get(
    "/{model}",
    response_model=ModelOut,
    responses=ERRORS,
    dependencies=[Depends(require("predict", "erase", "audit"))],
)
def get_model(model: str, svc: ServiceDep) -> dict[str, Any]:
    """Versions with their lineage of revisions, guarantee and deletion budget left."""
    return svc.model(model)


@router.post(
    "",
    response_model=ModelVersionOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def train(body: TrainRequest, svc: ServiceDep) -> dict[str, Any]:
    """Fit an estimator on a dataset and register it as the model's newest version."""
    return svc.train(
        body.name,
        dataset=body.dataset,
        kind=body.estimator.kind,
        params=body.estimator.params,
        label=body.label,
        features=body.features,
    )


@router.get(
    "/{model}/drift",
    response_model=DriftReport,
    responses=ERRORS,
    dependencies=[Depends(require("predict", "audit"))],
)
def drift(model: str, svc: ServiceDep) -> dict[str, Any]:
    """Drift of the serving version's inputs and outputs against its training data.

    Per feature: KS (numbers) or χ² with an unseen-value bucket (categories), Holm-corrected,
    gated by an effect size; ADWIN on outputs (restarted per revision), DDM on fed-back
    errors; ``alerts`` say what happened in words.
    """
    return svc.drift(model)


@router.post(
    "/{model}/feedback",
    response_model=FeedbackResponse,
    responses=ERRORS,
    dependencies=[Depends(require("predict"))],
)
def feedback(model: str, body: FeedbackRequest, svc: ServiceDep) -> dict[str, Any]:
    """True labels for a prediction's rows (by its ``prediction_id``): feeds DDM."""
    return svc.feedback(model, body.prediction_id, body.labels)
