"""Instructions per request on the decision listener, counted by callgrind.

Why: on this shared 2-core VM the wall-clock ratios between workloads (`python -m benchmarks
http`) move 10-20% from run to run, and the machine's own speed twice that within an hour.
The number of instructions groupgate executes for a request does not move: callgrind counts
the same total for the same code and input whatever else the machine is doing. This suite
gives that figure for each per-request endpoint of a gateway, so that a change to one of them
can be judged in one run.

How: a child process runs under `valgrind --tool=callgrind --instr-atstart=no`. It builds
the application state as `groupgate serve` does (its garbage collector thresholds; the
settings of `http`: HS256 subject tokens, a caller key bound to the tenant, the graph
imported into a private redis-server) and drives the decision listener's own code,
`http11.Connection` with `decisions.Decisions`, through a transport that keeps only counts,
fed the request lists of `http`'s listener workloads (`benchmarks.http.listeners`):
`POST /v1/check`, the AuthZEN single evaluation and forward-auth with HS256 tokens. Each list
is played twice to warm the caches (every request answered, awaiting where it must), then
once more with instrumentation on, and `callgrind_control` dumps that list's count. A second
child does the same for `/v1/check` with the Redis stream audit sink, its batches written
inside the counted window (issue 14's audit cost). Every request must be answered in the
counted pass, with the statuses the warm-up saw: a list that fell to a slower path is an
error, not a figure.

What it leaves out: the kernel (socket reads and writes, about half of a request's CPU time
under wrk here), cache misses and the event loop's polling. Its ratios are those of
groupgate's own work per request, not of throughput: `http` measures throughput.

`python -m benchmarks instructions` (needs valgrind and redis-server; about two minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("check", "evaluation", "forward_auth_hs256")
LABELS = {
    "check": "`POST /v1/check`",
    "evaluation": "AuthZEN `POST /access/v1/evaluation`",
    "forward_auth_hs256": "forward-auth `GET`, Bearer JWT (HS256, 100 tokens)",
    "check_audit": "`POST /v1/check`, Redis stream audit sink",
}
_TRIGGER = re.compile(r"^desc: Trigger: dump (?P<name>\S+)", re.MULTILINE)
_TOTALS = re.compile(r"^totals: (?P<count>\d+)", re.MULTILINE)


class ChildError(RuntimeError):
    """The counting child failed or counted something other than what it was asked."""


# ---------------------------------------------------------------------------- parent


def run(*, subjects: int = 2_000, requests: int = 2_000) -> dict[str, Any]:
    """Count every workload, and `/v1/check` again with the audit sink; return the figures."""
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"instructions: {tool} is not on PATH (Debian: apt-get install "
                f"{'valgrind' if tool != 'redis-server' else 'redis-server'})"
            )
    from benchmarks.store import private_redis

    counts: dict[str, int] = {}
    answers: dict[str, dict[str, int]] = {}
    with private_redis() as url:
        for audit, names in ((None, WORKLOADS), ("redis", ("check",))):
            found = _child_run(url, subjects, requests, names, audit)
            for name, figures in found.items():
                key = name if audit is None else f"{name}_audit"
                counts[key] = figures["instructions"]
                answers[key] = figures["statuses"]
    per_request = {name: round(count / requests) for name, count in counts.items()}
    check = per_request["check"]
    return {
        "settings": {"subjects": subjects, "requests_per_list": requests},
        "instructions_per_request": per_request,
        "statuses": answers,
        "check_over": {
            name: round(check / n, 3) for name, n in per_request.items() if name != "check"
        },
        "machine": report.machine(),
    }


def _child_run(
    url: str, subjects: int, requests: int, names: Sequence[str], audit: str | None
) -> dict[str, dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="gg-bench-instructions-"))
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={folder}/callgrind.out",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--url",
        url,
        "--folder",
        str(folder),
        "--subjects",
        str(subjects),
        "--requests",
        str(requests),
        *(("--audit", audit) if audit else ()),
        *names,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise ChildError(f"the counting child exited {done.returncode}:\n{done.stderr[-3000:]}")
    seen = orjson.loads((folder / "answers.json").read_bytes())
    counted = _dumps(folder)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in counted:
            raise ChildError(f"no callgrind dump for {name} in {folder}")
        out[name] = {"instructions": counted[name], "statuses": seen[name]}
    shutil.rmtree(folder, ignore_errors=True)
    return out


def _dumps(folder: Path) -> dict[str, int]:
    """Workload name -> the instructions its dump counted (`callgrind_control -d name`)."""
    found: dict[str, int] = {}
    for path in folder.glob("callgrind.out*"):
        text = path.read_text(errors="replace")
        trigger, totals = _TRIGGER.search(text), _TOTALS.search(text)
        if trigger is not None and totals is not None:
            found[trigger["name"]] = int(totals["count"])
    return found


def markdown(results: dict[str, Any]) -> str:
    per = results["instructions_per_request"]
    ratio = results["check_over"]
    settings = results["settings"]
    lines = [
        "### Instructions per request (callgrind, decision listener, in-process)",
        "",
        report.machine_line(results["machine"]) + ".",
        f"Tenant of {settings['subjects']:,} subjects; each list of "
        f"{settings['requests_per_list']:,} requests played twice to warm, then counted. "
        "The kernel's work (sockets) is not counted: these are groupgate's own instructions.",
        "",
        "| workload | instructions per request | `/v1/check` / workload |",
        "|---|---:|---:|",
    ]
    for name in (*WORKLOADS, "check_audit"):
        if name in per:
            shown = "" if name == "check" else f"{ratio[name]:.2f}x"
            lines.append(f"| {LABELS[name]} | {per[name]:,} | {shown} |")
    if "check_audit" in per:
        extra = per["check_audit"] - per["check"]
        lines += [
            "",
            f"The audit trail (Redis stream sink) adds {extra:,} instructions to a check "
            f"({extra / per['check']:.0%}), its batch writes included.",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- child


class _Sink:
    """A transport that keeps the status of each answer and nothing else."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()

    def write(self, data: bytes) -> None:
        self.statuses[data[9:12].decode("latin-1")] += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _raw(method: str, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _child(args: argparse.Namespace) -> None:
    from benchmarks.http import listeners, run, workload
    from groupgate.api import decisions, http11
    from groupgate.api.app import STATE, create_app
    from groupgate.api.server import tune_gc
    from groupgate.config import load_config
    from groupgate.policy import load_policy
    from groupgate.store.service import GraphService

    tune_gc()  # as `groupgate serve` runs: the collector's thresholds count instructions too

    work = workload.prepare(subjects=args.subjects, questions=args.requests)
    lists = listeners.build(args.folder, work, workload.rsa_key(), count=args.requests)
    streams = {
        wl.name: [
            _raw(r.method, r.path, {**wl.headers, **r.headers}, _bytes(r.body)) for r in wl.requests
        ]
        for wl in lists
        if wl.name in args.workloads
    }
    env = run.groupgate_env()
    settings: dict[str, Any] = {
        key.removeprefix("GROUPGATE_").lower(): value for key, value in env.items() if value
    }
    settings.pop("decision_log", None)
    settings.update(
        api_keys=f"{workload.API_KEY}:{work.tenant}",
        policies=str(workload.POLICIES),
        redis_url=args.url,
    )
    if args.audit:
        settings["audit_sinks"] = args.audit
    config = load_config(env={}, overrides=settings)
    service = await GraphService.open(load_policy(Path(config.policies)), args.url)
    try:
        await service.admin.import_graph(None, work.document)
        state = create_app(config, service)[STATE]
        listener = http11.Listener(decisions.Decisions(state), decisions.limits_of(state))
        seen: dict[str, dict[str, int]] = {}
        for name in args.workloads:
            stream = streams[name]
            for _ in range(2):  # warm: every answer, awaiting where it must
                warm = await _warm(listener, stream)
            if state.audit is not None:
                await state.audit.flush()  # the counted pass writes its own records only
            sink = _Sink()
            _control("-z")
            _control("-i", "on")
            connection = http11.Connection(listener)
            connection.connection_made(sink)  # type: ignore[arg-type]
            for request in stream:
                connection.data_received(request)
            if state.audit is not None:
                await state.audit.flush()
            _control("-i", "off")
            _control("-d", name)
            if sink.statuses != warm:
                raise ChildError(f"{name}: counted {dict(sink.statuses)}, warm {dict(warm)}")
            seen[name] = dict(sink.statuses)
        (args.folder / "answers.json").write_bytes(orjson.dumps(seen))
    finally:
        await service.close()


async def _warm(listener: Any, stream: list[bytes]) -> Counter[str]:
    """Play `stream` on a new connection, each answer awaited before the next request."""
    from groupgate.api import http11

    sink = _Sink()
    connection = http11.Connection(listener)
    connection.connection_made(sink)  # type: ignore[arg-type]
    for request in stream:
        connection.data_received(request)
        while connection.task is not None:
            await connection.task
    return sink.statuses


def _bytes(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    return str(body).encode()


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def _child_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions")
    parser.add_argument("--url", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--subjects", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--audit", default=None)
    parser.add_argument("workloads", nargs="+", choices=WORKLOADS)
    asyncio.run(_child(parser.parse_args(argv)))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
