"""Machine facts and result files: `benchmarks/results/<suite>-<timestamp>.json`, plus
`<suite>-latest.json` and `<suite>-latest.md` (the directory is git-ignored).

Every result carries the machine it was measured on (CPUs, CPU model, the core it was
pinned to, load average, Python and package versions, git commit, date), because figures
from a shared two-core machine mean little without them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("groupgate", "cedarpy", "casbin")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty-src" if dirty.stdout.strip() else "")


def machine(pinned_cpu: int | None = None) -> dict[str, Any]:
    """Return the facts to record beside every figure."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "pinned_cpu": pinned_cpu,
        "load_average": [round(x, 2) for x in load] if load else None,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git_commit(),
    }


def machine_line(facts: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in facts["packages"].items() if v)
    return (
        f"{facts['date']}, {facts['cpus']} CPUs ({facts['cpu_model']}), pinned to CPU "
        f"{facts['pinned_cpu']}, load {facts['load_average']}, Python {facts['python']}, "
        f"{packages}, commit {facts['git_commit']}"
    )


def write(
    suite: str, results: dict[str, Any], markdown: str, out: Path | None = None
) -> list[Path]:
    """Write the JSON (timestamped and latest) and the markdown; return the paths."""
    folder = out or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    body = json.dumps(results, indent=2, sort_keys=False) + "\n"
    paths = [
        folder / f"{suite}-{stamp}.json",
        folder / f"{suite}-latest.json",
        folder / f"{suite}-latest.md",
    ]
    paths[0].write_text(body)
    paths[1].write_text(body)
    paths[2].write_text(markdown)
    return paths
