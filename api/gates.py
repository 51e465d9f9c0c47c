"""A served model's gate: predictions pass it side by side, an erasure closes it alone.

Predictions of a model score under its gate held *shared*: any number at once, and they never
wait for the store. What rewrites the in-memory model holds it *exclusive*: an erasure, from
the moment the model forgets until its new revision is published (so no prediction sees a
model half forgotten, or a forgotten model under its old revision), and a purge around the
model's ``compact``. Everything else the store does — the rows' deletion, the audit, the
commit of other models, the artifact writes, the database compaction — happens with the gate
open. Writers come first: once one waits, new predictions queue behind it, so an erasure
storm cannot be held back by a stream of predictions (nor the reverse: each writer holds the
gate for one model's forget, commit and publish).

>>> g = Gate()
>>> g.acquire_shared() and g.acquire_shared(), g.acquire(blocking=False)
(True, False)
>>> g.release_shared(); g.release_shared(); g.acquire(blocking=False)
True
>>> g.acquire_shared(blocking=False)
False
>>> g.release()
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Gate:
    """A writer-preferring reader-writer lock (see the module docstring)."""

    __slots__ = ("_cond", "_readers", "_waiting", "_writer")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting = 0  # writers waiting: new readers let them go first

    def acquire_shared(self, blocking: bool = True) -> bool:
        with self._cond:
            while self._writer or self._waiting:
                if not blocking:
                    return False
                self._cond.wait()
            self._readers += 1
            return True

    def release_shared(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire(self, blocking: bool = True) -> bool:
        with self._cond:
            if not blocking and (self._writer or self._readers):
                return False
            self._waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer = True
            return True

    def release(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
