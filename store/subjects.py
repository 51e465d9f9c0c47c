"""Keyed pseudonyms for data subjects: ``HMAC-SHA256(secret, raw id)``.

The secret lives in ``<store>/subject.key`` (never in the database or the audit log), so a
pseudonym cannot be reversed, or recomputed for a guessed id, without the key file. The raw id
is kept only in the dataset tables, where the data is; everything else sees :attr:`Subject.key`.
Other uses of the secret get subkeys of their own (:meth:`SubjectKeys.derive`), so that no
value computed for one purpose serves another: the audit chain is keyed with one.

>>> keys = SubjectKeys(b"k" * 32)
>>> s = keys.subject("alice@example.com")
>>> s.key == keys.subject("alice@example.com").key, s.key.startswith("sk_"), "alice" in repr(s)
(True, True, False)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from store.db import fsync_path
from store.errors import InvalidSubjectError, StoreCorruptError

KEY_FILE = "subject.key"
KEY_BYTES = 32
_DERIVE = b"\xffderive\x00"  # not UTF-8: never the encoding of a subject id


@dataclass(frozen=True)
class Subject:
    """A data subject: the pseudonym ``key`` and, hidden from ``repr``, the raw id."""

    key: str
    raw: str = field(repr=False)


class SubjectKeys:
    """Derives :class:`Subject` pseudonyms from the store's secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the subject key must be at least 16 bytes")
        self._secret = secret

    @classmethod
    def load(cls, directory: Path, *, create: bool) -> SubjectKeys:
        """Read the key file; with ``create``, make one (mode 0600) if there is none."""
        path = directory / KEY_FILE
        if not path.exists():
            if not create:
                raise StoreCorruptError(
                    f"{path} is missing: the store's pseudonyms cannot be derived without it"
                )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_bytes(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_path(directory)
        secret = path.read_bytes()
        if len(secret) != KEY_BYTES:
            raise StoreCorruptError(f"{path} holds {len(secret)} bytes, expected {KEY_BYTES}")
        return cls(secret)

    def derive(self, purpose: str) -> bytes:
        """A 32-byte subkey for ``purpose``: ``HMAC-SHA256(secret, 0xFF "derive" 0x00 purpose)``.

        The message starts with the byte 0xFF, which no UTF-8 text holds, so no subject id
        can have a pseudonym equal to a subkey (ids are chosen by whoever uploads data, and
        pseudonyms are written to the database).
        """
        return hmac.new(self._secret, _DERIVE + purpose.encode(), hashlib.sha256).digest()

    def draw(self, label: str) -> float:
        """A number in [0, 1) keyed by the secret and ``label``: reproducible, unpredictable."""
        digest = hmac.new(self._secret, b"draw\x00" + label.encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def subject(self, raw: object) -> Subject:
        if not isinstance(raw, str) or not raw:
            raise InvalidSubjectError(f"a subject id must be a non-empty string, got {raw!r}")
        digest = hmac.new(self._secret, raw.encode(), hashlib.sha256).hexdigest()
        return Subject(key="sk_" + digest, raw=raw)
