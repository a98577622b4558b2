"""`GraphService`: the store's composition root. It builds, over one Redis (or a Cluster, or
the embedded fakeredis), the `Decider` and the `Admin` the API talks to, runs the background
tasks that keep the cache honest, swaps the policy set, and closes it all.

- `decider` (`decider.StoreDecider`): every decision, over `entries`;
- `entries` (`cached.CachedEntries`): the entries of `reader` (`reader.StoreReader`, which
  resolves and compiles subjects) kept in `cache` (`cache.ProfileCache`);
- `admin` (`admin.StoreAdmin`): validated admin writes and the admin's reads;
- `flows`, `ledger`: approval flows and the spend ledger;
- `freshness` (`freshness.Freshness`): change events and the revision poll;
- `guard` (`guard.Guard`): store errors fail closed and are counted; when the store last
  answered (the staleness bound).

Decisions on a cached subject touch no Redis: a dictionary look-up for the compiled profile
and the engine's `check`. A miss resolves the subject in one script call. Freshness comes
from change events (pub/sub), a revision poll as the safety net, and consistency tokens
(`min_revision`): a check that asks for revision N is answered from data at least that fresh.

A check with a token is answered from the cache only once the store confirmed, in a read
made for it, that it still holds that revision: a store that went back below the token
(writes lost in a failover, a restore) is never answered from the cache but refuses the
token (`Conflict`), and the poll (every `poll_interval` seconds) drops what the cache holds
of a store that went back, so a check without a token lags such a store by that much at most.

When Redis cannot be reached, cached answers are served and flagged `stale` for up to
`max_staleness` seconds after the last successful contact; after that, and for anything not
cached, the service fails closed with `StoreUnavailable`. A check with a token cannot be
confirmed then, and fails closed too.

Writes wait for the primary's replicas (`replication.Replication`); `open` connects to a
single Redis, a Cluster (`redis+cluster://`) or a primary found through Sentinel
(`redis+sentinel://host:port,host:port/name`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from groupgate.engine.profile import ProfileCompiler
from groupgate.errors import StoreUnavailable
from groupgate.model import Catalog
from groupgate.store.admin import StoreAdmin
from groupgate.store.cache import ProfileCache
from groupgate.store.cached import CachedEntries
from groupgate.store.connect import connect
from groupgate.store.decider import StoreDecider
from groupgate.store.events import EventLog
from groupgate.store.flows import Flows
from groupgate.store.freshness import Freshness
from groupgate.store.guard import STORE_ERRORS, Guard
from groupgate.store.ledger import Ledger
from groupgate.store.ops import Client, Graphs
from groupgate.store.reader import StoreReader
from groupgate.store.replication import NodeClient, Replication
from groupgate.store.writes import DEFAULT_EVENTS_MAXLEN

log = logging.getLogger("groupgate.store")


class GraphService:
    """The decider and the admin writer over one store, with their lifecycle."""

    def __init__(
        self,
        catalog: Catalog,
        client: Client,
        *,
        subscriber: Redis | None = None,
        cache_size: int = 100_000,
        max_staleness: float = 30.0,
        poll_interval: float = 0.25,
        spend_retention: int = 400 * 86_400,
        events_maxlen: int = DEFAULT_EVENTS_MAXLEN,
        approval_ttl: float = 7 * 24 * 3600.0,
        approval_sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        write_replicas: int | None = 0,
        write_wait_ms: int = 1000,
        node_client: NodeClient | None = None,
        owned: Sequence[Redis] = (),
    ) -> None:
        self.catalog = catalog
        self.client = client
        self.replication = Replication(
            client,
            replicas=write_replicas,
            wait_ms=write_wait_ms,
            refresh=max(poll_interval, 0.1),
            node_client=node_client,
        )
        self.graphs = Graphs(client, self.replication)
        self.guard = Guard()
        self.event_log = EventLog(events_maxlen, clock)
        self.admin = StoreAdmin(self.graphs, catalog, self.guard, self.event_log)
        self.flows = Flows(
            client, self.graphs, self.event_log, self.guard, ttl=approval_ttl, clock=clock
        )
        self.sweep_interval = approval_sweep_interval
        self.cache = ProfileCache(cache_size, clock)
        self.ledger = Ledger(client, spend_retention, self.replication)
        cache = self.cache

        def now() -> float:
            """The cache's wall clock, read at each call: tests replace `cache.clock`."""
            return cache.clock()

        self.reader = StoreReader(
            self.graphs, ProfileCompiler(catalog), self.guard, now, self.admin.groups
        )
        self.entries = CachedEntries(
            self.reader,
            self.cache,
            self.guard,
            self.graphs.meta,
            max_staleness=max_staleness,
            poll_interval=poll_interval,
        )
        self.decider = StoreDecider(
            catalog, self.entries, self.graphs, self.flows, self.ledger, self.guard, now, client
        )
        self._subscriber = subscriber if subscriber is not None else client
        #: More clients to close with the service (those of the Sentinels).
        self._owned = tuple(owned)
        self._tasks: list[asyncio.Task[None]] = []
        self.freshness = Freshness(
            self.graphs,
            client,
            self._subscriber,
            self.cache,
            poll_interval,
            self.guard,
        )

    @property
    def events(self) -> int:
        """Change events applied (`Freshness`)."""
        return self.freshness.events

    def use_catalog(self, catalog: Catalog) -> None:
        """Decide with another policy set from now on (a reload): swap the catalog of the
        decider and of the admin writer and the reader's compiler, and drop every compiled
        profile, in one step."""
        self.catalog = catalog
        self.decider.catalog = catalog
        self.reader.compiler = ProfileCompiler(catalog)
        self.admin.catalog = catalog
        self.cache.drop_profiles()

    def stats(self) -> dict[str, int]:
        """Counters for /metrics."""
        return {
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_entries": len(self.cache.entries),
            "cache_evictions": self.cache.evictions,
            "cache_flushes": self.cache.flushes,
            "store_errors": self.guard.errors,
            "change_events": self.freshness.events,
        }

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        catalog: Catalog,
        redis_url: str | None,
        *,
        cache_size: int = 100_000,
        max_staleness: float = 30.0,
        poll_interval: float = 0.25,
        pool_size: int = 64,
        pool_timeout: float = 2.0,
        socket_timeout: float = 2.0,
        spend_retention: int = 400 * 86_400,
        events_maxlen: int = DEFAULT_EVENTS_MAXLEN,
        approval_ttl: float = 7 * 24 * 3600.0,
        approval_sweep_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
        write_replicas: int | None = None,
        write_wait_ms: int = 1000,
    ) -> GraphService:
        """Connect (no URL: the embedded in-process store), start listening, return the service.

        `redis+cluster://host:port` (or `rediss+cluster://`) connects to a Redis Cluster;
        `redis+sentinel://[:password@]host:port,host:port/name` to the primary the Sentinels
        at those addresses name `name` (followed through failovers). `write_replicas`: the
        replicas a write waits for (None: those connected; the embedded store has none).
        """
        link = connect(redis_url, pool_size, pool_timeout, socket_timeout)
        if link.embedded:
            write_replicas = 0
        service = cls(
            catalog,
            link.client,
            subscriber=link.subscriber,
            cache_size=cache_size,
            max_staleness=max_staleness,
            poll_interval=poll_interval,
            spend_retention=spend_retention,
            events_maxlen=events_maxlen,
            approval_ttl=approval_ttl,
            approval_sweep_interval=approval_sweep_interval,
            clock=clock,
            write_replicas=write_replicas,
            write_wait_ms=write_wait_ms,
            node_client=link.node_client,
            owned=link.owned,
        )
        await service.start()
        return service

    async def start(self) -> None:
        """Start the change-event listener, the revision poller and the approval sweep."""
        self._tasks = [
            asyncio.create_task(self.freshness.listen(), name="groupgate-events"),
            asyncio.create_task(self.freshness.poll(), name="groupgate-poll"),
            asyncio.create_task(self._sweep(), name="groupgate-approval-sweep"),
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.freshness.subscribed.wait(), timeout=5)

    async def close(self, grace: float = 5.0) -> None:
        """Stop the listener and the poller, then close the connections, each step within
        `grace` seconds: a shutdown never hangs on a task that swallowed its cancellation
        or a connection that does not answer (what is left is logged and abandoned)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("closing: %s had failed: %s", task.get_name(), task.exception())
            for task in pending:
                log.warning("closing: %s did not stop within %.1f s", task.get_name(), grace)
        with contextlib.suppress(TimeoutError, *STORE_ERRORS):
            async with asyncio.timeout(grace):
                await self.entries.close()
                await self.replication.close()
                await _close(self.client)
                if self._subscriber is not self.client:
                    await _close(self._subscriber)
                for owned in self._owned:
                    await _close(owned)

    async def _sweep(self) -> None:
        """Expire pending approval flows past their expiry, in every tenant, periodically
        (each emits `approval.expired` once: the script changes only a PENDING flow)."""
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                for tenant in await self.graphs.tenants():
                    await self.flows.sweep(tenant)
            except (*STORE_ERRORS, StoreUnavailable) as exc:
                self.guard.errors += 1
                log.warning("approval sweep failed: %s", exc)


async def _close(client: Client) -> None:
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        # A client built on an explicit pool does not own it: close the pool too.
        await client.aclose(close_connection_pool=True)
