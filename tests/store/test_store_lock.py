"""One writer per store across processes, also while compaction has DuckDB's file closed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store import ModelStore

OPEN = (
    "import sys; from store import ModelStore; from store.errors import StoreLockedError\n"
    "try:\n"
    "    ModelStore.open(sys.argv[1], read_only=sys.argv[2] == 'ro', create=False).close()\n"
    "except StoreLockedError as exc:\n"
    "    print('locked', exc); sys.exit(3)\n"
)


def open_elsewhere(directory: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN, str(directory), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_other_process_opens_the_store_in_compactions_window(tmp_path: Path):
    directory = tmp_path / "s"
    st = ModelStore.open(directory)
    try:
        db = st._db
        db._con.close()  # as compact() does between the copy and the swap
        db._con = None
        for mode in ("ro", "rw"):
            res = open_elsewhere(directory, mode)
            assert res.returncode == 3 and "open in another process" in res.stdout, res
    finally:
        from store.db import _connect

        db._con = _connect(db.path)
        st.close()
    assert open_elsewhere(directory, "ro").returncode == 0  # released with the store
    assert open_elsewhere(directory, "rw").returncode == 0
