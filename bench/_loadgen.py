"""A small HTTP/1.1 load generator: N keep-alive connections for T seconds, then it stops.

It writes pre-encoded requests on raw asyncio streams (no client library in the way), so one
process drives thousands of requests per second. Run it in its own process::

    python -m bench._loadgen --port 8000 --path /v1/models/m/predict --bodies bodies.jsonl \\
        --token TOKEN --connections 64 --seconds 5

It prints one JSON object: requests, statuses, rows/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import numpy as np


def _request(host: str, port: int, path: str, body: bytes, token: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    stop_at: float,
    lat: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            req = requests[i % len(requests)]
            i += 1
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.bodies, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    requests = [_request(args.host, args.port, args.path, b, args.token) for b in bodies]
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    stop_at = t0 + args.seconds
    step = max(1, len(requests) // args.connections)
    await asyncio.gather(
        *(
            _connection(args.host, args.port, requests, k * step, stop_at, lat, statuses)
            for k in range(args.connections)
        )
    )
    took = time.perf_counter() - t0
    ms = np.asarray(lat) * 1e3
    ok = statuses.get(200, 0)
    return {
        "connections": args.connections,
        "seconds": took,
        "requests": len(lat),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "requests_per_s": ok / took,
        "rows_per_s": ok * args.rows_per_request / took,
        "p50_ms": float(np.median(ms)) if ms.size else None,
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--bodies", required=True, help="a file of JSON bodies, one per line")
    ap.add_argument("--token", required=True)
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rows-per-request", type=int, default=1)
    print(json.dumps(asyncio.run(_run(ap.parse_args()))))


if __name__ == "__main__":
    main()
