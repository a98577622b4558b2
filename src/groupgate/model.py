"""Immutable domain types shared by every layer.

Everything here is a frozen dataclass with slots: values are validated once at the edge
(`groupgate.policy` for policy files, `groupgate.engine.graph` for graph documents, the API for
requests) and then trusted. Nothing in this module does I/O.

The vocabulary follows SPEC section 1:

- a `Catalog` lists resource types and the action -> access level map;
- a `Group` carries an access matrix (`access`), explicitly granted named actions
  (`actions`), optional restriction values and a scope (company, vendor);
- a `Subject` is an employee, customer or vendor user with group `Membership`s;
- a `Graph` is one tenant's whole state: settings, vendors, companies, groups, subjects.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeVar

EMPTY: frozenset[str] = frozenset()
K = TypeVar("K")
V = TypeVar("V")


def frozen_map(data: Mapping[K, V] | None = None) -> Mapping[K, V]:
    """Return a read-only view of a copy of `data`."""
    return MappingProxyType(dict(data or {}))


#: The properties of a resource that has none (read-only, so it can be shared).
NO_PROPERTIES: Mapping[str, Any] = MappingProxyType({})

#: Build a named tuple from *all* its fields, in order: `new_tuple(Resource, (type, id, ...))`.
#: A named tuple's own constructor is a generated Python function; this is the C constructor
#: it calls, twice as fast (about 0.2 µs saved), for the per-item paths of batches.
new_tuple = tuple.__new__


class Level(enum.IntEnum):
    """Access levels, ordered: `manage` includes `read`."""

    NONE = 0
    READ = 1
    MANAGE = 2

    @classmethod
    def parse(cls, text: str) -> Level:
        """Return the level named `text` (`none`, `read`, `manage`); raise KeyError otherwise."""
        return cls[text.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class SubjectKind(enum.StrEnum):
    EMPLOYEE = "employee"
    CUSTOMER = "customer"
    VENDOR_USER = "vendor_user"


#: The AuthZEN subject types every policy knows: `user` and `identity` (the interop
#: scenarios' words) name every subject, and each subject kind names itself. A policy may
#: declare more in its catalog (`subject_types`).
SUBJECT_TYPES: Mapping[str, frozenset[SubjectKind]] = MappingProxyType(
    {
        "user": frozenset(SubjectKind),
        "identity": frozenset(SubjectKind),
        **{kind.value: frozenset({kind}) for kind in SubjectKind},
    }
)


class GroupKind(enum.StrEnum):
    USER = "user"
    CUSTOMER = "customer"
    VENDOR = "vendor"


class Propagation(enum.StrEnum):
    """How a contact assignment spreads through a company tree (seed 001)."""

    UPWARD = "UPWARD"
    DOWNWARD = "DOWNWARD"
    DISABLED = "DISABLED"


#: The predefined customer groups every company has, in the order they are created.
PREDEFINED_ROLES: tuple[str, ...] = ("admin", "contact", "buyer", "requester")
#: At most one of these per customer and company (the assignment rule).
EXCLUSIVE_ROLES: frozenset[str] = frozenset({"admin", "buyer", "requester"})
#: Names the seeds also use for the predefined groups.
ROLE_ALIASES: Mapping[str, str] = MappingProxyType(
    {"administrator": "admin", "purchaser": "buyer", "material_manager": "requester"}
)
#: The four groups created for every vendor (seed 004).
VENDOR_ROLES: tuple[str, ...] = (
    "vendor.order.manager",
    "vendor.order.viewer",
    "vendor.product.manager",
    "vendor.product.viewer",
)


def predefined_group_id(company: str, role: str) -> str:
    return f"{company}/{role}"


def vendor_group_id(vendor: str, role: str) -> str:
    return f"{vendor}/{role}"


# --------------------------------------------------------------------------- policy data


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One entry of the resource catalog."""

    id: str
    section: str
    label: str
    site_aware: bool = False
    #: For dependent types (media, payment methods): the type whose permission applies.
    parent: str | None = None
    #: Named actions that must be granted explicitly (products: publish, unpublish).
    actions: frozenset[str] = EMPTY


