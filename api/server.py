"""Running the app on uvicorn: in the foreground (``forget serve``) or on a background thread."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.auth import ApiKeyConfigError, ApiKeys
from api.service import Service


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_keys(host: str, *, no_auth: bool) -> ApiKeys:
    """Keys from ``FORGET_API_KEYS``; without keys only an explicit loopback demo may start."""
    if no_auth:
        if not is_loopback(host):
            raise ApiKeyConfigError(
                f"--no-auth serves without tokens and is for a local demo: bind to 127.0.0.1, "
                f"not {host}"
            )
        return ApiKeys.unauthenticated()
    return ApiKeys.from_env()


# A thread waits for the GIL each time it comes back from DuckDB or a kernel that released
# it, behind the event loop busy with predictions: up to one switch interval each time. This
# was the erasure's latency when every erasure ran its statements on a worker thread
# (bench.api_erasure, 2 cores, beside 8 predicting connections: p50 131-142 ms at 5 ms,
# 72-76 ms at 0.2 ms, prediction rate -15 % at 0.2 ms); erasures answered from memory run on
# the loop and wait for no statement, so it now matters for the recorded path, the settler
# and purges. CPython's own 5 ms stays the default.
SWITCH_INTERVAL_MS = 5.0


def serve(
    directory: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    keys: ApiKeys,
    purge_interval: float = 30.0,
    evidence_rate: float = 0.1,
    batching: bool = True,
    cache_bytes: int = 64 * 1024 * 1024,
    monitoring: bool = True,
    retrain_on_drift: bool = False,
    estimate_accuracy: bool = False,
    log_level: str = "info",
    switch_interval_ms: float = SWITCH_INTERVAL_MS,
) -> None:
    """Serve the store in ``directory`` until interrupted (blocks).

    ``switch_interval_ms`` sets the interpreter's thread switch interval for the process
    (``sys.setswitchinterval``): see ``SWITCH_INTERVAL_MS``.
    """
    if switch_interval_ms <= 0:
        raise ValueError(f"the switch interval must be positive, not {switch_interval_ms} ms")
    sys.setswitchinterval(switch_interval_ms / 1000)
    service = Service.open(
        directory,
        purge_interval=purge_interval,
        evidence_rate=evidence_rate,
        batching=batching,
        cache_bytes=cache_bytes,
        monitoring=monitoring,
        retrain_on_drift=retrain_on_drift,
        estimate_accuracy=estimate_accuracy,
    )
    app = create_app(service, keys, freeze_heap=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class BackgroundServer:
    """Uvicorn serving ``app`` on a thread, for the demo: ``with BackgroundServer(app) as url``."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", server_header=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="forget-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    START_S = 900  # a first start on a fresh machine compiles every serving kernel (minutes)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.START_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
