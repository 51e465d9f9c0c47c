"""Models: predict, list, describe, train."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.deps import AuthFirst, NamePath, ServiceDep, authorize, require
from api.schemas import (
    ALIAS_PATTERN,
    RECIPIENT_PATTERN,
    AliasIn,
    AliasPredictRequest,
    AliasSet,
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
    VersionDeleted,
)
from api.service import Service

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=AuthFirst)
ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 401, 403, 404, 409, 413, 422, 503)
}


_PREDICT_REQUEST = TypeAdapter(PredictRequest)
_ALIAS_PREDICT_REQUEST = TypeAdapter(AliasPredictRequest)
# The predict routes read their path parameters themselves (see ``predict``): declared here.
_MODEL_PARAMETER = {
    "name": "model",
    "in": "path",
    "required": True,
    "schema": TypeAdapter(Name).json_schema(),
}
_ALIAS_PARAMETER = {
    "name": "alias",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ALIAS_PATTERN, "maxLength": 32},
}


def _predict_openapi(body: type[BaseModel], *parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "parameters": list(parameters),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body.model_json_schema()}},
        },
        "security": [{"HTTPBearer": []}],
    }


# Decorators apply bottom-up: the alias route is registered first, or a bare ``{model}``
# would take ``risk@champion`` whole.
@router.post(
    "/{model}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=_predict_openapi(PredictRequest, _MODEL_PARAMETER),
)
@router.post(
    "/{model}@{alias}/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=_predict_openapi(AliasPredictRequest, _MODEL_PARAMETER, _ALIAS_PARAMETER),
    summary="Predict by alias",
)
async def predict(request: Request) -> Response:
    """Predictions (and class probabilities, for classifiers) of one version of the model.

    Which version: ``version`` when pinned; else the alias (``/v1/models/{model}@{alias}/
    predict``, or the ``alias`` field; a bare name uses ``default``, and without it the
    newest ready version), which picks one version of a split by ``routing_key``. The
    answer names its version, revision and alias; a shadow version is scored beside it.
    409 when the version routed to awaits a retrain after an erasure.

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
    alias: str | None = request.path_params.get("alias")
    try:
        raw = await request.body()
        if alias is None:
            body: AliasPredictRequest = _PREDICT_REQUEST.validate_json(raw)
        else:
            body = _ALIAS_PREDICT_REQUEST.validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [e | {"loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    svc: Service = request.app.state.service
    res = await svc.predict_async(
        model,
        body.rows,
        body.subject_ids,
        alias=alias,
        version=getattr(body, "version", None),
        key=body.routing_key,
    )
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
        purpose=body.purpose,
    )


@router.get(
    "/{model}/drift",
    response_model=DriftReport,
    responses=ERRORS,
    dependencies=[Depends(require("predict", "audit"))],
)
def drift(
    model: NamePath,
    svc: ServiceDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """Drift of a version's inputs and outputs against its training data: ``version``, else
    the one the bare name answers with; compare a canary with its champion before promoting.

    Per feature: KS (numbers) or χ² with an unseen-value bucket (categories), Holm-corrected,
    gated by an effect size; ADWIN on outputs (restarted per revision), DDM on fed-back
    errors; ``alerts`` say what happened in words.
    """
    return svc.drift(model, version=version)


@router.get(
    "/{model}/export",
    response_class=Response,
    responses=ERRORS
    | {200: {"description": "the model as ONNX", "content": {"application/octet-stream": {}}}},
    dependencies=[Depends(require("admin"))],
)
def export(
    model: NamePath,
    request: Request,
    svc: ServiceDep,
    recipient: Annotated[
        str, Query(pattern=RECIPIENT_PATTERN, description="who receives the copy (Art. 19)")
    ],
    format: Annotated[Literal["onnx"], Query()] = "onnx",
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """A copy of a version (default: the bare name's) at its current revision, as ONNX.

    The store records who received which revision (and the bytes' SHA-256), so that an
    erasure's report names the recipients to notify; re-exporting after it records the fresh
    copy. 422 for a model with no exported form (kNN: the copy would carry its training
    rows)."""
    who = getattr(request.state, "principal", None)
    blob, rec = svc.export(model, recipient=recipient, version=version, fmt=format, by=who)
    name = f"{rec['model']}-v{rec['version']}-r{rec['revision']}.onnx"
    return Response(
        blob,
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Export-Id": rec["export_id"],
            "X-Export-Sha256": rec["sha256"],
            "X-Model-Version": str(rec["version"]),
            "X-Model-Revision": str(rec["revision"]),
        },
    )


@router.put(
    "/{model}/aliases/{alias}",
    response_model=AliasSet,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def set_alias(
    model: NamePath,
    alias: Annotated[str, PathParam(pattern=ALIAS_PATTERN)],
    body: AliasIn,
    request: Request,
    svc: ServiceDep,
) -> dict[str, Any]:
    """Point an alias at a version or a traffic split, with an optional shadow: a promotion,
    a rollback or a canary. Every version named must be ready (409 otherwise); the move is
    audited with who made it. Predictions resolve their alias once: none mixes versions."""
    split = {int(v): w for v, w in (body.split or {}).items()}
    target: int | dict[int, float] = body.version if body.version is not None else split
    who = getattr(request.state, "principal", None)
    return svc.set_alias(model, alias, target, shadow=body.shadow, by=who)


@router.delete(
    "/{model}/aliases/{alias}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def delete_alias(
    model: NamePath,
    alias: Annotated[str, PathParam(pattern=ALIAS_PATTERN)],
    request: Request,
    svc: ServiceDep,
) -> Response:
    """Remove an alias (audited); without ``default`` the newest ready version answers."""
    svc.delete_alias(model, alias, by=getattr(request.state, "principal", None))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{model}/versions/{version}",
    response_model=VersionDeleted,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def delete_version(
    model: NamePath,
    version: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    request: Request,
    svc: ServiceDep,
) -> dict[str, Any]:
    """Delete a version: its artifacts, its registry row and its training rows' link leave
    the disk (the database is compacted), audited. 409 while an alias names it."""
    return svc.delete_version(model, version, by=getattr(request.state, "principal", None))


@router.post(
    "/{model}/feedback",
    response_model=FeedbackResponse,
    responses=ERRORS,
    dependencies=[Depends(require("predict"))],
)
def feedback(model: NamePath, body: FeedbackRequest, svc: ServiceDep) -> dict[str, Any]:
    """True labels for a prediction's rows (by its ``prediction_id``): feeds DDM."""
    return svc.feedback(model, body.prediction_id, body.labels)
