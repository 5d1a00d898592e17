"""Fallback HTTP/1.1 keep-alive load generator, used when `wrk` is not installed."""

# It runs as its own process (`python -m benchmarks.loadgen URL ...`) so that it never shares
# an interpreter or a core's event loop with the server it measures; it prints one JSON object.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit


@dataclass
class Tally:
    """What all connections of one run observed."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


@dataclass
class LoadResult:
    """Summary of one load run, in the same shape as the parsed `wrk` output."""

    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int
    statuses: dict[str, int]
    event_loop: str


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    return status, headers.get("connection") != "close"


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: Tally) -> None:
    """Send requests back to back on one connection until the deadline, reconnecting on error."""
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.perf_counter() < deadline:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, keep_alive = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.statuses[status] = tally.statuses.get(status, 0) + 1
        if not keep_alive:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def build_request(url: str, method: str, headers: list[str], body: str | None) -> bytes:
    """One HTTP/1.1 request, sent again and again on each connection."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
    lines += headers
    payload = (body or "").encode()
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def run_load(
    url: str,
    connections: int,
    duration: float,
    event_loop: str,
    *,
    method: str = "GET",
    headers: list[str] | None = None,
    body: str | None = None,
) -> LoadResult:
    """Drive `connections` keep-alive connections at `url` for `duration` seconds."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    request = build_request(url, method, headers or [], body)
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(_connection(host, port, request, deadline, tally) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies)
    ok = sum(count for status, count in tally.statuses.items() if 200 <= status < 400)
    return LoadResult(
        requests=len(latencies),
        duration_s=round(elapsed, 3),
        requests_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 3),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
        non_2xx_3xx=len(latencies) - ok,
        socket_errors=tally.errors,
        statuses={str(status): count for status, count in sorted(tally.statuses.items())},
        event_loop=event_loop,
    )


def main() -> None:
    """Parse the command line, run the load and print the result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="`Name: value`")
    parser.add_argument("--body", default=None)
    args = parser.parse_args()
    options = {"method": args.method, "headers": args.header, "body": args.body}
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only with more overhead per request
        result = asyncio.run(
            run_load(args.url, args.connections, args.duration, "asyncio", **options)
        )
    else:
        # The server runs on uvloop too; the same loop keeps the client from being the bottleneck.
        result = uvloop.run(
            run_load(args.url, args.connections, args.duration, "uvloop", **options)
        )
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
