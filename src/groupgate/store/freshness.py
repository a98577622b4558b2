"""Keeping the cache of compiled profiles honest (see `cache.py`'s invariants): the change
events a write publishes, the revision poll under them, and when the store last answered.

- `listen`: subscribes to every tenant's change channel, applies each event to the cache,
  and after every (re)subscription compares revisions at once (events may have been lost);
- `poll`: every `poll_interval` seconds, compares every cached tenant's (rev, gen, stamp)
  with the store in one round trip: a lost event, a store that went backwards or diverged
  (a failover that lost writes) drops what the cache holds of that tenant;
- the shared `guard.Guard` counts the store errors met listening or polling, and notes
  each time the store answered (`last_ok`, where the staleness bound of cached answers
  starts, `cached.CachedEntries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from redis.asyncio import Redis

from groupgate.store import keys
from groupgate.store.cache import ProfileCache
from groupgate.store.guard import STORE_ERRORS, Guard
from groupgate.store.ops import Client, Graphs, text

log = logging.getLogger("groupgate.store")


class Freshness:
    def __init__(
        self,
        graphs: Graphs,
        client: Client,
        subscriber: Client | Redis,
        cache: ProfileCache,
        poll_interval: float,
        guard: Guard,
    ) -> None:
        self.graphs = graphs
        self.client = client
        self.subscriber = subscriber
        self.cache = cache
        self.poll_interval = poll_interval
        self.guard = guard
        #: Change events applied.
        self.events = 0
        self.subscribed = asyncio.Event()

    async def listen(self) -> None:
        """Apply change events; after every (re)subscription, re-read revisions."""
        backoff = 0.05
        while True:
            pubsub = self.subscriber.pubsub()
            try:
                await pubsub.psubscribe(keys.CHANNEL_PATTERN)
                await self.reconcile_all(after_reconnect=True)
                self.subscribed.set()
                backoff = 0.05
                async for message in pubsub.listen():
                    if message.get("type") == "pmessage":
                        self.on_event(message)
            except asyncio.CancelledError:
                raise
            except STORE_ERRORS as exc:
                self.guard.errors += 1
                log.warning("change-event subscription lost: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(*STORE_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def on_event(self, message: dict[str, Any]) -> None:
        tenant = keys.tenant_of_channel(text(message.get("channel")))
        if tenant is None:
            return
        try:
            event = orjson.loads(message["data"])
            rev = int(event["rev"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring malformed change event on %s", message.get("channel"))
            return
        self.events += 1
        self.cache.apply_event(
            tenant,
            rev,
            str(event.get("stamp", "")),
            event.get("subjects") or (),
            event.get("groups") or (),
            bool(event.get("all")),
            bool(event.get("resources")),
            event.get("memberships") or (),
        )

    async def poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reconcile_all(after_reconnect=False)
            except STORE_ERRORS as exc:
                self.guard.errors += 1
                log.warning("revision poll failed: %s", exc)

    async def reconcile_all(self, *, after_reconnect: bool) -> None:
        """Compare every cached tenant's (rev, gen, stamp) with the store, in one round trip
        per node (cache invariants 2 and 4)."""
        if not self.cache.tenants:
            await self.client.ping()
            self.guard.answered()
            return
        tenants = list(self.cache.tenants)
        marks = [self.cache.mark(tenant) for tenant in tenants]  # as the read begins
        metas = await self.graphs.metas(tenants)
        self.guard.last_ok = now = time.monotonic()
        grace = 0.0 if after_reconnect else self.poll_interval
        for tenant, mark, meta in zip(tenants, marks, metas, strict=True):
            if meta is None:
                self.cache.drop_tenant(tenant)
                self.cache.tenants.pop(tenant, None)
                continue
            rev, gen, stamp = meta
            self.cache.reconcile(tenant, rev, gen, stamp, now, grace, mark)
