"""The Redis key schema.

Every key of a tenant starts with `gg:{<tenant>}:`; the braces are a Redis Cluster hash tag,
so all of a tenant's keys live in one slot and a Lua script may read or write any of them
atomically, on one Redis or on a Cluster.

    gg:{t}:meta                 HASH  rev (revision counter), gen (current generation)
    gg:{t}:changes              channel: one JSON change event per write (see events.py)
    gg:{t}:<gen>:settings       STRING JSON of the tenant settings
    gg:{t}:<gen>:defaults       SET    default customer groups (read by the resolve script)
    gg:{t}:<gen>:subjects       ZSET   every subject id, score 0 (lexicographic paging)
    gg:{t}:<gen>:subject:<id>   STRING JSON: kind, attributes, vendor
    gg:{t}:<gen>:links:<id>     HASH   group id -> link permission ("", ro, rw, +sc, ro+sc, rw+sc)
    gg:{t}:<gen>:groups         SET    every group id
    gg:{t}:<gen>:group:<id>     STRING JSON of the group (matrix filled from its role)
    gg:{t}:<gen>:members:<id>   SET    subject ids linked to the group
    gg:{t}:<gen>:parents        HASH   company id -> parent company id ("" for a root)
    gg:{t}:<gen>:company:<id>   STRING JSON of the company
    gg:{t}:<gen>:cgroups:<id>   SET    ids of the groups bound to the company
    gg:{t}:<gen>:rulesets       SET    ids of the companies that set their own approval rules
                                       (none: a purchase need not walk the tree for rules)
    gg:{t}:<gen>:vendors        SET    every vendor id
    gg:{t}:<gen>:vendor:<id>    STRING JSON of the vendor
    gg:{t}:<gen>:rtypes         SET    resource types of which the tenant holds entities
    gg:{t}:<gen>:resources:<type>  HASH  resource id -> JSON of its attributes (held entities)
    gg:{t}:flow:<id>            HASH   one approval flow (outside generations: an import
                                       replaces the graph, not the flows); the fields a
                                       commit reads: status, requester, company, amount,
                                       currency, cart_hash, used_by (see store/flows.py)
    gg:{t}:ledger               HASH   rev: the spend ledger's revision (one per commit or
                                       release that changed something)
    gg:{t}:spend:order:<id>     HASH   one committed order: what it added where (store/ledger.py)
    gg:{t}:spend:<scope>:<owner>/<bucket>/<currency>
                                STRING a period's spend total in ledger units (engine/spend.py);
                                       scope company|subject, bucket a period label such as
                                       month:2027-03. Ids never hold '/', so the parts are
                                       unambiguous.
    gg:{t}:spend:budgets:<company>/<cost centre>/<currency>
                                HASH   budget id -> spend total of the company's budgets of one
                                       cost centre: an evaluation reads them whole, with the
                                       graph, knowing the cost centre but not the budget ids.
    (The spend keys are outside generations, like flows: an import replaces the graph, not
    the spend.)
    gg:{t}:flow-key:<n>:<s>:<key> STRING the flow id an Idempotency-Key of requester <s> created
    gg:{t}:flows:pending        ZSET   pending flow ids, score: expiry (ms), for the sweep
    gg:{t}:flows:company:<c>    ZSET   pending flow ids of company <c>, score 0 (lexicographic:
                                       ids sort by creation), the base of an approver's inbox
    gg:{t}:flows:requester:<s>  ZSET   every flow id requested by <s>, score 0 (lexicographic)
    gg:{t}:events               STREAM the tenant's events (capped), see store/events.py
    gg:{t}:<gen>:delegations    HASH   delegation id -> JSON (part of the graph document)
    gg:tenants                  SET    tenant names (the only key outside a tenant's slot)
    gg:audit                    STREAM the audit trail's Redis sink (capped; an entry per
                                       batch of records, as JSON lines: groupgate.audit)

Why generations: a bulk import of a million subjects cannot be one Redis command, yet must be
atomic. It writes a whole new generation beside the live one, then one script flips
`meta.gen` and bumps `meta.rev` if nobody wrote in between; the old generation is deleted
afterwards. Readers always read `meta.gen` and the data in the same script, so they see one
generation or the other, never a mix.

Why one revision per tenant: every write increments it inside the same script that applies
the write, so "nothing changed since revision N" is one comparison. Sidecars use it for
consistency tokens, to detect lost change events, and to notice a failover that lost writes
(the revision or the generation goes backwards).

Keys are built here and nowhere else, and never taken apart: tenant and entity ids may hold
`:` (and every other character `ID_PATTERN` allows), so a key cannot be split on `:`. A read
script takes keys relative to the current generation: `RELATIVE` builds those.
"""

from __future__ import annotations

TENANTS = "gg:tenants"
AUDIT = "gg:audit"


def tenant_prefix(tenant: str) -> str:
    return f"gg:{{{tenant}}}:"


