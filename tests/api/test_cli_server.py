"""The read-only commands while ``forget serve`` holds the store: through the API."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.api.conftest import TOKENS, Server, auth
from tests.store.helpers import VICTIM


def forget(*args: str, token: str | None = TOKENS["audit"]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FORGET_TOKEN"}
    if token is not None:
        env["FORGET_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "forget.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_read_only_commands_go_through_the_server(server: Server):
    erased = server.client.post(
        "/v1/erasure-requests", json={"subject_id": VICTIM}, headers=auth("erase")
    )
    rid = erased.json()["request_id"]
    # the store's files are the server's: a direct open is refused, in one line
    direct = forget("models", "--store", str(server.directory))
    assert direct.returncode == 2 and "--server URL" in direct.stderr, direct.stderr
    assert "Traceback" not in direct.stderr
    models = forget("models", "--server", server.url)
    assert models.returncode == 0, models.stderr
    assert "risk v1 r1 ready: forget.hedgecut.forest:HedgeCutClassifier on people (1 revision)" in (
        models.stdout
    )
    verify = forget("verify", "--server", server.url)
    assert verify.returncode == 0 and "audit log verified" in verify.stdout, verify.stderr
    report = forget("report", "--server", server.url, rid)
    assert report.returncode == 0 and f'"request_id": "{rid}"' in report.stdout
    page = forget("report", "--server", server.url, rid, "--html")
    assert page.returncode == 0 and page.stdout.lstrip().lower().startswith("<!doctype html")
    for argv, token, words in (
        (("models", "--server", server.url), None, "FORGET_TOKEN"),
        (("models", "--server", server.url), TOKENS["predict"] + "x", "401"),
        (("report", "--server", server.url, "er_0123456789abcdef"), TOKENS["audit"], "404"),
        (("models", "--server", "http://127.0.0.1:9"), TOKENS["audit"], "127.0.0.1:9"),
        (("verify", "--server", server.url, "--expect-head", "1:ab"), TOKENS["audit"], "SEQ:HASH"),
    ):
        res = forget(*argv, token=token)
        assert res.returncode == 2 and words in res.stderr, (argv, res.stderr)
        assert "Traceback" not in res.stderr
