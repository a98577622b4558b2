"""Slow bodies: many connections send request headers and part of a body, then nothing.

`python -m benchmarks slowbody [--quick]`. Per listener (`main`, the aiohttp port, and
`decisions`, the decision listener), a fresh groupgate (`groupgate serve --demo --workers 1`, the
embedded store and its demo data, an API key, `GROUPGATE_HTTP_REQUEST_TIMEOUT` short) is
started, and this process, on 127.0.0.1 only:

1. sends one ordinary `POST /v1/check` (so the "before" figure is a warmed server) and reads
   the server's resident memory (VmRSS);
2. opens `connections` connections (at most `open_concurrency` connecting at once, none
   begun after `open_deadline` seconds), each sending `POST /v1/check` headers with
   `Content-Length: 100000` and `sent` bytes of the body, then nothing;
3. holds them for at most `hold` seconds (less when the server has closed them all),
   sampling every 0.1 s the server's RSS, the ESTABLISHED sockets on the listener's port as
   the kernel sees them (`/proc/net/tcp`: accepted or waiting to be) and how many of ours the
   server has closed; once all are open, one ordinary request on a fresh connection says
   whether the listener still answers (its status and time);
4. closes every connection still open, waits `settle` seconds, and reads the RSS again.

The load is bounded in count and time; the file-descriptor soft limit is raised up to the
hard limit first (the server inherits it), and the connection count capped to what it allows.
Nothing here asserts a figure: `markdown` compares RSS after with RSS before (target: back
within 10%) and says how many connections the server held and for how long.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.http import processes

GROUPGATE = Path(sys.executable).parent / "groupgate"
API_KEY = "bench-slowbody-key-0123456789abcdef"
LISTENERS = ("main", "decisions")
CHECK = b'{"subject": {"id": "nobody"}, "action": "read", "resource": {"type": "orders"}}'
#: RSS after the connections are closed, over RSS before: the target's bound.
TARGET_RSS_RATIO = 1.10
SAMPLE_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class Settings:
    """How many slow connections, how slow, and for how long at most."""

    connections: int = 2_000
    content_length: int = 100_000
    sent: int = 1_000
    request_timeout: float = 2.0
    hold: float = 8.0
    settle: float = 2.0
    open_concurrency: int = 100
    connect_timeout: float = 5.0
    #: Longest opening phase, seconds: connections not made by then are not attempted.
    open_deadline: float = 20.0
    listeners: tuple[str, ...] = LISTENERS
    #: `GROUPGATE_HTTP_MAX_CONNECTIONS` for the server; None leaves its default.
    max_connections: int | None = None


@dataclass
class Slow:
    """One slow connection as the client saw it."""

    opened_at: float
    closed_at: float | None = None
    status: int | None = None
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)


def raise_fd_limit(wanted: int) -> tuple[int, int]:
    """Raise the soft limit on open files towards `wanted` (never past the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft, hard


def rss_bytes(pid: int) -> int | None:
    """The resident set size of `pid` (VmRSS), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def established(port: int, table: str = "/proc/net/tcp") -> int:
    """ESTABLISHED IPv4 sockets whose local port is `port` (the server's side of each)."""
    wanted = f":{port:04X}"
    count = 0
    try:
        with open(table) as lines:
            next(lines, None)
            for line in lines:
                parts = line.split(None, 4)
                if len(parts) > 3 and parts[1].endswith(wanted) and parts[3] == "01":
                    count += 1
    except OSError:
        return -1
    return count


def _status_of(chunk: bytes) -> int | None:
    parts = chunk.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def slow_head(port: int, settings: Settings) -> bytes:
    return (
        (
            f"POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {settings.content_length}\r\n\r\n"
        ).encode()
        + b'{"subject": {"id": "'
        + b"x" * max(0, settings.sent - 20)
    )


async def _watch(conn: Slow, reader: asyncio.StreamReader) -> None:
    """Read until the server closes: record the answer's status and when it closed."""
    try:
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                break
            if conn.status is None:
                conn.status = _status_of(chunk) or -1
    except (ConnectionError, OSError):
        pass
    conn.closed_at = time.monotonic()


async def _open(
    port: int,
    payload: bytes,
    settings: Settings,
    gate: asyncio.Semaphore,
    tasks: set[Any],
    deadline: float,
) -> Slow | None:
    """Connect and send the slow request's start; None when the connection was not made.

    A connection the server resets while we send (a connection cap answering and closing
    at once) counts as opened and closed by the server, with no answer read.
    """
    async with gate:
        timeout = min(settings.connect_timeout, deadline - time.monotonic())
        if timeout <= 0:
            return None  # the opening phase is over: the load stays bounded in time
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), timeout
            )
        except (TimeoutError, OSError):
            return None
        try:
            writer.write(payload)
            await asyncio.wait_for(writer.drain(), settings.connect_timeout)
        except (TimeoutError, OSError):
            writer.close()
            now = time.monotonic()
            return Slow(now, closed_at=now)
    conn = Slow(time.monotonic(), writer=writer)
    task = asyncio.create_task(_watch(conn, reader))
    tasks.add(task)
    return conn


