"""The ``forget`` command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forget.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_trains_and_forgets():
    res = run("demo", "--trees", "5", "--deletions", "20")
    assert res.returncode == 0, res.stderr
    assert "accuracy" in res.stdout
    assert "deletion latency p50" in res.stdout
    assert "guarantee: exact" in res.stdout


def test_unknown_command_is_a_usage_error():
    res = run("frobnicate")
    assert res.returncode == 2
    assert "invalid choice" in res.stderr
