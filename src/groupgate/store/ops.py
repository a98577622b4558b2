"""Low-level access to the graph in Redis: atomic reads, compare-and-set writes, events.

`Graphs` wraps a redis-py asyncio client (a single Redis with a bounded blocking pool, a
Redis Cluster, or the embedded fakeredis) and knows nothing of validation: `writes.py`
decides what to write, this module makes it atomic.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from groupgate.errors import NotFound, NotReplicated
from groupgate.store import keys, scripts
from groupgate.store.replication import Replication
from groupgate.store.written import Written

Client = Redis | RedisCluster
MAX_ARGS_PER_OP = 1000


@dataclass(slots=True)
class Snapshot:
    """Results of one atomic read, with the revision they are consistent with."""

    rev: int
    gen: str
    stamp: str
    values: list[Any]


Read = tuple[str, str, tuple[Any, ...]]


class Named:
    """One atomic read's values by the names its reads were given (`Graphs.read_named`):
    `snap["parents"]`, or a list for a name given a list of reads."""

    __slots__ = ("_values", "gen", "rev", "stamp")

    def __init__(self, snap: Snapshot, layout: Mapping[str, int | slice]) -> None:
        self.rev, self.gen, self.stamp = snap.rev, snap.gen, snap.stamp
        self._values = {name: snap.values[at] for name, at in layout.items()}

    def __getitem__(self, name: str) -> Any:
        return self._values[name]


@dataclass(slots=True)
class Ops:
    """The operations of one write, plus what its change event must name."""

    args: list[Any] = field(default_factory=list)
    subjects: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    everything: bool = False
    #: The write changes held resource entities (sidecars reload their resource table).
    resources: bool = False
    #: Groups whose membership (or a member's link permission) changes: sidecars evict the
    #: profiles that depend on it (`cache.Entry.depends`), not the groups' members.
    memberships: set[str] = field(default_factory=set)

    def add(self, command: str, key: str, *args: Any) -> None:
        self.args += [command, key, len(args), *args]

    def add_many(self, command: str, key: str, members: list[str]) -> None:
        """Add a variadic command (SADD, SREM, HDEL ...) in chunks Lua can unpack."""
        for i in range(0, len(members), MAX_ARGS_PER_OP):
            self.add(command, key, *members[i : i + MAX_ARGS_PER_OP])


class Graphs:
    """Atomic reads and writes of tenants' graphs."""

    def __init__(self, client: Client, replication: Replication | None = None) -> None:
        self.client = client
        self.replication = replication or Replication(client, replicas=0, wait_ms=1, refresh=1)
        self._resolve = client.register_script(scripts.RESOLVE)
        self._read = client.register_script(scripts.READ)
        self._cas = client.register_script(scripts.CAS)
        self._meta = client.register_script(scripts.META)
        self._resources = client.register_script(scripts.LOAD_RESOURCES)
        self._approving = client.register_script(scripts.APPROVING_MEMBERS)
        self._active = client.register_script(scripts.APPROVAL_GROUPS)
        self._purchase = client.register_script(scripts.PURCHASE)

    async def meta(self, tenant: str) -> tuple[int, str, str] | None:
        """Return (rev, gen, stamp) of a tenant, or None if it does not exist."""
        rev, gen, stamp = await self._meta(keys=[keys.meta(tenant)])
        if not gen:
            return None
        return int(rev or 0), _text(gen), _text(stamp)

    async def metas(self, tenants: list[str]) -> list[tuple[int, str, str] | None]:
        """`meta` of many tenants in one pipelined round trip (per node on a Cluster)."""
        pipe = self.client.pipeline(transaction=False)
        for tenant in tenants:
            pipe.hmget(keys.meta(tenant), ["rev", "gen", "stamp"])
        found: list[tuple[int, str, str] | None] = []
        for rev, gen, stamp in await pipe.execute():
            found.append((int(rev or 0), _text(gen), _text(stamp)) if gen else None)
        return found

    async def resolve(self, tenant: str, subjects: list[str]) -> tuple[Snapshot, bytes] | None:
        """Read subjects with their links and groups; None when the tenant does not exist.

        The snapshot's values hold one item per subject: None for an unknown subject, else
        (subject json, {group: link}, [group ids], [group json or b""]).
        """
        raw = await self._resolve(
            keys=[keys.meta(tenant)], args=[keys.tenant_prefix(tenant), *subjects]
        )
        if not raw or raw[0] is None:
            return None
        rev, gen, stamp, settings = raw[:4]
        values: list[Any] = []
        for item in raw[4:]:
            if not item or not item[0]:
                values.append(None)
                continue
            subject, links, ids, groups = item
            link_map = {_text(links[i]): _text(links[i + 1]) for i in range(0, len(links), 2)}
            values.append((subject, link_map, [_text(g) for g in ids], groups))
        return Snapshot(int(rev or 0), _text(gen), _text(stamp), values), settings or b""

    async def resources(self, tenant: str) -> tuple[Snapshot, dict[str, dict[str, bytes]]] | None:
        """Every held resource entity of a tenant, `{type: {id: json}}`, atomically; None
        when the tenant does not exist."""
        rel = keys.RELATIVE
        raw = await self._resources(
            keys=[keys.meta(tenant)],
            args=[keys.tenant_prefix(tenant), rel.rtypes(), rel.resources("")],
        )
        if not raw or raw[0] is None:
            return None
        found: dict[str, dict[str, bytes]] = {}
        for i in range(3, len(raw), 2):
            flat = raw[i + 1]
            found[_text(raw[i])] = {_text(flat[k]): flat[k + 1] for k in range(0, len(flat), 2)}
        return Snapshot(int(raw[0] or 0), _text(raw[1]), _text(raw[2]), []), found

    async def approving_members(
        self, tenant: str, groups: list[str], now: float
    ) -> tuple[Snapshot, dict[str, frozenset[str]]]:
        """The members of each group who may approve at `now` (not linked `ro`), atomically.

        Raises `NotFound` when the tenant does not exist.
        """
        rel = keys.RELATIVE
        raw = await self._approving(
            keys=[keys.meta(tenant)],
            args=[keys.tenant_prefix(tenant), _ms(now), rel.members(""), rel.links(""), *groups],
        )
        if not raw or raw[0] is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        found = {
            gid: frozenset(_text(m) for m in members)
            for gid, members in zip(groups, raw[3:], strict=True)
        }
        return Snapshot(int(raw[0] or 0), _text(raw[1]), _text(raw[2]), []), found

    async def approval_groups(
        self, tenant: str, companies: list[str], now: float
    ) -> dict[str, tuple[str, bool, float | None]]:
        """Company id -> (its approval group, whether it is active at `now`: has a member who
        may approve, and the next moment a link of the group starts or ends or None), for
        those of `companies` that name one; unknown ones are simply absent."""
        rel = keys.RELATIVE
        raw = await self._active(
            keys=[keys.meta(tenant)],
            args=[
                keys.tenant_prefix(tenant),
                _ms(now),
                rel.members(""),
                rel.links(""),
                rel.company(""),
                *companies,
            ],
        )
        if not raw or raw[0] is None:
            return {}
        return {
            c: (_text(item[0]), bool(item[1]), int(item[2]) / 1000 if item[2] else None)
            for c, item in zip(companies, raw[3:], strict=True)
            if item[0]
        }

    async def purchase(
        self,
        tenant: str,
        company: str,
        predefined: list[str],
        extra: list[str],
        now: float,
        totals: list[str] | None = None,
        budgets: str | None = None,
    ) -> tuple[Snapshot, list[bytes], dict[str, frozenset[str]], list[Any], dict[str, str]]:
        """What a purchase in `company` is decided on, atomically (`scripts.PURCHASE`): the
        company's JSON and its ancestors' as far as needed (empty: no such company), group id
        -> the members who may approve at `now`, and the spend totals at the whole keys
        `totals` (None where nothing was spent) and the budget totals of the hash `budgets`
        (empty when None), what `engine/spend.py` needs. `predefined`: the company's admin,
        contact, buyer and requester group ids; `extra`: more groups whose members to read.
        Raises `NotFound` when the tenant does not exist."""
        rel = keys.RELATIVE
        args = [keys.tenant_prefix(tenant), _ms(now), rel.members(""), rel.links("")]
        args += [rel.company(""), rel.rulesets(), company, *predefined, *extra]
        meta = keys.meta(tenant)
        raw = await self._purchase(keys=[meta, budgets or meta, *(totals or [])], args=args)
        if not raw or raw[0] is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        chain, ids, members = raw[3], raw[4], raw[5]
        found = {
            _text(gid): frozenset(_text(m) for m in ms)
            for gid, ms in zip(ids, members, strict=True)
        }
        snap = Snapshot(int(raw[0] or 0), _text(raw[1]), _text(raw[2]), [])
        if len(raw) < 8:  # no such company: the script stopped before the totals
            return snap, [], found, [], {}
        return snap, list(chain), found, list(raw[6]), pairs(raw[7])

    async def read_named(self, tenant: str, reads: Mapping[str, Read | Sequence[Read]]) -> Named:
        """`read`, each read (or list of reads) under a name; raises `NotFound` when the
        tenant does not exist."""
        flat: list[Read] = []
        layout: dict[str, int | slice] = {}
        for name, spec in reads.items():
            if isinstance(spec, tuple):
                layout[name] = len(flat)
                flat.append(spec)
            else:
                layout[name] = slice(len(flat), len(flat) + len(spec))
                flat.extend(spec)
        return Named(await self.read(tenant, *flat), layout)

    async def read(self, tenant: str, *reads: tuple[str, str, tuple[Any, ...]]) -> Snapshot:
        """Run `(command, key suffix, args)` reads atomically in the current generation.

        Raises `NotFound` when the tenant does not exist.
        """
        args: list[Any] = [keys.tenant_prefix(tenant)]
        for command, suffix, extra in reads:
            args += [command, suffix, len(extra), *extra]
        raw = await self._read(keys=[keys.meta(tenant)], args=args)
        if not raw or raw[0] is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        return Snapshot(int(raw[0] or 0), _text(raw[1]), _text(raw[2]), list(raw[3:]))

    async def cas(self, tenant: str, rev: int | None, gen: str, ops: Ops) -> Written | None:
        """Apply `ops` if the tenant is still at (rev, gen); return the new revision or None.

        `rev=None` creates the tenant (and fails if it exists). A successful write publishes
        its change event; a lost event costs latency only (sidecars poll the revision). When
        the primary has replicas (`Replication`), the write then waits for them on its own
        connection, and raises `NotReplicated` when fewer acknowledge it in time.
        """
        stamp = secrets.token_hex(8)
        expected = "" if rev is None else str(rev)
        args = [expected, gen, stamp, *ops.args]

        async def run(client: Redis | None) -> int:
            new_rev = int(await self._cas(keys=[keys.meta(tenant)], args=args, client=client))
            if new_rev >= 0:
                await self._written(tenant, rev, new_rev, stamp, ops)
            return new_rev

        new_rev, acked, wanted = await self.replication.write(tenant, run)
        if new_rev < 0:
            return None
        if acked < wanted:
            raise NotReplicated(new_rev, acked, wanted, self.replication.wait_ms)
        return Written(new_rev, acked, wanted)

    async def _written(
        self, tenant: str, rev: int | None, new_rev: int, stamp: str, ops: Ops
    ) -> None:
        """After a successful CAS: list a new tenant, publish the change event."""
        if rev is None:
            await self.client.sadd(keys.TENANTS, tenant)
        await self.publish(tenant, new_rev, stamp, ops)

    async def publish(self, tenant: str, rev: int, stamp: str, ops: Ops) -> None:
        event: dict[str, Any] = {
            "rev": rev,
            "stamp": stamp,
            "subjects": sorted(ops.subjects),
            "groups": sorted(ops.groups),
            "all": ops.everything,
        }
        if ops.resources:
            event["resources"] = True
        if ops.memberships:
            event["memberships"] = sorted(ops.memberships)
        await self.client.publish(keys.channel(tenant), orjson.dumps(event))

    async def next_gen(self, tenant: str) -> str:
        """Allocate a generation number no other writer will use."""
        value = await self.client.hincrby(keys.meta(tenant), "nextgen", 1)
        return str(value)

    async def tenants(self) -> list[str]:
        members = await self.client.smembers(keys.TENANTS)
        return sorted(_text(m) for m in members)

    async def forget_tenant(self, tenant: str) -> None:
        await self.client.srem(keys.TENANTS, tenant)
        await self.client.delete(keys.meta(tenant))


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None or value is False else str(value)


def text(value: Any) -> str:
    """Decode a Redis reply item to str ('' for nil)."""
    return _text(value)


def _ms(moment: float) -> str:
    return str(int(moment * 1000))


def pairs(flat: list[Any]) -> dict[str, str]:
    """Turn an HGETALL reply into a dict of str."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
