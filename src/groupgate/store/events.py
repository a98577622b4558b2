"""The tenant's event stream (SPEC section 5, issue 13 item 5): `gg:{t}:events`, capped.

Every flow transition and every graph change a notification service cares about appends one
entry, written by the very script that applies the change: no event without its change, no
change without its event. An entry has two fields, `type` and `event`, the latter a JSON
object:

    {"type": "approval.requested", "tenant": "acme", "time": "2026-12-01T10:00:00.123Z",
     "revision": 42, "id": "42-1", "approval": {...}}

`revision` is the tenant revision the change produced and `id` is `<revision>-<n>` (the n-th
event of that change), so a consumer can deduplicate. Only the script knows the new
revision, so the JSON is passed to it in two parts, `head` (up to `"revision":`) and `tail`
(what follows the id), and the script joins them around the revision (`scripts.EMIT`).

Types: `approval.requested`, `approval.progressed` (an approval that does not finish the
flow), `approval.approved`, `approval.declined`, `approval.closed`, `approval.expired`,
`customer.created`, `customer.assigned`, `group.membership_changed`, `subject.deleted`,
`delegation.created`, `delegation.deleted`, `graph.imported` (a bulk import or a tenant
deletion replaces the whole graph: consumers re-read what they need).

Consumers read with consumer groups (`XREADGROUP`, see docs/events.md); `groupgate events`
tails a stream.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import orjson
from redis.exceptions import RedisError

from groupgate.engine.delegations import format_time
from groupgate.errors import StoreUnavailable
from groupgate.store import keys
from groupgate.store.ops import Client, Ops, text


class EventLog:
    """Builds the events of writes; `maxlen` caps each tenant's stream (approximately)."""

    def __init__(self, maxlen: int, clock: Callable[[], float] = time.time) -> None:
        self.maxlen = maxlen
        self.clock = clock

    def parts(
        self, tenant: str, event_type: str, entity: dict[str, Any], now_ms: int | None = None
    ) -> list[Any]:
        """The arguments of one `emit`: stream, maxlen, type, head, tail.

        `entity` holds what the event is about (`{"approval": {...}}`); it follows the id.
        """
        ms = int(self.clock() * 1000) if now_ms is None else now_ms
        head = orjson.dumps({"type": event_type, "tenant": tenant, "time": format_time(ms)})
        tail = orjson.dumps(entity)
        return [
            keys.events(tenant),
            self.maxlen,
            event_type,
            head[:-1].decode() + ',"revision":',
            ("," + tail[1:].decode()) if len(tail) > 2 else "}",
        ]

    def add(self, ops: Ops, tenant: str, event_type: str, entity: dict[str, Any]) -> None:
        """Append an event to a compare-and-set write (`scripts.CAS` emits it)."""
        stream, *rest = self.parts(tenant, event_type, entity)
        ops.add("EVENT", stream, *rest)


async def read(
    client: Client, tenant: str, after: str, count: int, block_ms: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Events of `tenant` after stream id `after` ("0": from the start, "$": only new ones),
    at most `count`; `block_ms` waits that long for one when none is there."""
    found: Any = await client.xread({keys.events(tenant): after}, count=count, block=block_ms)
    return [
        (text(entry_id), orjson.loads(fields.get(b"event") or fields.get("event") or b"{}"))
        for _, entries in found or []
        for entry_id, fields in entries
    ]


async def tail(
    url: str,
    tenant: str,
    emit: Callable[[str, dict[str, Any]], None],
    *,
    after: str = "0",
    follow: bool = False,
    batch: int = 100,
    block_ms: int = 5000,
) -> int:
    """Print (`emit`) a tenant's events after stream id `after`; with `follow`, keep
    waiting for new ones until cancelled. Returns how many were emitted."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    client: Client
    if "+cluster://" in url:
        client = RedisCluster.from_url(url.replace("+cluster://", "://", 1))
    else:
        client = Redis.from_url(url)
    count = 0
    try:
        while True:
            found = await read(client, tenant, after, batch, block_ms if follow else None)
            for entry_id, event in found:
                emit(entry_id, event)
                after = entry_id
                count += 1
            if not found and not follow:
                return count
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"cannot read the events of {tenant!r}: {exc}") from None
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()
