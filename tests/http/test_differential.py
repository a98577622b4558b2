"""Both HTTP listeners, held to the same answers over raw sockets.

One app runs in a child process (`groupgate serve --demo`, as in production: `web.run_app`, uvloop)
with its main port and its decision port, an API key, JWT verification, the demo graph and the
small limits of `tests.http.cases.SETTINGS`. Every case of `tests.http.cases.CASES` is played
to both ports; the answers must agree (status, problem type or body, compared headers, and a
stall on neither side), and where the case names the right answer, both must give it.

The conversations run concurrently in a module fixture (so the cases that wait for a timeout
overlap) and each case is then judged in its own test; only the selected cases are played.
Every socket read has a deadline: a listener that stalls is reported as such.

A second app, with `http_max_connections` of 2, holds both listeners to the connection cap.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.http.cases import (
    CASES,
    KEEPALIVE_TIMEOUT,
    KNOWN_DIVERGENCES,
    REQUEST_TIMEOUT,
    SETTINGS,
    Case,
    Expect,
    check,
)
from tests.http.wire import PROBLEM, Answer, Await, Conversation, Outcome, converse
from tests.support.servers import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
#: Seconds any one read may wait: well past every configured timeout (a stall, not a delay).
DEADLINE = REQUEST_TIMEOUT + KEEPALIVE_TIMEOUT + 2.0
PARALLEL = 48


@dataclass(frozen=True, slots=True)
class App:
    """A running `groupgate serve` and its two ports."""

    process: subprocess.Popen[bytes]
    main: int
    decision: int
    log: Path


def start(tmp: Path, **settings: str) -> App:
    main, decision = free_port(), free_port()
    while decision == main:
        decision = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPGATE_")}
    values = {**SETTINGS, **settings, "host": "127.0.0.1", "port": str(main)}
    values["decision_port"] = str(decision)
    env.update({f"GROUPGATE_{name.upper()}": value for name, value in values.items()})
    log = tmp / f"serve-{main}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "groupgate.cli", "serve", "--demo"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(main, process)
        wait_for_port(decision, process)
    except BaseException:
        stop(App(process, main, decision, log))
        raise
    return App(process, main, decision, log)


def stop(app: App) -> None:
    if app.process.poll() is None:
        app.process.send_signal(signal.SIGTERM)
        try:
            app.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    running = start(tmp_path_factory.mktemp("differential"))
    yield running
    stop(running)


def play(port: int, case: Case) -> Outcome:
    return converse(
        port,
        case.steps,
        answers=case.answers,
        closes=case.closes,
        heads=case.heads,
        deadline=DEADLINE,
    )


@pytest.fixture(scope="module")
def outcomes(app: App, request: pytest.FixtureRequest) -> dict[str, tuple[Outcome, Outcome]]:
    """Every selected case played to both ports, concurrently: name -> (main, decision)."""
    chosen = {
        item.callspec.params["case"].name
        for item in request.session.items
        if getattr(item, "module", None) is sys.modules[__name__] and hasattr(item, "callspec")
        if "case" in item.callspec.params
    }
    picked = [c for c in CASES if c.name in chosen]
    with ThreadPoolExecutor(PARALLEL) as pool:
        mains = [pool.submit(play, app.main, c) for c in picked]
        decisions = [pool.submit(play, app.decision, c) for c in picked]
        return {
            c.name: (m.result(), d.result())
            for c, m, d in zip(picked, mains, decisions, strict=True)
        }


def test_the_cases_are_many_and_named_once() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), [n for n in names if names.count(n) > 1]
    assert len(CASES) >= 120


def meets(answer: Answer, expected: Expect) -> bool:
    if isinstance(expected, str):  # "4xx": a precise client error, as problem+json
        return 400 <= answer.status < 500 and answer.media == PROBLEM
    if isinstance(expected, frozenset):
        return answer.status in expected
    if isinstance(expected, tuple):
        return answer.status == expected[0] and answer.what == expected[1]
    return answer.status == expected


def faults(case: Case, outcome: Outcome) -> list[str]:
    """How one listener's outcome misses what the case requires (empty: it meets it)."""
    found: list[str] = []
    if outcome.end == "stall":
        found.append("stalled (no answer or no close before the deadline)")
    for answer in outcome.answers:
        if answer.status >= 500 and not any(meets(answer, e) for e in case.expect or ()):
            found.append(f"a {answer.status} to client input")
    if case.expect is not None:
        finals = outcome.finals
        if len(finals) != len(case.expect):
            found.append(f"{len(finals)} final answers, expected {len(case.expect)}")
        for i, (answer, expected) in enumerate(zip(finals, case.expect, strict=False)):
            if not meets(answer, expected):
                found.append(
                    f"answer {i + 1} is {answer.status} {answer.what}, expected {expected}"
                )
    if case.closes and outcome.end not in ("closed", "reset"):
        found.append(f"the connection must close; it ended {outcome.end}")
    return found


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DIVERGENCES[c.name])]
            if c.name in KNOWN_DIVERGENCES
            else [],
        )
        for c in CASES
    ],
    ids=[c.name for c in CASES],
)
def test_both_listeners_answer_alike(
    case: Case, outcomes: dict[str, tuple[Outcome, Outcome]]
) -> None:
    main, decision = outcomes[case.name]
    problems: list[str] = []
    if main.key != decision.key:
        problems.append("the listeners disagree")
    problems += [f"main port: {f}" for f in faults(case, main)]
    problems += [f"decision port: {f}" for f in faults(case, decision)]
    why = f"\n  why:           {case.why}" if case.why else ""
    assert not problems, (
        f"{case.name}\n  main port:     {main}\n  decision port: {decision}{why}\n  - "
        + "\n  - ".join(problems)
    )


