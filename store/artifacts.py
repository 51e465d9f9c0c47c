"""Model artifacts on disk: ``artifacts/<model>/v<version>/r<revision>.npz``.

Files are written atomically (temporary file, ``fsync``, ``os.replace``, ``fsync`` of the
directory) and named by revision, so a checkpoint never overwrites the file the database still
points to; the old one is deleted once the database points to the new one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from store.db import fsync_path
from store.errors import StoreCorruptError

ROOT = "artifacts"


class Artifacts:
    """The artifact directory of one store; paths given and returned are relative to it."""

    def __init__(self, directory: Path, *, create: bool = True) -> None:
        self.root = directory / ROOT
        if create:  # a read-only store creates nothing
            self.root.mkdir(exist_ok=True)

    @staticmethod
    def relpath(model: str, version: int, revision: int) -> str:
        return f"{model}/v{version}/r{revision}.npz"

    def write(self, relpath: str, data: bytes) -> str:
        """Write ``data`` atomically at ``relpath``; return its sha256."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_path(path.parent)
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def staged(relpath: str) -> str:
        """Where an artifact built beside the serving model waits until it is taken."""
        return relpath + ".staged"

    def promote(self, staged: str, relpath: str) -> None:
        """Move the file written at ``staged`` to ``relpath`` (atomically, durably)."""
        path = self.root / relpath
        os.replace(self.root / staged, path)
        fsync_path(path.parent)

    def read(self, relpath: str, sha256: str) -> bytes:
        path = self.root / relpath
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreCorruptError(f"artifact {relpath} is missing") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreCorruptError(f"artifact {relpath} does not match its recorded sha256")
        return data

    def delete(self, relpath: str) -> None:
        (self.root / relpath).unlink(missing_ok=True)

    def sweep(self, keep: Iterable[str]) -> list[str]:
        """Delete every file not in ``keep`` (left by a crash, or superseded); return them."""
        kept = set(keep)
        removed = []
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            if path.is_file() and rel not in kept:
                path.unlink()
                removed.append(rel)
        return removed