def meta(tenant: str) -> str:
    return f"gg:{{{tenant}}}:meta"


def channel(tenant: str) -> str:
    return f"gg:{{{tenant}}}:changes"


CHANNEL_PATTERN = "gg:{*}:changes"


def flow(tenant: str, flow_id: str) -> str:
    """One approval flow's hash (SPEC section 5)."""
    return f"gg:{{{tenant}}}:flow:{flow_id}"


def ledger(tenant: str) -> str:
    """The spend ledger's revision counter."""
    return f"gg:{{{tenant}}}:ledger"


def spend_order(tenant: str, order_id: str) -> str:
    """One order's ledger record."""
    return f"gg:{{{tenant}}}:spend:order:{order_id}"


def spend_total(tenant: str, scope: str, owner: str, bucket: str, currency: str) -> str:
    """One period's spend total (scope company or subject)."""
    return f"gg:{{{tenant}}}:spend:{scope}:{owner}/{bucket}/{currency}"


def spend_budgets(tenant: str, company: str, cost_center: str, currency: str) -> str:
    """The spend totals of a company's budgets of one cost centre, by budget id."""
    return f"gg:{{{tenant}}}:spend:budgets:{company}/{cost_center}/{currency}"


def flow_key(tenant: str, requester: str, idempotency_key: str) -> str:
    """The flow an Idempotency-Key of `requester` created (the key is per requester). The
    requester's length comes first: ids may hold `:`, and `a:b` + `c` must not meet `a` + `b:c`."""
    return f"gg:{{{tenant}}}:flow-key:{len(requester)}:{requester}:{idempotency_key}"


def flows_pending(tenant: str) -> str:
    """Every pending flow of the tenant, scored by its expiry (ms): the sweep's index."""
    return f"gg:{{{tenant}}}:flows:pending"


def flows_of_company(tenant: str, company: str) -> str:
    """The pending flows of one company, by id (an approver's inbox is read from these)."""
    return f"gg:{{{tenant}}}:flows:company:{company}"


def flows_of_requester(tenant: str, requester: str) -> str:
    """Every flow one subject requested, by id."""
    return f"gg:{{{tenant}}}:flows:requester:{requester}"


def flow_patterns(tenant: str) -> tuple[str, ...]:
    """SCAN patterns of every flow key of a tenant (flows, idempotency keys, indexes), for
    the deletion of the tenant (a tenant id holds no glob character: see `ID_PATTERN`)."""
    base = tenant_prefix(tenant)
    return (base + "flow:*", base + "flow-key:*", base + "flows:*")


def events(tenant: str) -> str:
    """The tenant's capped event stream (SPEC section 5)."""
    return f"gg:{{{tenant}}}:events"


def tenant_of_channel(name: str) -> str | None:
    """Return the tenant of a change channel name, or None if it is not one."""
    if name.startswith("gg:{") and name.endswith("}:changes"):
        return name[4:-9]
    return None


class Gen:
    """Key builders for one generation of one tenant's graph."""

    __slots__ = ("base",)

    def __init__(self, tenant: str, gen: int) -> None:
        self.base = f"gg:{{{tenant}}}:{gen}:"

    @classmethod
    def relative(cls) -> Gen:
        """Builders of keys relative to a generation (the READ script adds `gg:{t}:<gen>:`)."""
        keys = cls.__new__(cls)
        keys.base = ""
        return keys

    def settings(self) -> str:
        return self.base + "settings"

    def defaults(self) -> str:
        return self.base + "defaults"

    def subjects(self) -> str:
        return self.base + "subjects"

    def subject(self, subject_id: str) -> str:
        return self.base + "subject:" + subject_id

    def links(self, subject_id: str) -> str:
        return self.base + "links:" + subject_id

    def groups(self) -> str:
        return self.base + "groups"

    def group(self, group_id: str) -> str:
        return self.base + "group:" + group_id

    def members(self, group_id: str) -> str:
        return self.base + "members:" + group_id

    def parents(self) -> str:
        return self.base + "parents"

    def company(self, company_id: str) -> str:
        return self.base + "company:" + company_id

    def cgroups(self, company_id: str) -> str:
        return self.base + "cgroups:" + company_id

    def rulesets(self) -> str:
        return self.base + "rulesets"

    def vendors(self) -> str:
        return self.base + "vendors"

    def vendor(self, vendor_id: str) -> str:
        return self.base + "vendor:" + vendor_id

    def rtypes(self) -> str:
        return self.base + "rtypes"

    def delegations(self) -> str:
        return self.base + "delegations"

    def resources(self, type_id: str) -> str:
        """The held entities of one resource type (`resources("")` is the prefix the
        LOAD_RESOURCES script appends a type to)."""
        return self.base + "resources:" + type_id


#: Keys relative to the current generation, for `Graphs.read` (see `Gen.relative`).
RELATIVE = Gen.relative()
