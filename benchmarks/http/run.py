"""The HTTP comparison in one run: groupgate vs Cerbos vs a bare aiohttp handler, plus extras.

`run_http(quick=..., duration=..., connections=[...], rounds=...)`:

1. generates the tenant and questions (`benchmarks.dataset`, via `workload.prepare`), and
   writes the graph document and the wrk request lists into a temporary folder;
2. installs Cerbos (pinned, npm), writes and compiles the equivalent policy;
3. starts a private redis-server, groupgate (`groupgate serve --workers 1 --redis URL --data
   graph.json --decision-port P`, caller API key and HS256 JWT settings in the environment),
   a second one verifying RS256 tokens instead (same Redis, its own decision port), a third
   with `GROUPGATE_CACHE_SIZE=1` (every check resolves its subject from Redis), the bare
   handler, groupgate's `/v1/check` on aiohttp's low-level `web.Server` (`lowlevel`, same
   settings and Redis) and `cerbos server`; the servers share one pinned CPU, wrk and Redis
   the others;
4. warms groupgate (every subject once) and checks every answer it will be timed on against
   the in-process engine (the low-level server's also byte for byte against groupgate's main
   listener); asks Cerbos every question and fails on any disagreement; probes
   each listener for each per-listener workload (`listeners`: a 404 is "not served") and
   checks every answer where it is served;
5. per connection level, runs wrk on groupgate, decisions, Cerbos, bare, lowlevel, groupgate,
   ...
   (`rounds` times; alternating spreads drift in machine state over all targets), and takes
   medians of requests/s and of each percentile; then the groupgate-only scenarios (AuthZEN
   batches of 100, purchases, cold checks) likewise; then the per-listener workloads
   (`/v1/check`, AuthZEN single evaluation, forward-auth with HS256 and RS256 JWTs), each as a
   ratio to `/v1/check` on the same listener.

Debian's wrk 4.1 has no fixed-rate mode (wrk2's `-R`), so latencies are compared at the same
connection count (closed loop): a faster server also answers more requests in that time, so
p99s at equal connections favour neither side by offered load, but are not equal-load
figures either. The markdown says so.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import redis

from benchmarks import report
from benchmarks.http import cerbos, listeners, processes, profiling, workload, wrkrun
from benchmarks.http.workload import HttpRequest, Workload, WrongAnswerError
from benchmarks.store import private_redis

ROOT = Path(__file__).resolve().parents[2]
GROUPGATE = Path(sys.executable).parent / "groupgate"
#: `decisions` is the same groupgate process answering on its decision listener
#: (`--decision-port`, `groupgate.api.decisions`); `groupgate` is its main (aiohttp) listener;
#: `lowlevel` the same use case on aiohttp's low-level `web.Server` (`benchmarks.http.lowlevel`).
TARGETS = ("groupgate", "decisions", "cerbos", "bare", "lowlevel")
#: How a target is named in the tables (the others by their key).
LABELS = {"lowlevel": "aiohttp low-level web.Server (same use case)"}
BATCH = 100
#: Targets of the issue, checked by `markdown`.
TARGET_VS_CERBOS = 3.0
TARGET_VS_BARE = 0.8
TARGET_BATCH_DECISIONS = 100_000
TARGET_COLD_P99_US = 2_000
#: The decision listener's hand-written HTTP/1.1 stays while it answers at least this many
#: times the requests/s of the low-level `web.Server` doing the same work (benchmarks/README.md).
KEEP_HTTP11_OVER_LOWLEVEL = 1.25


@dataclass
class Files:
    """The graph document and the wrk request lists (plus what each list should answer)."""

    folder: Path
    graph: Path
    check: Path
    cerbos: Path
    evaluations: Path
    purchases: Path
    public_key: Path
    check_requests: list[HttpRequest]
    cerbos_requests: list[HttpRequest]
    evaluation_requests: list[HttpRequest]
    purchase_requests: list[HttpRequest]
    listener_workloads: list[listeners.ListenerWorkload]


def write_files(
    folder: Path, work: Workload, translation: cerbos.Translation, rsa_private: Any
) -> Files:
    """Write the graph, the RS256 public key and every request list into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = folder / "graph.json"
    graph.write_bytes(orjson.dumps(work.document))
    public_key = folder / "rs256-public.pem"
    public_key.write_bytes(workload.public_pem(rsa_private))
    caller = workload.caller_headers()
    checks = workload.check_requests(work)
    peers = cerbos.check_requests(work, translation)
    batches = workload.evaluation_requests(work, items=BATCH, count=100)
    count = min(2_000, len(work.questions))
    purchases = workload.purchase_requests(work, count=count)
    return Files(
        folder=folder,
        graph=graph,
        check=workload.write_lua(folder / "check.lua", checks, caller),
        cerbos=workload.write_lua(folder / "cerbos.lua", peers, workload.JSON),
        evaluations=workload.write_lua(folder / "evaluations.lua", batches, caller),
        purchases=workload.write_lua(folder / "purchases.lua", purchases, caller),
        public_key=public_key,
        check_requests=checks,
        cerbos_requests=peers,
        evaluation_requests=batches,
        purchase_requests=purchases,
        listener_workloads=listeners.build(folder, work, rsa_private, count=count),
    )


