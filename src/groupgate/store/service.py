"""`GraphService`: the graph in Redis behind the `Decider` and `Admin` protocols.

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
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from groupgate import tracing
from groupgate.engine import delegations as delegation_codec
from groupgate.engine import spend
from groupgate.engine.approvers import APPROVALS, APPROVE
from groupgate.engine.check import check as decide
from groupgate.engine.check import restriction_filter
from groupgate.engine.check import some as decide_some
from groupgate.engine.profile import Profile, ProfileCompiler
from groupgate.engine.purchases import evaluate_purchase, wanted_groups
from groupgate.engine.reference import evaluate
from groupgate.errors import Conflict, NotFound, StoreUnavailable
from groupgate.model import (
    EXCLUSIVE_ROLES,
    PREDEFINED_ROLES,
    Catalog,
    Decision,
    Group,
    Money,
    PurchaseDecision,
    Resource,
    Settings,
    Subject,
    SubjectKind,
    new_tuple,
    predefined_group_id,
)
from groupgate.store import codec, held, keys
from groupgate.store.cache import Entry, ProfileCache
from groupgate.store.connect import connect
from groupgate.store.contract import (
    Answer,
    CommitAnswer,
    FilterAnswer,
    Order,
    Page,
    PurchaseAnswer,
    Released,
)
from groupgate.store.events import EventLog
from groupgate.store.export import Exporter
from groupgate.store.flows import Flows, is_flow_id
from groupgate.store.freshness import Freshness
from groupgate.store.ledger import Ledger
from groupgate.store.ops import Client, Graphs, Snapshot, pairs, text
from groupgate.store.replication import NodeClient, Replication
from groupgate.store.shared import SharedReads
from groupgate.store.writes import DEFAULT_EVENTS_MAXLEN, Writer, decode, entity_key
from groupgate.store.written import Written

log = logging.getLogger("groupgate.store")
T = TypeVar("T")
RawT = TypeVar("RawT")

STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
RESOLVE_CHUNK = 500
_NOT_REACHED = (
    "revision {token} not reached: the store is at {rev} "
    "(a token from another store, or writes lost in a failover)"
)


def _names_flow(action: str, resource: Resource) -> bool:
    """Is this `approve` about an approval flow (SPEC section 5)? Then the flow decides, not
    the company-level rules; an id no flow can have (`is_flow_id`) is decided as without."""
    rid = resource.id
    return action == APPROVE and resource.type == APPROVALS and rid is not None and is_flow_id(rid)


def _decide(entry: Entry, subject: str, action: str, resource: Resource) -> Decision:
    """The decision of a check on `entry`, the cache entry of `subject` (absent: a deny)."""
    if entry.subject is None:
        return Decision(False, f"unknown subject {subject!r}")
    return decide(entry.profile, action, resource)


class GraphService:
    """Decisions and admin writes over one Redis (or Cluster, or the embedded fakeredis)."""

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
        #: The tenants' (rev, gen, stamp) as checks with a token confirm them.
        self._metas = SharedReads(self.graphs.meta)
        self.event_log = EventLog(events_maxlen, clock)
        self.writer = Writer(self.graphs, catalog, self.event_log)
        self.flows = Flows(client, self.graphs, self.event_log, ttl=approval_ttl, clock=clock)
        self.sweep_interval = approval_sweep_interval
        self.cache = ProfileCache(cache_size, clock)
        self.ledger = Ledger(client, spend_retention, self.replication)
        self.compiler = ProfileCompiler(catalog)
        self.max_staleness = max_staleness
        self.poll_interval = poll_interval
        self.stale_after = 2 * poll_interval + 0.5
        self.store_errors = 0
        self._subscriber = subscriber if subscriber is not None else client
        #: More clients to close with the service (those of the Sentinels).
        self._owned = tuple(owned)
        self._settings: dict[bytes, Settings] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.freshness = Freshness(
            self.graphs,
            client,
            self._subscriber,
            self.cache,
            poll_interval,
            STORE_ERRORS,
        )

    @property
    def events(self) -> int:
        """Change events applied (`Freshness`)."""
        return self.freshness.events

    def use_catalog(self, catalog: Catalog) -> None:
        """Decide with another policy set from now on (a reload): swap the catalog, the
        compiler and the writer's catalog and drop every compiled profile, in one step."""
        self.catalog = catalog
        self.compiler = ProfileCompiler(catalog)
        self.writer.catalog = catalog
        self.cache.drop_profiles()

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
        """Start the change-event listener and the revision poller."""
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
                await self._metas.close()
                await self.replication.close()
                await _close(self.client)
                if self._subscriber is not self.client:
                    await _close(self._subscriber)
                for owned in self._owned:
                    await _close(owned)

    # ------------------------------------------------------------------ decisions

    async def check(
        self,
        tenant: str,
        subject: str,
        action: str,
        resource: Resource,
        *,
        min_revision: int | None = None,
        explain: bool = False,
    ) -> Answer:
        await self._confirm(tenant, min_revision)
        if _names_flow(action, resource):
            assert resource.id is not None
            flow = await self._flow_check(tenant, subject, resource.id, min_revision)
            if flow is not None:
                return flow
        entry, rev, stale = await self._entry(tenant, subject, min_revision)
        table = await self._held(tenant, min_revision)  # loaded once: `check_cached` needs it
        if table and resource.id is not None:
            found = table.get((resource.type, resource.id))
            if found is not None:
                resource = found.merge(resource)
        if explain:
            return Answer(self._explain(entry, subject, action, resource), rev, stale)
        return Answer(_decide(entry, subject, action, resource), rev, stale)

    async def _flow_check(
        self, tenant: str, subject: str, flow_id: str, min_revision: int | None
    ) -> Answer | None:
        """`approve` on `approvals` with the id of a flow: may the subject approve that flow
        now (its current tier)? None when the id names no flow (the company-level answer)."""
        found = await self._guard(self.flows.may_approve(tenant, flow_id, subject))
        if found is None:
            return None
        decision, rev = found
        if min_revision is not None and rev < min_revision:
            raise Conflict(f"revision {min_revision} not reached: the store is at {rev}")
        return Answer(decision, rev)

    def check_cached(
        self, tenant: str, subject: str, action: str, resource: Resource
    ) -> Answer | None:
        if _names_flow(action, resource):
            return None  # it may name an approval flow: `check` reads it
        cached = self._lookup(tenant, subject, None)
        if cached is None:
            return None
        entry, rev, stale, table = cached
        if resource.id is not None and table is not None:
            if table:
                found = table.get((resource.type, resource.id))
                if found is not None:
                    resource = found.merge(resource)
        elif resource.id is not None:
            return None  # the held resources are not loaded: `check` loads them
        return new_tuple(Answer, (_decide(entry, subject, action, resource), rev, stale))

    async def check_many(
        self,
        tenant: str,
        items: list[tuple[str, str, Resource]],
        *,
        min_revision: int | None = None,
        explain: bool = False,
    ) -> list[Answer]:
        await self._confirm(tenant, min_revision)
        wanted = {sid for sid, _, _ in items}
        entries = await self._entries(tenant, wanted, min_revision)
        table = await self._held(tenant, min_revision)
        answers: list[Answer] = []
        for sid, action, resource in items:
            if _names_flow(action, resource):
                assert resource.id is not None
                flow = await self._flow_check(tenant, sid, resource.id, min_revision)
                if flow is not None:
                    answers.append(flow)
                    continue
            entry, rev, stale = entries[sid]
            if table and resource.id is not None:
                found = table.get((resource.type, resource.id))
                if found is not None:
                    resource = found.merge(resource)
            if explain:
                decision = self._explain(entry, sid, action, resource)
            else:
                decision = _decide(entry, sid, action, resource)
            answers.append(new_tuple(Answer, (decision, rev, stale)))
        return answers

    async def some(
        self,
        tenant: str,
        subject: str,
        action: str,
        type_id: str,
        *,
        min_revision: int | None = None,
    ) -> Answer:
        await self._confirm(tenant, min_revision)
        entry, rev, stale = await self._entry(tenant, subject, min_revision)
        return _some(entry, subject, action, type_id, rev, stale)

    def some_cached(self, tenant: str, subject: str, action: str, type_id: str) -> Answer | None:
        cached = self._cached(tenant, subject, None)
        if cached is None:
            return None
        entry, rev, stale = cached
        return _some(entry, subject, action, type_id, rev, stale)

    async def filter(
        self,
        tenant: str,
        subject: str,
        action: str,
        type_id: str,
        *,
        min_revision: int | None = None,
    ) -> FilterAnswer:
        await self._confirm(tenant, min_revision)
        entry, rev, stale = await self._entry(tenant, subject, min_revision)
        return FilterAnswer(restriction_filter(entry.profile, action, type_id), rev, stale)

    async def purchase(
        self,
        tenant: str,
        subject: str,
        company: str,
        amount: Money,
        *,
        min_revision: int | None = None,
        cost_center: str | None = None,
    ) -> PurchaseAnswer:
        await self._confirm(tenant, min_revision)
        entry, _, _ = await self._entry(tenant, subject, min_revision)
        predefined = [predefined_group_id(company, role) for role in PREDEFINED_ROLES]
        now = self.cache.clock()
        # The spend totals of every period of the company and the subject, and of the
        # company's budgets of the cost centre, read with the company: its limits are not
        # known before it is, and a second round trip would cost an evaluation with limits
        # half its speed (`benchmarks spend`).
        moment, zone = datetime.fromtimestamp(now, UTC), spend.zone(entry.settings.time_zone)
        # The subject's totals only when it has limits of its own (known from its entry).
        limited = entry.subject is not None and bool(entry.subject.spending_limits)
        day = moment.astimezone(zone).date()
        owner = subject if limited else None
        buckets, names = period_keys(tenant, company, owner, amount.currency, day, zone)
        hashed = (
            keys.spend_budgets(tenant, company, cost_center, amount.currency)
            if cost_center is not None
            else None
        )
        with tracing.span("store.purchase", tenant=tenant, company=company):
            snap, chain, members, spent, by_budget = await self._guard(
                self.graphs.purchase(
                    tenant,
                    company,
                    predefined,
                    self._policy_groups(company),
                    now,
                    list(names),
                    hashed,
                )
            )
        if not chain:
            raise NotFound(f"unknown company {company!r}")
        record, *ancestors = [codec.load_company(raw) for raw in chain]
        totals = {b: int(v) if v else 0 for b, v in zip(buckets, spent, strict=True)}
        totals.update(
            (("budget", company, b.id), int(by_budget.get(b.id, 0))) for b in record.budgets
        )
        roles: frozenset[str] = frozenset()
        groups: frozenset[str] = frozenset()
        if entry.subject is not None:
            prefix = company + "/"
            groups = frozenset(entry.subject.at(now).group_ids())
            roles = frozenset(
                gid[len(prefix) :]
                for gid in groups
                if gid.startswith(prefix) and gid[len(prefix) :] in EXCLUSIVE_ROLES
            )

        def run() -> PurchaseDecision:
            return evaluate_purchase(
                subject,
                record,
                roles,
                members,
                amount,
                ancestors=ancestors,
                policy_rules=self.catalog.approval_rules,
                cost_center=cost_center,
                groups=groups,
            )

        result = run()
        wanted = wanted_groups(result, record, members)
        if wanted:
            # The script reads every group the tiers may name; a group it could not know of
            # (none today) is read here, and the purchase decided again with its members.
            _, found = await self._guard(self.graphs.approving_members(tenant, sorted(wanted), now))
            members.update(found)
            result = run()
        if result.decision != "deny" and result.error is None:
            items = spend.lines(
                record, entry.subject, amount.currency, cost_center, moment, zone, limited_only=True
            )
            if items:
                # Every total the limited lines need was read above, with the graph; when it
                # could not be, `_guard` raised `StoreUnavailable`: never an allow.
                current = [totals[line.scope, line.owner, line.bucket] for line in items]
                try:
                    over = spend.passed(items, current, spend.to_units(amount.amount))
                except spend.AmountError:
                    over = items  # an amount the ledger cannot hold can never be committed
                rules = spend.rules_of(over)
                result = spend.require_admins(result, rules, subject, record, members)
        return PurchaseAnswer(result, snap.rev)

    # ------------------------------------------------------------------ spend ledger

    async def commit(self, tenant: str, order: Order) -> CommitAnswer:
        entry, _, _ = await self._entry(tenant, order.subject, None)
        if entry.subject is None:
            raise NotFound(f"unknown subject {order.subject!r}")
        snap = await self._guard(
            self.graphs.read(tenant, ("GET", keys.RELATIVE.company(order.company), ()))
        )
        if not snap.values[0]:
            raise NotFound(f"unknown company {order.company!r}")
        company = codec.load_company(snap.values[0])
        zone = spend.zone(entry.settings.time_zone)
        # The cache's clock: the one expiring grants follow (tests set it).
        now = datetime.fromtimestamp(self.cache.clock(), UTC)
        found = spend.lines(
            company, entry.subject, order.amount.currency, order.cost_center, now, zone
        )
        done = await self._guard(self.ledger.commit(tenant, order, found, int(now.timestamp())))
        if done.replayed:
            # The answer of the first commit: its lines are those of its time.
            then = datetime.fromtimestamp(done.time, UTC)
            found = spend.lines(
                company, entry.subject, order.amount.currency, order.cost_center, then, zone
            )
        totals = tuple(
            (line, total)
            for line, total in zip(found, done.totals, strict=False)
            if line.limit is not None
        )
        return CommitAnswer(totals, done.ledger_revision, snap.rev, done.approved, done.replayed)

    async def release(self, tenant: str, order_id: str) -> Released:
        now = int(self.cache.clock())
        return await self._guard(self.ledger.release(tenant, order_id, now))

    def _policy_groups(self, company: str) -> list[str]:
        """The groups the tenant-wide rules' tiers name, in `company` (read with its own)."""
        out: dict[str, None] = {}
        for rule in self.catalog.approval_rules:
            for tier in rule.tiers:
                for names in tier:
                    for name in names:
                        gid = (
                            predefined_group_id(company, name) if name in PREDEFINED_ROLES else name
                        )
                        out[gid] = None
        return list(out)

    def _explain(self, entry: Entry, subject: str, action: str, resource: Resource) -> Decision:
        if entry.subject is None:
            reason = f"unknown subject {subject!r}"
            return Decision(
                False, reason, None, (f"subject {subject} does not exist", f"deny: {reason}")
            )
        return evaluate(
            self.catalog,
            entry.subject.at(self.cache.clock()),
            entry.groups,
            entry.settings,
            action,
            resource,
            entry.approval_groups,
        )

    # ------------------------------------------------------------------ held resources

    async def _held(self, tenant: str, min_revision: int | None) -> held.Table:
        """The tenant's held resource table: the in-process one, else loaded in one call."""
        state = self.cache.tenants.get(tenant)
        if (
            state is not None
            and state.held is not None
            and (min_revision is None or state.known_rev >= min_revision)
        ):
            return state.held
        table, _ = await self._load_held(tenant, min_revision)
        return table

    async def _confirm(self, tenant: str, min_revision: int | None) -> None:
        """Before a check with a token (`min_revision`) may be answered from the cache, read
        the store's (rev, gen, stamp) and reconcile the cache with it: a store that went
        back below what the cache holds drops the cache (invariant 5), and one below the
        token refuses it (`Conflict`), never answered from the cache. A check the cache
        cannot answer anyway (behind the token) reads the store without this. Concurrent
        checks share a read begun after all of them arrived (`SharedReads`)."""
        state = self.cache.tenants.get(tenant)
        if min_revision is None or state is None or state.known_rev < min_revision:
            return
        meta = await self._guard(self._metas.read(tenant))
        if meta is None:
            self._checked(tenant, None, min_revision)
            return
        rev, gen, stamp = meta
        self.cache.reconcile(tenant, rev, gen, stamp, time.monotonic(), self.poll_interval)
        if rev < min_revision:
            raise Conflict(_NOT_REACHED.format(token=min_revision, rev=rev))

    def _checked(
        self, tenant: str, found: tuple[Snapshot, RawT] | None, min_revision: int | None
    ) -> tuple[Snapshot, RawT]:
        """A read's snapshot once it is known to be usable: `NotFound` for an unknown tenant
        (its cache dropped), `Conflict` below `min_revision`; its revision seen by the cache."""
        if found is None:
            self.cache.tenants.pop(tenant, None)
            raise NotFound(f"unknown tenant {tenant!r}")
        snap, raw = found
        if min_revision is not None and snap.rev < min_revision:
            raise Conflict(_NOT_REACHED.format(token=min_revision, rev=snap.rev))
        self.cache.observe(tenant, snap.rev, snap.gen, snap.stamp)
        return snap, raw

    async def _load_held(
        self, tenant: str, min_revision: int | None
    ) -> tuple[held.Table, dict[str, tuple[str, ...]]]:
        snap, raw = self._checked(
            tenant, await self._guard(self.graphs.resources(tenant)), min_revision
        )
        table: held.Table = {}
        ids: dict[str, tuple[str, ...]] = {}
        for type_id, entities in raw.items():
            ids[type_id] = tuple(sorted(entities))
            for resource_id, value in entities.items():
                table[type_id, resource_id] = held.load(value)
        self.cache.put_resources(tenant, table, ids, snap.rev)
        return table, ids

    async def held_ids(
        self, tenant: str, type_id: str, *, min_revision: int | None = None
    ) -> tuple[str, ...]:
        """Ids of the held entities of `type_id`, sorted (empty: none held)."""
        await self._confirm(tenant, min_revision)
        state = self.cache.tenants.get(tenant)
        if (
            state is not None
            and state.held is not None
            and (min_revision is None or state.known_rev >= min_revision)
        ):
            return state.held_ids.get(type_id, ())
        _, ids = await self._load_held(tenant, min_revision)
        return ids.get(type_id, ())

    async def company_ids(self, tenant: str) -> tuple[str, ...]:
        """Every company id of the tenant, sorted."""
        snap = await self._guard(self.graphs.read(tenant, ("HGETALL", "parents", ())))
        return tuple(sorted(pairs(snap.values[0])))

    async def subject_kinds(
        self, tenant: str, subjects: list[str], *, min_revision: int | None = None
    ) -> list[SubjectKind | None]:
        """The kind of each subject, in order (None: no such subject)."""
        await self._confirm(tenant, min_revision)
        entries = await self._entries(tenant, set(subjects), min_revision)
        out: list[SubjectKind | None] = []
        for sid in subjects:
            subject = entries[sid][0].subject
            out.append(None if subject is None else subject.kind)
        return out

    # ------------------------------------------------------------------ cache and resolve

    async def _entry(
        self, tenant: str, subject: str, min_revision: int | None
    ) -> tuple[Entry, int, bool]:
        cached = self._cached(tenant, subject, min_revision)
        if cached is not None:
            return cached
        found = await self._resolve(tenant, [subject], min_revision)
        return found[subject]

    def _cached(
        self, tenant: str, subject: str, min_revision: int | None
    ) -> tuple[Entry, int, bool] | None:
        """The cached entry with its revision and staleness flag, or None: ask the store."""
        found = self._lookup(tenant, subject, min_revision)
        return None if found is None else found[:3]

    def _lookup(
        self, tenant: str, subject: str, min_revision: int | None
    ) -> tuple[Entry, int, bool, held.Table | None] | None:
        """`_cached`, with the tenant's held resource table (None: not loaded)."""
        state = self.cache.tenants.get(tenant)
        if state is None or (min_revision is not None and state.known_rev < min_revision):
            return None
        entry = self.cache.get(tenant, subject)
        if entry is None:
            return None
        age = time.monotonic() - self.freshness.last_ok
        if age <= self.stale_after:
            return entry, state.known_rev, False, state.held
        if age > self.max_staleness:
            raise StoreUnavailable(
                f"store unreachable for {age:.0f}s "
                f"(bound {self.max_staleness:.0f}s): failing closed"
            )
        return entry, state.known_rev, True, state.held

    async def _entries(
        self, tenant: str, subjects: Collection[str], min_revision: int | None
    ) -> dict[str, tuple[Entry, int, bool]]:
        out: dict[str, tuple[Entry, int, bool]] = {}
        state = self.cache.tenants.get(tenant)
        if (
            state is not None
            and (min_revision is None or state.known_rev >= min_revision)
            and time.monotonic() - self.freshness.last_ok <= self.stale_after
        ):
            rev = state.known_rev
            for sid, entry in self.cache.get_many(tenant, subjects).items():
                out[sid] = (entry, rev, False)
            missing = [sid for sid in subjects if sid not in out]
        else:
            missing = list(subjects)
        for i in range(0, len(missing), RESOLVE_CHUNK):
            out.update(await self._resolve(tenant, missing[i : i + RESOLVE_CHUNK], min_revision))
        return out

    async def _resolve(
        self, tenant: str, subjects: list[str], min_revision: int | None
    ) -> dict[str, tuple[Entry, int, bool]]:
        self.cache.misses += len(subjects)
        with tracing.span("store.resolve", tenant=tenant, subjects=len(subjects)):
            return await self._resolve_traced(tenant, subjects, min_revision)

    async def _resolve_traced(
        self, tenant: str, subjects: list[str], min_revision: int | None
    ) -> dict[str, tuple[Entry, int, bool]]:
        try:
            found = await self.graphs.resolve(tenant, subjects)
            snap, settings_raw = self._checked(tenant, found, min_revision)
            loaded = [
                self._load(sid, value) for sid, value in zip(subjects, snap.values, strict=True)
            ]
            # Read after the subjects: a write in between is evicted by its event, and the
            # entries are kept at the subjects' revision (cache invariant 3).
            companies = sorted(
                {g.company for _, groups in loaded for g in groups.values() if g.company}
            )
            now = self.cache.clock()
            approval = (
                await self.graphs.approval_groups(tenant, companies, now) if companies else {}
            )
        except STORE_ERRORS as exc:
            self.store_errors += 1
            return self._from_stale_cache(tenant, subjects, min_revision, exc)
        self.freshness.last_ok = time.monotonic()
        settings = self._load_settings(settings_raw)
        active = {c: group for c, (group, on, _) in approval.items() if on}
        out: dict[str, tuple[Entry, int, bool]] = {}
        with tracing.span("compile", subjects=len(subjects)):
            for sid, (subject, groups) in zip(subjects, loaded, strict=True):
                out[sid] = self._compiled(
                    tenant, sid, subject, groups, settings, snap.rev, active, now, approval
                )
        return out

    def _compiled(
        self,
        tenant: str,
        sid: str,
        subject: Subject | None,
        groups: dict[str, Group],
        settings: Settings,
        rev: int,
        active: Mapping[str, str],
        now: float,
        approval: Mapping[str, tuple[str, bool, float | None]],
    ) -> tuple[Entry, int, bool]:
        """Compile one resolved subject, note what its entry depends on, and cache it."""
        entry = self._compile(tenant, sid, subject, groups, settings, rev, active, now)
        mine = {
            approval[company]
            for g in groups.values()
            if (company := g.company) is not None and company in approval
        }
        entry.depends = frozenset(group for group, _, _ in mine)
        entry.expires = min(
            (t for t in (entry.expires, *(t for _, _, t in mine)) if t is not None),
            default=None,
        )
        self.cache.put(tenant, sid, entry, rev)
        return entry, rev, False

    def _from_stale_cache(
        self, tenant: str, subjects: list[str], min_revision: int | None, exc: BaseException
    ) -> dict[str, tuple[Entry, int, bool]]:
        """Serve cached entries flagged stale while the staleness bound allows; else fail closed."""
        age = time.monotonic() - self.freshness.last_ok
        state = self.cache.tenants.get(tenant)
        reason = f"store unreachable ({type(exc).__name__}): failing closed"
        if state is None or min_revision is not None or age > self.max_staleness:
            log.warning("store error for tenant %s: %s", tenant, exc)
            raise StoreUnavailable(reason)
        out: dict[str, tuple[Entry, int, bool]] = {}
        for sid in subjects:
            entry = self.cache.entries.get((tenant, sid))
            if entry is None or (entry.expires is not None and self.cache.clock() >= entry.expires):
                raise StoreUnavailable(reason)
            out[sid] = (entry, state.known_rev, True)
        return out

    def _load(self, subject_id: str, value: Any) -> tuple[Subject | None, dict[str, Group]]:
        """Decode one resolved subject and the groups it is linked to (None: unknown)."""
        if value is None:
            return None, {}
        raw, links, ids, raws = value
        groups: dict[str, Group] = {
            gid: self.writer.groups.load(graw) for gid, graw in zip(ids, raws, strict=True) if graw
        }
        return codec.load_subject(subject_id, raw, links), groups

    def _compile(
        self,
        tenant: str,
        subject_id: str,
        subject: Subject | None,
        groups: dict[str, Group],
        settings: Settings,
        rev: int,
        approval_groups: Mapping[str, str],
        now: float,
    ) -> Entry:
        """Compile the subject as of `now` (only the links that hold then); the entry keeps
        the whole subject and expires when one of its links starts or ends."""
        if subject is None:
            empty = Profile(tenant, subject_id, rev, (), {})
            return Entry(empty, None, {}, settings)
        profile = self.compiler.compile(
            subject.at(now),
            groups,
            settings,
            tenant=tenant,
            revision=rev,
            approval_groups=approval_groups,
        )
        return Entry(
            profile,
            subject,
            groups,
            settings,
            expires=subject.next_boundary(now),
            approval_groups=approval_groups,
        )

    def _load_settings(self, raw: bytes) -> Settings:
        settings = self._settings.get(raw)
        if settings is None:
            settings = codec.load_settings(raw)
            if len(self._settings) > 1000:
                self._settings.clear()
            self._settings[raw] = settings
        return settings

    async def _guard(self, call: Awaitable[T]) -> T:
        """Await a store call; a store error fails closed."""
        try:
            result = await call
        except STORE_ERRORS as exc:
            self.store_errors += 1
            raise StoreUnavailable(
                f"store unreachable ({type(exc).__name__}): failing closed"
            ) from None
        self.freshness.last_ok = time.monotonic()
        return result

    # ------------------------------------------------------------------ freshness

    async def _sweep(self) -> None:
        """Expire pending approval flows past their expiry, in every tenant, periodically
        (each emits `approval.expired` once: the script changes only a PENDING flow)."""
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                for tenant in await self.graphs.tenants():
                    await self.flows.sweep(tenant)
            except (*STORE_ERRORS, StoreUnavailable) as exc:
                self.store_errors += 1
                log.warning("approval sweep failed: %s", exc)

    # ------------------------------------------------------------------ reads for the API

    async def subject_ids(self, tenant: str, after: str | None, limit: int) -> Page:
        start = "(" + after if after else "-"
        snap = await self._guard(
            self.graphs.read(
                tenant, ("ZRANGEBYLEX", "subjects", (start, "+", "LIMIT", 0, limit + 1))
            )
        )
        ids = [text(x) for x in snap.values[0]]
        more = len(ids) > limit
        ids = ids[:limit]
        return Page(tuple(ids), ids[-1] if more and ids else None, snap.rev)

    async def revision(self, tenant: str) -> int:
        meta = await self._guard(self.graphs.meta(tenant))
        if meta is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        return int(meta[0])

    async def tenants(self) -> list[str]:
        return await self._guard(self.graphs.tenants())

    async def ready(self) -> bool:
        try:
            await self.client.ping()
        except STORE_ERRORS:
            return False
        self.freshness.last_ok = time.monotonic()
        return True

    def stats(self) -> dict[str, int]:
        """Counters for /metrics."""
        return {
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "cache_entries": len(self.cache.entries),
            "cache_evictions": self.cache.evictions,
            "cache_flushes": self.cache.flushes,
            "store_errors": self.store_errors + self.freshness.errors,
            "change_events": self.freshness.events,
        }

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
                    chunk = await self._guard(anext(chunks))
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            await chunks.aclose()

    # ------------------------------------------------------------------ admin (writes)

    async def import_graph(self, tenant: str | None, document: Any) -> Written:
        return await self._guard(self.writer.import_graph(tenant, document))

    async def put_subject(self, tenant: str, document: Any) -> Written:
        return await self._guard(self.writer.put_subject(tenant, document))

    async def delete_subject(self, tenant: str, subject: str) -> Written:
        return await self._guard(self.writer.delete_subject(tenant, subject))

    async def put_group(self, tenant: str, document: Any) -> Written:
        return await self._guard(self.writer.put_group(tenant, document))

    async def delete_group(self, tenant: str, group: str) -> Written:
        return await self._guard(self.writer.delete_group(tenant, group))

    async def put_company(self, tenant: str, document: Any) -> Written:
        return await self._guard(self.writer.put_company(tenant, document))

    async def delete_company(self, tenant: str, company: str) -> Written:
        return await self._guard(self.writer.delete_company(tenant, company))

    async def put_vendor(self, tenant: str, document: Any) -> Written:
        return await self._guard(self.writer.put_vendor(tenant, document))

    async def delete_vendor(self, tenant: str, vendor: str) -> Written:
        return await self._guard(self.writer.delete_vendor(tenant, vendor))

    async def add_membership(self, tenant: str, subject: str, document: Any) -> Written:
        return await self._guard(self.writer.add_membership(tenant, subject, document))

    async def remove_membership(self, tenant: str, subject: str, group: str) -> Written:
        return await self._guard(self.writer.remove_membership(tenant, subject, group))

    async def put_settings(self, tenant: str, document: Any) -> Written:
        return await self._guard(self.writer.put_settings(tenant, document))

    async def delete_tenant(self, tenant: str) -> Written:
        return await self._guard(self.writer.delete_tenant(tenant))

    async def put_resource(self, tenant: str, document: Any) -> Written:
        return await self._guard(self.writer.put_resource(tenant, document))

    async def put_delegation(self, tenant: str, document: Any) -> tuple[str, Written]:
        return await self._guard(self.writer.put_delegation(tenant, document))

    async def delete_delegation(self, tenant: str, delegation_id: str) -> Written:
        return await self._guard(self.writer.delete_delegation(tenant, delegation_id))

    async def delegations(self, tenant: str) -> tuple[list[dict[str, str]], int]:
        snap = await self._guard(
            self.graphs.read(tenant, ("HGETALL", keys.RELATIVE.delegations(), ()))
        )
        found = [delegation_codec.load(orjson.loads(v)) for v in pairs(snap.values[0]).values()]
        return [delegation_codec.document(d) for d in sorted(found, key=lambda d: d.id)], snap.rev

    async def delete_resource(self, tenant: str, type_id: str, resource_id: str) -> Written:
        return await self._guard(self.writer.delete_resource(tenant, type_id, resource_id))

    async def get_resource(self, tenant: str, type_id: str, resource_id: str) -> dict[str, Any]:
        rel = keys.RELATIVE
        snap = await self._guard(
            self.graphs.read(tenant, ("HGET", rel.resources(type_id), (resource_id,)))
        )
        if not snap.values[0]:
            raise NotFound(f"unknown resource {type_id}/{resource_id}")
        return held.document(type_id, resource_id, snap.values[0])

    async def get_entity(self, tenant: str, kind: str, entity_id: str) -> dict[str, Any]:
        rel = keys.RELATIVE
        suffix = entity_key(rel, kind, entity_id)
        reads: list[tuple[str, str, tuple[Any, ...]]] = [("GET", suffix, ())]
        if kind == "subject":
            reads.append(("HGETALL", rel.links(entity_id), ()))
        snap = await self._guard(self.graphs.read(tenant, *reads))
        if not snap.values[0]:
            raise NotFound(f"unknown {kind} {entity_id!r}")
        if kind == "subject":
            subject = codec.load_subject(entity_id, snap.values[0], pairs(snap.values[1]))
            return codec.subject_document(subject)
        return decode(snap.values[0])


@functools.lru_cache(maxsize=65_536)
def period_keys(
    tenant: str, company: str, subject: str | None, currency: str, day: date, zone: ZoneInfo
) -> tuple[tuple[tuple[str, str, str], ...], tuple[str, ...]]:
    """The period buckets (scope, owner, label) of `company` (and of `subject` unless None)
    on the local `day`, with their spend-total keys: memoised, an evaluation builds none."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=zone)
    owners = [("company", company)] + ([("subject", subject)] if subject is not None else [])
    buckets = tuple(
        (scope, owner, window.label)
        for scope, owner in owners
        for window in spend.windows(moment, zone)
    )
    return buckets, tuple(keys.spend_total(tenant, *bucket, currency) for bucket in buckets)


def _some(entry: Entry, subject: str, action: str, type_id: str, rev: int, stale: bool) -> Answer:
    if entry.subject is None:
        return Answer(Decision(False, f"unknown subject {subject!r}"), rev, stale)
    return Answer(decide_some(entry.profile, action, type_id), rev, stale)


async def _close(client: Client) -> None:
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        # A client built on an explicit pool does not own it: close the pool too.
        await client.aclose(close_connection_pool=True)
