"""What the store layer offers the API: the `Decider` and `Admin` protocols and answer types.

The API layer depends on these names only; over Redis (or the embedded fakeredis)
`decider.StoreDecider` implements `Decider` and `admin.StoreAdmin` implements `Admin`, both
built by `service.GraphService` (its `decider` and `admin`). Every answer carries the
revision of the data it was computed from; `stale` is set when Redis was unreachable and the
answer came from a cache younger than the configured staleness bound.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from groupgate.engine.spend import Line
from groupgate.model import (
    Catalog,
    Decision,
    FilterResult,
    Flow,
    Money,
    PurchaseDecision,
    Resource,
    SubjectKind,
)
from groupgate.store.export import Exporter
from groupgate.store.written import Written


class Answer(NamedTuple):
    """A check's answer (a named tuple: batches make hundreds per request)."""

    decision: Decision
    revision: int
    stale: bool = False


@dataclass(frozen=True, slots=True)
class FilterAnswer:
    result: FilterResult
    revision: int
    stale: bool = False


@dataclass(frozen=True, slots=True)
class PurchaseAnswer:
    result: PurchaseDecision
    revision: int
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Order:
    """A commit's content: what makes two commits of one order id the same."""

    order_id: str
    subject: str
    company: str
    #: The amount as sent (for the approval comparison and answers) and in ledger units.
    amount: Money
    text: str
    units: int
    cost_center: str | None = None
    approval_id: str | None = None

    def fingerprint(self) -> str:
        parts = (
            self.subject,
            self.company,
            str(self.units),
            self.amount.currency,
            self.cost_center or "",
            self.approval_id or "",
        )
        return "\x1f".join(parts)


@dataclass(frozen=True, slots=True)
class CommitAnswer:
    """A commit's answer: every limited line with its total after the commit (the totals of
    a replay are those of the first commit), the ledger's and the graph's revisions."""

    totals: tuple[tuple[Line, int], ...]
    ledger_revision: int
    revision: int
    approved: bool
    replayed: bool


@dataclass(frozen=True, slots=True)
class Released:
    """A release's answer: the ledger revision of the release and what the order was."""

    ledger_revision: int
    subject: str
    company: str
    amount: str
    currency: str
    cost_center: str | None


