"""The store suite leaves a real Redis as it found it: a test's tenant is removed afterwards."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import redis

from groupgate.model import Catalog
from groupgate.store import keys
from groupgate.store.service import GraphService
from tests.conftest import TEST_REDIS_VARIABLE
from tests.support.servers import RedisProcess

from .conftest import forget_tenant
from .data import acme


async def test_forget_tenant_removes_only_the_tenants_keys(
    catalog: Catalog, real_redis_db: str
) -> None:
    client = redis.Redis.from_url(real_redis_db, socket_timeout=5)
    try:
        client.set("someone-elses", "1")
        client.sadd(keys.TENANTS, "someone-elses-tenant")
        service = await GraphService.open(catalog, real_redis_db, poll_interval=0.2)
        try:
            await service.admin.import_graph(None, acme("t-cleanup"))
        finally:
            await service.close()
        assert any(k.startswith(b"gg:{t-cleanup}:") for k in client.scan_iter())
        forget_tenant(real_redis_db, "t-cleanup")
        assert set(client.scan_iter()) == {b"someone-elses", keys.TENANTS.encode()}
        assert client.smembers(keys.TENANTS) == {b"someone-elses-tenant"}
    finally:
        client.close()


def test_real_redis_is_the_runs_own_server_unless_one_is_named(
    real_redis_url: str, session_redis: RedisProcess
) -> None:
    if os.environ.get(TEST_REDIS_VARIABLE):
        assert real_redis_url == os.environ[TEST_REDIS_VARIABLE]
    else:
        assert real_redis_url == session_redis.url
        assert session_redis.process is not None and session_redis.process.poll() is None
    assert urlsplit(session_redis.url).port == session_redis.port
