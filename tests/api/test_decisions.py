"""The decision listener (`groupgate.api.decisions`): `POST /v1/check` on a port of its own.

Its answers are held to the main listener's, byte for byte in the JSON and exactly in status
and problem type, over real sockets; then the HTTP it speaks: keep-alive, pipelining in order
across answers that await the store, HTTP/1.0, chunked bodies, 100-continue, the limits,
malformed requests, timeouts and a graceful stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from groupgate.api.app import STATE
from groupgate.api.decisions import LISTENER, Decisions, limits_of
from groupgate.api.http11 import Connection, Listener
from groupgate.auth import mint_token
from groupgate.config import MIB, ConfigError, load_config
from groupgate.model import Resource
from tests.api.conftest import DEMO, MakeClient, document

Client = TestClient[Any, Any]
KEY_A = "tenant-a-key-0123456789"
KEY_ANY = "unbound-key-0123456789"
SECRET = "s" * 40
CHECK = {
    "subject": {"id": "emp-de"},
    "action": "update",
    "resource": {"type": "orders", "id": "o-17", "restrictions": ["DE"]},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graph(tenant: str) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(document(DEMO))
    doc["tenant"] = tenant
    return doc


@pytest.fixture
async def pair(make_client: MakeClient) -> tuple[Client, int]:
    """Two tenants, a bound and an unbound key, service JWTs; the main client and the port
    of its decision listener."""
    port = free_port()
    client = await make_client(
        documents=[graph("a"), graph("b")],
        api_keys=f"{KEY_A}:a,{KEY_ANY}",
        default_tenant="b",
        jwt_secret=SECRET,
        jwt_caller_tokens=True,
        decision_port=port,
        max_body_bytes=4096,
        max_json_depth=8,
    )
    return client, port


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


JSON = {"Content-Type": "application/json"}
TOKEN = mint_token(SECRET, "svc-checkout", tenant="a")

#: (headers, body) cases; each is asked on both listeners and must get the same answer.
CASES: list[tuple[dict[str, str], bytes]] = [
    (bearer(KEY_A), orjson.dumps(CHECK)),  # allowed, bound tenant, cached after the first
    (bearer(KEY_A), orjson.dumps(CHECK)),
    (
        bearer(KEY_A),
        orjson.dumps({**CHECK, "resource": {"type": "orders", "restrictions": ["US"]}}),
    ),
    (bearer(KEY_A), orjson.dumps({**CHECK, "subject": "nobody"})),  # unknown subject: a deny
    (bearer(KEY_A), orjson.dumps({**CHECK, "explain": True})),  # awaits the store
    (bearer(KEY_A), orjson.dumps({**CHECK, "min_revision": 1})),
    (bearer(KEY_A), orjson.dumps({**CHECK, "min_revision": 10**9})),  # 409
    ({**bearer(KEY_A), "X-Groupgate-Min-Revision": "x"}, orjson.dumps(CHECK)),  # 422
    (bearer(KEY_A), orjson.dumps({**CHECK, "tenant": "b"})),  # 403: bound to a
    (bearer(KEY_ANY), orjson.dumps(CHECK)),  # the default tenant b
    (bearer(KEY_ANY), orjson.dumps({**CHECK, "tenant": "a"})),
    (bearer(KEY_ANY), orjson.dumps({**CHECK, "tenant": "zz"})),  # 404 unknown tenant
    (bearer(TOKEN), orjson.dumps(CHECK)),  # a service JWT: verified, then tenant a
    (bearer("wrong-key-0123456789"), orjson.dumps(CHECK)),  # 401
    ({}, orjson.dumps(CHECK)),  # 401, no credential
    (bearer(KEY_A), b"{not json"),  # 400
    (bearer(KEY_A), b""),  # 400
    (bearer(KEY_A), b"[1, 2]"),
    (
        bearer(KEY_A),
        b'{"subject": "a", "subject": "emp-de", "action": "update", '
        b'"resource": {"type": "orders"}}',
    ),  # duplicate key
    (
        bearer(KEY_A),
        b'{"subject": "emp-de", "action": "update", "resource": {"type": "orders", '
        b'"properties": {"a": [[[[[[[[1]]]]]]]]}}}',
    ),  # too deep
    (
        bearer(KEY_A),
        b'{"subject": "emp-de", "action": "update", "resource": {"type": "orders"}, '
        b'"min_revision": 1e400}',
    ),  # a huge number
    (bearer(KEY_A), orjson.dumps({**CHECK, "extra": 1})),  # unknown field
    (bearer(KEY_A), orjson.dumps({**CHECK, "resource": {"type": "nope"}})),  # unknown type
    (bearer(KEY_A), orjson.dumps({**CHECK, "action": "fly"})),
    (bearer(KEY_A), orjson.dumps({**CHECK, "subject": {"id": 7}})),
    ({**bearer(KEY_A), "Content-Type": "text/plain"}, orjson.dumps(CHECK)),  # 415
    ({**bearer(KEY_A), "Content-Type": "application/json; charset=utf-8"}, orjson.dumps(CHECK)),
]


async def ask(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[int, str, Any, str | None]:
    async with session.post(url, data=body, headers={**JSON, **headers}) as response:
        raw = await response.read()
        return (
            response.status,
            response.content_type,
            orjson.loads(raw),
            response.headers.get("WWW-Authenticate"),
        )


async def test_every_answer_and_error_is_the_main_listeners(
    pair: tuple[Client, int], session: aiohttp.ClientSession
) -> None:
    client, port = pair
    main = str(client.make_url("/v1/check"))
    lane = f"http://127.0.0.1:{port}/v1/check"
    statuses = set()
    for headers, body in CASES:
        expected = await ask(session, main, headers, body)
        got = await ask(session, lane, headers, body)
        assert got == expected, (headers, body)
        statuses.add(got[0])
    assert statuses == {200, 400, 401, 403, 404, 409, 415, 422}


async def test_answers_follow_a_revocation(
    pair: tuple[Client, int], session: aiohttp.ClientSession
) -> None:
    client, port = pair
    lane = f"http://127.0.0.1:{port}/v1/check"
    _, _, before, _ = await ask(session, lane, bearer(KEY_A), orjson.dumps(CHECK))
    assert before["allow"] is True
    state = client.app[STATE]
    await state.admin.remove_membership("a", "emp-de", "de-fulfillment")
    _, _, after, _ = await ask(session, lane, bearer(KEY_A), orjson.dumps(CHECK))
    assert after["allow"] is False


async def test_checks_are_counted_in_the_metrics(
    pair: tuple[Client, int], session: aiohttp.ClientSession
) -> None:
    client, port = pair
    metrics = client.app[STATE].metrics
    before = list(metrics.results["check"])
    await ask(session, f"http://127.0.0.1:{port}/v1/check", bearer(KEY_A), orjson.dumps(CHECK))
    assert metrics.results["check"] == [before[0] + 1, before[1]]


# --------------------------------------------------------------------------- raw HTTP


def request(
    body: bytes | dict[str, Any] = CHECK,
    *,
    path: str = "/v1/check",
    method: str = "POST",
    version: str = "1.1",
    headers: dict[str, str] | None = None,
) -> bytes:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    lines = [f"{method} {path} HTTP/{version}", "Host: pdp", f"Authorization: Bearer {KEY_A}"]
    lines += ["Content-Type: application/json", f"Content-Length: {len(raw)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


async def read_answer(reader: asyncio.StreamReader, *, head: bool = False) -> Answer:
    """Read one response (`head`: to a HEAD request, so without a body)."""
    section = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = section.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, value = line.split(":", 1)
            headers[name.lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5) if length and not head else b""
    return Answer(status, headers, body)


Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open raw connections to a port; all are closed after the test."""
    writers: list[asyncio.StreamWriter] = []

    async def open_(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield open_
    for writer in writers:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_keep_alive_and_pipelining_answer_in_order(
    pair: tuple[Client, int], connect: Connect
) -> None:
    _, port = pair
    reader, writer = await connect(port)
    # One write: a cached allow, one that awaits the store (explain), a bad body, an unknown
    # subject, a 404 and a 405: the answers come back in the order asked.
    writer.write(
        request(CHECK)
        + request({**CHECK, "explain": True})
        + request(b"{bad")
        + request({**CHECK, "subject": "nobody"})
        + request(path="/v1/checks")
        + request(method="PUT")
        + request(b"", method="HEAD")  # a 405 without a body: the framing holds
        + request(CHECK)
    )
    answers = [await read_answer(reader, head=i == 6) for i in range(8)]
    assert [a.status for a in answers] == [200, 200, 400, 200, 404, 405, 405, 200]
    assert answers[0].json()["allow"] is True and "explain" not in answers[0].json()
    assert answers[1].json()["explain"]
    assert answers[2].headers["content-type"] == "application/problem+json"
    assert answers[3].json()["allow"] is False
    assert answers[4].json()["type"].endswith("http-404")
    assert answers[5].headers["allow"] == "POST"
    assert all("connection" not in a.headers for a in answers)
    assert all(a.headers["date"].endswith("GMT") for a in answers)
    writer.close()


async def test_http10_closes_unless_asked_to_keep_alive(
    pair: tuple[Client, int], connect: Connect
) -> None:
    _, port = pair
    reader, writer = await connect(port)
    writer.write(request(version="1.0"))
    answer = await read_answer(reader)
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert await closed(reader)
    reader, writer = await connect(port)
    writer.write(request(version="1.0", headers={"Connection": "keep-alive"}) * 2)
    answers = [await read_answer(reader) for _ in range(2)]
    assert [a.headers["connection"] for a in answers] == ["keep-alive", "keep-alive"]
    writer.close()


async def test_connection_close_is_honoured(pair: tuple[Client, int], connect: Connect) -> None:
    client, port = pair
    metrics = client.app[STATE].metrics
    before = sum(metrics.results["check"])
    reader, writer = await connect(port)
    writer.write(request(headers={"Connection": "close"}) + request())
    answer = await read_answer(reader)
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert await closed(reader)  # the second request is neither answered nor decided
    assert sum(metrics.results["check"]) == before + 1


async def test_chunked_body_and_100_continue(pair: tuple[Client, int], connect: Connect) -> None:
    _, port = pair
    reader, writer = await connect(port)
    body = orjson.dumps(CHECK)
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: pdp\r\nAuthorization: Bearer {KEY_A}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    writer.write(
        head + b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    )
    answer = await read_answer(reader)
    assert answer.status == 200 and answer.json()["allow"] is True
    writer.write(request(headers={"Expect": "100-continue"})[: -len(body)])
    interim = await read_answer(reader)
    assert interim.status == 100
    writer.write(body)
    answer = await read_answer(reader)
    assert answer.status == 200 and answer.json()["allow"] is True
    writer.write(request(headers={"Expect": "magic"}))
    answer = await read_answer(reader)
    assert answer.status == 417 and answer.headers["connection"] == "close"
    assert await closed(reader)


async def test_an_upgrade_request_is_answered_as_http11_then_the_connection_closes(
    pair: tuple[Client, int], connect: Connect
) -> None:
    _, port = pair
    reader, writer = await connect(port)
    # The main listener ignores `Upgrade` too (curl --http2 sends h2c): same answer on both.
    writer.write(request(headers={"Connection": "Upgrade", "Upgrade": "h2c"}) + request())
    answer = await read_answer(reader)
    assert answer.status == 200 and answer.json()["allow"] is True
    assert await closed(reader)  # llhttp reads nothing after an upgrade request


@pytest.mark.parametrize(
    ("raw", "status", "slug"),
    [
        # Content-Length over max_body_bytes (4096): refused before the body is read.
        (request(b"x" * 5000), 413, "too-large"),
        (
            b"POST /v1/check HTTP/1.1\r\nHost: pdp\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1000\r\n"
            + b"x" * 4096
            + b"\r\n"
            + b"10\r\n"
            + b"x" * 16
            + b"\r\n0\r\n\r\n",
            413,
            "too-large",
        ),
        (
            b"POST /v1/check HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "invalid-http",
        ),
        (
            b"POST /v1/check HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
            "invalid-http",
        ),
        (b"POST /v1/check HTTP/1.1\nContent-Length: 2\n\n{}", 400, "invalid-http"),
        (b"GARBAGE\r\n\r\n", 400, "invalid-http"),
        (b"CONNECT pdp:443 HTTP/1.1\r\nHost: pdp:443\r\n\r\n", 400, "invalid-http"),
        (request(path="/v1/check?" + "q" * 17000), 414, "uri-too-long"),
        (request(headers={f"X-Filler-{i}": "v" for i in range(200)}), 431, "headers-too-large"),
        (request(headers={"X-Big": "v" * 70000}), 431, "headers-too-large"),
    ],
)
async def test_refused_requests_get_a_problem_and_the_connection_closes(
    pair: tuple[Client, int], raw: bytes, status: int, slug: str, connect: Connect
) -> None:
    client, port = pair
    before = list(client.app[STATE].metrics.results["check"])
    reader, writer = await connect(port)
    writer.write(raw + request())  # whatever follows a refused request is not answered
    answer = await read_answer(reader)
    assert answer.status == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == f"urn:groupgate:problem:{slug}"
    assert answer.headers["connection"] == "close"
    assert await closed(reader)
    assert client.app[STATE].metrics.results["check"] == before  # nothing was decided


async def test_a_refusal_waits_for_the_answers_before_it(
    pair: tuple[Client, int], connect: Connect
) -> None:
    _, port = pair
    reader, writer = await connect(port)
    writer.write(request({**CHECK, "explain": True}) + request(b"x" * 5000))
    first, second = await read_answer(reader), await read_answer(reader)
    assert (first.status, second.status) == (200, 413)
    assert await closed(reader)


# --------------------------------------------------------------------------- lifetime


@pytest.fixture
async def quick(make_client: MakeClient) -> AsyncIterator[tuple[Client, Listener, int]]:
    """A second listener on the same app with short timeouts."""
    client = await make_client(api_keys=f"{KEY_A}")
    state = client.app[STATE]
    limits = limits_of(state)._replace(
        keepalive_timeout=0.3, request_timeout=0.3, shutdown_grace=1.0
    )
    listener = Listener(Decisions(state), limits)
    port = free_port()
    await listener.start("127.0.0.1", port)
    yield client, listener, port
    await listener.stop()


async def test_idle_and_slow_connections_are_closed(
    quick: tuple[Client, Listener, int], connect: Connect
) -> None:
    _, listener, port = quick
    reader, writer = await connect(port)
    writer.write(request())
    assert (await read_answer(reader)).status == 200
    assert await closed(reader)  # idle past keepalive_timeout (swept once a second)
    reader, writer = await connect(port)
    writer.write(request()[:-5])  # never finished
    answer = await read_answer(reader)
    assert answer.status == 408 and answer.headers["connection"] == "close"
    assert await closed(reader)
    assert not listener.connections


async def test_stop_lets_an_answer_in_progress_finish(
    quick: tuple[Client, Listener, int], monkeypatch: pytest.MonkeyPatch, connect: Connect
) -> None:
    client, listener, port = quick
    decider = client.app[STATE].decider
    real = decider.check

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.2)
        return await real(*args, **kwargs)

    monkeypatch.setattr(decider, "check", slow)
    busy_reader, busy_writer = await connect(port)
    idle_reader, _ = await connect(port)
    busy_writer.write(request({**CHECK, "explain": True}))
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(listener.stop())
    assert await closed(idle_reader)
    answer = await read_answer(busy_reader)
    assert answer.status == 200 and answer.headers["connection"] == "close"
    assert answer.json()["allow"] is True
    await stopping
    assert not listener.connections
    with pytest.raises(OSError):
        await connect(port)


