"""Workloads timed on each listener of groupgate, as ratios to `/v1/check` on that listener.

The workloads (`build`):

- `check`: `POST /v1/check`, the denominator of every ratio;
- `evaluation`: AuthZEN `POST /access/v1/evaluation`, one question per request;
- `forward_auth_hs256`, `forward_auth_rs256`: `GET /v1/gateway/auth` with `X-Original-Method`,
  `X-Original-URI` and `Authorization: Bearer <jwt>`, 100 distinct tokens cycled over the
  list (a gateway's live sessions: the cache of verified tokens sees each again and again).
  groupgate refuses to mix HMAC and public-key algorithms, so the RS256 tokens go to a second
  groupgate process (`server="rs256"`) configured with the public key; it shares the Redis
  and tenant of the first, and its `/v1/check` is the same code, so the ratio divides by
  the first process's `/v1/check` on the same kind of listener, timed in the same rounds.

Each workload names the listeners it is tried on: `main` (the aiohttp port) and `decisions`
(`--decision-port`). Before anything is timed, one request asks whether a listener serves the
path (`probe`): a 404 means it does not (today the decision listener serves only
`POST /v1/check`), and the workload is reported "not served" there instead of failing. On a
listener that serves it, every answer the workload will be timed on is checked against the
engine (`verify`); forward-auth answers 200 or 403 as the engine's `some` says.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.http import workload, wrkrun
from benchmarks.http.workload import HttpRequest, Workload, WrongAnswerError

LISTENERS = ("main", "decisions")
#: Distinct subject tokens in each forward-auth list.
TOKENS = 100
#: Server name -> listener name -> port.
Ports = Mapping[str, Mapping[str, int]]
#: Runs wrk once: (port, request list, non-2xx answers expected) -> figures.
Load = Callable[[int, Path, bool], dict[str, Any]]


def _allow(status: int, body: bytes) -> Any:
    return orjson.loads(body)["allow"] if status == 200 else f"status {status}"


def _decision(status: int, body: bytes) -> Any:
    return orjson.loads(body)["decision"] if status == 200 else f"status {status}"


def _status(status: int, body: bytes) -> Any:
    return status


@dataclass(frozen=True, slots=True)
class ListenerWorkload:
    """One request list, the listeners it is tried on, and the answer each request expects."""

    name: str
    label: str
    lua: Path
    requests: Sequence[HttpRequest]
    headers: Mapping[str, str]
    expected: Sequence[Any]
    answer: Callable[[int, bytes], Any] = field(repr=False)
    server: str = "hs256"
    listeners: tuple[str, ...] = LISTENERS
    #: Answers other than 2xx belong to the workload (forward-auth denies with 403).
    non_2xx: bool = False


def build(folder: Path, work: Workload, rsa_private: Any, *, count: int) -> list[ListenerWorkload]:
    """Write the request lists into `folder`; return the workloads, `check` first."""
    caller = workload.caller_headers()
    checks = workload.check_requests(work)
    evaluations = workload.single_evaluation_requests(work)
    out = [
        ListenerWorkload(
            "check",
            "/v1/check",
            workload.write_lua(folder / "listener-check.lua", checks, caller),
            checks,
            caller,
            work.expected,
            _allow,
        ),
        ListenerWorkload(
            "evaluation",
            "AuthZEN /access/v1/evaluation",
            workload.write_lua(folder / "listener-evaluation.lua", evaluations, caller),
            evaluations,
            caller,
            work.expected,
            _decision,
        ),
    ]
    for algorithm, key, server in (
        ("HS256", workload.JWT_SECRET, "hs256"),
        ("RS256", rsa_private, "rs256"),
    ):
        requests, allowed = workload.gateway_requests(
            work, count=count, tokens=TOKENS, algorithm=algorithm, key=key
        )
        name = f"forward_auth_{algorithm.lower()}"
        out.append(
            ListenerWorkload(
                name,
                f"forward-auth GET, Bearer JWT ({algorithm}, {TOKENS} tokens)",
                workload.write_lua(folder / f"listener-{name}.lua", requests, {}),
                requests,
                {},
                [200 if a else 403 for a in allowed],
                _status,
                server=server,
                non_2xx=True,
            )
        )
    return out


def _send(conn: http.client.HTTPConnection, wl: ListenerWorkload, i: int) -> tuple[int, bytes]:
    request = wl.requests[i]
    conn.request(
        request.method,
        request.path,
        body=request.body,
        headers={**wl.headers, **request.headers},
    )
    response = conn.getresponse()
    return response.status, response.read()


def probe(port: int, wl: ListenerWorkload) -> dict[str, Any]:
    """Whether the listener on `port` serves the workload's path (404: it does not)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        status, body = _send(conn, wl, 0)
    finally:
        conn.close()
    if status == 404:
        return {"served": False, "status": status, "detail": body[:200].decode(errors="replace")}
    return {"served": True, "status": status}


