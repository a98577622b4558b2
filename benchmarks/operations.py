"""Operations under load (issue 14): what the audit trail and a policy reload cost.

`python -m benchmarks operations [--rounds 5] [--duration 6] [--connections 32]`

- **audit**: `/v1/check` on `groupgate serve --workers 1` (pinned to one core, a private
  redis-server), alternating rounds without an audit sink and with the Redis stream sink
  (`GROUPGATE_AUDIT_SINKS=redis`); the figure is the median ratio of requests/s, with the
  records the trail wrote and dropped (read from `/metrics`). Target: >= 0.9x.
- **reload**: the same load, alternating rounds without reloads and with the whole policy
  set reloaded every `--reload-every` seconds (SIGHUP) throughout the round; the figure is
  the ratio of the median p99 latencies. Target: within 2x.

Results: `benchmarks/results/operations-*.json` and `.md`, with the machine facts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from benchmarks.http import processes, run, workload, wrkrun
from benchmarks.store import private_redis


def _metric(port: int, name: str, label: str) -> float:
    _, raw = processes.http_get(port, "/metrics")
    for line in raw.decode().splitlines():
        if line.startswith(name) and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@contextlib.contextmanager
def _reloading(process_pid: int, every: float) -> Iterator[list[int]]:
    """SIGHUP `process_pid` every `every` seconds while the block runs; yields the count."""
    sent = [0]
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            os.kill(process_pid, signal.SIGHUP)
            sent[0] += 1

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join()


def measure(
    *,
    rounds: int = 5,
    duration: float = 6.0,
    connections: int = 32,
    subjects: int = 2_000,
    reload_every: float = 1.0,
) -> dict[str, Any]:
    cpus = processes.Cpus.split()
    work = workload.prepare(subjects=subjects, questions=2_000)
    folder = Path(tempfile.mkdtemp(prefix="gg-bench-ops-"))
    graph = folder / "graph.json"
    graph.write_bytes(orjson.dumps(work.document))
    requests = workload.write_lua(
        folder / "check.lua", workload.check_requests(work), workload.caller_headers()
    )
    audit_runs: dict[str, list[dict[str, Any]]] = {"off": [], "redis": []}
    reload_runs: dict[str, list[dict[str, Any]]] = {"steady": [], "reloading": []}
    trail: dict[str, float] = {}
    reloads = 0
    with private_redis() as url:
        run.pin_redis(url, cpus.server)
        common = {"url": url, "tenant": work.tenant, "folder": folder, "cpus": cpus.server}
        with (
            run.groupgate(**common, name="audit-off", data=graph) as (plain, plain_process),
            run.groupgate(
                **common,
                name="audit-redis",
                data=None,
                extra_env={"GROUPGATE_AUDIT_SINKS": "redis"},
            ) as (audited, _),
        ):

            def load(port: int) -> wrkrun.Load:
                return wrkrun.Load(port, requests, connections, duration)

            prefix = cpus.prefix(cpus.load)
            for port in (plain, audited):  # warm both caches
                wrkrun.run(wrkrun.Load(port, requests, connections, 2.0), prefix)
            for _ in range(rounds):
                audit_runs["off"].append(wrkrun.run(load(plain), prefix))
                audit_runs["redis"].append(wrkrun.run(load(audited), prefix))
            trail = {
                "written": _metric(audited, "groupgate_audit_records_total", "written"),
                "dropped": _metric(audited, "groupgate_audit_records_total", "dropped"),
                "failed": _metric(audited, "groupgate_audit_records_total", "failed"),
            }
            for _ in range(rounds):
                reload_runs["steady"].append(wrkrun.run(load(plain), prefix))
                with _reloading(plain_process.pid, reload_every) as sent:
                    reload_runs["reloading"].append(wrkrun.run(load(plain), prefix))
                reloads += sent[0]
            _, raw = processes.http_get(plain, "/readyz")
    audit = {k: wrkrun.median_of(v) for k, v in audit_runs.items()}
    reload = {k: wrkrun.median_of(v) for k, v in reload_runs.items()}
    return {
        "settings": {
            "rounds": rounds,
            "duration_s": duration,
            "connections": connections,
            "subjects": subjects,
            "reload_every_s": reload_every,
            "cpus": cpus.as_json(),
        },
        "audit": {
            **audit,
            "ratio": round(audit["redis"]["rps"] / audit["off"]["rps"], 3),
            "ratio_runs": [
                round(b["rps"] / a["rps"], 3)
                for a, b in zip(audit_runs["off"], audit_runs["redis"], strict=True)
            ],
            "trail": trail,
        },
        "reload": {
            **reload,
            "reloads": reloads,
            "p99_ratio": round(
                reload["reloading"]["latency_us"]["p99"] / reload["steady"]["latency_us"]["p99"],
                3,
            ),
            "readyz_after": raw.decode(),
        },
        "finished": time.time(),
    }


def markdown(results: dict[str, Any]) -> str:
    audit, reload = results["audit"], results["reload"]
    s = results["settings"]
    return "\n".join(
        [
            f"Operations under load: `/v1/check`, one worker, {s['connections']} connections, "
            f"{s['rounds']} alternating rounds of {s['duration_s']:.0f} s (medians).",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| requests/s without audit | {audit['off']['rps']:,.0f} | |",
            f"| requests/s with the Redis stream audit sink | {audit['redis']['rps']:,.0f} | |",
            f"| ratio (runs: {', '.join(map(str, audit['ratio_runs']))}) | "
            f"{audit['ratio']:.2f}x | >= 0.9x |",
            f"| audit records written / dropped / failed | {audit['trail']['written']:,.0f} / "
            f"{audit['trail']['dropped']:,.0f} / {audit['trail']['failed']:,.0f} | 0 dropped |",
            f"| p99 steady | {reload['steady']['latency_us']['p99']:,.0f} µs | |",
            f"| p99 while the policy set reloads every {s['reload_every_s']:g} s "
            f"({reload['reloads']} reloads) | {reload['reloading']['latency_us']['p99']:,.0f} µs "
            "| |",
            f"| p99 ratio | {reload['p99_ratio']:.2f}x | within 2x |",
            "",
        ]
    )
