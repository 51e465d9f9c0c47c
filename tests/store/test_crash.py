"""Crash atomicity: kill an erasure anywhere; on reopen the store is entirely before or after.

A child process opens a copy of a populated store and erases the victim; it dies at a named
crash point (``FORGET_STORE_CRASH_AT``: ``os._exit``) or is SIGKILLed after a random delay.
Reopening must show either the victim's rows present, the models as trained and no request,
or the rows gone, the models equal to the uninterrupted erasure and the request completed (and
purged); the audit log must verify either way.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from store import ModelStore
from store._faults import ENV, EXIT_CODE
from tests.store.helpers import FEATURES, VICTIM, needles, people, populate, scan

REPO = Path(__file__).resolve().parents[2]
CHILD = (
    "import sys\n"
    "from store import ModelStore\n"
    "st = ModelStore.open(sys.argv[1])\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "st.erase(sys.argv[2], legal_ground='art17-1-b')\n"
    "st.close()\n"
)
# The models forget in memory inside the erasure's transaction, before it commits: a crash there
# leaves the store as it was (memory is gone; the database never saw the request).
BEFORE_COMMIT = {"erase.after_forget", "erase.before_commit"}
POINTS = [
    "erase.before_commit",
    "erase.after_commit",
    "erase.after_forget",
    "checkpoint.written",
    "purge.before_compact",
    "compact.copied",
    "compact.swapped",
    "purge.after_compact",
]
X = np.array([[r[f] for f in FEATURES] for r in people()])


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A pristine populated store, and the predictions before and after the erasure."""
    root = tmp_path_factory.mktemp("crash")
    with ModelStore.open(root / "pristine") as st:
        populate(st)
        before = {m: st.predict(m, X) for m in ("risk", "score")}
    shutil.copytree(root / "pristine", root / "reference")
    with ModelStore.open(root / "reference") as st:
        st.erase(VICTIM, legal_ground="art17-1-b")
        after = {m: st.predict(m, X) for m in ("risk", "score")}
    assert not np.allclose(before["score"], after["score"])  # the two states are told apart
    return {"root": root, "before": before, "after": after}


def spawn(directory: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), VICTIM],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def go(child: subprocess.Popen) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def fresh_copy(states: dict, name: str) -> Path:
    target = states["root"] / name
    shutil.copytree(states["root"] / "pristine", target)
    return target


def check_before_or_after(directory: Path, states: dict) -> str:
    with ModelStore.open(directory) as st:
        assert st.verify_audit_log().ok
        held = st.find_subject(VICTIM)
        preds = {m: st.predict(m, X) for m in ("risk", "score")}
        revisions = [v.revision for v in st.list_models()]
        key = st.subject_key(VICTIM)
        statuses = [
            s
            for (s,) in st._db.all(
                "SELECT status FROM erasure_requests WHERE subject_key = ?", [key]
            )
        ]
    if held:
        assert held == {"people": 2} and statuses == [] and revisions == [0, 0]
        np.testing.assert_array_equal(preds["risk"], states["before"]["risk"])
        np.testing.assert_array_equal(preds["score"], states["before"]["score"])
        return "before"
    assert statuses == ["completed"] and revisions == [1, 1]
    np.testing.assert_array_equal(preds["risk"], states["after"]["risk"])
    np.testing.assert_allclose(preds["score"], states["after"]["score"], rtol=1e-8, atol=1e-8)
    assert scan(directory, needles()) == []
    return "after"


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_named_point(states: dict, point: str) -> None:
    directory = fresh_copy(states, point.replace(".", "_"))
    child = spawn(directory, {ENV: point})
    go(child)
    child.communicate(timeout=120)
    assert child.returncode == EXIT_CODE, f"crash point {point} was not reached"
    expected = "before" if point in BEFORE_COMMIT else "after"
    assert check_before_or_after(directory, states) == expected


TRIALS = int(os.environ.get("STORE_KILL_TRIALS", "4"))


@pytest.fixture(scope="module")
def window(states: dict) -> float:
    """Seconds from 'go' to the child's exit when nothing kills it (erase, purge, close).

    The models forget inside the erasure's transaction, so the commit comes after the first
    forget of the process (kernels load) and the retrain checks: about three quarters of the
    way, on this project's machine. Kills are spread over the whole window so that both
    outcomes are exercised whatever the machine's speed.
    """
    directory = fresh_copy(states, "timed")
    child = spawn(directory)
    t = time.perf_counter()
    go(child)
    child.communicate(timeout=120)
    elapsed = time.perf_counter() - t
    assert child.returncode == 0 and check_before_or_after(directory, states) == "after"
    return elapsed


@pytest.mark.parametrize("seed", range(TRIALS))
def test_sigkill_at_a_random_moment(states: dict, window: float, seed: int) -> None:
    directory = fresh_copy(states, f"kill{seed}")
    child = spawn(directory)
    go(child)
    rng = random.Random(seed)
    delay = window * (seed + rng.random()) / TRIALS  # trial k dies in the k-th slice of it
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    outcome = check_before_or_after(directory, states)
    print(f"killed after {delay:.3f}s of {window:.3f}s: {outcome}")


def test_crash_during_recovery_then_recover(states: dict) -> None:
    directory = fresh_copy(states, "twice")
    child = spawn(directory, {ENV: "erase.after_commit"})
    go(child)
    child.communicate(timeout=120)
    # the next opener recovers, and dies while compacting
    again = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from store import ModelStore; ModelStore.open(sys.argv[1])",
            str(directory),
        ],
        cwd=REPO,
        env={**os.environ, ENV: "compact.copied"},
        capture_output=True,
        timeout=120,
    )
    assert again.returncode == EXIT_CODE, again.stderr
    assert check_before_or_after(directory, states) == "after"
