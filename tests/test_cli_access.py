"""``forget access`` (Art. 15, 20), run as a user runs it: on a store, and through a server.

The subject id is read from stdin or ``--subject-id-file``, never from the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import ModelStore
from tests.api.conftest import TOKENS, Server, populated_server
from tests.store.helpers import VICTIM, populate


def forget(
    *args: str, stdin: str = "", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FORGET_TOKEN"}
    if token is not None:
        env["FORGET_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "forget.cli", "access", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    with ModelStore.open(tmp_path / "store") as st:
        populate(st)
    return tmp_path / "store"


def _accesses(directory: Path) -> list[dict]:
    with ModelStore.open(directory, read_only=True) as st:
        rows = st._db.all("SELECT payload_json FROM audit_log WHERE kind = 'subject.access'")
    return [json.loads(p) for (p,) in rows]


def test_access_on_a_store_prints_json_and_html(store: Path, tmp_path: Path) -> None:
    res = forget("--store", str(store), stdin=VICTIM + "\n")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    (ds,) = doc["datasets"]
    assert ds["rows"] == 2 and {r["subject_id"] for r in ds["records"]} == {VICTIM}
    assert sorted(m["model"] for m in doc["models"]) == ["risk", "score"]

    id_file = tmp_path / "who.txt"
    id_file.write_text(VICTIM + "\n")
    page = tmp_path / "access.html"
    res = forget(
        "--store", str(store), "--subject-id-file", str(id_file), "--html", "-o", str(page)
    )
    assert res.returncode == 0 and f"wrote {page}" in res.stdout, res.stderr
    text = page.read_text()
    assert text.lower().startswith("<!doctype html") and VICTIM in text and "risk" in text
    entries = _accesses(store)
    assert len(entries) == 2 and all(e["found"] and e["rows"] == 2 for e in entries)


def test_bad_input_on_a_store(store: Path, tmp_path: Path) -> None:
    res = forget("--store", str(store), stdin="nobody-31f0\n")
    assert res.returncode == 3 and "no data" in res.stderr
    assert "nobody-31f0" not in res.stderr + res.stdout
    for stdin in ("", "\n  \n", "a\nb\n"):
        res = forget("--store", str(store), stdin=stdin)
        assert res.returncode == 2 and "one subject id" in res.stderr, (stdin, res.stderr)
    res = forget("--store", str(tmp_path / "nowhere"), stdin=VICTIM)
    assert res.returncode == 2 and "no store" in res.stderr
    res = forget("--store", str(store), "--subject-id-file", str(tmp_path / "none.txt"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = forget(stdin=VICTIM)  # neither --store nor --server
    assert res.returncode == 2 and "--store" in res.stderr
    assert [e["found"] for e in _accesses(store)] == [False]  # only the well-formed one


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from populated_server(tmp_path)


def test_access_through_a_server(server: Server) -> None:
    url = server.url
    res = forget("--server", url, stdin=VICTIM, token=TOKENS["audit"])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["counts"]["rows"] == 2
    page = forget("--server", url, "--html", stdin=VICTIM, token=TOKENS["audit"])
    assert page.returncode == 0 and page.stdout.lstrip().lower().startswith("<!doctype html")
    unknown = forget("--server", url, stdin="nobody-31f0", token=TOKENS["audit"])
    assert unknown.returncode == 3 and "no data" in unknown.stderr
    denied = forget("--server", url, stdin=VICTIM, token=TOKENS["predict"])
    assert denied.returncode == 2 and "403" in denied.stderr
    no_token = forget("--server", url, stdin=VICTIM)
    assert no_token.returncode == 2 and "FORGET_TOKEN" in no_token.stderr
    assert VICTIM not in server.log.read_text()
