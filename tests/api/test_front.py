"""The HTTP front of both listeners (`api/front.py` on aiohttp, `api/http11.py` on httptools):
request timeout, connection cap, half-close and malformed HTTP, each asked of both ports.

`tests/http` holds the two listeners to the same answers over many more cases; these tests
pin the behaviours that protect the process (what a slow or hostile client can hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import MakeClient

KEY = "front-key-0123456789abcdef"
CHECK = orjson.dumps(
    {
        "subject": {"id": "emp-de"},
        "action": "update",
        "resource": {"type": "orders", "id": "o-17", "restrictions": ["DE"]},
    }
)
HEAD = (
    b"POST /v1/check HTTP/1.1\r\nHost: pdp\r\nAuthorization: Bearer %s\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
)


def check(body: bytes = CHECK) -> bytes:
    return HEAD % (KEY.encode(), len(body)) + body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def ports(make_client: MakeClient) -> AsyncIterator[dict[str, int]]:
    """Both listeners of one app: a 1 s request timeout and a cap of 4 connections."""
    decision = free_port()
    client: TestClient[Any, Any] = await make_client(
        api_keys=KEY,
        decision_port=decision,
        http_request_timeout=1,
        http_max_connections=4,
    )
    assert client.server.port is not None
    yield {"main": client.server.port, "decision": decision}


async def exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send `data`, optionally shut the sending side, and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def problem_type(answer: bytes) -> str:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/problem+json" in head, answer
    return str(orjson.loads(body)["type"])


LISTENERS = ("main", "decision")


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_request_followed_by_a_half_close_is_answered(
    ports: dict[str, int], listener: str
) -> None:
    answer = await exchange(ports[listener], check(), half_close=True)
    assert status_of(answer) == 200
    assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["allow"] is True


@pytest.mark.parametrize("listener", LISTENERS)
async def test_pipelined_requests_then_a_half_close_are_all_answered(
    ports: dict[str, int], listener: str
) -> None:
    answer = await exchange(ports[listener], check() * 3, half_close=True)
    assert answer.count(b"HTTP/1.1 200 OK") == 3


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_body_that_never_ends_gets_a_408_and_the_connection_closes(
    ports: dict[str, int], listener: str
) -> None:
    answer = await exchange(ports[listener], check()[:-10])
    assert status_of(answer) == 408
    assert problem_type(answer) == "urn:groupgate:problem:timeout"


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_head_that_never_ends_gets_a_408(ports: dict[str, int], listener: str) -> None:
    answer = await exchange(ports[listener], b"POST /v1/check HTTP/1.1\r\nHost: pdp\r\n")
    assert status_of(answer) == 408
    assert problem_type(answer) == "urn:groupgate:problem:timeout"


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_half_close_inside_the_body_is_a_400_not_a_stall(
    ports: dict[str, int], listener: str
) -> None:
    answer = await exchange(ports[listener], check()[:-10], half_close=True)
    assert status_of(answer) == 400
    assert problem_type(answer) == "urn:groupgate:problem:invalid-http"


@pytest.mark.parametrize("listener", LISTENERS)
async def test_a_half_close_inside_the_head_closes_without_an_answer(
    ports: dict[str, int], listener: str
) -> None:
    assert await exchange(ports[listener], b"POST /v1/check HTTP/1.1\r\nHo", half_close=True) == b""


@pytest.mark.parametrize("listener", LISTENERS)
async def test_connections_past_the_cap_get_a_503_with_retry_after(
    ports: dict[str, int], listener: str
) -> None:
    port = ports[listener]
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    try:
        await asyncio.sleep(0.1)
        answer = await exchange(port, b"")
        head = answer.partition(b"\r\n\r\n")[0]
        assert status_of(answer) == 503 and b"Retry-After: 1" in head
        assert problem_type(answer) == "urn:groupgate:problem:overloaded"
    finally:
        for _, writer in held:
            writer.close()
    await asyncio.sleep(0.2)  # the held ones are gone: the listener serves again
    assert status_of(await exchange(port, check(), half_close=True)) == 200


@pytest.mark.parametrize("listener", LISTENERS)
async def test_malformed_http_is_a_problem_logged_without_a_traceback(
    ports: dict[str, int], listener: str, caplog: pytest.LogCaptureFixture
) -> None:
    smuggled = (
        b"POST /v1/check HTTP/1.1\r\nHost: pdp\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    with caplog.at_level(logging.DEBUG):
        answer = await exchange(ports[listener], smuggled)
    assert status_of(answer) == 400
    assert problem_type(answer) == "urn:groupgate:problem:invalid-http"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_expect_follows_each_routes_body_limit(make_client: MakeClient) -> None:
    client: TestClient[Any, Any] = await make_client(api_keys=KEY, max_body_bytes=2048)
    head = (
        b"POST %s HTTP/1.1\r\nHost: pdp\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
    )
    for path, first in (
        (b"/v1/admin/tenants/demo/import", b"HTTP/1.1 100 "),
        (b"/v1/check", b"HTTP/1.1 413 "),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        try:
            writer.write(head % path)
            # The import takes bodies up to max_import_bytes: it is told to send; a check's
            # body over max_body_bytes is refused at once, without a 100.
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).startswith(first)
        finally:
            writer.close()
