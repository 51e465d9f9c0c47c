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
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's first date: no clock in the bytes
VERSION = 1


def dump(
    kind: str, params: dict[str, Any], state: dict[str, Any], arrays: dict[str, np.ndarray]
) -> bytes:
    """The archive's bytes: the same for the same model (entries carry a fixed timestamp).

    Deflate level 1, not ``np.savez_compressed``'s 6: a 100-tree forest on adult writes in
    0.10 s instead of 0.44 s (the store rewrites artifacts while it holds its lock) and
    takes 3.5 MB instead of 3.1.
    """
    meta = {"format": FORMAT, "version": VERSION, "kind": kind, "params": params, "state": state}
    buf = io.BytesIO()
    blob = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    entries: dict[str, Any] = {"__meta__": blob, **arrays}
    with zipfile.ZipFile(buf, "w") as z:
        for name, value in entries.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            z.writestr(info, npy.getvalue(), zipfile.ZIP_DEFLATED, compresslevel=1)
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
