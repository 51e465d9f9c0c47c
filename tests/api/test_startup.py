"""``forget serve`` refuses to start unsafely, and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.server import free_port
from store import ModelStore
from tests.api.conftest import wait_ready


def serve(directory: Path, *args: str, keys: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FORGET_API_KEYS"}
    if keys is not None:
        env["FORGET_API_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "-m", "forget.cli", "serve", "--store", str(directory), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("keys", "args", "message"),
    [
        (None, (), "FORGET_API_KEYS is not set"),
        ("{not json", (), "not valid JSON"),
        ('{"tok-1234": ["predict", "root"]}', (), "unknown or empty scopes ['root']"),
        ('{"tok-1234": "admin"}', (), "scopes must be a list"),
        ("{}", (), "non-empty JSON object"),
        (None, ("--no-auth", "--host", "0.0.0.0"), "bind to 127.0.0.1"),
    ],
)
def test_refuses_to_start(tmp_path: Path, keys: str | None, args: tuple[str, ...], message: str):
    res = serve(tmp_path / "store", *args, "--port", str(free_port()), keys=keys)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_a_locked_store_is_a_clear_error(tmp_path: Path):
    with ModelStore.open(tmp_path / "store"):
        res = serve(tmp_path / "store", "--port", str(free_port()), keys='{"tok-1234": ["admin"]}')
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "forget serve: error:" in res.stderr


def test_no_auth_demo_on_loopback_serves_without_tokens(tmp_path: Path):
    port = free_port()
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k != "FORGET_API_KEYS"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forget.cli", "serve", "--store", str(tmp_path / "s"),
             "--no-auth", "--create", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log)
        assert httpx.get(url + "/v1/models").json() == {"models": []}
        assert httpx.get(url + "/v1/audit/verify").json()["ok"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=60)
