"""Fixtures of the store suite: every test runs on fakeredis and on a real Redis server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from groupgate.model import Catalog
from groupgate.policy import load_policy
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
def tenant() -> str:
    return "t-" + uuid.uuid4().hex[:12]
