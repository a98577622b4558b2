"""Shared fixtures: real Redis servers, a local Redis Cluster and nginx (tests/support)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.support.servers import Nginx, RedisCluster, RedisProcess

REAL_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def real_redis_url() -> str:
    """The Redis server on 127.0.0.1:6379; tests use random tenant names and clean up."""
    client = redis.Redis.from_url(REAL_REDIS, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("GROUPGATE_REQUIRE_REDIS") == "1":
            pytest.fail("no Redis answers on 127.0.0.1:6379 and GROUPGATE_REQUIRE_REDIS=1")
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        client.close()
    return REAL_REDIS


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A private redis-server the test may stop and restart."""
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of three local nodes, started once per session."""
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def nginx_factory() -> Iterator[Callable[[str, int], Nginx]]:
    """Start nginx with a config (`@PATHS@` is replaced by temp paths); stopped afterwards."""
    started: list[Nginx] = []

    def start(conf: str, port: int) -> Nginx:
        server = Nginx(conf, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
