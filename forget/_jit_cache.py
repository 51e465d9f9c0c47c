"""Where numba keeps the compiled kernels: a per-user cache directory, never beside the sources.

numba's default writes its cache files into ``__pycache__`` next to each module. In an installed
package that is ``site-packages/forget/**/__pycache__``: files pip did not install and does not
remove, so after ``pip uninstall`` the leftover ``forget/`` folder becomes a namespace package
that shadows a later (editable) install — every ``forget`` command then fails on import.

Importing this module points numba at ``$NUMBA_CACHE_DIR`` when set, else at
``$XDG_CACHE_HOME/forget/numba`` (``~/.cache/forget/numba``). It must run before any kernel
module is imported: numba reads the directory when a ``cache=True`` function is decorated.

>>> import numba
>>> numba.config.CACHE_DIR == str(cache_dir())
True
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """The directory numba's cache goes to (``NUMBA_CACHE_DIR`` wins when the user set it)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "forget" / "numba"


def _configure() -> None:
    where = str(cache_dir())
    os.environ["NUMBA_CACHE_DIR"] = where  # read by numba's config when it is first imported
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba came first: its config has read the environment already
        config.CACHE_DIR = where  # type: ignore[attr-defined]


_configure()
