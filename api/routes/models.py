"""Models: predict, list, describe, train."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status

from api.deps import ServiceDep, require
from api.schemas import (
    ErrorResponse,
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
    return await svc.predict_async(model, body.rows)


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
