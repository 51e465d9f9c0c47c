"""A small HTTP/1.1 load generator: N keep-alive connections, closed loop, until it is told to stop.

It writes pre-encoded requests on raw asyncio streams (no client library in the way), so one
process drives thousands of requests per second. Run it in its own process::

    python -m bench._loadgen --port 8000 --path /v1/models/m/predict --bodies bodies.jsonl \\
        --token TOKEN --connections 64 --seconds 5

It prints one JSON object: requests, statuses, rows/s and latency percentiles. It stops after
``--seconds``, or when ``--stop-file`` appears, or with ``--once`` when every body has been
sent once (the connections take the next unsent body: each request distinct, as erasures of
distinct subjects must be). ``--pause S`` waits S seconds after each answer before the next
request (a user's pace rather than a closed loop). ``--warm-path P`` has each connection send
one ``GET P`` (not recorded) before it counts as open: the load generator's own first
request (a new process's cold code paths, ~2 ms here) then stays out of the figures.
``--record`` writes every request as ``[start, seconds, status]`` (``start`` on
``time.monotonic``, the system-wide clock, so another process can tell which requests ran
inside a window it timed); ``--ready-file`` is touched once every connection is open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _request(host: str, port: int, path: str, body: bytes, token: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class _Stop:
    """When the connections stop: a deadline, a stop file, or (``once``) no body left."""

    def __init__(self, deadline: float, stop_file: str | None) -> None:
        self.deadline, self.stop_file, self.now = deadline, stop_file, False

    def __call__(self) -> bool:
        return self.now or time.monotonic() >= self.deadline

    async def watch(self) -> None:
        """Poll the stop file every 10 ms (a stat per request would cost the client time)."""
        while self.stop_file is not None and not self():
            if os.path.exists(self.stop_file):
                self.now = True
            await asyncio.sleep(0.01)


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(head[9:12])


async def _connection(
    host: str,
    port: int,
    take: Callable[[], bytes | None],
    stop: _Stop,
    record: list[tuple[float, float, int]],
    opened: asyncio.Event,
    all_open: asyncio.Event,
    pause: float = 0.0,
    warm: bytes | None = None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    if warm is not None:
        writer.write(warm)
        await _answer(reader)
    opened.set()
    await all_open.wait()
    try:
        while not stop():
            req = take()
            if req is None:
                break
            t = time.monotonic()
            writer.write(req)
            status = await _answer(reader)
            record.append((t, time.monotonic() - t, status))
            if pause:
                await asyncio.sleep(pause)
    finally:
        writer.close()


async def _run(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[float, float, int]]]:
    with open(args.bodies, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    requests = [_request(args.host, args.port, args.path, b, args.token) for b in bodies]
    record: list[tuple[float, float, int]] = []
    n = args.connections
    if args.once:
        queue = iter(requests)
        takers = [lambda: next(queue, None)] * n
    else:  # each connection walks its own stretch of the bodies, round and round
        step = max(1, len(requests) // n)

        def walker(offset: int) -> Callable[[], bytes]:
            i = offset - 1

            def take() -> bytes:
                nonlocal i
                i += 1
                return requests[i % len(requests)]

            return take

        takers = [walker(k * step) for k in range(n)]
    warm = None
    if args.warm_path:
        warm = f"GET {args.warm_path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode()
    opened = [asyncio.Event() for _ in range(n)]
    all_open = asyncio.Event()
    stop = _Stop(float("inf"), args.stop_file)
    tasks = [
        asyncio.create_task(
            _connection(
                args.host, args.port, takers[k], stop, record, opened[k], all_open, args.pause, warm
            )
        )
        for k in range(n)
    ]
    for e in opened:
        await e.wait()
    t0 = time.monotonic()
    stop.deadline = t0 + args.seconds
    all_open.set()
    if args.ready_file:
        open(args.ready_file, "wb").close()
    watcher = asyncio.create_task(stop.watch())
    await asyncio.gather(*tasks)
    stop.now = True
    await watcher
    took = time.monotonic() - t0
    ms = np.asarray([r[1] for r in record]) * 1e3
    statuses: dict[int, int] = {}
    for r in record:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    summary = {
        "connections": n,
        "seconds": took,
        "requests": len(record),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "requests_per_s": ok / took,
        "rows_per_s": ok * args.rows_per_request / took,
        "p50_ms": float(np.median(ms)) if ms.size else None,
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
        "max_ms": float(ms.max()) if ms.size else None,
    }
    return summary, record


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--bodies", required=True, help="a file of JSON bodies, one per line")
    ap.add_argument("--token", required=True)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0, help="at most this long")
    ap.add_argument("--rows-per-request", type=int, default=1)
    ap.add_argument("--once", action="store_true", help="send each body once, then stop")
    ap.add_argument("--warm-path", default=None, help="GET it once per connection, unrecorded")
    ap.add_argument("--pause", type=float, default=0.0, help="seconds between a connection's calls")
    ap.add_argument("--stop-file", default=None, help="stop when this file appears")
    ap.add_argument("--ready-file", default=None, help="touched once every connection is open")
    ap.add_argument("--record", default=None, help="write [start, seconds, status] per request")
    args = ap.parse_args()
    summary, record = asyncio.run(_run(args))
    if args.record:
        with open(args.record, "w") as f:
            json.dump(record, f)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
