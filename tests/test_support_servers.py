"""The server fixtures themselves work: real Redis, a private redis-server, a cluster, nginx."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Callable

import pytest
import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient

from tests.support.servers import Nginx, RedisCluster, RedisProcess, free_port


def test_real_redis_answers(real_redis_url: str) -> None:
    client = redis.Redis.from_url(real_redis_url, socket_timeout=2)
    try:
        assert client.ping()
    finally:
        client.close()


def test_real_redis_db_is_scratch(real_redis_db: str) -> None:
    assert real_redis_db.endswith("/15")
    client = redis.Redis.from_url(real_redis_db, socket_timeout=2)
    try:
        assert client.dbsize() == 0
        client.set("gg-scratch", "1")
    finally:
        client.close()


def test_redis_process_stops_and_restarts_on_its_port(redis_process: RedisProcess) -> None:
    port = redis_process.port
    client = redis.Redis.from_url(redis_process.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.set("k", "v")
        assert client.get("k") == b"v"
        redis_process.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_process.restart()
        assert redis_process.port == port
        assert client.ping()
        assert client.get("k") is None  # no persistence: a restart starts empty
    finally:
        client.close()


@pytest.mark.cluster
def test_cluster_set_and_get(redis_cluster: RedisCluster) -> None:
    assert redis_cluster.url.startswith("redis://127.0.0.1:")
    nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call]
        for host, port in redis_cluster.startup_nodes
    ]
    client = ClusterClient(startup_nodes=nodes, socket_timeout=2)
    try:
        tag = "{t-" + uuid.uuid4().hex[:8] + "}"
        client.mset_nonatomic({f"{tag}:a": "1", f"{tag}:b": "2"})
        assert client.get(f"{tag}:a") == b"1"
        assert client.mget_nonatomic([f"{tag}:a", f"{tag}:b"]) == [b"1", b"2"]
        assert len(client.get_primaries()) == 3  # type: ignore[no-untyped-call]
        client.delete(f"{tag}:a", f"{tag}:b")
    finally:
        client.close()


@pytest.mark.nginx
def test_nginx_serves_its_config(nginx_factory: Callable[[str, int], Nginx]) -> None:
    port = free_port()
    conf = f"http {{ server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }} }}\n"
    server = nginx_factory(conf, port)
    with urllib.request.urlopen(server.url + "/", timeout=5) as response:  # noqa: S310
        assert response.status == 204
