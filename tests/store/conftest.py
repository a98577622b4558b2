"""Fixtures of the store suite: every test runs on fakeredis and on a real Redis server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from groupgate.model import Catalog
from groupgate.policy import load_policy
from groupgate.store import keys
from groupgate.store.service import GraphService

POLICIES = Path(__file__).resolve().parents[2] / "policies"

Opener = Callable[..., Awaitable[GraphService]]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_policy(POLICIES)


@pytest.fixture(params=["fakeredis", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """The Redis URL of the backend under test; None selects a shared fakeredis server.

    The same suite runs on fakeredis, on a real Redis server and on a Redis Cluster of three
    local nodes (`redis+cluster://` URL).
    """
    if request.param == "fakeredis":
        return None
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return "redis+cluster://" + cluster.url.split("://", 1)[1]
    url: str = request.getfixturevalue("real_redis_url")
    return url


@pytest.fixture
async def open_service(catalog: Catalog, backend: str | None) -> AsyncIterator[Opener]:
    """Open services on the backend; two services opened by one test share its data."""
    import fakeredis

    server = fakeredis.FakeServer()
    opened: list[GraphService] = []

    async def open_(**options: Any) -> GraphService:
        options.setdefault("poll_interval", 0.2)
        if backend is None:
            client = fakeredis.FakeAsyncRedis(server=server)
            service = GraphService(catalog, client, **options)
            await service.start()
        else:
            service = await GraphService.open(catalog, backend, **options)
        opened.append(service)
        return service

    yield open_
    for service in opened:
        await service.close()


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> Iterator[str]:
    """A random tenant name; on a real Redis server, its keys are removed after the test.

    The server may be someone else's (GROUPGATE_TEST_REDIS_URL): the test leaves behind
    nothing it wrote, and touches no other key than the tenant's own and its member of the
    tenant set. (The Cluster backend is a private server, stopped after the module.)
    """
    name = "t-" + uuid.uuid4().hex[:12]
    backend = request.getfixturevalue("backend") if "backend" in request.fixturenames else None
    yield name
    if backend is not None and not backend.startswith("redis+cluster://"):
        forget_tenant(backend, name)


def forget_tenant(url: str, tenant: str) -> None:
    """Delete every key of `tenant` and its member of the tenant set, nothing else."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        doomed = list(client.scan_iter(match=keys.tenant_prefix(tenant) + "*", count=500))
        for start in range(0, len(doomed), 500):
            client.delete(*doomed[start : start + 500])
        client.srem(keys.TENANTS, tenant)
    finally:
        client.close()


async def import_settled(
    service: GraphService, document: Any, *readers: GraphService, limit: float = 5.0
) -> Any:
    """Import `document` through `service`, then wait until it (and every one of `readers`)
    has applied a change event since: the import's own, which drops whatever is cached of
    the tenant whenever it comes. A test that looks at the cache right after an import would
    otherwise race it (seen on the Cluster, whose events come through another connection)."""
    watching = (service, *readers)
    before = [s.events for s in watching]
    written = await service.admin.import_graph(None, document)
    deadline = time.monotonic() + limit
    while any(s.events <= n for s, n in zip(watching, before, strict=True)):
        assert time.monotonic() < deadline, "the import's change event never came"
        await asyncio.sleep(0.01)
    return written
