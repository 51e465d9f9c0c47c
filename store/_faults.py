"""Named crash points, for the crash-atomicity tests.

When the environment variable ``FORGET_STORE_CRASH_AT`` names a point, the process exits at
once there (``os._exit``: no cleanup, no flush), as a power cut or ``kill -9`` would.
"""

from __future__ import annotations

import os

ENV = "FORGET_STORE_CRASH_AT"
EXIT_CODE = 77


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os._exit(EXIT_CODE)
