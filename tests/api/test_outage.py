"""Redis goes away under the HTTP API: answers flagged stale on every surface, then 503.

The store suite (tests/store/test_outage.py) proves the service's behaviour; this proves the
surfaces carry it: `stale: true` on native answers, `context.stale` on AuthZEN decisions, and
a 503 problem (never an allow) once the staleness bound has passed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from groupgate.api.app import create_app
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService
from tests.api.conftest import DEMO, POLICIES, document

CHECK = {
    "subject": {"id": "emp-de"},
    "action": "update",
    "resource": {"type": "orders", "id": "o-17", "restrictions": ["DE"]},
}
EVALUATION = {
    "subject": {"type": "user", "id": "emp-de"},
    "action": {"name": "update"},
    "resource": {"type": "orders", "id": "o-17", "properties": {"restrictions": ["DE"]}},
}


async def test_surfaces_flag_stale_answers_then_fail_closed(
    aiohttp_client: Any, redis_process: Any
) -> None:
    service = await GraphService.open(
        load_policy(POLICIES),
        redis_process.url,
        max_staleness=2.0,
        poll_interval=0.1,
        socket_timeout=0.5,
    )
    try:
        await service.admin.import_graph(None, document(DEMO))
        config = load_config(env={}, overrides={"policies": str(POLICIES)})
        client = await aiohttp_client(create_app(config, service))

        async def ask() -> tuple[Any, Any]:
            native = await client.post("/v1/check", json=CHECK)
            authzen = await client.post(
                "/access/v1/evaluations", json={"evaluations": [EVALUATION, EVALUATION]}
            )
            return native, authzen

        native, authzen = await ask()
        assert native.status == 200 and authzen.status == 200
        assert "stale" not in await native.json()
        fresh = (await authzen.json())["evaluations"]
        assert [d["decision"] for d in fresh] == [True, True]
        assert not any("stale" in d["context"] for d in fresh)

        redis_process.stop()
        started = time.monotonic()
        await asyncio.sleep(service.entries.stale_after + 0.2)
        native, authzen = await ask()
        assert native.status == 200 and authzen.status == 200
        body = await native.json()
        assert body["allow"] is True and body["stale"] is True
        stale = (await authzen.json())["evaluations"]
        assert [(d["decision"], d["context"]["stale"]) for d in stale] == [(True, True)] * 2

        await asyncio.sleep(
            max(0.0, service.entries.max_staleness + 0.3 - (time.monotonic() - started))
        )
        native, authzen = await ask()
        for response in (native, authzen):
            assert response.status == 503
            assert response.content_type == "application/problem+json"
            assert "failing closed" in (await response.json())["detail"]
    finally:
        await service.close()
