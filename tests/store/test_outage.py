"""Redis goes away: cached answers are flagged stale up to the bound, then fail closed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from groupgate.errors import StoreUnavailable
from groupgate.model import Catalog, Resource
from groupgate.store.service import GraphService
from tests.store.data import acme

ORDER = Resource(type="orders", id="o-1", company="c-parent", restrictions=frozenset({"DE"}))


async def test_outage_serves_stale_then_fails_closed(catalog: Catalog, redis_process: Any) -> None:
    service = await GraphService.open(
        catalog, redis_process.url, max_staleness=2.0, poll_interval=0.1, socket_timeout=0.5
    )
    try:
        await service.admin.import_graph(None, acme("outage"))
        fresh = await service.decider.check("outage", "emp-1", "update", ORDER)
        assert fresh.decision.allow and not fresh.stale
        assert service.decider.check_cached("outage", "emp-1", "update", ORDER) == fresh
        await service.client.save()  # so that the restarted server has the same graph
        redis_process.stop()
        started = time.monotonic()
        await asyncio.sleep(service.entries.stale_after + 0.2)

        stale = await service.decider.check("outage", "emp-1", "update", ORDER)
        assert stale.decision.allow and stale.stale
        assert service.decider.check_cached("outage", "emp-1", "update", ORDER) == stale
        assert service.decider.check_cached("outage", "emp-2", "read", ORDER) is None
        with pytest.raises(StoreUnavailable):  # not cached: nothing to serve
            await service.decider.check("outage", "emp-2", "read", ORDER)
        # A token is met only once the store confirms it still holds the revision: the
        # cache has revision 1, but that cannot be confirmed while the store is down.
        with pytest.raises(StoreUnavailable):
            await service.decider.check("outage", "emp-1", "update", ORDER, min_revision=1)
        with pytest.raises(StoreUnavailable):  # a newer token cannot be met while down
            await service.decider.check("outage", "emp-1", "update", ORDER, min_revision=2)

        await asyncio.sleep(
            max(0.0, service.entries.max_staleness + 0.3 - (time.monotonic() - started))
        )
        with pytest.raises(StoreUnavailable, match="failing closed"):
            await service.decider.check("outage", "emp-1", "update", ORDER)
        with pytest.raises(StoreUnavailable, match="failing closed"):
            service.decider.check_cached("outage", "emp-1", "update", ORDER)

        redis_process.restart()
        for _ in range(200):
            try:
                answer = await service.decider.check("outage", "emp-1", "update", ORDER)
            except StoreUnavailable:
                answer = None
            if answer is not None and not answer.stale:
                break
            await asyncio.sleep(0.05)
        assert answer is not None and answer.decision.allow and not answer.stale
        assert (await service.decider.check("outage", "emp-2", "read", ORDER)).decision.allow
    finally:
        await service.close()
