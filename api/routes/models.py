"""Models: predict, list, describe, train."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.deps import AuthFirst, NamePath, ServiceDep, authorize, require
from api.schemas import (
    DriftReport,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    ModelList,
    ModelOut,
    ModelVersionOut,
    Name,
    PredictRequest,
    PredictResponse,
    TrainRequest,
)
from api.service import Service

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=AuthFirst)
ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 401, 403, 404, 409, 413, 422, 503)
}


_PREDICT_REQUEST = TypeAdapter(PredictRequest)
# The predict route reads its path parameter itself (see ``predict``): declared here.
_MODEL_PARAMETER = {
    "name": "model",
    "in": "path",
    "required": True,
    "schema": TypeAdapter(Name).json_schema(),
}


@router.post(
    "/{model}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={
        "parameters": [_MODEL_PARAMETER],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
        },
        "security": [{"HTTPBearer": []}],
    },
)
async def predict(request: Request) -> Response:
    """Predictions (and class probabilities, for classifiers) of the serving version.

    Labels are the classes of highest probability. 422 for an input beyond what the model
    reads (float32, for trees) or on which it overflows; 503 when the model fails to score
    (it may need a retrain), and with Retry-After when the batching queue is full.

    The hot path: the token, the model's name, the body and the answer are handled here
    rather than by FastAPI's parameter, dependency and response machinery, which cost more
    than the scoring itself (~100 µs a request); the contract (schemas, errors, the token
    checked first) is the same as every other route's. The store checks the name.
    """
    authorize(request, ("predict",))
    model: str = request.path_params["model"]
    try:
        body = _PREDICT_REQUEST.validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [e | {"loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    svc: Service = request.app.state.service
    res = await svc.predict_async(model, body.rows, body.subject_ids)
    answer = PredictResponse.model_validate(res).model_dump_json()
    return Response(answer, media_type="application/json")


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
def get_model(model: NamePath, svc: ServiceDep) -> dict[str, Any]:
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
        params=body.estimator.kwargs(),
        label=body.label,
        features=body.features,
    )


@router.get(
    "/{model}/drift",
    response_model=DriftReport,
    responses=ERRORS,
    dependencies=[Depends(require("predict", "audit"))],
)
def drift(model: NamePath, svc: ServiceDep) -> dict[str, Any]:
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
def feedback(model: NamePath, body: FeedbackRequest, svc: ServiceDep) -> dict[str, Any]:
    """True labels for a prediction's rows (by its ``prediction_id``): feeds DDM."""
    return svc.feedback(model, body.prediction_id, body.labels)
