"""Operations under load (issue 14): what the audit trail and a policy reload cost.

`python -m benchmarks operations [--rounds 5] [--duration 6] [--connections 32]`

- **audit**: `/v1/check` on two `groupgate serve --workers 1` sharing one core, started
  alike but for the audit: one without an audit sink, one with the Redis stream sink
  (`GROUPGATE_AUDIT_SINKS=redis`), each under its own wrk *at the same time*. The scheduler
  gives both the same CPU time, so the ratio of their requests/s is the ratio of their costs
  per request, and whatever slows the machine in a round slows both. (Rounds one after the
  other moved by up to 30% from one round to the next with no change.) Rounds of two servers
  without audit come first, `control`: the one that imported the graph and the audited one's
  twin; they show what the method reads when nothing but the start differs. The figure is
  the median over rounds of the paired ratios, with each server's CPU per request (`/proc`),
  the private redis-server's CPU per audit record (it runs on the load side's core, as a
  store on another host would) and the records the trail wrote and dropped (`/metrics`);
  then the same pairs on the decision listener (`--decision-port`), where a check costs less
  and the trail's share is larger. Target: >= 0.9x.
- **reload**: the same load, alternating rounds without reloads and with the whole policy
  set reloaded every `--reload-every` seconds (SIGHUP) throughout the round; the figure is
  the ratio of the median p99 latencies. Target: within 2x.

Results: `benchmarks/results/operations-*.json` and `.md`, with the machine facts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
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


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of all of `pid`'s threads so far."""
    ticks = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _side_by_side(
    loads: dict[str, wrkrun.Load], pids: dict[str, int], prefix: list[str]
) -> dict[str, dict[str, Any]]:
    """Run each load at the same time; return each one's wrk figures with `cpu_us_per_request`
    (its server's CPU time over the requests it answered)."""
    found: dict[str, dict[str, Any]] = {}
    failed: list[BaseException] = []
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}

    def one(name: str) -> None:
        try:
            found[name] = wrkrun.run(loads[name], prefix)
        except BaseException as exc:  # re-raised below, in the caller's thread
            failed.append(exc)

    threads = [threading.Thread(target=one, args=(name,)) for name in loads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]
    for name, pid in pids.items():
        used = _cpu_seconds(pid) - before[name]
        found[name]["cpu_us_per_request"] = round(used / found[name]["requests"] * 1e6, 1)
    return found