@dataclass(frozen=True, slots=True)
class FlowView:
    """An approval flow as answered: the flow, per tier the groups and subjects that may
    fill its open lists now (empty for tiers already approved and for an ended flow), and
    the revision they were decided at."""

    flow: Flow
    eligible: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    revision: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a search: ids in a stable order and the token of the next page, if any."""

    items: tuple[str, ...]
    next_token: str | None
    revision: int


class Decider(Protocol):
    """Read side: every decision surface of the sidecar."""

    #: The policy set decided with (`GraphService.use_catalog` swaps it on a reload).
    catalog: Catalog

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
        """Decide one check. An unknown subject is a deny with a reason, not an error.

        Raises `NotFound` for an unknown tenant and `StoreUnavailable` when the store is down
        and the cache is older than the staleness bound (fail closed).
        """
        ...

    def check_cached(
        self, tenant: str, subject: str, action: str, resource: Resource
    ) -> Answer | None:
        """`check` (no explain, no consistency token) answered from the in-process cache alone.

        Returns None when the answer needs the store; the caller then awaits `check`. Raises
        as `check` does when the cache may no longer be used (fail closed).
        """
        ...

    async def check_many(
        self,
        tenant: str,
        items: list[tuple[str, str, Resource]],
        *,
        min_revision: int | None = None,
        explain: bool = False,
    ) -> list[Answer]:
        """Decide a batch of (subject, action, resource) in order, resolving each subject once."""
        ...

    async def some(
        self,
        tenant: str,
        subject: str,
        action: str,
        type_id: str,
        *,
        min_revision: int | None = None,
    ) -> Answer:
        """May the subject do `action` on *some* entity of the type (the gateway's question)?"""
        ...

    def some_cached(self, tenant: str, subject: str, action: str, type_id: str) -> Answer | None:
        """`some` (no consistency token) from the in-process cache alone; None when it needs
        the store (then await `some`). Raises as `some` does when the cache may no longer be
        used (fail closed)."""
        ...

    async def filter(
        self,
        tenant: str,
        subject: str,
        action: str,
        type_id: str,
        *,
        min_revision: int | None = None,
    ) -> FilterAnswer: ...

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
        """Decide a purchase (built-in rules, then the approval rules that match; SPEC
        section 5). Raises `NotFound` for an unknown company, `StoreUnavailable` when the
        spend totals a limit needs cannot be read."""
        ...

    async def commit(self, tenant: str, order: Order) -> CommitAnswer:
        """Record an order's spend (SPEC section 5); `Refused` (409) when a limit or the
        approval does not allow it, `NotFound` for an unknown subject or company."""
        ...

    async def release(self, tenant: str, order_id: str) -> Released:
        """Subtract what an order added, once; `NotFound` for an unknown order."""
        ...

    async def subject_ids(self, tenant: str, after: str | None, limit: int) -> Page:
        """Subjects of the tenant in id order, starting after `after` (for AuthZEN search)."""
        ...

    async def subject_kinds(
        self, tenant: str, subjects: list[str], *, min_revision: int | None = None
    ) -> list[SubjectKind | None]:
        """The kind of each subject, in order (None: no such subject)."""
        ...

    async def held_ids(
        self, tenant: str, type_id: str, *, min_revision: int | None = None
    ) -> tuple[str, ...]:
        """Ids of the resource entities of `type_id` groupgate holds, sorted."""
        ...

    async def company_ids(self, tenant: str) -> tuple[str, ...]:
        """Every company id of the tenant, sorted."""
        ...

    async def revision(self, tenant: str) -> int: ...

    async def tenants(self) -> list[str]: ...

    async def ready(self) -> bool:
        """True when the store answers and the policy is loaded."""
        ...


class Admin(Protocol):
    """Write side. Every write is validated against the current graph and applied atomically;
    it returns the tenant's new revision with its replicas' acknowledgement (`Written`). A
    refused write raises `GraphError`/`NotFound` and changes nothing; one that fewer replicas
    acknowledged than it waited for raises `NotReplicated` (it is applied on the primary)."""

    async def import_graph(self, tenant: str | None, document: Any) -> Written:
        """Validate a whole graph document and make it the tenant's graph, atomically."""
        ...

    async def put_subject(self, tenant: str, document: Any) -> Written: ...
    async def delete_subject(self, tenant: str, subject: str) -> Written: ...
    async def put_group(self, tenant: str, document: Any) -> Written: ...
    async def delete_group(self, tenant: str, group: str) -> Written: ...
    async def put_company(self, tenant: str, document: Any) -> Written: ...
    async def delete_company(self, tenant: str, company: str) -> Written: ...
    async def put_vendor(self, tenant: str, document: Any) -> Written: ...
    async def delete_vendor(self, tenant: str, vendor: str) -> Written: ...
    async def add_membership(self, tenant: str, subject: str, document: Any) -> Written:
        """`document` is a membership (`"group"` or `{"group", "permission"}`), or
        `{"company": id, "role": "buyer"}` for a predefined group (aliases accepted)."""
        ...

    async def remove_membership(self, tenant: str, subject: str, group: str) -> Written: ...
    async def put_settings(self, tenant: str, document: Any) -> Written: ...
    async def get_entity(self, tenant: str, kind: str, entity_id: str) -> dict[str, Any]:
        """Return the stored JSON of a subject, group, company or vendor (kind in those words)."""
        ...

    async def delete_tenant(self, tenant: str) -> Written: ...
    async def put_resource(self, tenant: str, document: Any) -> Written:
        """Create or replace a held resource entity `{"type", "id", "attributes"}`."""
        ...

    async def delete_resource(self, tenant: str, type_id: str, resource_id: str) -> Written: ...
    async def put_delegation(self, tenant: str, document: Any) -> tuple[str, Written]:
        """Create or replace a delegation; return its id and the new revision."""
        ...

    async def delete_delegation(self, tenant: str, delegation_id: str) -> Written: ...
    async def delegations(self, tenant: str) -> tuple[list[dict[str, str]], int]:
        """The tenant's delegations as documents, by id, and the revision read."""
        ...

    async def get_resource(self, tenant: str, type_id: str, resource_id: str) -> dict[str, Any]:
        """Return a held resource entity as `{"type", "id", "attributes"}`."""
        ...

    def exporter(self, batch: int = 500) -> Exporter:
        """An exporter for `export`; it says the revision exported once a piece is out."""
        ...

    def export(self, tenant: str, exporter: Exporter) -> AsyncGenerator[bytes, None]:
        """The tenant's graph document in pieces, read at one revision (`store/export.py`):
        `NotFound` before the first piece, `export.Moved` when a write lands meanwhile."""
        ...
