"""What a newcomer's first commands touch: ``--help`` loads nothing heavy, and numba's compiled
kernels go to a user cache directory, never into the package (where they outlive an uninstall
and shadow the next install)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forget", "store", "api", "drift", "cluster")


def cache_files_in_packages() -> set[Path]:
    return {p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.nb[ic]")}


def python(code: str, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_help_loads_no_heavy_module():
    loaded = python(
        "import sys\n"
        "from forget.cli import main\n"
        "for argv in (['--help'], ['erase', '--help'], ['serve', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('numba', 'duckdb', 'fastapi', 'sklearn', 'scipy', 'uvicorn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert loaded.splitlines()[-1] == "[]"


def test_numba_caches_outside_the_package(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    before = cache_files_in_packages()
    where = python(
        "import numba, numpy as np\n"
        "from forget import LinearRegression\n"
        "LinearRegression().fit(np.eye(4), np.arange(4.0)).forget([0])\n"
        "import drift._kernels\n"
        "print(numba.config.CACHE_DIR)",
        env,
    )
    assert where == str(tmp_path / "forget" / "numba")
    assert list((tmp_path / "forget" / "numba").rglob("*.nbi")), "nothing was cached"
    after = cache_files_in_packages()
    assert after <= before, f"numba wrote beside the sources: {sorted(after - before)[:3]}"


def test_read_only_commands_load_no_model_machinery(tmp_path):
    """``forget verify`` and ``forget models`` read a store without numba, scikit-learn or
    FastAPI (a fraction of a second instead of several)."""
    (tmp_path / "d.csv").write_text("s,a,y\nx1,1.0,0\nx2,2.0,1\n")
    store = str(tmp_path / "store")
    python(f"from forget.cli import main; main(['ingest', '--store', {store!r}, 'd', "
           f"{str(tmp_path / 'd.csv')!r}, '--subject-column', 's'])")  # fmt: skip
    loaded = python(
        "import sys\n"
        "from forget.cli import main\n"
        f"assert main(['verify', '--store', {store!r}]) == 0\n"
        f"assert main(['models', '--store', {store!r}]) == 0\n"
        "heavy = ('numba', 'fastapi', 'sklearn', 'scipy', 'uvicorn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert loaded.splitlines()[-1] == "[]"