def _pairs(rounds: list[dict[str, dict[str, Any]]], base: str, other: str) -> dict[str, Any]:
    ratios = [round(r[other]["rps"] / r[base]["rps"], 3) for r in rounds]
    return {
        base: wrkrun.median_of([r[base] for r in rounds]),
        other: wrkrun.median_of([r[other] for r in rounds]),
        "cpu_us_per_request": {
            name: statistics.median(r[name]["cpu_us_per_request"] for r in rounds)
            for name in (base, other)
        },
        "ratio": statistics.median(ratios),
        "ratio_runs": ratios,
    }


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
    audit_rounds: list[dict[str, dict[str, Any]]] = []
    listener_rounds: list[dict[str, dict[str, Any]]] = []
    control_rounds: list[dict[str, dict[str, Any]]] = []
    reload_runs: dict[str, list[dict[str, Any]]] = {"steady": [], "reloading": []}
    trail: dict[str, float] = {}
    redis_cpu = 0.0
    reloads = 0
    with private_redis() as url:
        run.pin_redis(url, cpus.load)
        redis_pid = run.redis_pid(url)
        common = {"url": url, "tenant": work.tenant, "folder": folder, "cpus": cpus.server}
        twin_decisions, audited_decisions = processes.free_port(), processes.free_port()
        with (
            run.groupgate(**common, name="audit-off", data=graph) as (plain, plain_process),
            run.groupgate(
                **common, name="audit-off-2", data=None, decision_port=twin_decisions
            ) as (twin, twin_process),
            run.groupgate(
                **common,
                name="audit-redis",
                data=None,
                extra_env={"GROUPGATE_AUDIT_SINKS": "redis"},
                decision_port=audited_decisions,
            ) as (audited, audited_process),
        ):

            def load(port: int) -> wrkrun.Load:
                return wrkrun.Load(port, requests, connections, duration)

            prefix = cpus.prefix(cpus.load)
            for port in (plain, twin, audited, twin_decisions, audited_decisions):  # warm
                wrkrun.run(wrkrun.Load(port, requests, connections, 2.0), prefix)
            pids = {"off": plain_process.pid, "twin": twin_process.pid}
            for _ in range(rounds):
                control_rounds.append(
                    _side_by_side({"off": load(plain), "twin": load(twin)}, pids, prefix)
                )
            # The audited server against its twin: both started the same way (the graph was
            # imported by `plain`), differing only in the audit sink.
            pids = {"off": twin_process.pid, "redis": audited_process.pid}
            written_before = _metric(audited, "groupgate_audit_records_total", "written")
            redis_before = _cpu_seconds(redis_pid)
            for _ in range(rounds):
                audit_rounds.append(
                    _side_by_side({"off": load(twin), "redis": load(audited)}, pids, prefix)
                )
            for _ in range(rounds):
                listener_rounds.append(
                    _side_by_side(
                        {"off": load(twin_decisions), "redis": load(audited_decisions)},
                        pids,
                        prefix,
                    )
                )
            redis_cpu = _cpu_seconds(redis_pid) - redis_before
            trail = {
                "written": _metric(audited, "groupgate_audit_records_total", "written"),
                "dropped": _metric(audited, "groupgate_audit_records_total", "dropped"),
                "failed": _metric(audited, "groupgate_audit_records_total", "failed"),
            }
            written = trail["written"] - written_before
            for _ in range(rounds):
                reload_runs["steady"].append(wrkrun.run(load(plain), prefix))
                with _reloading(plain_process.pid, reload_every) as sent:
                    reload_runs["reloading"].append(wrkrun.run(load(plain), prefix))
                reloads += sent[0]
            _, raw = processes.http_get(plain, "/readyz")
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
            **_pairs(audit_rounds, "off", "redis"),
            "control": _pairs(control_rounds, "off", "twin"),
            "decision_listener": _pairs(listener_rounds, "off", "redis"),
            "redis_cpu_us_per_record": round(redis_cpu / written * 1e6, 2) if written else None,
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
    control, cpu = audit["control"], audit["cpu_us_per_request"]
    fast = audit["decision_listener"]
    s = results["settings"]
    return "\n".join(
        [
            f"Operations under load: `/v1/check`, one worker, {s['connections']} connections, "
            f"{s['rounds']} rounds of {s['duration_s']:.0f} s (medians). Audit: two servers "
            "on one core, each under its own load at the same time.",
            "",
            "| figure | value | target |",
            "|---|---|---|",
            f"| control: two servers without audit, req/s | {control['off']['rps']:,.0f} / "
            f"{control['twin']['rps']:,.0f} | |",
            f"| control ratio (runs: {', '.join(map(str, control['ratio_runs']))}) | "
            f"{control['ratio']:.2f}x | 1.00x |",
            f"| req/s without audit / with the Redis stream sink | {audit['off']['rps']:,.0f} / "
            f"{audit['redis']['rps']:,.0f} | |",
            f"| CPU per request without / with | {cpu['off']:,.1f} / {cpu['redis']:,.1f} µs | |",
            f"| ratio (runs: {', '.join(map(str, audit['ratio_runs']))}) | "
            f"{audit['ratio']:.2f}x | >= 0.9x |",
            f"| the same on the decision listener (runs: {', '.join(map(str, fast['ratio_runs']))})"
            f" | {fast['ratio']:.2f}x ({fast['off']['rps']:,.0f} / {fast['redis']['rps']:,.0f} "
            f"req/s; {fast['cpu_us_per_request']['off']:,.1f} / "
            f"{fast['cpu_us_per_request']['redis']:,.1f} µs) | >= 0.9x |",
            f"| redis-server CPU per audit record (on the load side's core) | "
            f"{audit['redis_cpu_us_per_record']} µs | |",
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