def verify(port: int, wl: ListenerWorkload) -> dict[str, Any]:
    """Ask every request of the list; raise `WrongAnswerError` on any unexpected answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    wrong: list[str] = []
    try:
        for i, expected in enumerate(wl.expected):
            status, body = _send(conn, wl, i)
            got = wl.answer(status, body)
            if got != expected:
                wrong.append(f"{wl.name} #{i}: {got!r} ({body[:200]!r}), expected {expected!r}")
    finally:
        conn.close()
    if wrong:
        raise WrongAnswerError(
            f"{len(wrong)} wrong answers on port {port}, e.g.:\n" + "\n".join(wrong[:5])
        )
    denies = sum(1 for e in wl.expected if e in (False, 403))
    return {"served": True, "verified": len(wl.expected), "expected_deny_share": _share(denies, wl)}


def _share(n: int, wl: ListenerWorkload) -> float:
    return round(n / max(1, len(wl.expected)), 3)


def prepare(workloads: Sequence[ListenerWorkload], ports: Ports) -> dict[str, dict[str, Any]]:
    """Probe every (workload, listener); verify every answer where the path is served."""
    out: dict[str, dict[str, Any]] = {}
    for wl in workloads:
        out[wl.name] = {}
        for listener in wl.listeners:
            port = ports[wl.server][listener]
            found = probe(port, wl)
            out[wl.name][listener] = verify(port, wl) if found["served"] else found
    return out


def time_rounds(
    workloads: Sequence[ListenerWorkload],
    ports: Ports,
    checked: Mapping[str, Mapping[str, Any]],
    *,
    rounds: int,
    load: Load,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Time every served (workload, listener) once per round; medians over the rounds.

    Not-served pairs keep their probe result. Forward-auth figures add the share of non-2xx
    answers (the 403s) beside the share the engine expects.
    """
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in range(rounds):
        for wl in workloads:
            for listener in wl.listeners:
                if not checked[wl.name][listener]["served"]:
                    continue
                say(f"http: listeners, {wl.name} on {listener}, round {r + 1}/{rounds}")
                port = ports[wl.server][listener]
                runs.setdefault((wl.name, listener), []).append(load(port, wl.lua, wl.non_2xx))
    out: dict[str, dict[str, Any]] = {}
    for wl in workloads:
        out[wl.name] = {}
        for listener in wl.listeners:
            found = runs.get((wl.name, listener))
            if found is None:
                out[wl.name][listener] = dict(checked[wl.name][listener])
                continue
            figures = wrkrun.median_of(found)
            figures["served"] = True
            if wl.non_2xx:
                figures["non_2xx_share"] = round(
                    figures["status_errors"] / max(1, figures["requests"]), 3
                )
                figures["expected_deny_share"] = checked[wl.name][listener]["expected_deny_share"]
            out[wl.name][listener] = figures
    return out


def ratios(figures: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Each workload's req/s over `/v1/check`'s on the same listener (None: not served)."""
    out: dict[str, dict[str, float | None]] = {}
    for listener in LISTENERS:
        base = figures.get("check", {}).get(listener, {})
        out[listener] = {}
        for name, by_listener in figures.items():
            fig = by_listener.get(listener)
            if fig is None or not fig.get("served") or not base.get("served"):
                out[listener][name] = None
            else:
                out[listener][name] = round(fig["rps"] / base["rps"], 2)
    return out


def markdown(section: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """The listener table: figures per (workload, listener) and the ratio to `/v1/check`."""
    figures = section["figures"]
    ratio = section["ratios"]
    lines = [
        "",
        f"| workload (c={section['connections']}) | listener | req/s | p50 | p99 | p99.9 "
        "| 403s (engine says) | vs /v1/check, same listener |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_listener in figures.items():
        for listener, fig in by_listener.items():
            label = labels.get(name, name)
            if not fig.get("served"):
                status = fig.get("status")
                lines.append(f"| {label} | {listener} | not served ({status}) | | | | | |")
                continue
            lat = fig["latency_us"]
            denies = ""
            if "non_2xx_share" in fig:
                denies = f"{fig['non_2xx_share']:.1%} ({fig['expected_deny_share']:.1%})"
            lines.append(
                f"| {label} | {listener} | {fig['rps']:,.0f} | {lat['p50'] / 1000:.2f} "
                f"| {lat['p99'] / 1000:.2f} | {lat['p99.9'] / 1000:.2f} | {denies} "
                f"| {ratio[listener][name]:.2f}x |"
            )
    lines += [
        "",
        "`main` is the aiohttp port, `decisions` the decision listener (`--decision-port`); "
        '"not served" is the listener\'s answer to the first request (404: no such path '
        "there). RS256 rows come from a second groupgate process configured for RS256; their "
        "ratio divides by the first process's `/v1/check` on the same listener.",
    ]
    return lines


def labels(workloads: Sequence[ListenerWorkload]) -> dict[str, str]:
    return {wl.name: wl.label for wl in workloads}
