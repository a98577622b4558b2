"""The event stream: the documented consumer-group example and `groupgate events`, on a
real Redis (the example is read from docs/events.md and run as written)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.store.conftest import Opener

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def example() -> dict[str, Any]:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    return namespace


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_consumer_group_example(open_service: Opener, tenant: str, backend: str) -> None:
    service = await open_service()
    await service.admin.import_graph(
        None,
        {
            "tenant": tenant,
            "companies": [{"id": "co", "name": "Co"}],
            "subjects": [{"id": "a", "kind": "customer", "companies": {"co": ["buyer"]}}],
        },
    )
    await service.admin.put_subject(
        tenant, {"id": "b", "kind": "customer", "companies": {"co": ["admin"]}}
    )
    consume = example()["consume"]
    client = redis.Redis.from_url(backend)
    seen: list[str] = []
    crashed: list[str] = []

    def crash_once(event: dict[str, Any]) -> None:
        if event["type"] == "customer.created" and not crashed:
            crashed.append(event["id"])
            raise RuntimeError("the mail server is down")
        seen.append(event["type"])

    try:
        with pytest.raises(RuntimeError):
            consume(client, tenant, "mail", "c1", crash_once, block_ms=50)
        consume(client, tenant, "mail", "c1", crash_once, block_ms=50)  # gets it again
        assert seen == [
            "graph.imported",
            "customer.created",
            "customer.assigned",
            "group.membership_changed",
        ]
        seen.clear()
        consume(client, tenant, "mail", "c1", crash_once, block_ms=50)  # nothing new
        assert seen == []
    finally:
        client.close()


def groupgate(*args: str) -> subprocess.CompletedProcess[bytes]:
    command = [str(Path(sys.executable).parent / "groupgate"), *args]
    return subprocess.run(command, capture_output=True, timeout=60, check=False)


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_events_command(open_service: Opener, tenant: str, backend: str) -> None:
    service = await open_service()
    rev = await service.admin.import_graph(None, {"tenant": tenant})
    done = await asyncio.to_thread(groupgate, "events", "--tenant", tenant, "--redis", backend)
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(e["type"], e["revision"], e["tenant"]) for e in lines] == [
        ("graph.imported", rev, tenant)
    ]
    assert lines[0]["stream_id"]
    down = await asyncio.to_thread(
        groupgate, "events", "--tenant", tenant, "--redis", "redis://127.0.0.1:1/0"
    )
    assert down.returncode == 2 and b"cannot read the events" in down.stderr
    assert b"Traceback" not in down.stderr
