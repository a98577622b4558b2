"""Servers under test as child processes: free ports, CPU pinning, readiness, clean stops.

On a machine with two or more CPUs the server under test is pinned to the last CPU and the
load generator (wrk) and the helpers (redis-server, py-spy) to the others, so groupgate at one
worker, Cerbos and the bare handler each get exactly one core, and none of them competes
with the load generator. With one CPU nothing is pinned (and the figures say so).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Cpus:
    """Which CPUs the server under test and the load side may use (None: not pinned)."""

    server: tuple[int, ...] | None
    load: tuple[int, ...] | None

    @classmethod
    def split(cls) -> Cpus:
        getter = getattr(os, "sched_getaffinity", None)
        available = sorted(getter(0)) if getter else []
        if len(available) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls((available[-1],), tuple(available[:-1]))

    def prefix(self, cpus: tuple[int, ...] | None) -> list[str]:
        if cpus is None:
            return []
        return ["taskset", "-c", ",".join(map(str, cpus))]

    def as_json(self) -> dict[str, list[int] | None]:
        return {
            "server": list(self.server) if self.server is not None else None,
            "load": list(self.load) if self.load is not None else None,
        }


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_http(
    port: int, path: str, *, timeout: float, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Wait until GET `path` answers 200; fail with the log's tail if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited ({process.returncode}):\n{tail(log)}")
        try:
            status, _ = http_get(port, path, timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{path} on port {port} not ready after {timeout:.0f}s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def server(
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cpus: tuple[int, ...] | None = None,
    ready_timeout: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` (pinned to `cpus`), wait for `ready_path`, stop it on exit."""
    prefix = ["taskset", "-c", ",".join(map(str, cpus))] if cpus is not None else []
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*prefix, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    try:
        wait_http(port, ready_path, timeout=ready_timeout, process=process, log=log)
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; only ever this one process."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