async def _probe(port: int) -> dict[str, Any]:
    """One ordinary request on a fresh connection: status and milliseconds (or the error)."""
    started = time.monotonic()
    request = (
        f"POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {API_KEY}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {len(CHECK)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + CHECK
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    except (TimeoutError, OSError) as exc:
        return {"status": None, "error": type(exc).__name__, "ms": _ms_since(started)}
    try:
        writer.write(request)
        first = await asyncio.wait_for(reader.read(4096), 5)
    except (TimeoutError, OSError) as exc:
        return {"status": None, "error": type(exc).__name__, "ms": _ms_since(started)}
    finally:
        writer.close()
    return {"status": _status_of(first), "ms": _ms_since(started)}


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


async def hold_slow_connections(pid: int, port: int, settings: Settings) -> dict[str, Any]:
    """Steps 2-4 of the module docstring against the listener on `port` of process `pid`."""
    samples: list[tuple[float, int | None, int, int]] = []
    conns: list[Slow] = []
    tasks: set[Any] = set()
    stop = asyncio.Event()
    t0 = time.monotonic()

    async def sample() -> None:
        while not stop.is_set():
            closed = sum(1 for c in conns if c.closed_at is not None)
            samples.append((time.monotonic() - t0, rss_bytes(pid), established(port), closed))
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_INTERVAL)

    sampler = asyncio.create_task(sample())
    gate = asyncio.Semaphore(settings.open_concurrency)
    payload = slow_head(port, settings)
    deadline = t0 + settings.open_deadline
    opened = await asyncio.gather(
        *(
            _open(port, payload, settings, gate, tasks, deadline)
            for _ in range(settings.connections)
        )
    )
    conns.extend(c for c in opened if c is not None)
    all_open = time.monotonic()
    probe = await _probe(port)
    remaining = all_open + settings.hold - time.monotonic()
    if tasks and remaining > 0:
        # Each watcher ends when the server closes its connection: all ended, or the hold is up.
        await asyncio.wait(tasks, timeout=remaining)
    hold_end = time.monotonic()
    held_at_end = established(port)
    closed_by_server = [c for c in conns if c.closed_at is not None]
    writers = [c.writer for c in conns if c.writer is not None]
    for writer in writers:
        writer.close()  # ours too where the server closed first: the socket is released
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    await asyncio.sleep(settings.settle)
    stop.set()
    await sampler
    statuses: dict[str, int] = {}
    for c in closed_by_server:
        key = str(c.status) if c.status is not None else "closed, no answer"
        statuses[key] = statuses.get(key, 0) + 1
    lifetimes = [c.closed_at - c.opened_at for c in closed_by_server if c.closed_at is not None]
    during = [s for s in samples if s[0] <= hold_end - t0]
    rss = [s[1] for s in samples if s[1] is not None]
    return {
        "attempted": settings.connections,
        "opened": len(conns),
        "connect_failed": settings.connections - len(conns),
        "open_seconds": round(all_open - t0, 2),
        "held_peak": max((s[2] for s in during), default=0),
        "held_at_end_of_hold": held_at_end,
        "hold_seconds": round(hold_end - all_open, 2),
        "closed_by_server": len(closed_by_server),
        "answers": statuses,
        "closed_after_s": {
            "median": round(statistics.median(lifetimes), 2) if lifetimes else None,
            "max": round(max(lifetimes), 2) if lifetimes else None,
        },
        "probe_during_hold": probe,
        "rss_peak": max(rss, default=None),
        "rss_after": rss_bytes(pid),
        "established_after": established(port),
    }


