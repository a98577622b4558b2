"""Bulk writes as generations: a whole graph written beside the live one, then made current
in one script (see keys.py, "Why generations").

A bulk import of a million subjects cannot be one Redis command, yet must be atomic: `write`
puts every key of the graph under a fresh generation number (invisible to readers, who read
`meta.gen` first), `flip` makes it current with a compare-and-set on the tenant's revision and
generation, and `drop` deletes a generation that is no longer (or never became) current.
"""

from __future__ import annotations

import orjson

from groupgate.engine import delegations
from groupgate.errors import Conflict
from groupgate.model import Graph
from groupgate.store import codec, held, keys
from groupgate.store.events import EventLog
from groupgate.store.ops import Graphs, Ops, text
from groupgate.store.written import Written

#: Keys per pipelined round trip, and attempts at a flip before giving up (409).
IMPORT_BATCH = 2000
MAX_ATTEMPTS = 50


class Generations:
    def __init__(self, graphs: Graphs) -> None:
        self.graphs = graphs

    async def flip(self, graph: Graph, events: EventLog) -> Written:
        """Write `graph` as a new generation, then make it current in one script if nobody
        wrote the tenant meanwhile (else drop it and try again); the old generation is
        deleted afterwards. Readers see one generation or the other, never a mix."""
        name = graph.tenant
        for _ in range(MAX_ATTEMPTS):
            meta = await self.graphs.meta(name)
            gen = await self.graphs.next_gen(name)
            await self.write(keys.Gen(name, int(gen)), graph)
            ops = Ops(everything=True)
            ops.add("HSET", keys.meta(name), "gen", gen)
            imported = {"subjects": len(graph.subjects), "companies": len(graph.companies)}
            events.add(ops, name, "graph.imported", {"graph": imported})
            if meta is None:
                rev = await self.graphs.cas(name, None, gen, ops)
            else:
                rev = await self.graphs.cas(name, meta[0], meta[1], ops)
            if rev is not None:
                if meta is not None:
                    await self.drop(name, meta[1])
                return rev
            await self.drop(name, gen)
        raise Conflict("too many concurrent writes to this tenant; try again")

    async def write(self, g: keys.Gen, graph: Graph) -> None:
        """Write every key of a graph under a fresh generation (invisible until flipped)."""
        client = self.graphs.client
        members: dict[str, list[str]] = {}
        pipe = client.pipeline(transaction=False)
        count = 0

        async def flush(force: bool = False) -> None:
            nonlocal pipe, count
            if count >= IMPORT_BATCH or (force and count):
                await pipe.execute()
                pipe = client.pipeline(transaction=False)
                count = 0

        pipe.set(g.settings(), codec.dump_settings(graph.settings))
        if graph.settings.default_customer_groups:
            pipe.sadd(g.defaults(), *graph.settings.default_customer_groups)
        for vendor in graph.vendors.values():
            pipe.set(g.vendor(vendor.id), codec.dump_vendor(vendor))
            pipe.sadd(g.vendors(), vendor.id)
        for company in graph.companies.values():
            pipe.set(g.company(company.id), codec.dump_company(company))
            pipe.hset(g.parents(), company.id, company.parent or "")
            if company.approval_rules is not None:
                pipe.sadd(g.rulesets(), company.id)
            count += 2
            await flush()
        for group in graph.groups.values():
            pipe.set(g.group(group.id), codec.dump_group(group))
            pipe.sadd(g.groups(), group.id)
            if group.company is not None and not group.predefined:
                pipe.sadd(g.cgroups(group.company), group.id)
            count += 2
            await flush()
        batch: list[str] = []
        for subject in graph.subjects.values():
            pipe.set(g.subject(subject.id), codec.dump_subject(subject))
            links = {m.group: codec.dump_link(m) for m in subject.memberships}
            if links:
                pipe.hset(g.links(subject.id), mapping=links)  # type: ignore[arg-type]
            for gid in links:
                members.setdefault(gid, []).append(subject.id)
            batch.append(subject.id)
            if len(batch) >= IMPORT_BATCH:
                pipe.zadd(g.subjects(), dict.fromkeys(batch, 0))
                batch = []
            count += 2
            await flush()
        if batch:
            pipe.zadd(g.subjects(), dict.fromkeys(batch, 0))
        for entity in graph.resources.values():
            pipe.hset(g.resources(entity.type), entity.id, held.dump(entity))
            pipe.sadd(g.rtypes(), entity.type)
            count += 2
            await flush()
        for delegation in graph.delegations.values():
            pipe.hset(g.delegations(), delegation.id, orjson.dumps(delegations.dump(delegation)))
        for gid, ids in members.items():
            for i in range(0, len(ids), IMPORT_BATCH):
                pipe.sadd(g.members(gid), *ids[i : i + IMPORT_BATCH])
                count += 1
                await flush()
        await flush(force=True)

    async def drop(self, tenant: str, gen: str) -> None:
        """Delete every key of a generation that is no longer (or never became) current."""
        g = keys.Gen(tenant, int(gen))
        client = self.graphs.client
        subjects = [text(s) for s in await client.zrange(g.subjects(), 0, -1)]
        groups = [text(s) for s in await client.smembers(g.groups())]
        companies = [text(s) for s in await client.hkeys(g.parents())]
        vendors = [text(s) for s in await client.smembers(g.vendors())]
        rtypes = [text(s) for s in await client.smembers(g.rtypes())]
        names = [g.settings(), g.defaults(), g.subjects(), g.groups(), g.parents(), g.vendors()]
        names.append(g.rulesets())
        names += [g.rtypes(), g.delegations(), *[g.resources(t) for t in rtypes]]
        names += [k for s in subjects for k in (g.subject(s), g.links(s))]
        names += [k for gid in groups for k in (g.group(gid), g.members(gid))]
        names += [k for c in companies for k in (g.company(c), g.cgroups(c))]
        names += [g.vendor(v) for v in vendors]
        for i in range(0, len(names), IMPORT_BATCH):
            await client.unlink(*names[i : i + IMPORT_BATCH])