async def test_the_app_runs_the_listener_only_when_configured(
    make_client: MakeClient, connect: Connect
) -> None:
    client = await make_client()
    assert LISTENER not in client.app
    port = free_port()
    client = await make_client(decision_port=port)
    assert client.app[LISTENER].server is not None
    reader, writer = await connect(port)
    writer.write(request(CHECK))
    assert (await read_answer(reader)).status == 200
    writer.close()


def test_the_decision_port_must_differ_from_the_port() -> None:
    with pytest.raises(ConfigError, match="decision_port: must differ from port"):
        load_config(env={}, overrides={"port": 9000, "decision_port": 9000})
    with pytest.raises(ConfigError, match="decision_port: must differ from port"):
        load_config(env={"GROUPGATE_DECISION_PORT": "8181"})
    with pytest.raises(ConfigError, match="decision_port"):
        load_config(env={"GROUPGATE_DECISION_PORT": "0"})
    assert load_config(env={"GROUPGATE_DECISION_PORT": "8182"}).decision_port == 8182


def new_listener(state: Any) -> Listener:
    """A listener of the decision endpoints (not started)."""
    return Listener(Decisions(state), limits_of(state))


class FakeTransport:
    """Records what the protocol does to its transport."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_reading_pauses_while_queued_bodies_exceed_the_limit(
    pair: tuple[Client, int],
) -> None:
    client, _ = pair
    listener = new_listener(client.app[STATE])
    protocol = Connection(listener)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.busy = True  # as while an answer awaits the store
    padded = {**CHECK, "resource": {**CHECK["resource"], "id": "o" * 1500}}
    protocol.data_received(request(padded) * 2)  # 2 x ~1.6 KB: under the 4 KB limit
    assert not transport.paused and len(protocol.queue) == 2
    protocol.data_received(request(padded))  # now over it
    assert transport.paused and protocol.queued_bytes > 4096
    protocol.busy = False  # the awaited answer went out: the queue drains in order
    protocol._drain()
    while protocol.task is not None:  # the first answer awaits the store (a cold cache)
        await protocol.task
    assert not transport.paused and not protocol.queue and protocol.queued_bytes == 0
    assert transport.written.count(b"HTTP/1.1 200 OK") == 3
    protocol.connection_lost(None)


DATE = re.compile(rb"Date: [^\r]*\r\n")


def feed(listener: Listener, pieces: list[bytes]) -> bytes:
    """What the protocol writes when the stream arrives in `pieces` (date lines removed)."""
    protocol = Connection(listener)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for piece in pieces:
        protocol.data_received(piece)
    assert protocol.task is None  # every answer here comes from the cache
    protocol.connection_lost(None)
    return DATE.sub(b"", bytes(transport.written))


@pytest.fixture
async def warm(make_client: MakeClient) -> Listener:
    """A listener (not started) on the demo graph, KEY_A bound to it, emp-de cached."""
    client = await make_client(api_keys=f"{KEY_A}:demo")
    await client.app[STATE].decider.check("demo", "emp-de", "read", Resource("orders"))
    return new_listener(client.app[STATE])


async def test_answers_do_not_depend_on_how_the_stream_is_split(warm: Listener) -> None:
    stream = (
        request(CHECK)
        + request(b'{"subject": "emp-de", "action": 1}')
        + request(path="/elsewhere")
        + request({**CHECK, "resource": {"type": "orders", "restrictions": ["US"]}})
        + request(b"x" * (MIB + 1))  # 413, and the connection closes
        + request(CHECK)  # so this one is not answered
    )
    whole = feed(warm, [stream])
    statuses = [int(code) for code in re.findall(rb"HTTP/1.1 (\d{3}) ", whole)]
    assert statuses == [200, 422, 404, 200, 413]
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert feed(warm, pieces) == whole, cuts


async def test_a_response_head_is_formatted_once_a_second_per_kind_of_answer(
    warm: Listener,
) -> None:
    written = feed(warm, [request(path="/elsewhere") * 3 + request(method="GET")])
    answers = written.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"404", b"404", b"404", b"405"]
    for answer in answers:
        head, body = answer.split(b"\r\n\r\n", 1)
        assert int(re.findall(rb"Content-Length: (\d+)", head)[0]) == len(body)
    # Three 404s of one length and headers share a head; the 405 (with `Allow`) has its own.
    kinds = sorted(warm.heads)
    assert [(status, length > 0, lines) for status, _, length, lines in kinds] == [
        (404, True, ()),
        (405, True, (b"Allow: POST",)),
    ]
    warm._refresh_date()  # a new second: a new Date, heads formatted again
    assert warm.heads == {}


async def test_any_bytes_get_a_problem_or_nothing_never_an_exception(
    warm: Listener,
) -> None:
    valid = request(CHECK)
    rng = random.Random(11)
    for _ in range(500):
        if rng.random() < 0.5:  # noise
            stream = rng.randbytes(rng.randint(0, 300))
        else:  # a valid request with a few bytes changed, dropped or repeated
            stream = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(stream))
                choice = rng.random()
                if choice < 0.4:
                    stream[at] = rng.randrange(256)
                elif choice < 0.7:
                    del stream[at]
                else:
                    stream[at:at] = stream[at : at + rng.randint(1, 8)]
            stream = bytes(stream)
        written = feed(warm, [stream])
        for status in re.findall(rb"HTTP/1.1 (\d{3}) ", written):
            assert int(status) in {200, 400, 401, 404, 405, 413, 414, 415, 417, 422, 431}
