"""Shared fixtures: real Redis servers, a local Redis Cluster, nginx, Caddy and HAProxy
(tests/support).

A fixture whose server is missing skips its tests, or fails them when GROUPGATE_REQUIRE_REDIS=1,
GROUPGATE_REQUIRE_NGINX=1 or (Caddy, HAProxy) GROUPGATE_REQUIRE_PROXIES=1 is set, as
`scripts/check` (and so CI) does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

import pytest
import redis

from tests.support.servers import Caddy, HAProxy, Nginx, RedisCluster, RedisProcess

REAL_REDIS = "redis://127.0.0.1:6379/0"
SCRATCH_DB = 15


@pytest.fixture(scope="session")
def real_redis_url() -> str:
    """The Redis server on 127.0.0.1:6379; tests use random tenant names and clean up."""
    client = redis.Redis.from_url(REAL_REDIS, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        message = f"no Redis answers on 127.0.0.1:6379 ({error})"
        if os.environ.get("GROUPGATE_REQUIRE_REDIS") == "1":
            pytest.fail(f"{message} and GROUPGATE_REQUIRE_REDIS=1")
        pytest.skip(message)
    finally:
        client.close()
    return REAL_REDIS


@pytest.fixture
def real_redis_db(real_redis_url: str) -> Iterator[str]:
    """A URL to the scratch logical db 15 of the real Redis, emptied before and after the test."""
    url = real_redis_url.rsplit("/", 1)[0] + f"/{SCRATCH_DB}"
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A private redis-server the test may stop and restart; always stopped afterwards."""
    server = RedisProcess()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of three local nodes (`.startup_nodes`, `.url`), one per test module."""
    cluster = RedisCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def nginx_factory() -> Iterator[Callable[[str, int], Nginx]]:
    """Yield `start(conf, port) -> Nginx`; every nginx started is stopped at teardown."""
    started: list[Nginx] = []

    def start(conf: str, port: int) -> Nginx:
        server = Nginx(conf, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def caddy_factory() -> Iterator[Callable[[str, int], Caddy]]:
    """Yield `start(caddyfile, port) -> Caddy`; every Caddy started is stopped at teardown."""
    started: list[Caddy] = []

    def start(caddyfile: str, port: int) -> Caddy:
        server = Caddy(caddyfile, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def haproxy_factory() -> Iterator[Callable[[str, int, Mapping[str, str]], HAProxy]]:
    """Yield `start(config, port, files) -> HAProxy` (`files`: name -> text, written beside
    the config); every HAProxy started is stopped at teardown."""
    started: list[HAProxy] = []

    def start(config: str, port: int, files: Mapping[str, str]) -> HAProxy:
        server = HAProxy(config, port, files)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