# --------------------------------------------------------------------------- servers


def groupgate_env(cache_size: int | None = None, rs256_key: Path | None = None) -> dict[str, str]:
    """Settings of a benchmarked groupgate: HS256 subject tokens, or RS256 with `rs256_key`."""
    if rs256_key is None:
        tokens = {"GROUPGATE_JWT_SECRET": workload.JWT_SECRET, "GROUPGATE_JWT_ALGORITHMS": "HS256"}
    else:
        tokens = {"GROUPGATE_JWT_PUBLIC_KEYS": str(rs256_key), "GROUPGATE_JWT_ALGORITHMS": "RS256"}
    env = {
        "GROUPGATE_API_KEYS": "",  # set below, bound to the tenant
        **tokens,
        "GROUPGATE_JWT_ISSUER": workload.JWT_ISSUER,
        "GROUPGATE_JWT_AUDIENCE": workload.JWT_AUDIENCE,
        "GROUPGATE_LOG_LEVEL": "warning",
        "GROUPGATE_DECISION_LOG": "0",
    }
    if cache_size is not None:
        env["GROUPGATE_CACHE_SIZE"] = str(cache_size)
    return env


@contextmanager
def groupgate(
    url: str,
    tenant: str,
    folder: Path,
    *,
    name: str,
    data: Path | None,
    cpus: tuple[int, ...] | None,
    cache_size: int | None = None,
    decision_port: int | None = None,
    rs256_key: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    program: Sequence[str] = (str(GROUPGATE), "serve"),
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run `groupgate serve --workers 1` (or `program`, taking its options) on a free port;
    yield (port, process)."""
    port = processes.free_port()
    command = [*program, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--redis", url]
    if decision_port is not None:
        command += ["--decision-port", str(decision_port)]
    if data is not None:
        command += ["--data", str(data)]
    env = {**groupgate_env(cache_size, rs256_key), **(extra_env or {})}
    env["GROUPGATE_API_KEYS"] = f"{workload.API_KEY}:{tenant}"
    with processes.server(
        command, port=port, ready_path="/readyz", log=folder / f"{name}.log", env=env, cpus=cpus
    ) as process:
        yield port, process


@contextmanager
def bare(folder: Path, cpus: tuple[int, ...] | None) -> Iterator[int]:
    port = processes.free_port()
    command = [sys.executable, "-m", "benchmarks.http.bare", "--port", str(port)]
    env = {"PYTHONPATH": str(ROOT)}
    with processes.server(
        command, port=port, ready_path="/readyz", log=folder / "bare.log", env=env, cpus=cpus
    ):
        yield port


#: groupgate's `/v1/check` on aiohttp's low-level `web.Server`, with `groupgate serve`'s options.
LOWLEVEL = (sys.executable, "-m", "benchmarks.http.lowlevel")


def redis_pid(url: str) -> int:
    """The process id of the redis-server at `url` (`INFO server`)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def pin_redis(url: str, cpus: tuple[int, ...] | None) -> None:
    """Move the private redis-server off the servers' CPU (its main thread does the work)."""
    if cpus is not None:
        os.sched_setaffinity(redis_pid(url), set(cpus))


# --------------------------------------------------------------------------- warm and verify


def _send(conn: http.client.HTTPConnection, request: HttpRequest, headers: dict[str, str]) -> Any:
    conn.request(
        request.method, request.path, body=request.body, headers={**headers, **request.headers}
    )
    response = conn.getresponse()
    return response.status, response.read()


def warm(conn: http.client.HTTPConnection, work: Workload) -> None:
    """Ask about every subject once: its profile is in the cache afterwards."""
    caller = workload.caller_headers()
    for sid in work.graph.subjects:
        body = orjson.dumps(
            {"subject": {"id": sid}, "action": "read", "resource": {"type": "orders"}}
        )
        status, raw = _send(conn, HttpRequest("POST", "/v1/check", body), caller)
        if status != 200:
            raise WrongAnswerError(f"warm-up check for {sid}: {status} {raw[:300]!r}")


def warm_only(port: int, work: Workload) -> dict[str, Any]:
    """`warm` on a fresh connection to `port`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        warm(conn, work)
    finally:
        conn.close()
    return {"subjects_warmed": len(work.graph.subjects)}


def warm_and_verify(
    port: int, work: Workload, files: Files, *, cold: bool = False
) -> dict[str, Any]:
    """Ask every subject once (the cache is hot afterwards); check every timed answer.

    (Forward-auth and single evaluations are checked per listener by `listeners.prepare`.)
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    caller = workload.caller_headers()
    try:
        if not cold:
            warm(conn, work)
        wrong = _wrong_checks(conn, work, files, caller)
        if cold:
            return _verdict(wrong, {"checks": len(files.check_requests)})
        for b, request in enumerate(files.evaluation_requests[:20]):
            status, raw = _send(conn, request, caller)
            decisions = (
                [e["decision"] for e in orjson.loads(raw)["evaluations"]] if status == 200 else []
            )
            n = len(work.questions)
            expected = [work.expected[(b * BATCH + k) % n] for k in range(BATCH)]
            if decisions != expected:
                wrong.append(f"/access/v1/evaluations #{b}: {status} {raw[:200]!r}")
        purchase_decisions: dict[str, int] = {}
        for i, request in enumerate(files.purchase_requests):
            status, raw = _send(conn, request, caller)
            if status != 200:
                wrong.append(f"/v1/purchases/evaluate #{i}: {status} {raw[:200]!r}")
                continue
            decision = orjson.loads(raw)["decision"]
            purchase_decisions[decision] = purchase_decisions.get(decision, 0) + 1
    finally:
        conn.close()
    return _verdict(
        wrong,
        {
            "subjects_warmed": len(work.graph.subjects),
            "checks": len(files.check_requests),
            "check_allow_share": round(sum(work.expected) / len(work.expected), 3),
            "evaluation_batches_checked": min(20, len(files.evaluation_requests)),
            "purchase_decisions": purchase_decisions,
        },
    )


def verify_checks(port: int, work: Workload, files: Files) -> dict[str, Any]:
    """Check every timed `/v1/check` answer of the decision listener against the engine."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        wrong = _wrong_checks(conn, work, files, workload.caller_headers())
    finally:
        conn.close()
    return _verdict(wrong, {"checks": len(files.check_requests)})


def verify_same_answers(port: int, reference: int, work: Workload, files: Files) -> dict[str, Any]:
    """`verify_checks` on `port`, then every timed `/v1/check` answer byte for byte equal to
    the one `reference` (groupgate's main listener) gives to the same request."""
    facts = verify_checks(port, work, files)
    caller = workload.caller_headers()
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in (port, reference)]
    wrong = []
    try:
        for i, request in enumerate(files.check_requests):
            got, expected = (_send(conn, request, caller) for conn in conns)
            if got != expected:
                wrong.append(f"/v1/check #{i}: {got!r}, groupgate answered {expected!r}")
    finally:
        for conn in conns:
            conn.close()
    return _verdict(wrong, {**facts, "same_as_groupgate": len(files.check_requests)})


def _wrong_checks(
    conn: http.client.HTTPConnection, work: Workload, files: Files, caller: dict[str, str]
) -> list[str]:
    """Ask every timed `/v1/check`; describe each answer that differs from the engine's."""
    wrong = []
    for i, request in enumerate(files.check_requests):
        status, raw = _send(conn, request, caller)
        got = status == 200 and orjson.loads(raw)["allow"]
        if status != 200 or got != work.expected[i]:
            wrong.append(f"/v1/check #{i}: {status} {raw[:200]!r}, engine {work.expected[i]}")
    return wrong


def _verdict(wrong: list[str], facts: dict[str, Any]) -> dict[str, Any]:
    if wrong:
        raise WrongAnswerError(f"{len(wrong)} wrong answers, e.g.:\n" + "\n".join(wrong[:5]))
    return facts


def verify_bare(port: int, files: Files) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        status, raw = _send(conn, files.check_requests[0], workload.caller_headers())
    finally:
        conn.close()
    if status != 200 or orjson.loads(raw).get("allow") is not True:
        raise WrongAnswerError(f"bare handler answered {status} {raw[:200]!r}")


# --------------------------------------------------------------------------- machine facts


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _tool_version(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def machine(cpus: processes.Cpus, binary: Path) -> dict[str, Any]:
    facts = report.machine(cpus.server[0] if cpus.server else None)
    facts["packages"] = {
        name: _version(name)
        for name in ("groupgate", "aiohttp", "uvloop", "orjson", "PyJWT", "redis")
    }
    facts["cerbos"] = cerbos.version(binary)
    facts["wrk"] = _tool_version(["wrk", "-v"])
    facts["redis_server"] = _tool_version(["redis-server", "--version"])
    facts["cpu_split"] = cpus.as_json()
    facts["kernel"] = platform.release()
    return facts


# --------------------------------------------------------------------------- the run


def run_http(
    *,
    quick: bool,
    duration: float,
    connections: list[int],
    rounds: int,
    subjects: int | None = None,
    questions: int | None = None,
    seed: int = 42,
    profile_seconds: float = 0.0,
    profile_out: Path | None = None,
    keep: bool = False,
    jwt_cache_size: int | None = None,
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Run every HTTP benchmark once; return the figures (see the module docstring)."""
    subjects = subjects or (2_000 if quick else 10_000)
    questions = questions or (2_000 if quick else 4_000)
    say(f"http: generating {subjects:,} subjects and {questions:,} questions")
    work = workload.prepare(subjects=subjects, questions=questions, seed=seed)
    translation = cerbos.translate(work)
    binary = cerbos.install()
    folder = Path(tempfile.mkdtemp(prefix="gg-bench-http-"))
    cpus = processes.Cpus.split()
    load_prefix = cpus.prefix(cpus.load)
    # One wrk thread per CPU it may use: two threads sharing one core add their own
    # scheduling delays to the latencies they measure.
    wrk_threads = len(cpus.load) if cpus.load else 2
    results: dict[str, Any] = {
        "machine": machine(cpus, binary),
        "setup": {
            "quick": quick,
            "subjects": len(work.graph.subjects),
            "questions": len(work.questions),
            "duration_s": duration,
            "connections": connections,
            "rounds": rounds,
            "seed": seed,
            "batch_items": BATCH,
            "cerbos_roles": translation.roles,
            "cerbos_derived_roles": translation.derived_roles,
            "cerbos_policy_files": len(translation.files),
            "groupgate_command": (
                "groupgate serve --workers 1 --redis <private> --data graph.json "
                "--decision-port <port>"
            ),
            "lowlevel_command": (
                "python -m benchmarks.http.lowlevel --workers 1 --redis <private> (no --data: "
                "the graph is groupgate's, in the same Redis)"
            ),
            "fixed_rate": False,
            "wrk_threads": wrk_threads,
            "jwt_cache_size": jwt_cache_size,
        },
    }
    try:
        files = write_files(folder, work, translation, workload.rsa_key())
        cerbos.write_policies(folder / "policies", translation)
        cerbos.compile_policies(binary, folder / "policies")
        with ExitStack() as stack:
            url = stack.enter_context(private_redis())
            pin_redis(url, cpus.load)
            say("http: starting groupgate (import), groupgate cold, bare, low-level, cerbos")
            decisions_port = processes.free_port()
            token_env = {}
            if jwt_cache_size is not None:
                token_env["GROUPGATE_JWT_CACHE_SIZE"] = str(jwt_cache_size)
            gg_port, gg_process = stack.enter_context(
                groupgate(
                    url,
                    work.tenant,
                    folder,
                    name="groupgate",
                    extra_env=token_env,
                    data=files.graph,
                    cpus=cpus.server,
                    decision_port=decisions_port,
                )
            )
            rs_decisions_port = processes.free_port()
            rs_port, _ = stack.enter_context(
                groupgate(
                    url,
                    work.tenant,
                    folder,
                    name="groupgate-rs256",
                    extra_env=token_env,
                    data=None,
                    cpus=cpus.server,
                    decision_port=rs_decisions_port,
                    rs256_key=files.public_key,
                )
            )
            cold_port, _ = stack.enter_context(
                groupgate(
                    url,
                    work.tenant,
                    folder,
                    name="groupgate-cold",
                    data=None,
                    cpus=cpus.server,
                    cache_size=1,
                )
            )
            bare_port = stack.enter_context(bare(folder, cpus.server))
            lowlevel_port, _ = stack.enter_context(
                groupgate(
                    url,
                    work.tenant,
                    folder,
                    name="lowlevel",
                    extra_env={**token_env, "PYTHONPATH": str(ROOT)},
                    data=None,
                    cpus=cpus.server,
                    program=LOWLEVEL,
                )
            )
            cerbos_port, _ = stack.enter_context(cerbos.server(binary, folder, cpus=cpus.server))
            say("http: warming groupgate and checking every answer; asking cerbos every question")
            results["agreement"] = {
                "groupgate": warm_and_verify(gg_port, work, files),
                "decisions": verify_checks(decisions_port, work, files),
                "groupgate_cold": warm_and_verify(cold_port, work, files, cold=True),
                "groupgate_rs256": warm_only(rs_port, work),
                "lowlevel": {
                    **warm_only(lowlevel_port, work),
                    **verify_same_answers(lowlevel_port, gg_port, work, files),
                },
                "cerbos": cerbos.verify(cerbos_port, work, files.cerbos_requests),
            }
            listener_ports = {
                "hs256": {"main": gg_port, "decisions": decisions_port},
                "rs256": {"main": rs_port, "decisions": rs_decisions_port},
            }
            say("http: probing each listener for each workload; checking every answer served")
            served = listeners.prepare(files.listener_workloads, listener_ports)
            results["agreement"]["listeners"] = served
            verify_bare(bare_port, files)
            ports = {
                "groupgate": gg_port,
                "decisions": decisions_port,
                "cerbos": cerbos_port,
                "bare": bare_port,
                "lowlevel": lowlevel_port,
            }
            lists = {
                "groupgate": files.check,
                "decisions": files.check,
                "cerbos": files.cerbos,
                "bare": files.check,
                "lowlevel": files.check,
            }

            def load(
                port: int, requests: Path, c: int, *, status_ok: bool = False
            ) -> dict[str, Any]:
                return wrkrun.run(
                    wrkrun.Load(port, requests, c, duration, threads=wrk_threads),
                    load_prefix,
                    allow_status_errors=status_ok,
                )

            check: dict[str, dict[str, Any]] = {}
            for c in connections:
                runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TARGETS}
                for r in range(rounds):
                    for target in TARGETS:
                        say(f"http: /v1/check-equivalent, {target}, c={c}, round {r + 1}/{rounds}")
                        runs[target].append(load(ports[target], lists[target], c))
                check[str(c)] = {t: wrkrun.median_of(runs[t]) for t in TARGETS}
            results["check"] = check

            main_c = 32 if 32 in connections else connections[0]
            extras: dict[str, list[dict[str, Any]]] = {
                "evaluations": [],
                "purchases": [],
                "cold_c1": [],
                "cold": [],
            }
            for r in range(rounds):
                say(f"http: groupgate-only scenarios, round {r + 1}/{rounds}")
                extras["evaluations"].append(load(gg_port, files.evaluations, main_c))
                extras["purchases"].append(load(gg_port, files.purchases, main_c))
                extras["cold_c1"].append(load(cold_port, files.check, 1))
                extras["cold"].append(load(cold_port, files.check, main_c))
            summary = {name: wrkrun.median_of(runs) for name, runs in extras.items()}
            summary["evaluations"]["decisions_per_s"] = round(summary["evaluations"]["rps"] * BATCH)
            results["scenarios"] = {"connections": main_c, **summary}

            figures = listeners.time_rounds(
                files.listener_workloads,
                listener_ports,
                served,
                rounds=rounds,
                load=lambda port, lua, non_2xx: load(port, lua, main_c, status_ok=non_2xx),
                say=say,
            )
            results["listeners"] = {
                "connections": main_c,
                "labels": listeners.labels(files.listener_workloads),
                "figures": figures,
                "ratios": listeners.ratios(figures),
            }

            if profile_seconds > 0:
                say(f"http: py-spy on groupgate /v1/check, {profile_seconds:.0f}s at c={main_c}")
                results["profile"] = _profile(
                    gg_process.pid,
                    gg_port,
                    files.check,
                    main_c,
                    profile_seconds,
                    load_prefix,
                    profile_out or folder / "groupgate.speedscope.json",
                    wrk_threads,
                )
        results["ratios"] = ratios(results)
    finally:
        if keep:
            say(f"http: kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _profile(
    pid: int,
    port: int,
    requests: Path,
    connections: int,
    seconds: float,
    prefix: list[str],
    speedscope: Path,
    threads: int,
) -> dict[str, Any]:
    """py-spy twice under the same load: speedscope for people, collapsed stacks for the table."""
    figures: dict[str, Any] = {}
    raw = speedscope.with_suffix(".collapsed.txt")
    for fmt, out in (("speedscope", speedscope), ("raw", raw)):
        spy = profiling.record(pid, seconds, out, fmt=fmt, prefix=prefix)
        figures[fmt] = wrkrun.run(
            wrkrun.Load(port, requests, connections, seconds + 1, threads=threads), prefix
        )
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-2000:]}")
    summary = profiling.summarise(raw.read_text())
    summary["speedscope"] = str(speedscope)
    summary["collapsed"] = str(raw)
    summary["rps_while_sampling"] = round(figures["raw"]["rps"], 1)
    return summary


# --------------------------------------------------------------------------- report


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c, row in results.get("check", {}).items():
        gg, lane, peer, bare_ = row["groupgate"], row["decisions"], row["cerbos"], row["bare"]
        out[c] = {
            "groupgate_over_cerbos_rps": round(gg["rps"] / peer["rps"], 2),
            "groupgate_over_bare_rps": round(gg["rps"] / bare_["rps"], 2),
            "cerbos_over_groupgate_p99": round(
                peer["latency_us"]["p99"] / gg["latency_us"]["p99"], 2
            ),
            "decisions_over_cerbos_rps": round(lane["rps"] / peer["rps"], 2),
            "decisions_over_bare_rps": round(lane["rps"] / bare_["rps"], 2),
            "cerbos_over_decisions_p99": round(
                peer["latency_us"]["p99"] / lane["latency_us"]["p99"], 2
            ),
        }
        low = row.get("lowlevel")
        if low is not None:
            out[c] |= {
                "decisions_over_lowlevel_rps": round(lane["rps"] / low["rps"], 2),
                "lowlevel_over_groupgate_rps": round(low["rps"] / gg["rps"], 2),
                "lowlevel_over_bare_rps": round(low["rps"] / bare_["rps"], 2),
                "lowlevel_over_decisions_p99": round(
                    low["latency_us"]["p99"] / lane["latency_us"]["p99"], 2
                ),
            }
    return out


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(results: dict[str, Any]) -> str:
    """Tables of the figures, ratios and targets, with the machine they were measured on."""
    facts = results["machine"]
    setup = results["setup"]
    lines = [
        "### HTTP: groupgate vs Cerbos vs bare aiohttp",
        "",
        f"{report.machine_line(facts)}; Cerbos {facts['cerbos']}; {facts['wrk']}; "
        f"servers pinned to CPU {facts['cpu_split']['server']}, wrk and Redis to "
        f"{facts['cpu_split']['load']}.",
        f"Tenant: {setup['subjects']:,} subjects, {setup['questions']:,} questions "
        f"(every answer checked against the engine, and Cerbos agreeing on all of them); "
        f"wrk {setup['duration_s']:.0f}s per run, median of {setup['rounds']} alternating rounds.",
        "Latencies are at equal connection counts (closed loop: Debian's wrk has no fixed-rate "
        "mode), in milliseconds.",
        "",
        "| /v1/check (or equivalent) | conns | req/s | p50 | p90 | p99 | p99.9 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c, row in results["check"].items():
        for target in TARGETS:
            fig = row.get(target)
            if fig is None:  # results of a run before the target existed
                continue
            lat = fig["latency_us"]
            label = LABELS.get(target, target)
            lines.append(
                f"| {label} | {c} | {fig['rps']:,.0f} | {_ms(lat['p50'])} | {_ms(lat['p90'])} "
                f"| {_ms(lat['p99'])} | {_ms(lat['p99.9'])} |"
            )
    lines += [
        "",
        "`groupgate` is the main (aiohttp) listener, `decisions` the same process's decision "
        "listener (`--decision-port`); the low-level `web.Server` answers the same `/v1/check` "
        "with groupgate's state and `native.answer`, without aiohttp's application layer "
        "(`benchmarks/http/lowlevel.py`).",
        "",
        "| conns | listener | groupgate/Cerbos req/s | groupgate/bare req/s "
        "| p99 Cerbos/groupgate |",
    ]
    lines.append("|---:|---|---:|---:|---:|")
    for c, ratio in results["ratios"].items():
        lines.append(
            f"| {c} | main | {ratio['groupgate_over_cerbos_rps']:.2f}x | "
            f"{ratio['groupgate_over_bare_rps']:.2f}x | {ratio['cerbos_over_groupgate_p99']:.2f}x |"
        )
        lines.append(
            f"| {c} | decisions | {ratio['decisions_over_cerbos_rps']:.2f}x | "
            f"{ratio['decisions_over_bare_rps']:.2f}x | {ratio['cerbos_over_decisions_p99']:.2f}x |"
        )
    lines += _lowlevel_lines(results["ratios"])
    s = results["scenarios"]
    lines += [
        "",
        f"| groupgate scenario (c={s['connections']} unless said) | req/s | p50 | p99 | p99.9 |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {
        "evaluations": f"AuthZEN /access/v1/evaluations, {BATCH} items",
        "purchases": "/v1/purchases/evaluate",
        "cold_c1": "cold /v1/check (cache size 1), c=1",
        "cold": "cold /v1/check (cache size 1)",
    }
    for key, label in names.items():
        fig = s[key]
        lat = fig["latency_us"]
        lines.append(
            f"| {label} | {fig['rps']:,.0f} | {_ms(lat['p50'])} | {_ms(lat['p99'])} "
            f"| {_ms(lat['p99.9'])} |"
        )
    lines.append(f"\nBatch: {s['evaluations']['decisions_per_s']:,} decisions/s.")
    section = results.get("listeners")
    if section:
        lines += listeners.markdown(section, section["labels"])
    lines += ["", "| target | figure | result |", "|---|---|---|"]
    main = results["check"].get("32") or next(iter(results["check"].values()))
    ratio = results["ratios"].get("32") or next(iter(results["ratios"].values()))
    vs_cerbos = ratio["groupgate_over_cerbos_rps"]
    lower_p99 = main["groupgate"]["latency_us"]["p99"] < main["cerbos"]["latency_us"]["p99"]
    cold_p99 = s["cold_c1"]["latency_us"]["p99"]
    lines += [
        f"| /v1/check >= {TARGET_VS_CERBOS:.0f}x Cerbos req/s (c=32, one worker, main listener) | "
        f"{vs_cerbos:.2f}x | {_mark(vs_cerbos >= TARGET_VS_CERBOS)} |",
        "| /v1/check p99 below Cerbos' (c=32, main listener) | "
        f"{_ms(main['groupgate']['latency_us']['p99'])} vs "
        f"{_ms(main['cerbos']['latency_us']['p99'])} ms | {_mark(lower_p99)} |",
        f"| /v1/check >= {TARGET_VS_BARE}x bare aiohttp req/s, decision listener | "
        f"{ratio['decisions_over_bare_rps']:.2f}x | "
        f"{_mark(ratio['decisions_over_bare_rps'] >= TARGET_VS_BARE)} |",
        f"| the same on the main listener (for comparison) | "
        f"{ratio['groupgate_over_bare_rps']:.2f}x | "
        f"{_mark(ratio['groupgate_over_bare_rps'] >= TARGET_VS_BARE)} |",
        f"| batch of {BATCH} >= {TARGET_BATCH_DECISIONS:,} decisions/s per worker | "
        f"{s['evaluations']['decisions_per_s']:,} | "
        f"{_mark(s['evaluations']['decisions_per_s'] >= TARGET_BATCH_DECISIONS)} |",
        f"| cold check p99 <= {_ms(TARGET_COLD_P99_US)} ms (c=1) | {_ms(cold_p99)} ms | "
        f"{_mark(cold_p99 <= TARGET_COLD_P99_US)} |",
    ]
    if "decisions_over_lowlevel_rps" in ratio:
        kept = ratio["decisions_over_lowlevel_rps"]
        lines.append(
            f"| decision listener >= {KEEP_HTTP11_OVER_LOWLEVEL}x the low-level web.Server "
            f"req/s (c=32; keeps the hand-written HTTP/1.1) | {kept:.2f}x | "
            f"{_mark(kept >= KEEP_HTTP11_OVER_LOWLEVEL)} |"
        )
    profile = results.get("profile")
    if profile:
        lines += [
            "",
            f"py-spy, /v1/check under load ({profile['samples']:,} samples, "
            f"{profile['rps_while_sampling']:,.0f} req/s while sampling):",
            "",
            "| self % | frame | | inclusive % | frame |",
            "|---:|---|---|---:|---|",
        ]
        for own, incl in zip(profile["self"], profile["inclusive"], strict=False):
            lines.append(
                f"| {own['percent']} | `{own['frame']}` | | {incl['percent']} | `{incl['frame']}` |"
            )
    return "\n".join(lines) + "\n"


def _lowlevel_lines(ratios_: dict[str, Any]) -> list[str]:
    """The decision listener against aiohttp's low-level `web.Server` (same use case)."""
    rows = [(c, r) for c, r in ratios_.items() if "decisions_over_lowlevel_rps" in r]
    if not rows:
        return []
    lines = [
        "",
        "| conns | decision listener / low-level web.Server req/s "
        "| low-level / main listener req/s | low-level / bare req/s "
        "| p99 low-level / decision listener |",
        "|---:|---:|---:|---:|---:|",
    ]
    for c, r in rows:
        lines.append(
            f"| {c} | {r['decisions_over_lowlevel_rps']:.2f}x | "
            f"{r['lowlevel_over_groupgate_rps']:.2f}x | {r['lowlevel_over_bare_rps']:.2f}x | "
            f"{r['lowlevel_over_decisions_p99']:.2f}x |"
        )
    return lines
