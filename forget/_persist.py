"""The artifact format: a NumPy ``.npz`` archive that never executes code when loaded.

Layout: one array per model state entry, plus ``__meta__``, a UTF-8 JSON document
``{"format": "forget-artifact", "version": 1, "kind": <class name>, "params": {...},
"state": {...}}`` holding the constructor parameters and small scalar state. Arrays are read
with ``allow_pickle=False``, so object arrays (and pickles) are refused.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from forget.errors import ArtifactError

FORMAT = "forget-artifact"
VERSION = 1


def dump(
    kind: str, params: dict[str, Any], state: dict[str, Any], arrays: dict[str, np.ndarray]
) -> bytes:
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "params": params, "state": state}
    buf = io.BytesIO()
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    entries: dict[str, Any] = {"__meta__": blob, **arrays}
    np.savez_compressed(buf, **entries)
    return buf.getvalue()


def load(
    data: bytes, kind: str | None = None
) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"not a forget model artifact: {exc}") from exc
    if "__meta__" not in arrays:
        raise ArtifactError("not a forget model artifact: no __meta__ entry")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"corrupt artifact metadata: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ArtifactError(
            f"unsupported artifact format {meta.get('format')!r} v{meta.get('version')}"
        )
    if kind is not None and meta.get("kind") != kind:
        raise ArtifactError(f"artifact holds a {meta.get('kind')}, not a {kind}")
    return meta["kind"], meta["params"], meta["state"], arrays
