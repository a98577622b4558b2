"""Validated, atomic writes to one tenant's graph: the writes of the `Admin` protocol
(`admin.StoreAdmin` adds its reads).

Each write follows one pattern: read what the rules need in one atomic script (which also
returns the revision), validate with the engine's rules (`groupgate.engine.graph`), build the
operations, and apply them with a compare-and-set on the revision. If another write landed in
between, the whole thing is retried against the new state; a refused write raises before
anything is written. Every success bumps the revision and publishes a change event. When
the store fails, a write raises `StoreUnavailable` (`guard.guarded`: counted, fail closed).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson

from groupgate.engine import delegations
from groupgate.engine import graph as rules
from groupgate.engine.approvers import REPLACED_ROLES, check_approval_member
from groupgate.errors import Conflict, GraphError, NotFound
from groupgate.model import (
    EXCLUSIVE_ROLES,
    PREDEFINED_ROLES,
    VENDOR_ROLES,
    Catalog,
    Company,
    Graph,
    Group,
    GroupKind,
    Membership,
    Settings,
    Subject,
    SubjectKind,
    predefined_group_id,
    vendor_group_id,
)
from groupgate.store import codec, held, keys
from groupgate.store.events import EventLog
from groupgate.store.generations import IMPORT_BATCH, MAX_ATTEMPTS, Generations
from groupgate.store.guard import Guard, guarded
from groupgate.store.ops import Graphs, Named, Ops, Snapshot, pairs, text
from groupgate.store.written import Written

#: The event stream cap when none is configured (`config.events_maxlen` sets it).
DEFAULT_EVENTS_MAXLEN = 100_000


class Writer:
    """Applies admin writes for every tenant of one store; each public write fails closed
    through `guard` when the store fails (`guard.guarded`)."""

    def __init__(
        self, graphs: Graphs, catalog: Catalog, guard: Guard, events: EventLog | None = None
    ) -> None:
        self.graphs = graphs
        self.catalog = catalog
        self.guard = guard
        self.groups = codec.GroupMemo()
        self.events = events if events is not None else EventLog(DEFAULT_EVENTS_MAXLEN)
        self.generations = Generations(graphs)

    async def _retry(self, attempt: Callable[[], Awaitable[Written | None]]) -> Written:
        for n in range(MAX_ATTEMPTS):
            rev = await attempt()
            if rev is not None:
                return rev
            await asyncio.sleep(random.uniform(0, 0.002 * (n + 1)))
        raise Conflict("too many concurrent writes to this tenant; try again")

    # ------------------------------------------------------------------ subjects

    @guarded
    async def put_subject(self, tenant: str, document: Any) -> Written:
        subject, shorthand = rules.parse_subject(document, "subject")

        async def attempt() -> Written | None:
            g = keys.RELATIVE  # suffixes only; the script prefixes the generation
            explicit = sorted({link.group for link in subject.memberships})
            snap = await self.graphs.read_named(
                tenant,
                {
                    "settings": ("GET", "settings", ()),
                    "parents": ("HGETALL", "parents", ()),
                    "links": ("HGETALL", g.links(subject.id), ()),
                    "existed": ("EXISTS", g.subject(subject.id), ()),
                    "groups": [("GET", g.group(gid), ()) for gid in explicit],
                    "vendor": ("EXISTS", g.vendor(subject.vendor or ""), ()),
                },
            )
            settings = codec.load_settings(snap["settings"])
            parents = _parents(snap["parents"])
            old_links = pairs(snap["links"])
            existed = bool(snap["existed"])
            groups = self._groups(explicit, snap["groups"])
            if subject.vendor and not snap["vendor"]:
                raise GraphError("subject.vendor", f"unknown vendor {subject.vendor!r}")
            full = rules.expand_memberships(
                subject, shorthand, groups, parents, settings, "subject"
            )
            explicit_paths = {
                m.group: f"subject.groups[{i}]" for i, m in enumerate(full.memberships)
            }
            await self._check_approvers(tenant, full, groups, explicit_paths.get)
            ops = self._subject_ops(tenant, snap, full, old_links)
            self._subject_events(ops, tenant, full, old_links, created=not existed)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    def _subject_ops(
        self, tenant: str, snap: Snapshot | Named, subject: Subject, old_links: dict[str, str]
    ) -> Ops:
        g = keys.Gen(tenant, int(snap.gen))
        ops = Ops(subjects={subject.id})
        ops.add("SET", g.subject(subject.id), codec.dump_subject(subject))
        ops.add("ZADD", g.subjects(), 0, subject.id)
        ops.add("DEL", g.links(subject.id))
        new_links = {m.group: codec.dump_link(m) for m in subject.memberships}
        if new_links:
            ops.add("HSET", g.links(subject.id), *[x for kv in new_links.items() for x in kv])
        for gid in set(old_links) - set(new_links):
            ops.add("SREM", g.members(gid), subject.id)
        for gid in set(new_links) - set(old_links):
            ops.add("SADD", g.members(gid), subject.id)
        ops.memberships.update(
            gid
            for gid in old_links.keys() | new_links.keys()
            if old_links.get(gid) != new_links.get(gid)
        )
        return ops

    def _subject_events(
        self, ops: Ops, tenant: str, subject: Subject, old: Mapping[str, str], *, created: bool
    ) -> None:
        """The events of a subject write: created, assigned to companies, memberships."""
        new = {m.group for m in subject.memberships}
        if created and subject.kind is SubjectKind.CUSTOMER:
            companies = sorted(_companies(new))
            body = {"id": subject.id, "kind": subject.kind.value, "companies": companies}
            self.events.add(ops, tenant, "customer.created", {"customer": body})
        for company in sorted(_companies(new) - _companies(old)):
            roles = sorted(r for gid in new if (r := _role_in(gid, company)))
            assigned = {"customer": subject.id, "company": company, "roles": roles}
            self.events.add(ops, tenant, "customer.assigned", assigned)
        added, removed = sorted(new - set(old)), sorted(set(old) - new)
        if added or removed:
            change = {"subject": subject.id, "added": added, "removed": removed}
            self.events.add(ops, tenant, "group.membership_changed", change)

    @guarded
    async def delete_subject(self, tenant: str, subject_id: str) -> Written:
        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            snap = await self.graphs.read_named(
                tenant,
                {
                    "exists": ("EXISTS", rel.subject(subject_id), ()),
                    "links": ("HGETALL", rel.links(subject_id), ()),
                },
            )
            if not snap["exists"]:
                raise NotFound(f"unknown subject {subject_id!r}")
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops(subjects={subject_id})
            for gid in pairs(snap["links"]):
                ops.add("SREM", g.members(gid), subject_id)
                ops.memberships.add(gid)
            ops.add("DEL", g.subject(subject_id), g.links(subject_id))
            ops.add("ZREM", g.subjects(), subject_id)
            gone = {"id": subject_id, "groups": sorted(pairs(snap["links"]))}
            self.events.add(ops, tenant, "subject.deleted", {"subject": gone})
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def add_membership(self, tenant: str, subject_id: str, document: Any) -> Written:
        """Link a subject to a group, or `{"company", "role"}` to a predefined group."""

        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            link, company = _membership(document)
            snap = await self.graphs.read_named(
                tenant,
                {
                    "subject": ("GET", rel.subject(subject_id), ()),
                    "links": ("HGETALL", rel.links(subject_id), ()),
                    "settings": ("GET", "settings", ()),
                    "parents": ("HGETALL", "parents", ()),
                    "group": ("GET", rel.group(link.group), ()),
                },
            )
            if not snap["subject"]:
                raise NotFound(f"unknown subject {subject_id!r}")
            old_links = pairs(snap["links"])
            settings = codec.load_settings(snap["settings"])
            parents = _parents(snap["parents"])
            if not snap["group"]:
                raise GraphError("membership.group", f"unknown group {link.group!r}")
            group = self.groups.load(snap["group"])
            subject = codec.load_subject(subject_id, snap["subject"], old_links)
            rules.check_membership_kind(subject, group, "membership.group")
            links = {m.group: m for m in subject.memberships}
            links[link.group] = link
            # `{"company", "role"}`, or joining admin/buyer/requester by id, assigns the
            # customer to the company: Contact comes along and propagates, at this moment only.
            assigns = company is not None or group.role in EXCLUSIVE_ROLES
            if group.predefined and group.company and assigns:
                company_id = group.company
                contact = predefined_group_id(company_id, "contact")
                if contact not in links:
                    links[contact] = Membership(contact)
                    for other in rules.contact_companies(
                        company_id, parents, settings.company_contact_propagation
                    ):
                        gid = predefined_group_id(other, "contact")
                        links.setdefault(gid, Membership(gid))
            rules.check_assignment(links, "membership.companies")
            updated = Subject(
                subject.id,
                subject.kind,
                subject.attributes,
                subject.vendor,
                tuple(links.values()),
                subject.spending_limits,
            )
            await self._check_approvers(
                tenant, updated, {group.id: group}, lambda _: "membership.group"
            )
            ops = self._subject_ops(tenant, snap, updated, old_links)
            self._subject_events(ops, tenant, updated, old_links, created=False)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def remove_membership(self, tenant: str, subject_id: str, group_id: str) -> Written:
        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            snap = await self.graphs.read_named(
                tenant,
                {
                    "subject": ("GET", rel.subject(subject_id), ()),
                    "links": ("HGETALL", rel.links(subject_id), ()),
                },
            )
            if not snap["subject"]:
                raise NotFound(f"unknown subject {subject_id!r}")
            links = pairs(snap["links"])
            if group_id not in links:
                raise NotFound(f"subject {subject_id!r} is not in group {group_id!r}")
            # Leaving the last group of a company while staying in its approval group would
            # leave an approver who is no customer of it (SPEC section 5).
            del links[group_id]
            remaining = codec.load_subject(subject_id, snap["subject"], links)
            await self._check_approvers(tenant, remaining, {}, lambda _: "membership.group")
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops(subjects={subject_id}, memberships={group_id})
            ops.add("HDEL", g.links(subject_id), group_id)
            ops.add("SREM", g.members(group_id), subject_id)
            change = {"subject": subject_id, "added": [], "removed": [group_id]}
            self.events.add(ops, tenant, "group.membership_changed", change)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    # ------------------------------------------------------------------ groups

    @guarded
    async def put_group(self, tenant: str, document: Any) -> Written:
        body = document if isinstance(document, dict) else {}
        group_id = str(body.get("id") or "")

        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            snap = await self.graphs.read_named(
                tenant,
                {
                    "group": ("GET", rel.group(group_id), ()),
                    "has_members": ("EXISTS", rel.members(group_id), ()),
                    "parents": ("HGETALL", "parents", ()),
                },
            )
            existing = self.groups.load(snap["group"]) if snap["group"] else None
            if existing is not None and existing.kind is GroupKind.VENDOR:
                group = rules.customize_vendor_group(existing, document, "group", self.catalog)
            elif existing is not None and existing.predefined:
                raise GraphError("group.id", f"predefined group {group_id!r} cannot be changed")
            else:
                group = rules.parse_group(document, "group", self.catalog)
                if group.company is not None and group.company not in _parents(snap["parents"]):
                    raise GraphError("group.company", f"unknown company {group.company!r}")
                if (
                    existing is not None
                    and snap["has_members"]
                    and (existing.kind is not group.kind or existing.company != group.company)
                ):
                    raise GraphError("group", "a group with members cannot change kind or company")
                if (
                    existing is not None
                    and existing.company is not None
                    and (existing.kind is not group.kind or existing.company != group.company)
                ):
                    owner = await self.graphs.read(
                        tenant, ("GET", rel.company(existing.company), ())
                    )
                    if owner.rev != snap.rev:
                        return None
                    found = codec.load_company(owner.values[0]) if owner.values[0] else None
                    if found is not None and group.id in rule_groups(found):
                        raise GraphError(
                            "group.company",
                            f"{group.id!r} is named by the approval rules of {found.id!r}",
                        )
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops(groups={group.id})
            ops.add("SET", g.group(group.id), codec.dump_group(group))
            ops.add("SADD", g.groups(), group.id)
            if group.company is not None and not group.predefined:
                ops.add("SADD", g.cgroups(group.company), group.id)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def delete_group(self, tenant: str, group_id: str) -> Written:
        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            snap = await self.graphs.read_named(
                tenant,
                {
                    "group": ("GET", rel.group(group_id), ()),
                    "members": ("SMEMBERS", rel.members(group_id), ()),
                    "settings": ("GET", "settings", ()),
                },
            )
            if not snap["group"]:
                raise NotFound(f"unknown group {group_id!r}")
            group = self.groups.load(snap["group"])
            if group.predefined:
                raise GraphError("group", f"{group_id!r} is deleted with its company or vendor")
            if group_id in codec.load_settings(snap["settings"]).default_customer_groups:
                raise GraphError("group", f"{group_id!r} is a default customer group (settings)")
            if group.company is not None:
                company = await self.graphs.read(tenant, ("GET", rel.company(group.company), ()))
                if company.rev != snap.rev:
                    return None
                owner = codec.load_company(company.values[0]) if company.values[0] else None
                if owner is not None and owner.approval_group == group_id:
                    raise GraphError(
                        "group", f"{group_id!r} is the approval group of {group.company!r}"
                    )
                if owner is not None and group_id in rule_groups(owner):
                    raise GraphError(
                        "group", f"{group_id!r} is named by the approval rules of {owner.id!r}"
                    )
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops(groups={group_id})
            self._drop_groups(g, ops, [(group, [text(m) for m in snap["members"]])])
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    def _drop_groups(self, g: keys.Gen, ops: Ops, groups: list[tuple[Group, list[str]]]) -> None:
        """Delete groups and unlink their members: a re-created id must not regain them."""
        for group, members in groups:
            for member in members:
                ops.add("HDEL", g.links(member), group.id)
            ops.subjects.update(members)
            ops.groups.add(group.id)
            ops.add("DEL", g.group(group.id), g.members(group.id))
            ops.add("SREM", g.groups(), group.id)
            if group.company is not None and not group.predefined:
                ops.add("SREM", g.cgroups(group.company), group.id)

    # ------------------------------------------------------------------ companies

    @guarded
    async def put_company(self, tenant: str, document: Any) -> Written:
        reserved = [rule.id for rule in self.catalog.approval_rules]
        company = rules.parse_company(document, "company", reserved)
        named = rule_groups(company)

        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            approval = company.approval_group or ""
            snap = await self.graphs.read_named(
                tenant,
                {
                    "parents": ("HGETALL", "parents", ()),
                    "company": ("GET", rel.company(company.id), ()),
                    "approval": ("GET", rel.group(approval), ()),
                    "approvers": ("SMEMBERS", rel.members(approval), ()),
                    "named": [("GET", rel.group(gid), ()) for gid in named],
                },
            )
            rules.check_rule_names(
                company, self._groups(named, snap["named"]), "company.approval_rules"
            )
            parents = _parents(snap["parents"])
            if company.parent is not None and company.parent not in parents:
                raise GraphError("company.parent", f"unknown company {company.parent!r}")
            parents[company.id] = company.parent
            cycle = rules.find_cycle(parents)
            if cycle:
                raise GraphError(
                    "company.parent", f"company tree would have a cycle: {' -> '.join(cycle)}"
                )
            groups = {approval: self.groups.load(snap["approval"])} if snap["approval"] else {}
            rules.check_approval_group(company, groups, "company.approval_group")
            if company.approval_group is not None:
                await self._check_approval_group_members(
                    tenant, company.id, company.approval_group, sorted(map(text, snap["approvers"]))
                )
            g = keys.Gen(tenant, int(snap.gen))
            # Who approves depends on which approval group the company names (SPEC section 5):
            # its Admins and Buyers and the members of the old and new group recompile.
            before = codec.load_company(snap["company"]).approval_group if snap["company"] else None
            ops = Ops()
            if before != company.approval_group:
                ops.groups.update(g for g in (before, company.approval_group) if g)
                ops.groups.update(predefined_group_id(company.id, role) for role in REPLACED_ROLES)
            ops.add("SET", g.company(company.id), codec.dump_company(company))
            ops.add("HSET", g.parents(), company.id, company.parent or "")
            ops.add(
                "SADD" if company.approval_rules is not None else "SREM", g.rulesets(), company.id
            )
            if not snap["company"]:
                for group in rules.predefined_groups(company, self.catalog):
                    ops.add("SET", g.group(group.id), codec.dump_group(group))
                    ops.add("SADD", g.groups(), group.id)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def delete_company(self, tenant: str, company_id: str) -> Written:
        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            predefined = [predefined_group_id(company_id, r) for r in PREDEFINED_ROLES]
            snap = await self.graphs.read_named(
                tenant,
                {
                    "exists": ("EXISTS", rel.company(company_id), ()),
                    "parents": ("HGETALL", "parents", ()),
                    "custom": ("SMEMBERS", rel.cgroups(company_id), ()),
                    "members": [("SMEMBERS", rel.members(gid), ()) for gid in predefined],
                    "groups": [("GET", rel.group(gid), ()) for gid in predefined],
                },
            )
            if not snap["exists"]:
                raise NotFound(f"unknown company {company_id!r}")
            children = sorted(c for c, p in _parents(snap["parents"]).items() if p == company_id)
            if children:
                raise GraphError("company", f"{company_id!r} has subsidiaries: {children}")
            if snap["custom"]:
                custom = sorted(text(x) for x in snap["custom"])
                raise GraphError("company", f"{company_id!r} still has customer groups: {custom}")
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops()
            found = [
                (self.groups.load(raw), [text(m) for m in members])
                for members, raw in zip(snap["members"], snap["groups"], strict=True)
                if raw
            ]
            self._drop_groups(g, ops, found)
            ops.add("DEL", g.company(company_id))
            ops.add("HDEL", g.parents(), company_id)
            ops.add("SREM", g.rulesets(), company_id)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    # ------------------------------------------------------------------ vendors

    @guarded
    async def put_vendor(self, tenant: str, document: Any) -> Written:
        vendor = rules.parse_vendor(document, "vendor")

        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            snap = await self.graphs.read_named(
                tenant, {"exists": ("EXISTS", rel.vendor(vendor.id), ())}
            )
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops()
            ops.add("SET", g.vendor(vendor.id), codec.dump_vendor(vendor))
            ops.add("SADD", g.vendors(), vendor.id)
            if not snap["exists"]:
                for group in rules.vendor_groups(vendor, self.catalog):
                    ops.add("SET", g.group(group.id), codec.dump_group(group))
                    ops.add("SADD", g.groups(), group.id)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def delete_vendor(self, tenant: str, vendor_id: str) -> Written:
        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            ids = [vendor_group_id(vendor_id, r) for r in VENDOR_ROLES]
            snap = await self.graphs.read_named(
                tenant,
                {
                    "exists": ("EXISTS", rel.vendor(vendor_id), ()),
                    "members": [("SMEMBERS", rel.members(gid), ()) for gid in ids],
                    "groups": [("GET", rel.group(gid), ()) for gid in ids],
                },
            )
            if not snap["exists"]:
                raise NotFound(f"unknown vendor {vendor_id!r}")
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops()
            found = [
                (self.groups.load(raw), [text(m) for m in members])
                for members, raw in zip(snap["members"], snap["groups"], strict=True)
                if raw
            ]
            self._drop_groups(g, ops, found)
            ops.add("DEL", g.vendor(vendor_id))
            ops.add("SREM", g.vendors(), vendor_id)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    # ------------------------------------------------------------------ held resources

    @guarded
    async def put_resource(self, tenant: str, document: Any) -> Written:
        """Create or replace a held resource entity `{"type", "id", "attributes"}`."""
        entity = rules.parse_resource(document, "resource", self.catalog)

        async def attempt() -> Written | None:
            snap = await self.graphs.read(tenant)
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops(resources=True)
            ops.add("HSET", g.resources(entity.type), entity.id, held.dump(entity))
            ops.add("SADD", g.rtypes(), entity.type)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def delete_resource(self, tenant: str, type_id: str, resource_id: str) -> Written:
        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            snap = await self.graphs.read_named(
                tenant,
                {
                    "exists": ("HEXISTS", rel.resources(type_id), (resource_id,)),
                    "of_type": ("HLEN", rel.resources(type_id), ()),
                },
            )
            if not snap["exists"]:
                raise NotFound(f"unknown resource {type_id}/{resource_id}")
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops(resources=True)
            ops.add("HDEL", g.resources(type_id), resource_id)
            if int(snap["of_type"]) <= 1:
                ops.add("SREM", g.rtypes(), type_id)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    # ------------------------------------------------------------------ delegations

    @guarded
    async def put_delegation(self, tenant: str, document: Any) -> tuple[str, Written]:
        """Create or replace a delegation (`engine.delegations`); return its id and the
        revision. Both ends must be customers of the company when it is written."""
        delegation = delegations.parse_delegation(document, "delegation", rules.ident)

        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            ends = (delegation.source, delegation.to)
            snap = await self.graphs.read_named(
                tenant,
                {
                    "parents": ("HGETALL", "parents", ()),
                    "exists": [("EXISTS", rel.subject(s), ()) for s in ends],
                    "links": [("HGETALL", rel.links(s), ()) for s in ends],
                },
            )
            links = {s: pairs(raw) for s, raw in zip(ends, snap["links"], strict=True)}
            custom = sorted({g for found in links.values() for g in found if "/" not in g})
            groups: dict[str, Group] = {}
            if custom:
                more = await self.graphs.read(tenant, *[("GET", rel.group(g), ()) for g in custom])
                if more.rev != snap.rev:
                    return None
                groups = self._groups(custom, more.values)
            exists = dict(zip(ends, snap["exists"], strict=True))

            def companies_of(subject: str) -> frozenset[str] | None:
                if not exists[subject]:
                    return None
                return rules.customer_companies([Membership(g) for g in links[subject]], groups)

            delegations.check_delegation(
                delegation, "delegation", _parents(snap["parents"]), companies_of
            )
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops()
            ops.add(
                "HSET", g.delegations(), delegation.id, orjson.dumps(delegations.dump(delegation))
            )
            body = {"delegation": delegations.document(delegation)}
            self.events.add(ops, tenant, "delegation.created", body)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return delegation.id, await self._retry(attempt)

    @guarded
    async def delete_delegation(self, tenant: str, delegation_id: str) -> Written:
        async def attempt() -> Written | None:
            snap = await self.graphs.read_named(
                tenant, {"delegation": ("HGET", keys.RELATIVE.delegations(), (delegation_id,))}
            )
            if not snap["delegation"]:
                raise NotFound(f"unknown delegation {delegation_id!r}")
            g = keys.Gen(tenant, int(snap.gen))
            ops = Ops()
            ops.add("HDEL", g.delegations(), delegation_id)
            found = delegations.document(delegations.load(orjson.loads(snap["delegation"])))
            self.events.add(ops, tenant, "delegation.deleted", {"delegation": found})
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    # ------------------------------------------------------------------ settings, tenants

    @guarded
    async def put_settings(self, tenant: str, document: Any) -> Written:
        """Replace the tenant's settings; creates the tenant when it does not exist yet."""
        settings = rules.parse_settings(document)
        rules.ident(tenant, "tenant")

        async def attempt() -> Written | None:
            rel = keys.RELATIVE
            defaults = settings.default_customer_groups
            meta = await self.graphs.meta(tenant)
            if meta is None:
                if defaults:
                    raise GraphError(
                        "settings.default_customer_groups[0]", f"unknown group {defaults[0]!r}"
                    )
                gen = await self.graphs.next_gen(tenant)
                ops = _settings_ops(keys.Gen(tenant, int(gen)), settings)
                return await self.graphs.cas(tenant, None, gen, ops)
            snap = await self.graphs.read(
                tenant, *[("GET", rel.group(gid), ()) for gid in defaults]
            )
            for i, (gid, raw) in enumerate(zip(defaults, snap.values, strict=True)):
                rules.check_default_group(
                    self.groups.load(raw) if raw else None,
                    gid,
                    f"settings.default_customer_groups[{i}]",
                )
            ops = _settings_ops(keys.Gen(tenant, int(snap.gen)), settings)
            return await self.graphs.cas(tenant, snap.rev, snap.gen, ops)

        return await self._retry(attempt)

    @guarded
    async def import_graph(self, tenant: str | None, document: Any) -> Written:
        """Validate a whole document, then write it as a new generation and flip to it
        (`generations.Generations.flip`)."""
        graph = rules.parse_graph(document, self.catalog, tenant)
        return await self.generations.flip(graph, self.events)

    @guarded
    async def delete_tenant(self, tenant: str) -> Written:
        meta = await self.graphs.meta(tenant)
        if meta is None:
            raise NotFound(f"unknown tenant {tenant!r}")
        empty = Graph(tenant=tenant)
        for _ in range(MAX_ATTEMPTS):
            gen = await self.graphs.next_gen(tenant)
            await self.generations.write(keys.Gen(tenant, int(gen)), empty)
            ops = Ops(everything=True)
            ops.add("HSET", keys.meta(tenant), "gen", gen)
            rev = await self.graphs.cas(tenant, meta[0], meta[1], ops)
            if rev is not None:
                await self.generations.drop(tenant, meta[1])
                await self.generations.drop(tenant, gen)
                await self.graphs.forget_tenant(tenant)
                await self._drop_flows(tenant)
                return rev
            meta = await self.graphs.meta(tenant)
            if meta is None:
                raise NotFound(f"unknown tenant {tenant!r}")
        raise Conflict("too many concurrent writes to this tenant; try again")

    async def _drop_flows(self, tenant: str) -> None:
        """Delete a deleted tenant's approval flows, their indexes and its event stream."""
        client = self.graphs.client
        names = [keys.events(tenant)]
        for pattern in keys.flow_patterns(tenant):
            names += [text(k) async for k in client.scan_iter(match=pattern, count=1000)]
        for i in range(0, len(names), IMPORT_BATCH):
            await client.unlink(*names[i : i + IMPORT_BATCH])

    async def _check_approvers(
        self,
        tenant: str,
        subject: Subject,
        known: Mapping[str, Group],
        path: Callable[[str], str | None],
    ) -> None:
        """Refuse a member of a company's approval group who is not a customer of it (SPEC 5).

        `path(group id)` names the entry of a refused membership.
        """
        rel = keys.RELATIVE
        links = [m.group for m in subject.memberships]
        custom = sorted(gid for gid in links if "/" not in gid)
        groups = dict(known)
        missing = [gid for gid in custom if gid not in groups]
        if missing:
            snap = await self.graphs.read(tenant, *[("GET", rel.group(gid), ()) for gid in missing])
            groups.update(self._groups(missing, snap.values))
        owned = sorted({g.company for gid in custom if (g := groups.get(gid)) and g.company})
        if not owned:
            return
        snap = await self.graphs.read(tenant, *[("GET", rel.company(c), ()) for c in owned])
        owners = {gid: _owner(gid, groups) for gid in links}
        for company_id, raw in zip(owned, snap.values, strict=True):
            approval = codec.load_company(raw).approval_group if raw else None
            if approval is not None and approval in owners:
                where = path(approval) or "subject.groups"
                check_approval_member(subject.id, company_id, approval, owners, where)

    async def _check_approval_group_members(
        self, tenant: str, company: str, approval: str, members: list[str]
    ) -> None:
        """Refuse naming an approval group that has a member who is no customer of `company`."""
        if not members:
            return
        rel = keys.RELATIVE
        snap = await self.graphs.read(tenant, *[("HGETALL", rel.links(m), ()) for m in members])
        linked = [sorted(pairs(raw)) for raw in snap.values]
        custom = sorted({gid for ids in linked for gid in ids if "/" not in gid})
        groups: dict[str, Group] = {}
        if custom:
            found = await self.graphs.read(tenant, *[("GET", rel.group(g), ()) for g in custom])
            groups = self._groups(custom, found.values)
        for member, ids in zip(members, linked, strict=True):
            owners = {gid: _owner(gid, groups) for gid in ids}
            check_approval_member(member, company, approval, owners, "company.approval_group")

    def _groups(self, ids: list[str], raws: list[Any]) -> dict[str, Group]:
        return {gid: self.groups.load(raw) for gid, raw in zip(ids, raws, strict=True) if raw}


