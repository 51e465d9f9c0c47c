"""Adaptive micro-batching of predict calls on the event loop (Clipper's AIMD batch sizing).

A predict call queues its rows and awaits a future. The first call of an event-loop round
schedules a flush at the end of the round, so every call that arrived in the same round —
under load, many connections' requests are parsed in one round — is scored as one matrix.
Scoring runs inline on the loop when the model lock is free (no thread hop: that hop costs
more than scoring a row), and on a worker thread when the lock is held (an erasure in
progress) or the batch is large, so the loop never stalls for long.

The rows per batch adapt by AIMD against a latency objective: a batch that finished within
the objective raises the model's limit by ``step`` rows, one that overran halves it. The
queue is bounded in rows: when full, :meth:`Batcher.submit` raises :class:`Overloaded` and
the API answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class Overloaded(Exception):
    """The queue holds ``max_queue_rows`` rows already; try again shortly."""


@dataclass
class _Call:
    payload: Any
    rows: int
    future: asyncio.Future[Any]


def take_batch(queue: deque[T], limit: int, rows: Callable[[T], int]) -> tuple[list[T], int]:
    """Pop the first call of ``queue`` and those after it while the batch stays within
    ``limit`` rows (the first goes even when bigger); the calls and their rows."""
    batch = [queue.popleft()]
    total = rows(batch[0])
    while queue and total + rows(queue[0]) <= limit:
        batch.append(queue.popleft())
        total += rows(batch[-1])
    return batch, total


# score(model, payloads, wait) -> one result (or exception instance) per payload, or None
# when wait is False and the model's lock is busy. A "model" is any hashable key the scorer
# understands (the service's: (name, version)); calls are batched per key.
Scorer = Callable[[Any, Sequence[Any], bool], Sequence[Any] | None]


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
        inline_rows: int = 512,
        max_queue_rows: int = 50_000,
        on_batch: Callable[[Any, int, int, float], None] | None = None,
    ) -> None:
        self.score = score
        self.objective, self.start_rows = objective, start_rows
        self.min_rows, self.max_rows, self.step = min_rows, max_rows, step
        self.inline_rows, self.max_queue_rows = inline_rows, max_queue_rows
        self.on_batch = on_batch
        self.limit: dict[Any, int] = {}
        self.queued_rows = 0
        self._queues: dict[Any, deque[_Call]] = {}
        self._scheduled = False

    async def submit(self, model: Any, payload: Any, rows: int) -> Any:
        if self.queued_rows and self.queued_rows + rows > self.max_queue_rows:
            raise Overloaded(f"{self.queued_rows} rows are waiting to be scored")
        loop = asyncio.get_running_loop()
        call = _Call(payload, rows, loop.create_future())
        self._queues.setdefault(model, deque()).append(call)
        self.queued_rows += rows
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush, loop)
        return await call.future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        for model, q in self._queues.items():
            while q:
                limit = self.limit.setdefault(model, self.start_rows)
                calls, rows = take_batch(q, limit, lambda c: c.rows)
                self.queued_rows -= rows
                self._run(loop, model, calls, rows)

    def _run(
        self, loop: asyncio.AbstractEventLoop, model: Any, calls: list[_Call], rows: int
    ) -> None:
        payloads = [c.payload for c in calls]
        t0 = time.perf_counter()
        if rows <= self.inline_rows:
            try:
                results = self.score(model, payloads, False)
            except Exception as exc:
                results = [exc] * len(calls)
            if results is not None:
                self._settle(model, calls, rows, results, time.perf_counter() - t0)
                return

        def done(fut: asyncio.Future[Sequence[Any] | None]) -> None:
            exc = fut.exception()
            results = [exc] * len(calls) if exc is not None else fut.result()
            self._settle(model, calls, rows, results or [], time.perf_counter() - t0)

        loop.run_in_executor(None, self.score, model, payloads, True).add_done_callback(done)

    def _settle(
        self, model: Any, calls: list[_Call], rows: int, results: Sequence[Any], took: float
    ) -> None:
        for call, result in zip(calls, results, strict=True):
            if call.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                call.future.set_exception(result)
            else:
                call.future.set_result(result)
        limit = self.limit[model]
        if took <= self.objective:
            self.limit[model] = min(self.max_rows, limit + self.step)
        elif rows >= limit // 2:  # only a batch near the limit says the limit is too big
            self.limit[model] = max(self.min_rows, limit // 2)
        if self.on_batch is not None:
            self.on_batch(model, len(calls), rows, took)