# --------------------------------------------------------------------------- connection cap


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    running = start(tmp_path_factory.mktemp("capped"), http_max_connections="2")
    yield running
    stop(running)


def answered(port: int, request: bytes, closes: bool | None) -> Outcome:
    return converse(
        port, (request,), answers=1, closes=closes, heads=frozenset(), deadline=DEADLINE
    )


def over_the_cap(port: int) -> tuple[list[str], str]:
    """Two connections at the cap (each answered), a third refused, then room again."""
    held = [Conversation(port, frozenset(), DEADLINE) for _ in range(2)]
    try:
        for conversation in held:
            conversation.play((check(), Await(1)))
        shown = [f"held: {c.outcome}" for c in held]
        verdict = []
        if any([a.status for a in c.outcome.finals] != [200] for c in held):
            verdict.append("a connection under the cap was not answered 200")
        third = answered(port, check(), closes=True)
        # The first held connection ends (the listener closes it after `Connection: close`);
        # a new one is then admitted once the listener has counted the close.
        held[0].play((check(headers=[("Connection", "close")]),))
        ended = held[0].finish(2, closes=True)
        again = answered(port, check(), closes=None)
        for _ in range(200):  # up to 10 s: a loaded machine may count the close late
            if again.finals and again.finals[0].status != 503:
                break
            time.sleep(0.05)
            again = answered(port, check(), closes=None)
        shown += [f"third: {third}", f"first after close: {ended}", f"then: {again}"]
        finals = third.finals
        if len(finals) != 1 or finals[0].status != 503 or finals[0].media != PROBLEM:
            verdict.append("the connection past the cap did not get a 503 problem")
        elif "retry-after" not in finals[0].headers:
            verdict.append("the 503 has no Retry-After")
        if third.end not in ("closed", "reset"):
            verdict.append(f"the connection past the cap was not closed ({third.end})")
        if not again.finals or again.finals[0].status != 200:
            verdict.append("after a connection closed, a new one was still refused")
        return verdict, "\n  ".join(shown)
    finally:
        for conversation in held:
            conversation.close()


@pytest.mark.parametrize("listener", ["main", "decision"])
def test_connections_past_the_cap_get_a_503_and_are_closed(capped: App, listener: str) -> None:
    port = capped.main if listener == "main" else capped.decision
    verdict, shown = over_the_cap(port)
    assert not verdict, f"{listener} port:\n  {shown}\n  - " + "\n  - ".join(verdict)
