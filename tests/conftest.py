"""Suite-wide: a worker per core (pytest-xdist), so each worker's OpenMP pool (scikit-learn's
HistGradientBoosting, BLAS) takes one thread — more would only fight the other workers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker() -> Iterator[None]:
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        with threadpool_limits(limits=1):
            yield
    else:
        yield
