"""Uploads never touch the disk as a file: ``POST /v1/datasets`` (and appends) with CSV text
are read by DuckDB from memory; copies older versions left in the store are swept on open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import ApiKeys
from api.server import BackgroundServer
from api.service import Service
from store import ModelStore, sources
from store.db import Database
from tests.api.conftest import TOKENS, auth

MARKER = "upload-subject-5be1c9"
VALUE = "8817.2273645"  # a value no other row has


def csv_text(subject: str, n: int = 20) -> str:
    return "subject_id,x,y\n" + "".join(
        f"{subject if i == 3 else f'u{i}'},{VALUE if i == 3 else i},{2 * i + 1}\n" for i in range(n)
    )


def files_holding(directory: Path, *needles: str) -> list[str]:
    """Files other than the database itself (where a dataset's rows belong) holding any."""
    return [
        str(p.relative_to(directory))
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and not p.name.startswith(Database.FILE)
        and any(n.encode() in p.read_bytes() for n in needles)
    ]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Service, httpx.Client]]:
    service = Service.open(tmp_path / "store", purge_interval=0, evidence_rate=0)
    keys = ApiKeys.from_mapping({tok: [scope] for scope, tok in TOKENS.items()})
    with BackgroundServer(create_app(service, keys)) as url, httpx.Client(base_url=url) as c:
        yield service, c


def test_no_file_holds_an_upload_while_or_after_it_is_read(
    live: tuple[Service, httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, client = live
    directory = service.store.directory
    during: list[list[str]] = []
    real_stage = sources.stage

    def stage(db: Any, source: Any, subject_column: str) -> Any:
        # the moment DuckDB reads the upload: before, a temporary .csv held it here
        during.append(files_holding(directory, MARKER, VALUE))
        return real_stage(db, source, subject_column)

    monkeypatch.setattr(sources, "stage", stage)
    r = client.post(
        "/v1/datasets",
        json={"name": "lines", "subject_column": "subject_id", "csv": csv_text(MARKER)},
        headers=auth("admin"),
    )
    assert r.status_code == 201, r.text
    r = client.post(
        "/v1/datasets/lines/rows",
        json={"csv": csv_text(MARKER + "-2")},
        headers=auth("admin"),
    )
    assert r.status_code in (200, 201), r.text
    assert during == [[], []]
    assert service.store.find_subject(MARKER) == {"lines": 1}
    assert service.store.find_subject(MARKER + "-2") == {"lines": 1}
    assert [p.name for p in directory.iterdir() if p.suffix == ".csv"] == []
    # ids are text as written, over HTTP too: "0x1F" and "1.50" stay themselves
    r = client.post(
        "/v1/datasets",
        json={"name": "odd", "subject_column": "sid", "csv": "sid,x\n0x1F,1\n1.50,2\n007,3\n"},
        headers=auth("admin"),
    )
    assert r.status_code == 201, r.text
    assert [service.store.find_subject(s) for s in ("0x1F", "1.50", "007", "31", "1.5")] == [
        {"odd": 1},
        {"odd": 1},
        {"odd": 1},
        {},
        {},
    ]


def test_a_bad_upload_leaves_no_file_either(live: tuple[Service, httpx.Client]) -> None:
    service, client = live
    r = client.post(
        "/v1/datasets",
        json={"name": "bad", "subject_column": "who", "csv": csv_text(MARKER)},
        headers=auth("admin"),
    )
    assert r.status_code == 422, r.text
    assert files_holding(service.store.directory, MARKER, VALUE) == []
    assert service.store.datasets() == []


def test_upload_copies_an_older_version_left_are_swept_on_open(tmp_path: Path) -> None:
    """Older versions wrote ``tmpXXXXXXXX.csv`` into the store; a crash mid-upload left it."""
    directory = tmp_path / "store"
    with ModelStore.open(directory):
        pass
    leftover = directory / "tmpk3x_9q0z.csv"
    leftover.write_text(csv_text(MARKER))
    mine = directory / "notes.csv"  # a file of the user's, not an upload copy: left alone
    mine.write_text("kept\n")
    service = Service.open(directory, purge_interval=0)
    try:
        assert not leftover.exists() and mine.exists()
        assert files_holding(directory, MARKER, VALUE) == []
        kinds = [r[0] for r in service.store._db.all("SELECT kind FROM audit_log ORDER BY seq")]
        assert kinds[-1] == "store.uploads_swept" and service.store.verify_audit_log().ok
    finally:
        service.close()
