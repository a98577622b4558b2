"""Replica acknowledgement of writes: `WAIT` on the connection that made the write.

Redis answers a write once the primary has it; a failover to a replica that had not yet
received it loses the write, and a revoke lost so brings the grant back. So a write waits
(`WAIT numreplicas timeout`) for its replicas before it is answered. WAIT counts the replicas
that hold everything *its own connection* wrote: the write and its WAIT go over one
connection (`bound`), on a Cluster one to the node of the tenant's slot.

`replicas=None` (auto) waits for as many replicas as the primary reports connected (`INFO
replication`, re-read at most every `refresh` seconds, and again when a wait falls short:
a replica that went away, or a new primary without replicas, is not waited for). A fixed
number waits for that many, whatever is connected. 0 never waits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from groupgate.store import keys

T = TypeVar("T")

#: Builds a client of one Cluster node from its host and port (connections bounded).
NodeClient = Callable[[str, int], Redis]


class Replication:
    """How many replicas a tenant's write waits for, and the waiting."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        replicas: int | None,
        wait_ms: int,
        refresh: float,
        node_client: NodeClient | None = None,
    ) -> None:
        self.client = client
        self.replicas = replicas
        self.wait_ms = wait_ms
        self.refresh = refresh
        self._node_client = node_client
        #: Node name ("" for a single primary) -> (read at, connected replicas).
        self._connected: dict[str, tuple[float, int]] = {}
        self._nodes: dict[str, Redis] = {}

    async def wanted(self, tenant: str) -> int:
        """The replicas the next write of `tenant` waits for (0: it does not wait)."""
        if self.replicas is not None:
            return self.replicas
        name, primary = self._primary(tenant)
        found = self._connected.get(name)
        if found is not None and time.monotonic() - found[0] < self.refresh:
            return found[1]
        return await self._count(name, primary)

    async def write(
        self, tenant: str, run: Callable[[Redis | None], Awaitable[T]]
    ) -> tuple[T, int, int]:
        """`run(client)` a write of the tenant, then wait for the replicas on the connection
        it went through: (its result, replicas that acknowledged, replicas waited for).
        `run` gets None (its usual client) when there is nothing to wait for."""
        wanted = await self.wanted(tenant)
        if not wanted:
            return await run(None), 0, 0
        async with self.bound(tenant) as bound:
            result = await run(bound)
            acked, wanted = await self.wait(bound, tenant, wanted)
        return result, acked, wanted

    @contextlib.asynccontextmanager
    async def bound(self, tenant: str) -> AsyncIterator[Redis]:
        """A client of the tenant's primary bound to one pooled connection, released after."""
        bound = self._primary(tenant)[1].client()
        try:
            yield bound
        finally:
            await bound.aclose()

    async def wait(self, bound: Redis, tenant: str, wanted: int) -> tuple[int, int]:
        """WAIT on `bound` (the connection that wrote): (replicas that acknowledged, replicas
        waited for). In auto mode a short count is checked against the replicas connected
        now, which it then waits for at most."""
        acked = int(await bound.wait(wanted, self.wait_ms))
        if acked < wanted and self.replicas is None:
            wanted = min(wanted, await self._count(self._primary(tenant)[0], bound))
        return acked, wanted

    async def close(self) -> None:
        """Close the Cluster nodes' clients opened for bound writes."""
        nodes, self._nodes = self._nodes, {}
        for node in nodes.values():
            await node.aclose(close_connection_pool=True)

    def _primary(self, tenant: str) -> tuple[str, Redis]:
        """The name and client of the primary that holds the tenant's keys."""
        if not isinstance(self.client, RedisCluster):
            return "", self.client
        node = self.client.get_node_from_key(keys.meta(tenant))
        if node is None or self._node_client is None:
            raise RuntimeError("the Cluster client knows no node for the tenant's slot")
        found = self._nodes.get(node.name)
        if found is None:
            found = self._nodes[node.name] = self._node_client(node.host, int(node.port))
        return node.name, found

    async def _count(self, name: str, primary: Redis) -> int:
        info = await primary.info("replication")
        count = int(info.get("connected_slaves", 0))
        self._connected[name] = (time.monotonic(), count)
        return count
