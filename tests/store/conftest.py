"""Fixtures for the store tests: a temporary store directory, empty or populated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store import ModelStore
from tests.store.helpers import populate


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def st(store_dir: Path) -> Iterator[ModelStore]:
    store = ModelStore.open(store_dir)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def populated(st: ModelStore) -> ModelStore:
    populate(st)
    return st
