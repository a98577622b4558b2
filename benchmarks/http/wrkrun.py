"""Run wrk with `wrk/rotate.lua` over a request list and parse the JSON its `done()` prints."""

from __future__ import annotations

import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SCRIPT = Path(__file__).resolve().parent / "wrk" / "rotate.lua"
MARKER = "WRK_JSON "
PERCENTILES = ("p50", "p90", "p99", "p99.9")


class WrkError(RuntimeError):
    """wrk failed, printed no figures, or the target answered with errors."""


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk invocation: where, how hard, for how long, with which request list."""

    port: int
    requests: Path
    connections: int
    duration: float
    threads: int | None = None
    path: str = "/"

    def command(self, prefix: Sequence[str] = ()) -> list[str]:
        threads = self.threads or (1 if self.connections < 2 else 2)
        return [
            *prefix,
            wrk_binary(),
            f"-t{min(threads, self.connections)}",
            f"-c{self.connections}",
            f"-d{max(1, round(self.duration))}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(SCRIPT),
            f"http://127.0.0.1:{self.port}{self.path}",
            "--",
            str(self.requests),
        ]


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
    return found


def parse(stdout: str) -> dict[str, Any]:
    """Return the figures of the `WRK_JSON` line (raise `WrkError` without one)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            figures: dict[str, Any] = orjson.loads(line[len(MARKER) :])
            return figures
    raise WrkError(f"wrk printed no {MARKER.strip()} line:\n{stdout[-2000:]}")


def cpu_times() -> list[int]:
    """Total jiffies per state (user, nice, system, idle, iowait, irq, softirq, steal)."""
    try:
        with open("/proc/stat") as stat:
            first = stat.readline().split()
    except OSError:
        return []
    return [int(x) for x in first[1:9]]


def steal_percent(before: list[int], after: list[int]) -> float | None:
    """Share of CPU time the hypervisor gave to someone else between two `cpu_times`."""
    if len(before) < 8 or len(after) < 8:
        return None
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta)
    return round(100 * delta[7] / total, 2) if total else None


def run(
    load: Load, prefix: Sequence[str] = (), *, allow_status_errors: bool = False
) -> dict[str, Any]:
    """Run wrk once; return its figures. Socket errors or non-2xx answers raise unless allowed."""
    timeout = load.duration + 60
    before = cpu_times()
    done = subprocess.run(
        load.command(prefix), capture_output=True, text=True, timeout=timeout, check=False
    )
    steal = steal_percent(before, cpu_times())
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    figures = parse(done.stdout)
    figures["steal_percent"] = steal
    errors = figures["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    if socket_errors or (errors["status"] and not allow_status_errors):
        raise WrkError(f"errors under load {errors} (port {load.port}, {load.requests.name})")
    if figures["requests"] == 0:
        raise WrkError(f"no request completed (port {load.port}, {load.requests.name})")
    return figures


def median_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of requests/s and of each latency percentile (microseconds)."""
    latency = {p: statistics.median(r["latency_us"][p] for r in runs) for p in PERCENTILES}
    return {
        "rps": round(statistics.median(r["rps"] for r in runs), 1),
        "rps_runs": [round(r["rps"], 1) for r in runs],
        "latency_us": latency,
        "p99_runs_us": [r["latency_us"]["p99"] for r in runs],
        "requests": sum(r["requests"] for r in runs),
        "status_errors": sum(r["errors"]["status"] for r in runs),
        "rounds": len(runs),
        "max_steal_percent": max((r.get("steal_percent") or 0.0 for r in runs), default=0.0),
    }
