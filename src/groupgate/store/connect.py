"""Connecting to the graph store: which client a `--redis` URL makes.

    (none)                                    the embedded in-process store (fakeredis)
    redis://, rediss://, unix://              one Redis, through a bounded blocking pool
    redis+cluster://host:port                 a Redis Cluster (and one node for pub/sub)
    redis+sentinel://[:pw@]host:port,.../name the primary the Sentinels name `name`,
                                              followed through failovers

Every pool is bounded (`pool_size`): a request past it waits up to `pool_timeout` for a
connection, then fails (closed). `GraphService.open` turns a `Link` into a service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from groupgate.store.ops import Client
from groupgate.store.replication import NodeClient


@dataclass(slots=True)
class Link:
    """The clients of one store: the one for commands, the one for pub/sub (None: the same),
    how to reach one Cluster node (for WAIT), and the extra clients to close."""

    client: Client
    subscriber: Redis | None = None
    node_client: NodeClient | None = None
    owned: list[Redis] = field(default_factory=list)
    #: The embedded in-process store (no replicas, nothing persisted).
    embedded: bool = False


def connect(
    redis_url: str | None, pool_size: int, pool_timeout: float, socket_timeout: float
) -> Link:
    """The clients for `redis_url` (None: the embedded store); connects lazily."""
    subscriber: Redis | None = None
    node_client: NodeClient | None = None
    owned: list[Redis] = []
    client: Client
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    if redis_url is None:
        import fakeredis

        return Link(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), embedded=True)
    if "+cluster://" in redis_url:
        plain = redis_url.replace("+cluster://", "://", 1)
        client = RedisCluster.from_url(plain, max_connections=pool_size, **timeouts)
        # Classic pub/sub messages reach every node of a cluster: one node suffices.
        subscriber = Redis.from_url(plain, socket_connect_timeout=socket_timeout)

        def node_client(host: str, port: int) -> Redis:
            pool = BlockingConnectionPool.from_url(
                _with_address(plain, host, port),
                max_connections=pool_size,
                timeout=pool_timeout,
                **timeouts,
            )
            return Redis(connection_pool=pool)

    elif redis_url.startswith("redis+sentinel://"):
        addresses, name, password = _sentinel_address(redis_url)
        sentinel = Sentinel(addresses, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
        owned = list(sentinel.sentinels)
        client = sentinel.master_for(
            name,
            connection_pool_class=_BlockingSentinelPool,
            max_connections=pool_size,
            timeout=pool_timeout,
            password=password,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
    else:
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=pool_size, timeout=pool_timeout, **timeouts
        )
        client = Redis(connection_pool=pool)
    return Link(client, subscriber, node_client, owned)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Connections to the primary Sentinel names, bounded as the other pools are: a request
    past `max_connections` waits up to `timeout` for one (then a connection error)."""


def _sentinel_address(url: str) -> tuple[list[tuple[str, int]], str, str | None]:
    """`redis+sentinel://[:password@]host:port,host:port/name` -> (Sentinel addresses,
    primary name, password of the primary)."""
    rest = url.removeprefix("redis+sentinel://")
    hosts, _, name = rest.partition("/")
    userinfo, _, hosts = hosts.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) or None
    addresses: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"redis+sentinel: expected host:port, got {item!r}")
        addresses.append((host.strip("[]"), int(port)))
    name = name.strip("/")
    if not name:
        raise ValueError("redis+sentinel: the URL names no primary (…/name)")
    return addresses, name, password


def _with_address(url: str, host: str, port: int) -> str:
    """`url` with its host and port replaced (credentials and options kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
