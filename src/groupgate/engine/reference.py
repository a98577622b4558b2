"""The slow reference evaluator, and the explain trace.

It answers a check straight from the subject's links and group definitions, writing down
what each group did, without compiling anything. Two uses:

- `explain=true` on a check returns its trace;
- property tests compare it with the compiled profile on random graphs: two independent
  readings of SPEC section 1 that must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from groupgate.engine.approvers import APPROVALS, APPROVE, approves_through
from groupgate.engine.profile import EMPTY_MAP, replaced_approver, words
from groupgate.model import (
    Catalog,
    Decision,
    Group,
    GroupKind,
    Level,
    Membership,
    Resource,
    Settings,
    Subject,
    SubjectKind,
)


def evaluate(
    catalog: Catalog,
    subject: Subject,
    groups: Mapping[str, Group],
    settings: Settings,
    action: str,
    resource: Resource,
    approval_groups: Mapping[str, str] = EMPTY_MAP,
) -> Decision:
    """Decide `action` on `resource` for `subject`, with a trace of every group consulted.

    `approval_groups`: the companies whose approval group has an approver (see
    `ProfileCompiler.compile`).
    """
    trace: list[str] = []
    rtype = catalog.types.get(resource.type)
    if rtype is None:
        return _deny(f"unknown resource type {resource.type}", trace)
    governing = catalog.types[rtype.parent] if rtype.parent else rtype
    if rtype.parent:
        trace.append(f"{rtype.id} takes its permission from {governing.id}")
    needed = catalog.levels.get(action)
    if needed is None and action not in governing.actions:
        return _deny(f"unknown action {action} for {resource.type}", trace)
    links = _links(subject, groups, settings, trace)
    companies = {g.company for _, g in links if g.company is not None}
    for link, group in links:
        verdict = _group_verdict(
            catalog,
            subject,
            companies,
            link,
            group,
            governing.id,
            governing.site_aware,
            action,
            needed,
            resource,
            approval_groups,
        )
        trace.append(f"group {group.id}: {verdict}")
        if verdict.startswith("allows"):
            return Decision(True, f"granted by group {group.id}", group.id, tuple(trace))
    if not links:
        trace.append("the subject is in no group")
    return _deny(f"no group grants {action} on {resource.type} for this resource", trace)


def _deny(reason: str, trace: list[str]) -> Decision:
    return Decision(False, reason, None, (*trace, f"deny: {reason}"))


def _links(
    subject: Subject, groups: Mapping[str, Group], settings: Settings, trace: list[str]
) -> list[tuple[Membership, Group]]:
    wanted = list(subject.memberships)
    if subject.kind is SubjectKind.CUSTOMER:
        if settings.customer_group_support:
            wanted += [Membership(g) for g in settings.default_customer_groups]
        else:
            trace.append("customer_group_support is off: only predefined company groups apply")
    out: list[tuple[Membership, Group]] = []
    for link in wanted:
        group = groups.get(link.group)
        if group is None:
            trace.append(f"group {link.group}: no longer exists, grants nothing")
            continue
        if any(g.id == group.id for _, g in out):
            continue
        if subject.kind is SubjectKind.CUSTOMER and not settings.customer_group_support:
            if not group.predefined:
                continue
        out.append((link, group))
    return out


def _group_verdict(
    catalog: Catalog,
    subject: Subject,
    companies: set[str],
    link: Membership,
    group: Group,
    type_id: str,
    site_aware: bool,
    action: str,
    needed: Level | None,
    resource: Resource,
    approval_groups: Mapping[str, str],
) -> str:
    condition: str | None = None
    approving = (
        type_id == APPROVALS
        and action == APPROVE
        and group.company is not None
        and approval_groups.get(group.company) == group.id
        and approves_through(link)
    )
    if approving:
        pass  # the company's approval group: its members approve, whatever its matrix says
    elif needed is not None:
        level = group.access.get(type_id, Level.NONE)
        if link.level == "ro":
            level = min(level, Level.READ)
        elif link.level == "rw" and level > Level.NONE and not group.predefined:
            level = Level.MANAGE
        if level < needed:
            return f"grants {level.label} on {type_id}, {action} needs {needed.label}"
    else:
        if link.level == "ro":
            return f"linked read-only: named action {action} not granted"
        if type_id == APPROVALS and action == APPROVE and replaced_approver(group, approval_groups):
            return f"approval group {approval_groups[group.company or '']} approves instead"
        grants = [g for g in group.actions.get(type_id, ()) if g.action == action]
        if not grants:
            return f"does not grant {action} on {type_id}"
        if all(g.condition is not None for g in grants):
            condition = grants[0].condition
            for grant in grants:
                assert grant.condition is not None
                if _condition_holds(catalog, grant.condition, subject, companies, resource):
                    condition = None
                    break
            if condition is not None:
                return f"grants {action} only when {condition} holds, and it does not"
    if site_aware and group.restrictions and group.restrictions.isdisjoint(resource.restrictions):
        where = words(resource.restrictions)
        found = f"the resource is in {where}" if where else "the resource has no restriction value"
        return f"restricted to {words(group.restrictions)}; {found}"
    if group.kind is GroupKind.VENDOR and resource.vendor != group.vendor:
        return f"applies to vendor {group.vendor}'s entities, resource vendor is {resource.vendor}"
    if group.kind is GroupKind.CUSTOMER and group.company is not None:
        if resource.company != group.company:
            return f"applies to company {group.company}, resource company is {resource.company}"
    if link.same_customer and not (
        _is(resource.customer, {subject.id}) or _is(resource.company, companies)
    ):
        return "linked with same_customer, resource belongs to another customer"
    return f"allows {action} on {type_id}"


def _condition_holds(
    catalog: Catalog, condition_id: str, subject: Subject, companies: set[str], resource: Resource
) -> bool:
    condition = catalog.conditions[condition_id]
    for resource_path, subject_path in condition.pairs:
        if _is(resource.attribute(resource_path), _subject_side(subject, subject_path, companies)):
            return True
    for resource_path, values in condition.equals:
        if _is(resource.attribute(resource_path), set(values)):
            return True
    return False


def _subject_side(subject: Subject, path: str, companies: set[str]) -> set[Any]:
    if path == "id":
        return {subject.id}
    if path == "vendor":
        return {subject.vendor} if subject.vendor else set()
    if path == "companies":
        return companies
    value = subject.attributes.get(path.removeprefix("attributes."))
    if isinstance(value, list):
        return {v for v in value if isinstance(v, (str, int))}
    return {value} if isinstance(value, (str, int)) and not isinstance(value, bool) else set()


def _is(value: Any, values: set[Any]) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value in values
