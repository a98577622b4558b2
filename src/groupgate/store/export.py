"""Export a tenant's graph as a graph document (SPEC section 4), streamed, at one revision.

The document is the one `import_graph` takes: importing it into an empty store gives the
same decisions (tests/store/test_export.py checks that on random graphs). What is stored
for an entity is what the codec dumped for it, and that is what is exported, field for
field: a field the codec learns (a company's approval rules, say) comes along unchanged.
Three exceptions, each because the import *derives* something from the document:

- predefined customer groups (`<company>/admin`, ...) are created with their company, so
  they are left out; vendor groups (`<vendor>/vendor.order.manager`, ...) likewise, unless
  customised (name, description, actions), then as the customising entry the import takes;
- a custom group's `role` fills its matrix from the role template on import, so every
  template entry the stored group does not hold is written out as removed (`"none"`, `[]`);
- a subject's predefined memberships are written as group ids, which the import expands as
  an assignment (Contact, and its propagation through the company tree, come along). A
  subject whose links were edited afterwards so that they are no longer what such an
  expansion gives (an Admin later removed from the company's Contact) is imported with the
  expansion's links: the document format cannot say otherwise.

Consistency: the first read pins the tenant's revision and generation; every later read
(one script call per batch of `batch` entities) returns them too, and if either moved the
export raises `Moved` (a write landed; the caller restarts, see `api/admin.py` and the
CLI). So a completed export is the graph of exactly one revision, which it reports.

Memory: entities are read, encoded and handed on `batch` at a time; subjects are paged by
id (the `subjects` sorted set), so neither the subjects nor their links are ever all in
memory. The ids of vendors, companies, groups and resource types are read whole at the
start (ids, not bodies), and the ids of one resource type's held entities at a time.

A new top-level section of the graph document (another helper's `delegations`, say) is one
more entry of the section list in `Exporter.chunks`, read in batches like the others.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from groupgate.engine import delegations
from groupgate.engine.graph import VENDOR_GROUP_FIELDS, vendor_groups
from groupgate.errors import Conflict
from groupgate.model import Catalog, Group, GroupKind, Level, Vendor
from groupgate.store import codec, held, keys
from groupgate.store.ops import Graphs, Snapshot, pairs, text

Read = tuple[str, str, tuple[Any, ...]]


class Moved(Conflict):
    """The tenant was written to during the export: what was read is no longer one revision."""


@dataclass(slots=True)
class Pin:
    """The revision and generation an export reads, and the id lists read with them."""

    tenant: str
    rev: int
    gen: str
    settings: bytes
    vendors: list[str]
    companies: list[str]
    groups: list[str]
    rtypes: list[str]


class Exporter:
    """Reads one tenant's graph at one revision and encodes it as a graph document."""

    def __init__(self, graphs: Graphs, catalog: Catalog, batch: int = 500) -> None:
        self.graphs = graphs
        self.catalog = catalog
        self.batch = batch
        #: The revision being exported, once the first piece is out.
        self.revision: int | None = None

    async def chunks(self, tenant: str) -> AsyncGenerator[bytes, None]:
        """The document in pieces of about `batch` entities each (UTF-8 JSON).

        The first piece is produced only once the revision is pinned; raises `NotFound` for
        an unknown tenant and `Moved` when the revision moves before the last piece.
        """
        pin = await self._pin(tenant)
        self.revision = pin.rev
        settings = orjson.loads(pin.settings) if pin.settings else {}
        yield b'{"tenant":' + orjson.dumps(tenant) + b',"settings":' + orjson.dumps(settings)
        vendors: dict[str, str] = {}
        sections: list[tuple[str, AsyncIterator[list[dict[str, Any]]]]] = [
            ("vendors", self._vendors(pin, vendors)),
            ("companies", self._bodies(pin, pin.companies, keys.RELATIVE.company)),
            ("groups", self._groups(pin, vendors)),
            ("subjects", self._subjects(pin)),
            ("resources", self._resources(pin)),
            ("delegations", self._delegations(pin)),
        ]
        for name, batches in sections:
            yield b',"' + name.encode() + b'":['
            first = True
            async for items in batches:
                if items:
                    body = b",\n".join(orjson.dumps(item) for item in items)
                    yield (b"\n" if first else b",\n") + body
                    first = False
            yield b"]"
        yield b"}\n"

    # ------------------------------------------------------------------ reads

    async def _pin(self, tenant: str) -> Pin:
        snap = await self.graphs.read(
            tenant,
            ("GET", "settings", ()),
            ("SMEMBERS", "vendors", ()),
            ("HGETALL", "parents", ()),
            ("SMEMBERS", "groups", ()),
            ("SMEMBERS", "rtypes", ()),
        )
        settings, vendors, parents, groups, rtypes = snap.values
        return Pin(
            tenant,
            snap.rev,
            snap.gen,
            settings or b"",
            _ids(vendors),
            sorted(pairs(parents)),
            _ids(groups),
            _ids(rtypes),
        )

    async def _read(self, pin: Pin, reads: list[Read]) -> list[Any]:
        snap: Snapshot = await self.graphs.read(pin.tenant, *reads)
        if snap.rev != pin.rev or snap.gen != pin.gen:
            raise Moved(
                f"tenant {pin.tenant!r} changed during the export (revision {pin.rev}, now "
                f"{snap.rev}); export it again"
            )
        return snap.values

    async def _gets(
        self, pin: Pin, ids: list[str], key: Callable[[str], str]
    ) -> AsyncIterator[list[tuple[str, bytes]]]:
        for i in range(0, len(ids), self.batch):
            part = ids[i : i + self.batch]
            values = await self._read(pin, [("GET", key(x), ()) for x in part])
            yield [(x, raw) for x, raw in zip(part, values, strict=True) if raw]

    async def _bodies(
        self, pin: Pin, ids: list[str], key: Callable[[str], str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for found in self._gets(pin, ids, key):
            yield [orjson.loads(raw) for _, raw in found]

    async def _vendors(
        self, pin: Pin, names: dict[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for found in self._gets(pin, pin.vendors, keys.RELATIVE.vendor):
            bodies = [orjson.loads(raw) for _, raw in found]
            names.update((b["id"], b["name"]) for b in bodies)
            yield bodies

    async def _groups(
        self, pin: Pin, vendors: dict[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        async for found in self._gets(pin, pin.groups, keys.RELATIVE.group):
            entries = (
                self._group_entry(codec.load_group_json(orjson.loads(raw)), vendors)
                for _, raw in found
            )
            yield [e for e in entries if e is not None]

    def _group_entry(self, group: Group, vendors: dict[str, str]) -> dict[str, Any] | None:
        document = codec.group_document(group)
        if group.kind is GroupKind.VENDOR:
            default = _default_vendor_group(group, vendors, self.catalog)
            if default is not None and default == group:
                return None
            entry = {k: v for k, v in document.items() if k in VENDOR_GROUP_FIELDS}
            base = default.actions if default is not None else {}
            entry["actions"] = {**{t: [] for t in base}, **entry["actions"]}
            return entry
        if group.predefined:
            return None  # created with its company
        template = self.catalog.roles.get(group.role) if group.role else None
        if template is not None:
            removed = {t: Level.NONE.label for t in template.access if t not in group.access}
            document["access"] = {**removed, **document["access"]}
            gone: dict[str, list[Any]] = {t: [] for t in template.actions if t not in group.actions}
            document["actions"] = {**gone, **document["actions"]}
        return document

    async def _subjects(self, pin: Pin) -> AsyncIterator[list[dict[str, Any]]]:
        rel = keys.RELATIVE
        start = "-"
        while True:
            page = await self._read(
                pin, [("ZRANGEBYLEX", "subjects", (start, "+", "LIMIT", 0, self.batch))]
            )
            ids = _ids(page[0], order=False)
            if not ids:
                return
            reads: list[Read] = []
            for sid in ids:
                reads += [("GET", rel.subject(sid), ()), ("HGETALL", rel.links(sid), ())]
            values = await self._read(pin, reads)
            yield [
                codec.subject_document(codec.load_subject(sid, raw, pairs(links)))
                for sid, raw, links in zip(ids, values[0::2], values[1::2], strict=True)
                if raw
            ]
            start = "(" + ids[-1]

    async def _resources(self, pin: Pin) -> AsyncIterator[list[dict[str, Any]]]:
        rel = keys.RELATIVE
        for type_id in pin.rtypes:
            found = await self._read(pin, [("HKEYS", rel.resources(type_id), ())])
            ids = _ids(found[0])
            for i in range(0, len(ids), self.batch):
                part = ids[i : i + self.batch]
                values = await self._read(pin, [("HMGET", rel.resources(type_id), tuple(part))])
                yield [
                    held.document(type_id, rid, raw)
                    for rid, raw in zip(part, values[0], strict=True)
                    if raw
                ]

    async def _delegations(self, pin: Pin) -> AsyncIterator[list[dict[str, Any]]]:
        """The approval delegations, as the graph document's `delegations` takes them (a
        tenant holds few: one read)."""
        found = await self._read(pin, [("HGETALL", keys.RELATIVE.delegations(), ())])
        loaded = [delegations.load(orjson.loads(v)) for v in pairs(found[0]).values()]
        yield [delegations.document(d) for d in sorted(loaded, key=lambda d: d.id)]


def _ids(values: Any, *, order: bool = True) -> list[str]:
    """Ids from a Redis reply (a list; '' stands for an absent key), sorted unless told."""
    found = [text(v) for v in values or ()]
    return sorted(found) if order else found


def _default_vendor_group(group: Group, vendors: dict[str, str], catalog: Catalog) -> Group | None:
    """The group as its vendor created it (None when the vendor is not exported)."""
    if group.vendor is None or group.vendor not in vendors:
        return None
    for default in vendor_groups(Vendor(group.vendor, vendors[group.vendor]), catalog):
        if default.id == group.id:
            return default
    return None
