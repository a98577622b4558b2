"""Shared fixtures: real Redis servers, a local Redis Cluster, nginx, Caddy and HAProxy
(tests/support).

Tests leave the machine as they found it: the real-Redis tests use a redis-server this test
run starts on a free port (stopped at the end of the session), or the server named by
GROUPGATE_TEST_REDIS_URL, on which they touch only keys they create (random tenant names,
removed afterwards) and never flush. No test uses whatever answers on 127.0.0.1:6379.

A fixture whose server is missing skips its tests, or fails them when GROUPGATE_REQUIRE_REDIS=1,
GROUPGATE_REQUIRE_NGINX=1 or (Caddy, HAProxy) GROUPGATE_REQUIRE_PROXIES=1 is set, as
`scripts/check` (and so CI) does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import ParamSpec, Protocol, TypeVar

import pytest
import redis

from tests.support.servers import (
    Caddy,
    HAProxy,
    Nginx,
    RedisCluster,
    RedisProcess,
    RedisSentinel,
)

#: Names a Redis server the real-Redis tests may use instead of starting their own.
TEST_REDIS_VARIABLE = "GROUPGATE_TEST_REDIS_URL"
SCRATCH_DB = 15


@pytest.fixture(scope="session")
def session_redis() -> Iterator[RedisProcess]:
    """A redis-server this test run started on a free port, shared by the whole session.

    Nobody else uses it, so tests may empty its databases. Stopped (and its folder removed)
    at the end of the session.
    """
    yield from _redis_process()


def _redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def real_redis_url(request: pytest.FixtureRequest) -> str:
    """A real Redis server: GROUPGATE_TEST_REDIS_URL if set, else `session_redis`.

    The server may be someone else's: tests use random tenant names, delete what they wrote
    and never flush. A test that needs an empty database uses `real_redis_db`.
    """
    external = os.environ.get(TEST_REDIS_VARIABLE)
    if not external:
        server: RedisProcess = request.getfixturevalue("session_redis")
        return server.url
    client = redis.Redis.from_url(external, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        message = f"{TEST_REDIS_VARIABLE}={external} does not answer ({error})"
        if os.environ.get("GROUPGATE_REQUIRE_REDIS") == "1":
            pytest.fail(f"{message} and GROUPGATE_REQUIRE_REDIS=1")
        pytest.skip(message)
    finally:
        client.close()
    return external


@pytest.fixture
def real_redis_db(session_redis: RedisProcess) -> Iterator[str]:
    """A URL to db 15 of the test run's own Redis, emptied before and after the test.

    Always the private `session_redis`, never GROUPGATE_TEST_REDIS_URL: flushing is only for
    a server this test run started.
    """
    url = session_redis.url.rsplit("/", 1)[0] + f"/{SCRATCH_DB}"
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
    yield from _redis_process()


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
def redis_sentinel() -> Iterator[RedisSentinel]:
    """A primary, a replica and three Sentinels (`.url` is `redis+sentinel://...`), private to
    the test, which may kill the primary; all stopped afterwards."""
    setup = RedisSentinel()
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


class Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)
P = ParamSpec("P")


def _servers(make: Callable[P, S]) -> Iterator[Callable[P, S]]:
    """Yield a function that starts servers with `make`; every one started is stopped after."""
    started: list[S] = []

    def start(*args: P.args, **kwargs: P.kwargs) -> S:
        server = make(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def nginx_factory() -> Iterator[Callable[[str, int], Nginx]]:
    """Yield `start(conf, port) -> Nginx`; every nginx started is stopped at teardown."""
    yield from _servers(Nginx)


@pytest.fixture
def caddy_factory() -> Iterator[Callable[[str, int], Caddy]]:
    """Yield `start(caddyfile, port) -> Caddy`; every Caddy started is stopped at teardown."""
    yield from _servers(Caddy)


@pytest.fixture
def haproxy_factory() -> Iterator[Callable[[str, int, Mapping[str, str]], HAProxy]]:
    """Yield `start(config, port, files) -> HAProxy` (`files`: name -> text, written beside
    the config); every HAProxy started is stopped at teardown."""
    yield from _servers(HAProxy)