@dataclass(frozen=True, slots=True)
class Condition:
    """A named attribute comparison that a grant may require.

    It holds when, for some pair `(resource_path, subject_path)`, the resource's attribute
    equals one of the subject's values, or, for some `(resource_path, values)` of `equals`,
    the attribute is one of `values`. Paths are dotted: `owner`, `properties.ownerID`,
    `attributes.email`. Subject paths may also be `id`, `vendor` and `companies`. The request
    side may also read what the request says of its subject and action (AuthZEN
    `subject.properties`, `action.properties`): `subject.properties.department`,
    `action.properties.method` (see `Resource.attribute`).
    """

    id: str
    pairs: tuple[tuple[str, str], ...]
    description: str = ""
    equals: tuple[tuple[str, frozenset[str | int]], ...] = ()


@dataclass(frozen=True, slots=True)
class ActionGrant:
    """A named action granted on a type, optionally only when a condition holds."""

    action: str
    condition: str | None = None


@dataclass(frozen=True, slots=True)
class RoleTemplate:
    id: str
    name: str
    kind: GroupKind
    access: Mapping[str, Level]
    actions: Mapping[str, tuple[ActionGrant, ...]] = field(default_factory=frozen_map)
    description: str = ""
    #: Named actions a group of this template may be given on top (vendor roles); None: any.
    grantable: Mapping[str, frozenset[str]] | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """One gateway route: an HTTP method and path template mapped to (resource type, action)."""

    method: str
    path: str
    resource_type: str
    action: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The policy: resource types, actions, role templates, conditions and routes."""

    types: Mapping[str, ResourceType]
    #: Level actions: action name -> the level it needs (read/view/list -> READ, ...).
    levels: Mapping[str, Level]
    roles: Mapping[str, RoleTemplate]
    #: Predefined customer groups (admin, contact, buyer, requester) as templates.
    predefined: Mapping[str, RoleTemplate]
    #: Vendor group templates keyed by vendor role (`vendor.order.manager`, ...).
    vendor_roles: Mapping[str, RoleTemplate]
    conditions: Mapping[str, Condition] = field(default_factory=frozen_map)
    routes: tuple[Route, ...] = ()
    #: Seed 004's Role/Permission matrix: (type, level) -> companions [(type, level)].
    companions: Mapping[tuple[str, Level], tuple[tuple[str, Level], ...]] = field(
        default_factory=frozen_map
    )
    #: AuthZEN subject types -> the subject kinds they name (see `SUBJECT_TYPES`).
    subject_types: Mapping[str, frozenset[SubjectKind]] = field(
        default_factory=lambda: SUBJECT_TYPES
    )
    #: Tenant-wide approval rules (`approval_rules.yaml`); their tiers come before a company's.
    approval_rules: tuple[ApprovalRule, ...] = ()

    def permission_type(self, type_id: str) -> str:
        """Return the type whose permission governs `type_id` (its parent if dependent)."""
        rtype = self.types[type_id]
        return rtype.parent or rtype.id


# --------------------------------------------------------------------------- graph data


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def as_json(self) -> dict[str, str]:
        return {"amount": f"{self.amount:f}", "currency": self.currency}


#: The spending-limit periods (SPEC section 5), in the tenant's time zone: calendar days, ISO
#: weeks (Monday first), calendar months, quarters and years.
PERIODS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True, slots=True)
class SpendingLimit:
    """At most `limit` spent per `period` (one of `PERIODS`), counted in `limit.currency`."""

    period: str
    limit: Money


@dataclass(frozen=True, slots=True)
class Budget:
    """A company's budget for one cost centre: at most `limit` spent from `start` to `end`
    (both days included, in the tenant's time zone)."""

    id: str
    cost_center: str
    start: date
    end: date
    limit: Money


@dataclass(frozen=True, slots=True)
class Settings:
    company_contact_propagation: Propagation = Propagation.UPWARD
    default_customer_groups: tuple[str, ...] = ()
    customer_group_support: bool = True
    #: The IANA time zone whose calendar decides spending periods and budget days.
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Vendor:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    parent: str | None = None
    account_limit: Money | None = None
    restrictions: frozenset[str] = EMPTY
    approval_group: str | None = None
    spending_limits: tuple[SpendingLimit, ...] = ()
    budgets: tuple[Budget, ...] = ()
    #: The company's own approval rules (SPEC section 5); None: it sets none and inherits
    #: its nearest ancestor's, an empty tuple: it sets "no rules" for itself and below.
    approval_rules: tuple[ApprovalRule, ...] | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """A policy rule that adds approval tiers to a purchase (SPEC section 5,
    `engine/approval_rules.py`). It matches when every condition given holds: the amount is
    over `amount_over` (in `currency`), the currency is `currency`, the purchase's cost centre
    is one of `cost_centers`, and the requester holds one of `requesters` (predefined role
    names or group ids) in the purchase's company. Its `tiers` follow the built-in one."""

    id: str
    tiers: tuple[tuple[tuple[str, ...], ...], ...]
    amount_over: Decimal | None = None
    currency: str | None = None
    cost_centers: tuple[str, ...] = ()
    requesters: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        """The rule as the graph document and the policy file write it."""
        when: dict[str, object] = {}
        if self.amount_over is not None:
            when["amount_over"] = f"{self.amount_over:f}"
        if self.currency is not None:
            when["currency"] = self.currency
        if self.cost_centers:
            when["cost_center"] = list(self.cost_centers)
        body: dict[str, object] = {"id": self.id}
        if when:
            body["when"] = when
        if self.requesters:
            body["requesters"] = list(self.requesters)
        body["tiers"] = [[list(names) for names in tier] for tier in self.tiers]
        return body


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    kind: GroupKind
    access: Mapping[str, Level] = field(default_factory=frozen_map)
    actions: Mapping[str, tuple[ActionGrant, ...]] = field(default_factory=frozen_map)
    description: str = ""
    role: str | None = None
    restrictions: frozenset[str] = EMPTY
    company: str | None = None
    vendor: str | None = None
    predefined: bool = False


LinkLevel = Literal["ro", "rw"]


@dataclass(frozen=True, slots=True)
class Membership:
    """A subject's link to a group, with an optional link permission (seed 003).

    `level` replaces the group's matrix: `ro` gives read, `rw` gives manage, on every type the
    group grants at all. `same_customer` scopes the group's grants to entities whose customer
    (or company) is the subject's own.
    """

    group: str
    level: LinkLevel | None = None
    same_customer: bool = False
    #: The link holds from `valid_from` (inclusive) until `valid_until` (exclusive), in
    #: seconds since the epoch; None: no bound (issue 14, expiring grants).
    valid_from: float | None = None
    valid_until: float | None = None

    def active_at(self, now: float) -> bool:
        return (self.valid_from is None or now >= self.valid_from) and (
            self.valid_until is None or now < self.valid_until
        )

    @property
    def windowed(self) -> bool:
        return self.valid_from is not None or self.valid_until is not None


@dataclass(frozen=True, slots=True)
class Subject:
    id: str
    kind: SubjectKind
    attributes: Mapping[str, Any] = field(default_factory=frozen_map)
    vendor: str | None = None
    memberships: tuple[Membership, ...] = ()
    spending_limits: tuple[SpendingLimit, ...] = ()

    def group_ids(self) -> tuple[str, ...]:
        return tuple(m.group for m in self.memberships)

    def at(self, now: float) -> Subject:
        """The subject as of `now`: only the links that hold then (itself when none has a
        validity window)."""
        if not any(m.windowed for m in self.memberships):
            return self
        held = tuple(m for m in self.memberships if m.active_at(now))
        return Subject(self.id, self.kind, self.attributes, self.vendor, held, self.spending_limits)

    def next_boundary(self, now: float) -> float | None:
        """The earliest moment after `now` at which one of its links starts or ends."""
        times = [
            t
            for m in self.memberships
            for t in (m.valid_from, m.valid_until)
            if t is not None and t > now
        ]
        return min(times, default=None)


@dataclass(frozen=True, slots=True)
class Delegation:
    """While it runs (`start <= now < until`, epoch milliseconds), `to` may approve in
    `company` what `source` may (SPEC section 5), never their own purchase. The document
    names `source` `from` and the times `from_time` and `until_time` (RFC 3339)."""

    id: str
    source: str
    to: str
    company: str
    start: int
    until: int

    def running(self, now_ms: int) -> bool:
        return self.start <= now_ms < self.until


@dataclass(frozen=True, slots=True)
class Graph:
    """One tenant's whole graph, validated (see `groupgate.engine.graph`)."""

    tenant: str
    settings: Settings = field(default_factory=Settings)
    vendors: Mapping[str, Vendor] = field(default_factory=frozen_map)
    companies: Mapping[str, Company] = field(default_factory=frozen_map)
    groups: Mapping[str, Group] = field(default_factory=frozen_map)
    subjects: Mapping[str, Subject] = field(default_factory=frozen_map)
    #: Resource entities groupgate holds, keyed by (type, id).
    resources: Mapping[tuple[str, str], ResourceEntity] = field(default_factory=frozen_map)
    delegations: Mapping[str, Delegation] = field(default_factory=frozen_map)


@dataclass(frozen=True, slots=True)
class ResourceEntity:
    """A resource groupgate holds (a PIP for checks and search): its attributes as given.

    `owner`, `company`, `vendor`, `customer` and `restrictions` fill the `Resource` fields of
    the same names; every other attribute is a property conditions may read.
    """

    type: str
    id: str
    attributes: Mapping[str, Any] = field(default_factory=frozen_map)


# --------------------------------------------------------------------------- questions


class Resource(NamedTuple):
    """The entity a check is about, with the attributes the caller knows.

    A named tuple rather than a frozen dataclass: every check builds one, and a tuple is
    built about three times faster (a frozen dataclass sets each field through
    `object.__setattr__`). Immutable all the same.
    """

    type: str
    id: str | None = None
    company: str | None = None
    restrictions: frozenset[str] = EMPTY
    vendor: str | None = None
    owner: str | None = None
    customer: str | None = None
    properties: Mapping[str, Any] = NO_PROPERTIES
    #: What the request says of its subject and action besides their ids: AuthZEN's
    #: `subject.properties` and `action.properties`, as `{"subject": {...}, "action": {...}}`
    #: (either may be missing). Conditions read them as `subject.properties.<name>` and
    #: `action.properties.<name>`; nothing else does.
    request: Mapping[str, Any] = NO_PROPERTIES

    def attribute(self, path: str) -> Any:
        """Return the attribute at dotted `path`, or None: `company`, `properties.ownerID`,
        `subject.properties.department`, `action.properties.method` (the last two from
        `request`). Any JSON value may come back: conditions compare only strings and integers
        (`engine.check`), so a value they cannot compare never allows."""
        head, _, rest = path.partition(".")
        if head == "properties":
            return _walk(self.properties, rest)
        if head in _REQUEST_PARTS and rest.startswith("properties."):
            return _walk(self.request.get(head), rest.removeprefix("properties."))
        if head in _RESOURCE_FIELDS and not rest:
            return getattr(self, head)
        return self.properties.get(path)


def _walk(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


_RESOURCE_FIELDS = frozenset({"type", "id", "company", "vendor", "owner", "customer"})
#: The parts of a request whose properties conditions may read (`Resource.request`).
_REQUEST_PARTS = frozenset({"subject", "action"})


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a check: allow or deny, and what decided it."""

    allow: bool
    reason: str
    group: str | None = None
    explain: tuple[str, ...] | None = None


PurchaseOutcome = Literal["allow", "approval_required", "deny"]


@dataclass(frozen=True, slots=True)
class Tier:
    """One approval tier (SPEC section 5, `engine/tiers.py`): every list of `requires` needs
    one approval from a holder of ANY of its names (predefined roles or group ids). `rule`
    names the rule the tier comes from (a built-in rule or a policy rule's id)."""

    rule: str
    requires: tuple[tuple[str, ...], ...]

    def as_json(self) -> dict[str, object]:
        return {"rule": self.rule, "requires": [list(names) for names in self.requires]}


@dataclass(frozen=True, slots=True)
class Approval:
    """One approval given in a tier: who, and which list of the tier it filled."""

    subject: str
    slot: int


FlowStatus = Literal["PENDING", "APPROVED", "DECLINED", "CLOSED", "EXPIRED"]
FLOW_STATUSES: tuple[str, ...] = ("PENDING", "APPROVED", "DECLINED", "CLOSED", "EXPIRED")


@dataclass(frozen=True, slots=True)
class FlowApproval:
    """One approval given in a flow: its tier and list (`slot`), who gave it, when (epoch
    ms), and `via`: the delegator whose right was used (None: the subject's own)."""

    tier: int
    slot: int
    subject: str
    time: int
    via: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """An approval flow (SPEC section 5): a purchase waiting for its tiers' approvals.

    Amounts stay the decimal strings the requester sent; times are epoch milliseconds.
    `tier` is the index of the tier being approved; `used_by` the order id of the commit
    that consumed an approved flow ('' until then).
    """

    id: str
    status: FlowStatus
    requester: str
    company: str
    amount: str
    currency: str
    cart_id: str
    cart_hash: str
    cost_center: str
    used_by: str
    rule: str
    tiers: tuple[Tier, ...]
    tier: int
    approvals: tuple[FlowApproval, ...]
    created: int
    expires: int
    comment: str = ""
    ended: int | None = None
    ended_by: str = ""
    reason: str = ""

    def approvals_of(self, tier: int) -> tuple[Approval, ...]:
        """The approvals given in `tier`, as `engine.tiers` reads them."""
        return tuple(Approval(a.subject, a.slot) for a in self.approvals if a.tier == tier)

    def persons_of(self, tier: int) -> frozenset[str]:
        """Who acted in `tier`: each approver and each delegator whose right was used."""
        return frozenset(
            p for a in self.approvals if a.tier == tier for p in (a.subject, a.via) if p
        )


@dataclass(frozen=True, slots=True)
class PurchaseDecision:
    decision: PurchaseOutcome
    rule: str
    approver_groups: tuple[str, ...] = ()
    approver_subjects: tuple[str, ...] = ()
    limit: Money | None = None
    #: Set when the question itself cannot be answered (currency mismatch): never an allow.
    error: str | None = None
    #: What an `approval_required` purchase needs, approved in order (the built-in rule's tier
    #: first, then every matching policy rule's).
    tiers: tuple[Tier, ...] = ()
    #: The ids of the approval rules that matched, in the order their tiers come.
    rules: tuple[str, ...] = ()
    #: Every approval rule that applied to the company and whether it matched (for `explain`).
    checked: tuple[RuleCheck, ...] = ()
    #: Who may fill each tier now, in the order of `tiers` (see `tiers.eligible`); empty until
    #: the store (or a test) resolved the tiers' groups against the graph.
    eligible: tuple[Eligible, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One approval rule as a purchase met it: where it comes from (`policy` or the company
    whose rules apply), whether it matched, and why (or why not)."""

    rule: str
    source: str
    matched: bool
    why: str
    requires: tuple[tuple[tuple[str, ...], ...], ...]


@dataclass(frozen=True, slots=True)
class Eligible:
    """The groups standing for one tier in a company, and the subjects who may fill it now."""

    groups: tuple[str, ...]
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    """One conjunction of a restriction filter; None means "any value"."""

    restrictions: frozenset[str] | None = None
    attributes: Mapping[str, frozenset[str]] = field(default_factory=frozen_map)
    group: str | None = None


@dataclass(frozen=True, slots=True)
class FilterResult:
    """Which entities of a type the subject may see: all, none, or a disjunction of filters."""

    all: bool
    filters: tuple[Filter, ...] = ()
