"""``forget object`` (Art. 21) and ``forget restrict [--lift]`` (Art. 18), run as a user runs
them: on a store, and through a server. The subject id comes on stdin, never as an argument."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import ModelStore
from tests.api.conftest import TOKENS, Server, launch
from tests.store.helpers import FEATURES, VICTIM, hedgecut, linear, people


def forget(
    *args: str, stdin: str = "", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FORGET_TOKEN"}
    if token is not None:
        env["FORGET_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "forget.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _fill(directory: Path) -> Path:
    with ModelStore.open(directory) as st:
        st.ingest("people", people(), subject_column="subject_id")
        st.train(
            "risk", dataset="people", estimator=hedgecut(), label="label", features=FEATURES,
            purpose="marketing",
        )  # fmt: skip
        st.train(
            "score", dataset="people", estimator=linear(), label="score", features=FEATURES,
            purpose="credit",
        )  # fmt: skip
    return directory


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return _fill(tmp_path / "store")


def _kinds(directory: Path) -> list[str]:
    with ModelStore.open(directory, read_only=True) as st:
        return [str(k) for (k,) in st._db.all("SELECT kind FROM audit_log ORDER BY seq")]


def test_object_restrict_and_lift_on_a_store(store: Path) -> None:
    s = str(store)
    res = forget("object", "--store", s, "marketing", "--by", "dpo", stdin=VICTIM + "\n")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["purpose"], doc["rows"], doc["objected_by"]) == ("marketing", 2, "dpo")
    assert [(m["model"], m["action"]) for m in doc["models"]] == [("risk", "exact_unlearning")]
    again = json.loads(forget("object", "--store", s, "marketing", stdin=VICTIM).stdout)
    assert again["repeat"] and again["objection_id"] == doc["objection_id"]

    res = forget("restrict", "--store", s, stdin=VICTIM)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "restricted" and [m["model"] for m in doc["models"]] == ["score"]
    assert doc["restricted_by"].startswith("cli:")
    res = forget("restrict", "--store", s, "--lift", stdin=VICTIM)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    # the objection to marketing stands: only score takes the rows back
    assert doc["status"] == "lifted" and [(m["model"], m["action"]) for m in doc["models"]] == [
        ("score", "learn")
    ]
    res = forget("restrict", "--store", s, "--lift", stdin=VICTIM)
    assert res.returncode == 2 and "not restricted" in res.stderr
    kinds = _kinds(store)
    assert kinds.count("subject.objected") == 1 and "subject.restriction_lifted" in kinds
    res = forget(
        "train", "risk", "--store", s, "--dataset", "people", "--estimator", "LinearRegression",
        "--label", "score", "--features", ",".join(FEATURES), "--purpose", "marketing",
    )  # fmt: skip
    assert res.returncode == 0 and "2 rows left out" in res.stdout, res.stderr + res.stdout
    with ModelStore.open(store, read_only=True) as st:
        assert st.verify_audit_log().ok


def test_bad_input_on_a_store(store: Path, tmp_path: Path) -> None:
    s = str(store)
    res = forget("object", "--store", s, "marketing", stdin="nobody-31f0\n")
    assert res.returncode == 3 and "no data" in res.stderr
    assert "nobody-31f0" not in res.stderr + res.stdout
    res = forget("object", "--store", s, "marketting", stdin=VICTIM)
    assert res.returncode == 2 and "'marketting'" in res.stderr and "known purposes" in res.stderr
    res = forget("object", "--store", s, "Bad!", stdin=VICTIM)
    assert res.returncode == 2 and "lower-case" in res.stderr
    res = forget("restrict", "--store", s, stdin="nobody-31f0")
    assert res.returncode == 3 and "nobody-31f0" not in res.stderr
    for stdin in ("", "a\nb\n"):
        res = forget("restrict", "--store", s, stdin=stdin)
        assert res.returncode == 2 and "one subject id" in res.stderr, (stdin, res.stderr)
    res = forget("object", "--store", str(tmp_path / "nowhere"), "marketing", stdin=VICTIM)
    assert res.returncode == 2 and "no store" in res.stderr
    assert "subject." not in " ".join(_kinds(store))  # nothing was recorded
    res = forget("purpose", "declare", "--store", s, "marketting", "--by", "dpo")
    assert res.returncode == 0 and "declared" in res.stdout, res.stderr
    res = forget("purpose", "declare", "--store", s, "marketting")
    assert res.returncode == 0 and "known already" in res.stdout
    assert forget("object", "--store", s, "marketting", stdin=VICTIM).returncode == 0
    listed = json.loads(forget("purpose", "ls", "--store", s).stdout)
    assert [(p["purpose"], p["models"], p["objections"]) for p in listed] == [
        ("credit", ["score v1"], 0),
        ("marketing", ["risk v1"], 0),
        ("marketting", [], 1),
    ]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    directory = _fill(tmp_path / "store")
    srv = launch(directory, tmp_path / "server.log", "--purge-interval", "0.2")
    try:
        yield srv
    finally:
        srv.stop()


def test_through_a_server(server: Server) -> None:
    url, tok = server.url, TOKENS["erase"]
    res = forget("object", "--server", url, "credit", stdin=VICTIM, token=tok)
    assert res.returncode == 0, res.stderr
    assert [m["model"] for m in json.loads(res.stdout)["models"]] == ["score"]
    res = forget("restrict", "--server", url, stdin=VICTIM, token=tok)
    assert res.returncode == 0 and json.loads(res.stdout)["status"] == "restricted", res.stderr
    res = forget("restrict", "--server", url, "--lift", stdin=VICTIM, token=tok)
    assert res.returncode == 0, res.stderr
    assert [m["model"] for m in json.loads(res.stdout)["models"]] == ["risk"]
    res = forget("restrict", "--server", url, "--lift", stdin=VICTIM, token=tok)
    assert res.returncode == 2 and "409" in res.stderr
    res = forget("object", "--server", url, "credit", stdin="nobody-31f0", token=tok)
    assert res.returncode == 3
    res = forget("object", "--server", url, "credit", stdin=VICTIM, token=TOKENS["predict"])
    assert res.returncode == 2 and "403" in res.stderr
    res = forget("object", "--server", url, "credit", stdin=VICTIM)
    assert res.returncode == 2 and "FORGET_TOKEN" in res.stderr
    server.stop()
    assert VICTIM not in server.log.read_text()
