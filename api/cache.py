"""A prediction cache that is never stale after an erasure.

Entries are keyed by (model, version, revision, hash of the input rows) and bounded in bytes
(least recently used leave first). The cache knows each model's current (version, revision):
an answer computed by an older revision is refused on the way in, and :meth:`invalidate`
(called by an erasure, under the service lock, before the erasure is answered) drops every
entry of the models it changed. Because an erasure changes the revision of every model trained
on the subject, no cached answer of a revision that held the erased rows survives it.

Inputs are kept only as a BLAKE2b digest: the cache holds no feature values.

Answers are kept as their JSON text, keys as plain tuples of a str, ints and bytes: the
cycle collector stops tracking such objects, so however many answers the cache holds, a full
collection — which stops the server while it runs — has none of them to walk (kept as dicts
of lists, a full 64 MiB cache made each full collection 10-100 ms, a stall every
prediction felt). A hit is a fresh copy: no caller can change another's answer.

>>> c = PredictionCache(max_bytes=10_000)
>>> c.set_current("m", 1, 0)
>>> k = c.key("m", 1, 0, b"row bytes")
>>> c.put(k, {"predictions": [1]})
True
>>> c.get(k)
{'predictions': [1]}
>>> c.set_current("m", 1, 1)          # an erasure moved the model on
>>> c.get(k) is None, c.put(k, {"predictions": [1]})
(True, False)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

Key = tuple[str, int, int, bytes]  # (model, version, revision, digest of the input rows)
ENTRY_BYTES = 400  # beside its text, what an entry holds (sys.getsizeof): key, digest, slots


class PredictionCache:
    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, tuple[str, int]] = OrderedDict()  # answer, size
        self._current: dict[tuple[str, int], int] = {}  # (model, version) -> revision
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def digest(payload: bytes) -> bytes:
        return hashlib.blake2b(payload, digest_size=16).digest()

    @classmethod
    def key(cls, model: str, version: int, revision: int, payload: bytes) -> Key:
        return (model, version, revision, cls.digest(payload))

    def current(self, model: str, version: int) -> int | None:
        """The revision a served version answers with, as last recorded, if any."""
        return self._current.get((model, version))

    def set_current(self, model: str, version: int, revision: int) -> None:
        """Record the revision a served version answers with; drop its entries of any other
        (several versions of a model may serve at once: aliases, canaries, pins)."""
        with self._lock:
            if self._current.get((model, version)) == revision:
                return
            self._current[(model, version)] = revision
            self._drop(lambda k: k[0] == model and k[1] == version and k[2] != revision)

    def invalidate(self, models: set[str] | None = None) -> int:
        """Drop every entry of ``models`` (all models when None); returns how many."""
        with self._lock:
            if models is None:
                self._current.clear()
            else:
                for mv in [mv for mv in self._current if mv[0] in models]:
                    del self._current[mv]
            return self._drop(lambda k: models is None or k[0] in models)

    def get(self, key: Key) -> Any | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or self._current.get(key[:2]) != key[2]:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return json.loads(hit[0])

    def put(self, key: Key, value: Any) -> bool:
        """Store an answer (JSON data: it comes back as ``json.loads`` gives it); refused when
        its revision is not the model's current one, when it is bigger than the cache, or
        when it is not JSON data (then it is scored each time, not kept)."""
        try:
            blob = json.dumps(value, separators=(",", ":"))
        except (TypeError, ValueError):
            return False
        size = len(blob) + ENTRY_BYTES
        with self._lock:
            if self._current.get(key[:2]) != key[2]:
                return False
            if size > self.max_bytes:
                return False
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (blob, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, s) = self._entries.popitem(last=False)
                self.bytes -= s
            return True

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, doomed: Any) -> int:
        keys = [k for k in self._entries if doomed(k)]
        for k in keys:
            self.bytes -= self._entries.pop(k)[1]
        return len(keys)
