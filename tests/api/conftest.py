"""A real ``forget serve`` process on a free loopback port, over a populated store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.server import free_port
from store import ModelStore
from tests.store.helpers import people, populate

TOKENS = {
    "admin": "tok-admin-3b9f",
    "predict": "tok-predict-77c1",
    "erase": "tok-erase-a0e4",
    "audit": "tok-audit-51d2",
}
DPO_TOKEN = "tok-dpo-9c3e"  # a named key: erasures it files record "dpo-portal"
KEYS = json.dumps(
    {tok: [scope] for scope, tok in TOKENS.items()}
    | {DPO_TOKEN: {"name": "dpo-portal", "scopes": ["erase", "audit"]}}
)


def auth(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


@dataclass
class Server:
    """A running server: its URL, store directory, process and log file."""

    url: str
    directory: Path
    log: Path
    proc: subprocess.Popen[bytes]
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_server(
    directory: Path, log: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    port = free_port()
    environ = {**os.environ, "FORGET_API_KEYS": KEYS, **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "forget.cli",
                "serve",
                "--store",
                str(directory),
                "--port",
                str(port),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    proc.port = port  # type: ignore[attr-defined]
    return proc


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not answer within 60 s:\n{log.read_text()}")


def launch(directory: Path, log: Path, *extra: str) -> Server:
    proc = start_server(directory, log, *extra)
    url = f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    wait_ready(url, proc, log)
    return Server(url, directory, log, proc)


def people_server(tmp_path: Path, *extra: str) -> Iterator[Server]:
    """A server of its own (``forget serve`` flags ``extra``) over a store that holds the
    dataset ``people`` and no model yet."""
    with ModelStore.open(tmp_path / "store") as st:
        st.ingest("people", people(), subject_column="subject_id")
    srv = launch(tmp_path / "store", tmp_path / "server.log", *extra)
    try:
        yield srv
    finally:
        srv.stop()


def populated_server(tmp_path: Path) -> Iterator[Server]:
    directory = tmp_path / "store"
    with ModelStore.open(directory) as st:
        populate(st)
    srv = launch(
        directory, tmp_path / "server.log", "--purge-interval", "0.2", "--evidence-rate", "1"
    )
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own over a store with dataset ``people``, models ``risk`` and ``score``."""
    yield from populated_server(tmp_path)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same, shared by a module's tests that change nothing."""
    yield from populated_server(tmp_path_factory.mktemp("shared"))