def warm(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/check",
            body=CHECK,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@contextmanager
def groupgate(settings: Settings, folder: Path) -> Iterator[tuple[int, int, int]]:
    """A groupgate on the embedded store; yield (pid, main port, decision port)."""
    port, decisions = processes.free_port(), processes.free_port()
    command = [str(GROUPGATE), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--decision-port", str(decisions)]
    env = {
        "GROUPGATE_API_KEYS": API_KEY,
        "GROUPGATE_HTTP_REQUEST_TIMEOUT": str(settings.request_timeout),
        "GROUPGATE_LOG_LEVEL": "warning",
        "GROUPGATE_DECISION_LOG": "0",
    }
    if settings.max_connections is not None:
        env["GROUPGATE_HTTP_MAX_CONNECTIONS"] = str(settings.max_connections)
    with processes.server(
        command, port=port, ready_path="/readyz", log=folder / "groupgate.log", env=env
    ) as process:
        yield process.pid, port, decisions


def run(
    settings: Settings,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Measure every listener of `settings` in turn, each on a fresh server."""
    # Ours, the server's (inherited), and a margin for the probe, logs and the interpreter.
    soft, hard = raise_fd_limit(settings.connections + 256)
    usable = max(0, soft - 256)
    if usable < settings.connections:
        say(f"slowbody: open-file limit {soft}: {usable} connections, not {settings.connections}")
        settings = Settings(**{**asdict(settings), "connections": usable})
    results: dict[str, Any] = {
        "machine": report.machine(),
        "setup": {**asdict(settings), "fd_limit": [soft, hard]},
        "listeners": {},
    }
    with tempfile.TemporaryDirectory(prefix="gg-bench-slowbody-") as tmp:
        for listener in settings.listeners:
            folder = Path(tmp) / listener
            folder.mkdir()
            with groupgate(settings, folder) as (pid, main_port, decisions_port):
                port = main_port if listener == "main" else decisions_port
                say(f"slowbody: {settings.connections:,} slow connections on {listener} ({port})")
                warmed = warm(port)
                time.sleep(min(0.5, settings.settle))  # let the warm-up's garbage go
                before = rss_bytes(pid)
                figures = asyncio.run(hold_slow_connections(pid, port, settings))
                figures["warm_status"] = warmed
                figures["rss_before"] = before
                figures["server_alive"] = rss_bytes(pid) is not None
                results["listeners"][listener] = figures
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _mb(value: int | None) -> str:
    return f"{value / 1e6:,.1f}" if value is not None else "-"


def markdown(results: dict[str, Any]) -> str:
    """The table: connections held, answers, the probe, RSS before/peak/after, the target."""
    setup = results["setup"]
    lines = [
        "### Slow bodies",
        "",
        f"{report.machine_line(results['machine'])}.",
        f"{setup['connections']:,} connections per listener, each sending headers with "
        f"`Content-Length: {setup['content_length']:,}` and {setup['sent']:,} bytes of body, "
        f"then nothing; `GROUPGATE_HTTP_REQUEST_TIMEOUT={setup['request_timeout']:g}`"
        + (
            f", `GROUPGATE_HTTP_MAX_CONNECTIONS={setup['max_connections']}`"
            if setup["max_connections"] is not None
            else ""
        )
        + f"; held for at most {setup['hold']:g} s, RSS read {setup['settle']:g} s after closing.",
        "",
        "| listener | opened | held, peak | held at end | closed by server | answers "
        "| closed after, median / max s | ordinary request meanwhile | RSS before MB | peak "
        "| after | after/before |",
        "|---|---:|---:|---:|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for listener, fig in results["listeners"].items():
        lines.append(_row(listener, fig))
    lines += ["", "| target | listener | figure | result |", "|---|---|---|---|"]
    for listener, fig in results["listeners"].items():
        after = _ratio(fig)
        ok = after is not None and after <= TARGET_RSS_RATIO
        figure = f"{after:.2f}x" if after is not None else "server gone"
        lines.append(
            f"| RSS back within {TARGET_RSS_RATIO - 1:.0%} of the start | {listener} | {figure} "
            f"| {'met' if ok else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"


def _row(listener: str, fig: dict[str, Any]) -> str:
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(fig["answers"].items())) or "-"
    probe = fig["probe_during_hold"]
    if probe.get("status") is not None:
        probe_text = f"{probe['status']} in {probe['ms']:.0f} ms"
    else:
        probe_text = f"{probe.get('error', 'no answer')} after {probe['ms']:.0f} ms"
    closed = fig["closed_after_s"]
    lifetimes = f"{_or_dash(closed['median'])} / {_or_dash(closed['max'])}"
    after = _ratio(fig)
    return (
        f"| {listener} | {fig['opened']:,} | {fig['held_peak']:,} "
        f"| {fig['held_at_end_of_hold']:,} | {fig['closed_by_server']:,} | {answers} "
        f"| {lifetimes} | {probe_text} | {_mb(fig['rss_before'])} | {_mb(fig['rss_peak'])} "
        f"| {_mb(fig['rss_after'])} | {f'{after:.2f}x' if after is not None else '-'} |"
    )


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _ratio(fig: dict[str, Any]) -> float | None:
    before, after = fig.get("rss_before"), fig.get("rss_after")
    if not before or after is None:
        return None
    return round(float(after) / float(before), 3)
