"""Smoke test of the HTTP benchmark harness: nothing is timed, no Cerbos, no npm, no wrk.

The wrk request lists for a tiny tenant are read back with a small parser of the Lua subset
they use (tables, strings with escapes, `nil`), which checks their syntax and that every
body round-trips byte for byte; the bare aiohttp app answers one request. The per-listener
workloads are probed and verified against two real groupgate apps (HS256 and RS256, each
with its decision listener), then "timed" with canned figures to check ratios and tables.
The low-level `web.Server` (`lowlevel`) serves a real groupgate app's state; its answers are
verified as the harness verifies them, and the check table and ratios are built from canned
figures of every target.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import socket
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from benchmarks import slowbody
from benchmarks.http import bare, cerbos, listeners, lowlevel, run, workload, wrkrun
from groupgate.api.app import STATE, State, create_app
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService

TOKEN = re.compile(
    r"""\s+|--[^\n]*|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[{}\[\]=,])"""
)


def _unescape(literal: str) -> bytes:
    out = bytearray()
    body = literal[1:-1]
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out += char.encode()
            i += 1
        elif body[i + 1].isdigit():
            digits = re.match(r"\d{1,3}", body[i + 1 :])
            assert digits is not None
            out.append(int(digits.group()))
            i += 1 + len(digits.group())
        else:
            out += {"n": b"\n", "t": b"\t", '"': b'"', "\\": b"\\"}[body[i + 1]]
            i += 2
    return bytes(out)


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        match = TOKEN.match(source, position)
        assert match is not None, f"not Lua at {source[position : position + 40]!r}"
        position = match.end()
        kind = match.lastgroup
        if kind is not None:
            tokens.append((kind, match.group(kind)))
    return tokens


def parse_lua_return(source: str) -> Any:
    """Parse `return <table>` (tables, strings, nil) into Python lists/dicts/bytes/None."""
    tokens = _tokens(source)
    assert tokens[0] == ("name", "return")
    position = 1

    def value() -> Any:
        nonlocal position
        kind, text = tokens[position]
        position += 1
        if kind == "string":
            return _unescape(text)
        if (kind, text) == ("name", "nil"):
            return None
        assert (kind, text) == ("punct", "{"), f"unexpected {text!r}"
        items: list[Any] = []
        fields: dict[Any, Any] = {}
        while tokens[position] != ("punct", "}"):
            kind, text = tokens[position]
            if kind == "name" and tokens[position + 1] == ("punct", "="):
                position += 2
                fields[text] = value()
            elif (kind, text) == ("punct", "["):
                position += 1
                key = value()
                assert tokens[position : position + 2] == [("punct", "]"), ("punct", "=")]
                position += 2
                fields[key] = value()
            else:
                items.append(value())
            if tokens[position] == ("punct", ","):
                position += 1
        position += 1
        assert not (items and fields), "mixed table"
        return fields if fields else items

    result = value()
    assert position == len(tokens), "trailing tokens"
    return result


@pytest.fixture(scope="module")
def work() -> workload.Workload:
    return workload.prepare(subjects=60, questions=80, seed=5)


def test_check_list_is_lua_and_round_trips(work: workload.Workload, tmp_path: Path) -> None:
    requests = workload.check_requests(work)
    path = workload.write_lua(tmp_path / "check.lua", requests, workload.caller_headers())
    parsed = parse_lua_return(path.read_text(encoding="ascii"))
    assert parsed["headers"][b"Content-Type"] == b"application/json"
    assert len(parsed["requests"]) == len(work.questions) == 80
    for entry, request in zip(parsed["requests"], requests, strict=True):
        method, route, headers, body = entry
        assert (method, route, headers) == (b"POST", b"/v1/check", None)
        assert body == request.body
        assert set(orjson.loads(body)) == {"subject", "action", "resource"}
    # Roughly as many denies as allows: the list exercises both paths.
    assert 0 < sum(work.expected) < len(work.expected)


def test_other_lists_are_lua(work: workload.Workload, tmp_path: Path) -> None:
    gateway, allowed = workload.gateway_requests(work, count=30)
    batches = workload.evaluation_requests(work, items=100, count=3)
    lists = {
        "evaluations": (batches, workload.caller_headers()),
        "purchases": (workload.purchase_requests(work, count=40), workload.caller_headers()),
        "gateway": (gateway, {}),
        "cerbos": (cerbos.check_requests(work, cerbos.translate(work)), workload.JSON),
    }
    for name, (requests, headers) in lists.items():
        path = workload.write_lua(tmp_path / f"{name}.lua", requests, headers)
        parsed = parse_lua_return(path.read_text(encoding="ascii"))
        assert len(parsed["requests"]) == len(requests), name
    assert len(orjson.loads(batches[0].body or b"")["evaluations"]) == 100
    assert len(allowed) == 30
    first = parse_lua_return((tmp_path / "gateway.lua").read_text())["requests"][0]
    assert first[0] == b"GET" and first[3] is None
    assert first[2][b"Authorization"].startswith(b"Bearer ey")
    assert first[2][b"X-Original-URI"].startswith(b"/")


def test_lua_string_escapes_quotes_and_bytes() -> None:
    text = 'a"b\\c\n\u00e9'
    literal = workload.lua_string(text)
    assert literal.isascii()
    assert _unescape(literal) == text.encode()


def test_wrk_figures_are_parsed() -> None:
    line = (
        'WRK_JSON {"requests": 10, "duration_us": 1000000, "bytes": 1, "rps": 10.0, '
        '"errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}, '
        '"latency_us": {"mean": 1.0, "stdev": 0.0, "min": 1, "max": 2, '
        '"p50": 1, "p90": 1, "p99": 2, "p99.9": 2}}'
    )
    figures = wrkrun.parse("Running 1s test\n" + line + "\n")
    assert figures["latency_us"]["p99.9"] == 2
    assert wrkrun.median_of([figures, figures])["rps"] == 10.0
    assert "function done(" in wrkrun.SCRIPT.read_text()


async def test_bare_app_answers(aiohttp_client: Any) -> None:
    client = await aiohttp_client(bare.create_app())
    response = await client.post(bare.PATH, data=b'{"subject": {"id": "s"}}', headers=workload.JSON)
    assert response.status == 200
    assert await response.json() == {"allow": True, "reason": "bare", "revision": 1}


@pytest.fixture(scope="module")
def rsa_private() -> Any:
    return workload.rsa_key()


def test_forward_auth_lists_cycle_a_few_tokens(work: workload.Workload, rsa_private: Any) -> None:
    for algorithm, key, verify_with in (
        ("HS256", workload.JWT_SECRET, workload.JWT_SECRET),
        ("RS256", rsa_private, workload.public_pem(rsa_private)),
    ):
        requests, allowed = workload.gateway_requests(
            work, count=40, tokens=5, algorithm=algorithm, key=key
        )
        assert len(requests) == len(allowed) == 40
        tokens = {r.headers["Authorization"].removeprefix("Bearer ") for r in requests}
        assert len(tokens) == 5
        for token in tokens:
            claims = jwt.decode(
                token,
                verify_with,
                algorithms=[algorithm],
                audience=workload.JWT_AUDIENCE,
                issuer=workload.JWT_ISSUER,
            )
            assert claims["tenant"] == work.tenant


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _groupgate(
    aiohttp_server: Any,
    work: workload.Workload,
    services: list[GraphService],
    states: list[State] | None = None,
    **jwt_settings: Any,
) -> dict[str, int]:
    """A groupgate app on the tiny tenant with its decision listener: its ports by listener
    (and its state appended to `states`)."""
    decisions = _free_port()
    config = load_config(
        env={},
        overrides={
            "host": "127.0.0.1",
            "api_keys": f"{workload.API_KEY}:{work.tenant}",
            "jwt_issuer": workload.JWT_ISSUER,
            "jwt_audience": workload.JWT_AUDIENCE,
            "decision_port": decisions,
            "decision_log": False,
            **jwt_settings,
        },
    )
    service = await GraphService.open(load_policy(workload.POLICIES), None, poll_interval=0.2)
    services.append(service)
    await service.admin.import_graph(None, work.document)
    app = create_app(config, service)
    if states is not None:
        states.append(app[STATE])
    server = await aiohttp_server(app, host="127.0.0.1")
    return {"main": server.port, "decisions": decisions}


async def test_listener_workloads_are_probed_verified_and_reported(
    aiohttp_server: Any, work: workload.Workload, rsa_private: Any, tmp_path: Path
) -> None:
    pem = tmp_path / "public.pem"
    pem.write_bytes(workload.public_pem(rsa_private))
    services: list[GraphService] = []
    try:
        ports = {
            "hs256": await _groupgate(
                aiohttp_server, work, services, jwt_secret=workload.JWT_SECRET
            ),
            "rs256": await _groupgate(
                aiohttp_server, work, services, jwt_algorithms="RS256", jwt_public_keys=str(pem)
            ),
        }
        workloads = listeners.build(tmp_path, work, rsa_private, count=60)
        # The checks use blocking http.client: run them off the loop that serves the apps.
        checked = await asyncio.to_thread(listeners.prepare, workloads, ports)
    finally:
        for service in services:
            await service.close()
    names = [wl.name for wl in workloads]
    assert names == ["check", "evaluation", "forward_auth_hs256", "forward_auth_rs256"]
    for wl in workloads:
        assert parse_lua_return(wl.lua.read_text())["requests"], wl.name
        main = checked[wl.name]["main"]
        assert main["served"] and main["verified"] == len(wl.expected), wl.name
        for found in checked[wl.name].values():
            # The decision listener may or may not serve a path: "not served" is a 404 only.
            assert found["served"] or found["status"] == 404, (wl.name, found)
    assert checked["check"]["decisions"]["served"]
    assert 0 < checked["forward_auth_rs256"]["main"]["expected_deny_share"] < 1

    canned = {
        "requests": 1000,
        "rps": 1000.0,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 400, "timeout": 0},
        "latency_us": {"p50": 1000, "p90": 2000, "p99": 3000, "p99.9": 4000},
    }
    timed: list[tuple[int, str, bool]] = []

    def load(port: int, lua: Path, non_2xx: bool) -> dict[str, Any]:
        timed.append((port, lua.name, non_2xx))
        return {**canned, "rps": 2000.0 if "forward" in lua.name else 1000.0}

    figures = listeners.time_rounds(
        workloads, ports, checked, rounds=2, load=load, say=lambda text: None
    )
    served = sum(found["served"] for by in checked.values() for found in by.values())
    assert len(timed) == 2 * served
    ratios = listeners.ratios(figures)
    assert ratios["main"]["check"] == 1.0 and ratios["main"]["forward_auth_rs256"] == 2.0
    assert figures["forward_auth_hs256"]["main"]["non_2xx_share"] == 0.4
    section = {"connections": 32, "figures": figures, "ratios": ratios}
    table = "\n".join(listeners.markdown(section, listeners.labels(workloads)))
    assert "| forward-auth GET, Bearer JWT (RS256, 100 tokens) | main | 2,000 |" in table
    if not checked["evaluation"]["decisions"]["served"]:
        assert "| AuthZEN /access/v1/evaluation | decisions | not served (404) |" in table


async def test_lowlevel_server_answers_as_groupgate(
    aiohttp_server: Any, work: workload.Workload, rsa_private: Any, tmp_path: Path
) -> None:
    """The low-level `web.Server` on a groupgate app's state passes the harness' verification
    (every answer the engine's, and byte for byte the main listener's) and answers errors
    with the same problem+json."""
    services: list[GraphService] = []
    try:
        states: list[State] = []
        ports = await _groupgate(
            aiohttp_server, work, services, states, jwt_secret=workload.JWT_SECRET
        )
        state = states[0]
        port = _free_port()
        runner = await lowlevel.start(state, "127.0.0.1", port)
        try:
            files = run.Files(
                folder=tmp_path,
                graph=tmp_path / "graph.json",
                check=tmp_path / "check.lua",
                cerbos=tmp_path / "cerbos.lua",
                evaluations=tmp_path / "evaluations.lua",
                purchases=tmp_path / "purchases.lua",
                public_key=tmp_path / "public.pem",
                check_requests=workload.check_requests(work),
                cerbos_requests=[],
                evaluation_requests=[],
                purchase_requests=[],
                listener_workloads=[],
            )
            facts = await asyncio.to_thread(
                run.verify_same_answers, port, ports["main"], work, files
            )
            no_key = workload.HttpRequest("POST", "/v1/check", files.check_requests[0].body)
            other = workload.HttpRequest("GET", "/v1/filter", None)
            answers = {
                (name, request.path): await asyncio.to_thread(_ask, p, request)
                for name, p in (("lowlevel", port), ("main", ports["main"]))
                for request in (no_key, other)
            }
            ready = await asyncio.to_thread(
                _ask, port, workload.HttpRequest("GET", "/readyz", None)
            )
        finally:
            await runner.cleanup()
    finally:
        for service in services:
            await service.close()
    assert facts == {"checks": 80, "same_as_groupgate": 80}
    assert answers[("lowlevel", "/v1/check")] == answers[("main", "/v1/check")]
    assert answers[("lowlevel", "/v1/check")][0] == 401
    assert answers[("lowlevel", "/v1/filter")][0] == 404
    assert ready[0] == 200


def _ask(port: int, request: workload.HttpRequest) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(request.method, request.path, body=request.body, headers=workload.JSON)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def test_check_table_reports_the_lowlevel_server() -> None:
    """Ratios and markdown from canned figures of every target (shapes, labels, the choice)."""

    def figures(rps: float, p99: int) -> dict[str, Any]:
        latency = {"p50": 1000, "p90": 2000, "p99": p99, "p99.9": 5000}
        return {"rps": rps, "latency_us": latency}

    rps = {"groupgate": 10_000, "decisions": 20_000, "cerbos": 2_500, "bare": 18_000}
    row = {t: figures(r, 4000) for t, r in rps.items()} | {"lowlevel": figures(12_500, 5000)}
    scenario = figures(1000, 1500)
    results: dict[str, Any] = {
        "machine": {
            "date": "2026-11-30",
            "cpus": 2,
            "cpu_model": "test",
            "pinned_cpu": 1,
            "load_average": [0.0],
            "python": "3.11",
            "packages": {"groupgate": "0"},
            "git_commit": "0",
            "cerbos": "0",
            "wrk": "wrk",
            "cpu_split": {"server": [1], "load": [0]},
        },
        "setup": {"subjects": 60, "questions": 80, "duration_s": 1.0, "rounds": 1},
        "check": {"32": row},
        "scenarios": {
            "connections": 32,
            **{k: dict(scenario) for k in ("evaluations", "purchases", "cold_c1", "cold")},
        },
    }
    results["scenarios"]["evaluations"]["decisions_per_s"] = 100_000
    results["ratios"] = run.ratios(results)
    ratio = results["ratios"]["32"]
    assert ratio["decisions_over_lowlevel_rps"] == 1.6
    assert ratio["lowlevel_over_groupgate_rps"] == 1.25
    assert ratio["groupgate_over_bare_rps"] == 0.56  # the existing fields stay
    table = run.markdown(results)
    assert "| aiohttp low-level web.Server (same use case) | 32 | 12,500 |" in table
    assert "| 32 | 1.60x | 1.25x | 0.69x | 1.25x |" in table
    assert "keeps the hand-written HTTP/1.1) | 1.60x | met |" in table
    # A result file of a run before the low-level target still renders.
    del results["check"]["32"]["lowlevel"]
    results["ratios"] = run.ratios(results)
    assert "low-level" not in run.markdown(results).split("listener (`--decision-port`)")[0]


@pytest.mark.parametrize("refuse_at_once", [False, True])
async def test_slow_connections_closed_by_the_server_are_counted(refuse_at_once: bool) -> None:
    """Against a stand-in server answering 408 once the headers are in (a request timeout),
    or 503 at once without reading (a connection cap), and closing."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if refuse_at_once:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n")
        else:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.2)
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = slowbody.Settings(connections=20, hold=5.0, settle=0.05)
    async with server:
        figures = await slowbody.hold_slow_connections(os.getpid(), port, settings)
    assert figures["opened"] == 20 and figures["closed_by_server"] == 20
    if refuse_at_once:
        assert set(figures["answers"]) <= {"503", "closed, no answer"}
    else:
        assert figures["answers"] == {"408": 20}
    assert figures["hold_seconds"] < settings.hold  # the hold ends when all are closed
    assert figures["rss_peak"] > 0 and figures["held_peak"] >= 0


def test_slowbody_suite_runs_on_a_real_server() -> None:
    """The whole suite at a tiny size against `groupgate serve` (one listener, to stay fast)."""
    settings = slowbody.Settings(
        connections=10, hold=0.5, settle=0.1, request_timeout=1.0, listeners=("decisions",)
    )
    results = slowbody.run(settings, say=lambda text: None)
    figures = results["listeners"]["decisions"]
    assert figures["opened"] == 10 and figures["warm_status"] == 200
    assert figures["server_alive"] and figures["rss_before"] > 0
    assert figures["probe_during_hold"]["status"] is not None
    table = slowbody.markdown(results)
    assert "| decisions | 10 |" in table and "RSS back within 10% of the start" in table


def test_established_reads_the_kernel_table(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000\n"
        "   1: 0100007F:D431 0100007F:1F90 01 00000000:00000000\n"
        "   2: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n"
    )
    assert slowbody.established(8080, str(table)) == 1
