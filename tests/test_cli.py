"""The ``forget`` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.helpers import VICTIM, people, write_csv


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forget.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_demo_serves_and_erases_over_http(tmp_path: Path):
    store = tmp_path / "demo"
    res = run(
        "demo", "--once", "--store", str(store), "--port", "0", "--trees", "5",
        "--requests", "12", "--predictions", "10",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "serving on http://127.0.0.1:" in out
    assert "predict income_forest (1 row)" in out and "erasure request" in out
    assert "audit chain verified" in out
    assert "retrain checks: " in out and " passed" in out
    for model in ("income_forest", "income_knn", "hours_ridge"):
        assert model in out
    reports = list((store / "reports").glob("*.html"))
    assert len(reports) == 1 and str(reports[0]) in out
    assert "person-" not in reports[0].read_text()


def test_demo_refuses_a_used_directory(tmp_path: Path):
    (tmp_path / "x").write_text("mine")
    res = run("demo", "--once", "--store", str(tmp_path))
    assert res.returncode == 2 and "not empty" in res.stdout


def test_store_commands_end_to_end(tmp_path: Path):
    store = str(tmp_path / "store")
    csv = write_csv(tmp_path / "people.csv", people())
    res = run("ingest", "--store", store, "people", str(csv), "--subject-column", "subject_id")
    assert res.returncode == 0, res.stderr
    assert "dataset 'people'" in res.stdout
    res = run(
        "train", "--store", store, "risk", "--dataset", "people",
        "--estimator", "HedgeCutClassifier", "--param", "n_estimators=5",
        "--param", "random_state=0", "--label", "label", "--features", "a,b,c",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "model 'risk' version 1" in res.stdout
    res = run("erase", "--store", store, VICTIM, "--legal-ground", "art17-1-d")
    assert res.returncode == 0, res.stderr
    assert "completed, 2 rows" in res.stdout and "exact_unlearning" in res.stdout
    request_id = res.stdout.split()[1].rstrip(":")
    typo = run("erase", "--store", store, VICTIM + "x")  # no data under that id: said so
    assert typo.returncode == 3 and "no_data, 0 rows" in typo.stdout
    assert "holds no data under this subject id" in typo.stderr
    res = run("report", "--store", store, request_id)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["legal_ground"] == "art17-1-d"
    page = tmp_path / "r.html"
    res = run("report", "--store", store, request_id, "--html", "-o", str(page))
    assert res.returncode == 0 and page.read_text().startswith("<!doctype html>")
    res = run("verify", "--store", store)
    assert res.returncode == 0 and "audit log verified" in res.stdout
    head = res.stdout.split("head ")[1].strip()
    assert run("verify", "--store", store, "--expect-head", head).returncode == 0
    res = run("models", "--store", store)
    assert "risk v1 r1 ready" in res.stdout
    assert VICTIM not in "".join(p.read_bytes().decode("latin-1") for p in Path(store).rglob("*")
                                 if p.is_file())  # fmt: skip


def test_user_errors_are_one_line(tmp_path: Path):
    store = str(tmp_path / "store")
    (tmp_path / "d.csv").write_text("s,a,y\nx1,1.0,0\nx2,2.0,1\n")
    assert run("ingest", "--store", store, "d", str(tmp_path / "d.csv"),
               "--subject-column", "s").returncode == 0  # fmt: skip
    res = run("train", "--store", store, "m", "--dataset", "nope", "--estimator", "Nope",
              "--label", "y", "--features", "a")  # fmt: skip
    assert res.returncode == 2 and "unknown estimator 'Nope'" in res.stderr
    res = run("train", "--store", store, "m", "--dataset", "nope",
              "--estimator", "LinearRegression", "--label", "y", "--features", "a")  # fmt: skip
    assert res.returncode == 2 and "nope" in res.stderr and "Traceback" not in res.stderr
    res = run("ingest", "--store", store, "d", str(tmp_path / "missing.csv"),
              "--subject-column", "s")  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = run("report", "--store", store, "er_0123456789abcdef")
    assert res.returncode == 2 and "er_0123456789abcdef" in res.stderr
    res = run("report", "--store", store, "subject-42")  # a subject id, pasted: not repeated
    assert res.returncode == 2 and "subject-42" not in res.stderr and "not repeated" in res.stderr
    res = run("train", "--store", store, "m", "--dataset", "d", "--estimator", "X",
              "--label", "y", "--features", "a", "--param", "oops")  # fmt: skip
    assert res.returncode == 2 and "key=value" in res.stderr


def test_every_command_has_help():
    for cmd in ("demo", "serve", "ingest", "train", "erase", "report", "verify", "models"):
        res = run(cmd, "--help")
        assert res.returncode == 0 and "usage: forget " + cmd in res.stdout


def test_unknown_command_is_a_usage_error():
    res = run("frobnicate")
    assert res.returncode == 2
    assert "invalid choice" in res.stderr


def test_a_mistyped_store_is_an_error_not_a_new_store(tmp_path: Path):
    """Only ingest creates a store: every other command refuses a directory that holds none
    (and a file), exit 2, one line, nothing created."""
    missing = tmp_path / "stroe"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a store")
    for store in (missing, a_file):
        for argv in (
            ("erase", "someone"),
            ("verify",),
            ("models",),
            ("report", "er_0123456789abcdef"),
            ("serve", "--no-auth"),
        ):
            res = run(argv[0], "--store", str(store), *argv[1:])
            assert res.returncode == 2, (argv, res.stderr)
            assert "Traceback" not in res.stderr and "store" in res.stderr, res.stderr
            assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not missing.exists() and a_file.read_text() == "not a store"


def test_the_demo_removes_the_store_it_made(tmp_path: Path):
    """Without --store, the demo's scratch store (its subject key, its data) does not outlive it;
    the report it prints (no subject named) does."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-m", "forget.cli", "demo", "--once", "--port", "0", "--trees", "5",
         "--requests", "6", "--predictions", "5"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "removed the demo's store" in res.stdout
    assert list(tmp_path.rglob("subject.key")) == [] and list(tmp_path.rglob("*.duckdb")) == []
    reports = list(tmp_path.rglob("*.html"))
    assert len(reports) == 1 and str(reports[0]) in res.stdout
    assert "retrain checks: " in res.stdout and " requests (a keyed random" in res.stdout


def test_serve_refuses_a_switch_interval_out_of_range(tmp_path: Path):
    for bad in ("0", "-1", "nan", "2000", "fast"):
        res = run("serve", "--store", str(tmp_path), "--no-auth", "--switch-interval", bad)
        assert res.returncode == 2 and "--switch-interval" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_serve_sets_the_switch_interval_for_the_process(monkeypatch):
    import uvicorn

    from api import server

    seen: list[float] = []
    monkeypatch.setattr(server.Service, "open", lambda *a, **k: None)
    monkeypatch.setattr(server, "create_app", lambda *a, **k: None)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: seen.append(sys.getswitchinterval()))
    keys = server.load_keys("127.0.0.1", no_auth=True)
    before = sys.getswitchinterval()
    try:
        server.serve("unused", keys=keys)
        server.serve("unused", keys=keys, switch_interval_ms=0.5)
        with pytest.raises(ValueError, match="switch interval"):
            server.serve("unused", keys=keys, switch_interval_ms=0)
    finally:
        sys.setswitchinterval(before)
    assert seen == [server.SWITCH_INTERVAL_MS / 1000, 0.0005]
