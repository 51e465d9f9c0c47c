"""Datasets: upload (JSON records or CSV text), list, describe."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status

from api.deps import ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import AppendOut, DatasetAppend, DatasetCreate, DatasetList, DatasetOut

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post(
    "",
    response_model=DatasetOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def create(body: DatasetCreate, svc: ServiceDep) -> dict[str, Any]:
    """Create a dataset; ``subject_column`` names the data subject of each row."""
    return svc.create_dataset(body.name, body.subject_column, rows=body.rows, csv=body.csv)


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
def get_dataset(name: str, svc: ServiceDep) -> dict[str, Any]:
    return svc.dataset(name)


@router.post(
    "/{name}/rows",
    response_model=AppendOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    dependencies=[Depends(require("admin"))],
)
def append(name: str, body: DatasetAppend, svc: ServiceDep) -> dict[str, Any]:
    """Add rows to a dataset (new row ids); existing model versions keep their rows."""
    return svc.append_rows(name, rows=body.rows, csv=body.csv)
