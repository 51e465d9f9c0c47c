"""Datasets: upload (JSON records or CSV text), list, describe."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status

from api.deps import AuthFirst, NamePath, ServiceDep, require
from api.routes.models import ERRORS
from api.schemas import (
    AppendOut,
    DatasetAppend,
    DatasetAppendRows,
    DatasetCreate,
    DatasetCreateRows,
    DatasetList,
    DatasetOut,
)

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
