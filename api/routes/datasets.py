"""Datasets: upload (JSON records or CSV text), list, describe."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.deps import AuthFirst, NamePath, ServiceDep, authorize, require
from api.routes.models import _MODEL_PARAMETER, ERRORS, _predict_openapi
from api.schemas import (
    AppendOut,
    DatasetAppend,
    DatasetAppendRows,
    DatasetCreate,
    DatasetCreateRows,
    DatasetList,
    DatasetOut,
    MultiPredictRequest,
    MultiPredictResponse,
)
from api.service import Service

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=AuthFirst)


@router.post(
    "",
    response_model=DatasetOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def create(body: DatasetCreate, svc: ServiceDep) -> dict[str, Any]:
    """Create a dataset from ``rows`` or ``csv``; ``subject_column`` names the data subject
    of each row."""
    if isinstance(body, DatasetCreateRows):
        return svc.create_dataset(body.name, body.subject_column, rows=body.rows, csv=None)
    return svc.create_dataset(body.name, body.subject_column, rows=None, csv=body.csv)


@router.get(
    "",
    response_model=DatasetList,
    responses=ERRORS,
    dependencies=[Depends(require("admin", "audit"))],
)
def list_datasets(svc: ServiceDep) -> dict[str, Any]:
    return {"datasets": svc.datasets()}


@router.get(
    "/{name}",
    response_model=DatasetOut,
    responses=ERRORS,
    dependencies=[Depends(require("admin", "audit"))],
)
def get_dataset(name: NamePath, svc: ServiceDep) -> dict[str, Any]:
    return svc.dataset(name)


@router.post(
    "/{name}/rows",
    response_model=AppendOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def append(name: NamePath, body: DatasetAppend, svc: ServiceDep) -> dict[str, Any]:
    """Add rows to a dataset (new row ids); existing model versions keep their rows."""
    if isinstance(body, DatasetAppendRows):
        return svc.append_rows(name, rows=body.rows, csv=None)
    return svc.append_rows(name, rows=None, csv=body.csv)


_MULTI_PREDICT_REQUEST = TypeAdapter(MultiPredictRequest)
_NAME_PARAMETER = _MODEL_PARAMETER | {"name": "name"}


@router.post(
    "/{name}/predict",
    response_model=MultiPredictResponse,
    responses=ERRORS,
    openapi_extra=_predict_openapi(MultiPredictRequest, _NAME_PARAMETER),
    summary="Predict with several models of the dataset",
)
async def predict(request: Request) -> Response:
    """The same rows scored by several models trained on this dataset, one answer per model
    (its version, revision and alias), each model routed as ``/v1/models/{model}/predict``
    routes it (``routing_key`` for splits).

    The rows are read once, into one matrix per distinct feature list, and every answer
    comes from revisions current at one moment: an erasure answered before the request is
    in every answer, one answered after in none. 422 for a model of another dataset, a
    model named twice, or rows that lack a feature one of the models reads (or carry one
    none reads); 409 when a routed version awaits a retrain. Read by hand, as the
    single-model predict is (the hot path; same contract)."""
    authorize(request, ("predict",))
    name: str = request.path_params["name"]
    try:
        body = _MULTI_PREDICT_REQUEST.validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [e | {"loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    svc: Service = request.app.state.service
    res = await svc.predict_models_async(
        name, body.refs(), body.rows, body.subject_ids, key=body.routing_key
    )
    answer = MultiPredictResponse.model_validate(res).model_dump_json()
    return Response(answer, media_type="application/json")