def rule_groups(company: Company) -> list[str]:
    """The group ids a company's approval rules name (not its predefined roles), sorted."""
    found = {
        name
        for rule in company.approval_rules or ()
        for name in (*rule.requesters, *(n for tier in rule.tiers for names in tier for n in names))
        if name not in PREDEFINED_ROLES
    }
    return sorted(found)


def _settings_ops(g: keys.Gen, settings: Settings) -> Ops:
    ops = Ops(everything=True)
    ops.add("SET", g.settings(), codec.dump_settings(settings))
    ops.add("DEL", g.defaults())
    if settings.default_customer_groups:
        ops.add_many("SADD", g.defaults(), list(settings.default_customer_groups))
    return ops


def _owner(group_id: str, groups: Mapping[str, Group]) -> str | None:
    """The company a linked group belongs to (predefined ids name it: `<company>/<role>`)."""
    company, sep, role = group_id.rpartition("/")
    if sep:
        return company if role in PREDEFINED_ROLES else None
    group = groups.get(group_id)
    return group.company if group is not None else None


def _role_in(group_id: str, company: str) -> str | None:
    """The predefined role `group_id` stands for in `company`, or None."""
    owner, sep, role = group_id.rpartition("/")
    return role if sep and owner == company and role in PREDEFINED_ROLES else None


