"""Fixtures of the gateway recipe tests: groupgate, the recording backend, the recipes.

groupgate and the backend run in the test's event loop on free loopback ports; the proxy is
the real one (tests/support/servers.py), started from the recipe in `deploy/gateways/` with
only its addresses (and HAProxy's Lua path) substituted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from groupgate.api.app import create_app
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService
from tests.api.conftest import DEMO, POLICIES, REPO, document
from tests.gateways.matrix import SECRET, Backend
from tests.support.servers import free_port

RECIPES = REPO / "deploy" / "gateways"
#: The addresses the recipes are written with, as a newcomer would run them.
LISTEN, GROUPGATE, UPSTREAM = "127.0.0.1:8000", "127.0.0.1:8181", "127.0.0.1:8080"

StartSidecar = Callable[[str], Awaitable[int]]


def recipe(name: str, substitutions: dict[str, str]) -> str:
    """The recipe file `name` with each key replaced by its value (each must occur)."""
    text = (RECIPES / name).read_text()
    for old, new in substitutions.items():
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def addresses(front: int, sidecar: int, backend: int) -> dict[str, str]:
    return {
        LISTEN: f"127.0.0.1:{front}",
        GROUPGATE: f"127.0.0.1:{sidecar}",
        UPSTREAM: f"127.0.0.1:{backend}",
    }


@pytest.fixture
async def sidecar() -> AsyncIterator[StartSidecar]:
    """`await start(kind) -> port`: groupgate on the demo graph, verifying tokens with
    `SECRET`, with `gateway_kind` set to `kind`."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def start(kind: str) -> int:
        overrides = {"policies": str(POLICIES), "jwt_secret": SECRET, "gateway_kind": kind}
        config = load_config(env={}, overrides=overrides)
        service = await GraphService.open(load_policy(POLICIES), None)
        await service.admin.import_graph(None, document(DEMO))
        runner = web.AppRunner(create_app(config, service), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()

        async def stop() -> None:
            await runner.cleanup()
            await service.close()

        stops.append(stop)
        return port

    yield start
    for stop in stops:
        await stop()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    """The upstream behind the proxy, recording every request that reaches it."""
    server = Backend()
    await server.start(free_port())
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def headerless_auth() -> AsyncIterator[int]:
    """A stand-in for groupgate that allows everything and sends no identity headers: what
    a proxy does then shows whether a client's identity headers could ever get through."""

    async def allow(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", allow)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
