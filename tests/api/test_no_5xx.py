"""Property: no request body or header value reaches a 5xx on a decision surface.

A real server (aiohttp on a free port, the demo graph on fakeredis, the decision log on and
written through the JSON formatter) runs in a thread; hypothesis sends it generated bodies
(random bytes, random JSON, valid bodies with fields replaced by random JSON and hostile
strings) and generated header lists (credentials, consistency token, tenant, content type
and encoding, Host; repeated or not; any Unicode text) over `http.client`, which sends
header bytes as given. Every answer must be below 500, and nothing may be logged at error
level.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import logging
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupgate import log
from groupgate.api.app import create_app
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService
from tests.api.conftest import DEMO, POLICIES, document
from tests.api.test_bad_input import ENDPOINTS
from tests.support.servers import LOCALHOST, free_port

SURFACES = sorted(e for e in ENDPOINTS if not e.startswith("/v1/admin"))
METADATA = "/.well-known/authzen-configuration"

FIELDS = [
    "tenant", "subject", "action", "resource", "context", "explain", "min_revision", "checks",
    "resource_type", "company", "amount", "currency", "evaluations", "options", "page", "id",
    "type", "properties", "name", "restrictions", "vendor", "owner", "customer", "limit",
    "token", "evaluations_semantic",
]  # fmt: skip
HOSTILE = [
    "1e999999999", "1E-999999999", "\u00b2", "\u0661\u0662", "NaN", "-0", "9" * 40, "0.5",
    "c-parent", "emp-de", "cust-buyer", "orders", "read", "update", "route", "purchase", "GET",
    "/api/orders", "EUR", "USD", "demo", "a:b", "permit_on_first_permit", "", " ", "\x00",
]  # fmt: skip
HEADERS = [
    "Authorization", "X-Groupgate-Key", "X-Groupgate-Min-Revision", "X-Groupgate-Tenant",
    "Content-Type", "Content-Encoding", "Host", "X-Request-ID",
]  # fmt: skip
HEADER_HOSTILE = [
    "Bearer x", "Bearer ", "Basic Zm9vOmJhcg==", "\u00b2", "1" * 30, "18446744073709551616",
    "application/json", "text/plain", "application/yaml", "gzip", "deflate", "br", "x:99999",
    "x:y:z", "[", "", "localhost", "demo", "a:b",
]  # fmt: skip

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | text
    | st.sampled_from(HOSTILE)
)
keys = st.sampled_from(FIELDS) | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=24,
)
header_value = st.sampled_from(HEADER_HOSTILE) | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="\x7f"),
    max_size=24,
)
header_lists = st.lists(st.tuples(st.sampled_from(HEADERS), header_value), max_size=5)


def bodies(surface: str) -> st.SearchStrategy[bytes]:
    valid: dict[str, Any] = ENDPOINTS[surface]
    changed = st.dictionaries(keys, json_values, max_size=4).map(lambda c: {**valid, **c})
    nested = st.sampled_from(sorted(valid)).flatmap(
        lambda k: st.dictionaries(keys, json_values, max_size=4).map(
            lambda c: {**valid, k: {**valid[k], **c} if isinstance(valid[k], dict) else c}
        )
    )
    as_json = (changed | nested | json_values).map(orjson.dumps)
    return as_json | st.binary(max_size=120) | st.just(orjson.dumps(valid))


class Errors(logging.Handler):
    """Collect records at error level or above."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, Errors]]:
    """The demo on a real port, in a thread, with the decision log on; its error records."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()

    async def start() -> tuple[web.AppRunner, GraphService]:
        overrides = {"policies": str(POLICIES), "decision_log": True}
        config = load_config(env={}, overrides=overrides)
        service = await GraphService.open(load_policy(POLICIES), None, poll_interval=0.2)
        await service.admin.import_graph(None, document(DEMO))
        runner = web.AppRunner(create_app(config, service), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, LOCALHOST, port).start()
        return runner, service

    async def stop(runner: web.AppRunner, service: GraphService) -> None:
        await runner.cleanup()
        await service.close()

    decisions = logging.StreamHandler(io.StringIO())
    decisions.setFormatter(log.JsonFormatter())
    saved = (log.decisions.level, log.decisions.handlers[:], log.decisions.propagate)
    log.decisions.handlers[:] = [decisions]
    log.decisions.setLevel(logging.INFO)
    log.decisions.propagate = False
    errors = Errors()
    watched = [logging.getLogger("groupgate"), logging.getLogger("aiohttp")]
    for logger in watched:
        logger.addHandler(errors)
    runner, service = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    try:
        yield port, errors
    finally:
        asyncio.run_coroutine_threadsafe(stop(runner, service), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        for logger in watched:
            logger.removeHandler(errors)
        log.decisions.setLevel(saved[0])
        log.decisions.handlers[:] = saved[1]
        log.decisions.propagate = saved[2]


def send(port: int, method: str, path: str, body: bytes, headers: list[tuple[str, str]]) -> int:
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=30)
    try:
        names = {name for name, _ in headers}
        connection.putrequest(method, path, skip_host="Host" in names, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value.encode())
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def check_answer(status: int, errors: Errors) -> None:
    assert status < 500, status
    assert not errors.records, [r.getMessage() for r in errors.records]


PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("surface", SURFACES)
def test_no_body_or_header_reaches_a_5xx(server: tuple[int, Errors], surface: str) -> None:
    port, errors = server

    @PROPERTY
    @given(body=bodies(surface), headers=header_lists)
    def run(body: bytes, headers: list[tuple[str, str]]) -> None:
        check_answer(send(port, "POST", surface, body, headers), errors)

    run()


def test_metadata_never_reaches_a_5xx(server: tuple[int, Errors]) -> None:
    port, errors = server

    @PROPERTY
    @given(headers=header_lists)
    def run(headers: list[tuple[str, str]]) -> None:
        check_answer(send(port, "GET", METADATA, b"", headers), errors)

    run()
