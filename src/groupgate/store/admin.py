"""`StoreAdmin`: the `Admin` protocol over the store, the object the admin API talks to.

Its writes are `writes.Writer`'s; this adds the reads an administrator makes: an entity or a
held resource as stored, the delegations, and the export of a whole graph. Every method
fails closed through the shared guard when the store fails: each write as a whole
(`guard.guarded`), each read at its store call, the export at each piece it reads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson

from groupgate.engine import delegations as delegation_codec
from groupgate.errors import NotFound
from groupgate.store import codec, held, keys
from groupgate.store.export import Exporter
from groupgate.store.ops import pairs
from groupgate.store.writes import Writer, decode, entity_key


class StoreAdmin(Writer):
    """Admin writes (`Writer`) and reads for every tenant of one store."""

    async def get_entity(self, tenant: str, kind: str, entity_id: str) -> dict[str, Any]:
        """The stored document of a subject, group, company or vendor (`kind`)."""
        rel = keys.RELATIVE
        suffix = entity_key(rel, kind, entity_id)
        reads: list[tuple[str, str, tuple[Any, ...]]] = [("GET", suffix, ())]
        if kind == "subject":
            reads.append(("HGETALL", rel.links(entity_id), ()))
        snap = await self.guard(self.graphs.read(tenant, *reads))
        if not snap.values[0]:
            raise NotFound(f"unknown {kind} {entity_id!r}")
        if kind == "subject":
            subject = codec.load_subject(entity_id, snap.values[0], pairs(snap.values[1]))
            return codec.subject_document(subject)
        return decode(snap.values[0])

    async def get_resource(self, tenant: str, type_id: str, resource_id: str) -> dict[str, Any]:
        """A held resource entity as `{"type", "id", "attributes"}`."""
        rel = keys.RELATIVE
        snap = await self.guard(
            self.graphs.read(tenant, ("HGET", rel.resources(type_id), (resource_id,)))
        )
        if not snap.values[0]:
            raise NotFound(f"unknown resource {type_id}/{resource_id}")
        return held.document(type_id, resource_id, snap.values[0])

    async def delegations(self, tenant: str) -> tuple[list[dict[str, str]], int]:
        """The tenant's delegations as documents, by id, and the revision read."""
        snap = await self.guard(
            self.graphs.read(tenant, ("HGETALL", keys.RELATIVE.delegations(), ()))
        )
        found = [delegation_codec.load(orjson.loads(v)) for v in pairs(snap.values[0]).values()]
        return [delegation_codec.document(d) for d in sorted(found, key=lambda d: d.id)], snap.rev

    def exporter(self, batch: int = 500) -> Exporter:
        """An `Exporter` for `export`: it says the revision exported once the first piece
        is out."""
        return Exporter(self.graphs, self.catalog, batch)

    async def export(self, tenant: str, exporter: Exporter) -> AsyncGenerator[bytes, None]:
        """The tenant's graph document in pieces, read at one revision (`store/export.py`).

        Raises `NotFound` (unknown tenant) before the first piece, `Moved` when a write
        lands before the last, `StoreUnavailable` when the store fails.
        """
        chunks = exporter.chunks(tenant)
        try:
            while True:
                try:
                    chunk = await self.guard(anext(chunks))
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            await chunks.aclose()