def _companies(group_ids: Iterable[str]) -> set[str]:
    """The companies whose predefined groups are among `group_ids` (assignments)."""
    out: set[str] = set()
    for gid in group_ids:
        owner, sep, role = gid.rpartition("/")
        if sep and role in PREDEFINED_ROLES:
            out.add(owner)
    return out


def _parents(flat: list[Any]) -> dict[str, str | None]:
    return {k: (v or None) for k, v in pairs(flat).items()}


def _membership(document: Any) -> tuple[Membership, str | None]:
    """Parse an add-membership body: a membership, or `{"company": id, "role": role}`."""
    if isinstance(document, dict) and "company" in document:
        unknown = sorted(set(document) - {"company", "role"})
        if unknown:
            raise GraphError(f"membership.{unknown[0]}", "unknown field")
        company = rules.ident(document.get("company"), "membership.company")
        role = rules.normalize_role(document.get("role", "contact"), "membership.role")
        return Membership(predefined_group_id(company, role)), company
    return rules.parse_membership(document, "membership"), None


def entity_key(g: keys.Gen, kind: str, entity_id: str) -> str:
    builders = {"subject": g.subject, "group": g.group, "company": g.company, "vendor": g.vendor}
    builder = builders.get(kind)
    if builder is None:
        raise NotFound(f"unknown entity kind {kind!r} (subject, group, company, vendor)")
    return builder(entity_id)


def decode(raw: bytes) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(raw)
    return body
