"""`StoreDecider`: the `Decider` over a source of entries (`entries.Entries`).

Checks, batches, `some`, filters, the approval-flow check and the reads the API makes for
searches, written against the `Entries` protocol alone; purchases and the spend ledger come
from its base, `purchases.Purchases`. The service gives it the cached source
(`cached.CachedEntries` around `reader.StoreReader`): decisions on a cached subject touch no
Redis, and `check_cached` / `some_cached`, the hot path, are a dictionary look-up and the
engine's check. Why the cache wraps the entries and not this `Decider`: see `entries.py`.
"""

from __future__ import annotations

from collections.abc import Callable

from groupgate.engine.approvers import APPROVALS, APPROVE
from groupgate.engine.check import check as decide
from groupgate.engine.check import restriction_filter
from groupgate.engine.check import some as decide_some
from groupgate.engine.reference import evaluate
from groupgate.errors import Conflict, NotFound
from groupgate.model import Catalog, Decision, Resource, SubjectKind, new_tuple
from groupgate.store.cache import Entry
from groupgate.store.contract import Answer, FilterAnswer, Page
from groupgate.store.entries import Entries
from groupgate.store.flows import Flows, is_flow_id
from groupgate.store.guard import STORE_ERRORS, Guard
from groupgate.store.ledger import Ledger
from groupgate.store.ops import Client, Graphs, pairs, text
from groupgate.store.purchases import Purchases


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


def _some(entry: Entry, subject: str, action: str, type_id: str, rev: int, stale: bool) -> Answer:
    if entry.subject is None:
        return Answer(Decision(False, f"unknown subject {subject!r}"), rev, stale)
    return Answer(decide_some(entry.profile, action, type_id), rev, stale)


class StoreDecider(Purchases):
    """Every decision surface of the sidecar over `entries` and the store's graphs."""

    def __init__(
        self,
        catalog: Catalog,
        entries: Entries,
        graphs: Graphs,
        flows: Flows,
        ledger: Ledger,
        guard: Guard,
        clock: Callable[[], float],
        client: Client,
    ) -> None:
        self.catalog = catalog
        self.entries = entries
        self.graphs = graphs
        self.flows = flows
        self.ledger = ledger
        self.guard = guard
        self.clock = clock
        self.client = client

    # ------------------------------------------------------------------ checks

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
        await self.entries.confirm(tenant, min_revision)
        if _names_flow(action, resource):
            assert resource.id is not None
            flow = await self._flow_check(tenant, subject, resource.id, min_revision)
            if flow is not None:
                return flow
        entry, rev, stale = await self.entries.entry(tenant, subject, min_revision)
        # Loaded once: `check_cached` needs it.
        table = await self.entries.held(tenant, min_revision)
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
        found = await self.flows.may_approve(tenant, flow_id, subject)
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
        kept = self.entries.lookup(tenant, subject, None)
        if kept is None:
            return None
        entry, rev, stale, table = kept
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
        await self.entries.confirm(tenant, min_revision)
        wanted = {sid for sid, _, _ in items}
        entries = await self.entries.entries(tenant, wanted, min_revision)
        table = await self.entries.held(tenant, min_revision)
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
        await self.entries.confirm(tenant, min_revision)
        entry, rev, stale = await self.entries.entry(tenant, subject, min_revision)
        return _some(entry, subject, action, type_id, rev, stale)

    def some_cached(self, tenant: str, subject: str, action: str, type_id: str) -> Answer | None:
        kept = self.entries.lookup(tenant, subject, None)
        if kept is None:
            return None
        entry, rev, stale, _ = kept
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
        await self.entries.confirm(tenant, min_revision)
        entry, rev, stale = await self.entries.entry(tenant, subject, min_revision)
        return FilterAnswer(restriction_filter(entry.profile, action, type_id), rev, stale)

    def _explain(self, entry: Entry, subject: str, action: str, resource: Resource) -> Decision:
        if entry.subject is None:
            reason = f"unknown subject {subject!r}"
            return Decision(
                False, reason, None, (f"subject {subject} does not exist", f"deny: {reason}")
            )
        return evaluate(
            self.catalog,
            entry.subject.at(self.clock()),
            entry.groups,
            entry.settings,
            action,
            resource,
            entry.approval_groups,
        )

    # ------------------------------------------------------------------ reads for the API

    async def held_ids(
        self, tenant: str, type_id: str, *, min_revision: int | None = None
    ) -> tuple[str, ...]:
        """Ids of the held entities of `type_id`, sorted (empty: none held)."""
        await self.entries.confirm(tenant, min_revision)
        return await self.entries.held_ids(tenant, type_id, min_revision)

    async def subject_kinds(
        self, tenant: str, subjects: list[str], *, min_revision: int | None = None
    ) -> list[SubjectKind | None]:
        """The kind of each subject, in order (None: no such subject)."""
        await self.entries.confirm(tenant, min_revision)
        entries = await self.entries.entries(tenant, set(subjects), min_revision)
        out: list[SubjectKind | None] = []
        for sid in subjects:
            subject = entries[sid][0].subject
            out.append(None if subject is None else subject.kind)
        return out

    async def company_ids(self, tenant: str) -> tuple[str, ...]:
        """Every company id of the tenant, sorted."""
        snap = await self.guard(self.graphs.read(tenant, ("HGETALL", "parents", ())))
        return tuple(sorted(pairs(snap.values[0])))

    async def subject_ids(self, tenant: str, after: str | None, limit: int) -> Page:
        start = "(" + after if after else "-"
        snap = await self.guard(
            self.graphs.read(
                tenant, ("ZRANGEBYLEX", "subjects", (start, "+", "LIMIT", 0, limit + 1))
            )
        )
        ids = [text(x) for x in snap.values[0]]
        more = len(ids) > limit
        ids = ids[:limit]
        return Page(tuple(ids), ids[-1] if more and ids else None, snap.rev)

    async def revision(self, tenant: str) -> int:
        meta = await self.guard(self.graphs.meta(tenant))
        if meta is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        return int(meta[0])

    async def tenants(self) -> list[str]:
        return await self.guard(self.graphs.tenants())

    async def ready(self) -> bool:
        try:
            await self.client.ping()
        except STORE_ERRORS:
            return False
        self.guard.answered()
        return True
