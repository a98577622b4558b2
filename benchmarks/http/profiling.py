"""py-spy under load: where a groupgate worker spends its time on the `/v1/check` path.

`record(pid, seconds, out)` samples the worker while wrk loads it; `summarise(raw)` reads
py-spy's collapsed stacks (`--format raw`, one `frame;frame;... count` line per stack) and
returns the functions with the most samples on top of the stack (self) and anywhere in it
(inclusive), as shares of the event loop thread's samples. Time inside C code (orjson, the
llhttp parser, uvloop's transports) is counted to the Python function that called it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    return found


def record(
    pid: int, seconds: float, out: Path, *, fmt: str = "raw", prefix: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on `pid` for `seconds`; the caller waits for it."""
    command = [
        *(prefix or []),
        py_spy(),
        "record",
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "250",
        "--format",
        fmt,
        "--function",
        "--output",
        str(out),
        "--pid",
        str(pid),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _frame(raw: str) -> str:
    match = _FRAME.match(raw.strip())
    if match is None:
        return raw.strip()
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    """Top functions by self and by inclusive samples, as percentages of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    other_threads = 0
    for line in raw.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count = int(match["count"])
        frames = [_frame(f) for f in match["stack"].split(";") if f]
        # py-spy puts the process/thread first: skip entries that are not Python frames.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        if frames[0].startswith("Thread._bootstrap"):
            # Helper threads (asyncio.to_thread's pool, idle after start-up; py-spy cannot
            # always tell that a thread blocked on a queue is idle): not the event loop.
            other_threads += count
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": name, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "other_thread_samples": other_threads,
        "self": share(own),
        "inclusive": share(inclusive),
    }
