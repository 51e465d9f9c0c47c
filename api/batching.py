"""Adaptive micro-batching of predict calls (Clipper's AIMD batch sizing).

Calls for the same model queue up while a batch is being scored; the worker thread takes the
waiting calls of one model, up to that model's batch limit in rows, and scores them as one
matrix. The limit adapts by AIMD against a latency objective: a batch that finished within
the objective raises the limit by ``step`` rows, one that overran halves it. There is no
artificial wait by default (``max_wait`` 0): a lone request is scored at once, and batches
form by themselves under load. The queue is bounded in rows: when it is full, :meth:`submit`
raises :class:`Overloaded` and the API answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The queue holds ``max_queue_rows`` rows already; try again shortly."""


@dataclass
class _Call:
    model: str
    payload: Any
    rows: int
    future: Future[Any] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)


# score(model, payloads) -> one result (or an exception instance) per payload
Scorer = Callable[[str, Sequence[Any]], Sequence[Any]]


class Batcher:
    def __init__(
        self,
        score: Scorer,
        *,
        objective: float = 0.005,
        start_rows: int = 64,
        min_rows: int = 1,
        max_rows: int = 8192,
        step: int = 16,
        max_wait: float = 0.0,
        max_queue_rows: int = 50_000,
        on_batch: Callable[[str, int, int, float], None] | None = None,
    ) -> None:
        self.score = score
        self.objective, self.start_rows = objective, start_rows
        self.min_rows, self.max_rows, self.step = min_rows, max_rows, step
        self.max_wait, self.max_queue_rows = max_wait, max_queue_rows
        self.on_batch = on_batch
        self.limit: dict[str, int] = {}
        self._queues: dict[str, deque[_Call]] = {}
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="forget-batcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callers
    def submit_future(self, model: str, payload: Any, rows: int) -> Future[Any]:
        call = _Call(model, payload, rows)
        with self._cond:
            if self._stopped:
                raise Overloaded("the batcher is stopped")
            if self._queued_rows + rows > self.max_queue_rows and self._queued_rows:
                raise Overloaded(f"{self._queued_rows} rows are waiting to be scored")
            self._queues.setdefault(model, deque()).append(call)
            self._queued_rows += rows
            self._cond.notify()
        return call.future

    async def submit(self, model: str, payload: Any, rows: int) -> Any:
        return await asyncio.wrap_future(self.submit_future(model, payload, rows))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    # ------------------------------------------------------------------ worker
    def _take(self) -> tuple[str, list[_Call]] | None:
        """The oldest waiting model's calls, up to its row limit (None when stopping)."""
        with self._cond:
            while not self._stopped and not self._queued_rows:
                self._cond.wait()
            if not self._queued_rows:
                return None
            model = min(
                (m for m, q in self._queues.items() if q),
                key=lambda m: self._queues[m][0].queued_at,
            )
            limit = self.limit.setdefault(model, self.start_rows)
            if self.max_wait > 0:
                deadline = self._queues[model][0].queued_at + self.max_wait
                while (
                    sum(c.rows for c in self._queues[model]) < limit
                    and (left := deadline - time.perf_counter()) > 0
                    and not self._stopped
                ):
                    self._cond.wait(left)
            q = self._queues[model]
            calls = [q.popleft()]
            rows = calls[0].rows
            while q and rows + q[0].rows <= limit:
                calls.append(q.popleft())
                rows += calls[-1].rows
            self._queued_rows -= rows
            return model, calls

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            model, calls = taken
            t0 = time.perf_counter()
            try:
                results = self.score(model, [c.payload for c in calls])
            except BaseException as exc:  # the whole batch failed: every caller hears why
                results = [exc] * len(calls)
            took = time.perf_counter() - t0
            for call, result in zip(calls, results, strict=True):
                if isinstance(result, BaseException):
                    call.future.set_exception(result)
                else:
                    call.future.set_result(result)
            rows = sum(c.rows for c in calls)
            limit = self.limit[model]
            if took <= self.objective:
                self.limit[model] = min(self.max_rows, limit + self.step)
            elif rows >= limit // 2:  # only a batch near the limit says the limit is too big
                self.limit[model] = max(self.min_rows, limit // 2)
            if self.on_batch is not None:
                self.on_batch(model, len(calls), rows, took)
