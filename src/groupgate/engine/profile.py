"""Compile a subject's groups into a `Profile`: the look-up table the hot path reads.

A profile maps `(resource type, action)` to a `Rule`:

- `ALLOW`-style rule (`Rule.allow_group` set): some group grants the action with no
  restriction and no condition, so the answer needs no resource attribute at all;
- otherwise a tuple of `Guard`s, tried in order: a guard passes when the resource's
  restriction values meet the group's (site-aware types only) and every `requires` clause
  holds. Every scope is a clause: a customer group's company, a vendor group's vendor,
  the "same customer" link permission, and named conditions such as ownership, with the
  subject's side resolved now, so a check compares resource attributes with frozensets.

Dependent types (media) and every level action (read, view, list, ...) get their own keys,
so a check is one dictionary look-up plus, at most, a few set operations.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from groupgate.model import (
    EMPTY,
    Catalog,
    Group,
    GroupKind,
    Level,
    Membership,
    Resource,
    Settings,
    Subject,
    SubjectKind,
)

Getter = Callable[[Resource], Any]
#: One clause: it holds when some (getter, values) pair finds the attribute among the values.
Clause = tuple[tuple[str, Getter, frozenset[Any]], ...]


@dataclass(frozen=True, slots=True)
class Guard:
    group: str
    restrictions: frozenset[str] | None
    requires: tuple[Clause, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Rule:
    allow_group: str | None
    allow_reason: str
    guards: tuple[Guard, ...]
    deny_reason: str


@dataclass(frozen=True, slots=True)
class Profile:
    tenant: str
    subject: str
    revision: int
    groups: tuple[str, ...]
    rules: Mapping[tuple[str, str], Rule]


_FIELD_GETTERS: dict[str, Getter] = {
    name: operator.attrgetter(name) for name in ("id", "company", "vendor", "owner", "customer")
}


def resource_getter(path: str) -> Getter:
    """Return a fast accessor for a resource attribute path."""
    getter = _FIELD_GETTERS.get(path)
    if getter is not None:
        return getter
    return operator.methodcaller("attribute", path)


def subject_values(subject: Subject, path: str, companies: frozenset[str]) -> frozenset[Any]:
    """Return the subject's values at `path` (id, vendor, companies, attributes.x)."""
    if path == "id":
        return frozenset({subject.id})
    if path == "vendor":
        return frozenset({subject.vendor}) if subject.vendor else EMPTY
    if path == "companies":
        return companies
    head, _, rest = path.partition(".")
    if head == "attributes":
        value = subject.attributes.get(rest)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return frozenset({value})
        if isinstance(value, list):
            return frozenset(v for v in value if isinstance(v, (str, int)))
    return EMPTY


def effective_groups(
    subject: Subject, groups: Mapping[str, Group], settings: Settings
) -> list[tuple[Membership, Group]]:
    """Return the (link, group) pairs that apply to the subject, default groups included.

    With `customer_group_support` off, a customer's custom and default customer groups are
    not consulted; the predefined company groups still apply (they carry the company roles).
    Links to groups that no longer exist are ignored: they grant nothing.
    """
    out: list[tuple[Membership, Group]] = []
    seen: set[str] = set()
    links = list(subject.memberships)
    if subject.kind is SubjectKind.CUSTOMER and settings.customer_group_support:
        links += [Membership(g) for g in settings.default_customer_groups]
    for link in links:
        group = groups.get(link.group)
        if group is None or link.group in seen:
            continue
        if (
            subject.kind is SubjectKind.CUSTOMER
            and not settings.customer_group_support
            and not group.predefined
        ):
            continue
        seen.add(link.group)
        out.append((link, group))
    return out


def subject_companies(pairs: Iterable[tuple[Membership, Group]]) -> frozenset[str]:
    return frozenset(g.company for _, g in pairs if g.company is not None)


def group_grants(
    link: Membership, group: Group
) -> tuple[dict[str, Level], dict[str, list[tuple[str, str | None]]]]:
    """Return the group's levels and named actions as seen through the link's permission."""
    if link.level is None:
        levels = dict(group.access)
    elif link.level == "ro":
        levels = {t: min(lv, Level.READ) for t, lv in group.access.items() if lv}
    else:
        levels = {t: Level.MANAGE for t, lv in group.access.items() if lv}
    actions: dict[str, list[tuple[str, str | None]]] = {}
    if link.level != "ro":
        for type_id, grants in group.actions.items():
            actions[type_id] = [(g.action, g.condition) for g in grants]
    return levels, actions


def compile_profile(
    catalog: Catalog,
    subject: Subject,
    groups: Mapping[str, Group],
    settings: Settings,
    *,
    tenant: str = "",
    revision: int = 0,
) -> Profile:
    """Compile the subject's effective groups into a `Profile` (see the module docstring)."""
    pairs = effective_groups(subject, groups, settings)
    companies = subject_companies(pairs)
    same_customer = _same_customer_clause(subject, companies)
    level_actions: dict[Level, list[str]] = {Level.READ: [], Level.MANAGE: []}
    for action, needed in catalog.levels.items():
        for level in (Level.READ, Level.MANAGE):
            if level >= needed:
                level_actions[level].append(action)
    guards: dict[tuple[str, str], list[Guard]] = {}
    for link, group in pairs:
        scope = _scope_clauses(group)
        if link.same_customer:
            scope = (*scope, same_customer)
        levels, actions = group_grants(link, group)
        for type_id, level in levels.items():
            if level is Level.NONE or type_id not in catalog.types:
                continue
            guard = _guard(catalog, group, type_id, scope)
            for action in level_actions[level]:
                guards.setdefault((type_id, action), []).append(guard)
        for type_id, named in actions.items():
            if type_id not in catalog.types:
                continue
            for action, condition_id in named:
                clauses = scope
                if condition_id is not None:
                    clauses = (*scope, _condition_clause(catalog, condition_id, subject, companies))
                guard = _guard(catalog, group, type_id, clauses)
                guards.setdefault((type_id, action), []).append(guard)
    rules: dict[tuple[str, str], Rule] = {}
    for (type_id, action), found in guards.items():
        rules[(type_id, action)] = _rule(type_id, action, found)
    for dependent in catalog.types.values():
        if dependent.parent is None:
            continue
        for (type_id, action), rule in list(rules.items()):
            if type_id == dependent.parent:
                rules[(dependent.id, action)] = rule
    return Profile(
        tenant=tenant,
        subject=subject.id,
        revision=revision,
        groups=tuple(g.id for _, g in pairs),
        rules=rules,
    )


def _scope_clauses(group: Group) -> tuple[Clause, ...]:
    if group.kind is GroupKind.VENDOR and group.vendor is not None:
        return ((("vendor", _FIELD_GETTERS["vendor"], frozenset({group.vendor})),),)
    if group.kind is GroupKind.CUSTOMER and group.company is not None:
        return ((("company", _FIELD_GETTERS["company"], frozenset({group.company})),),)
    return ()


def _same_customer_clause(subject: Subject, companies: frozenset[str]) -> Clause:
    return (
        ("customer", _FIELD_GETTERS["customer"], frozenset({subject.id})),
        ("company", _FIELD_GETTERS["company"], companies),
    )


def _condition_clause(
    catalog: Catalog, condition_id: str, subject: Subject, companies: frozenset[str]
) -> Clause:
    condition = catalog.conditions[condition_id]
    return tuple(
        (
            resource_path,
            resource_getter(resource_path),
            subject_values(subject, subject_path, companies),
        )
        for resource_path, subject_path in condition.pairs
    )


def _guard(catalog: Catalog, group: Group, type_id: str, requires: tuple[Clause, ...]) -> Guard:
    restricted = catalog.types[type_id].site_aware and bool(group.restrictions)
    restrictions = group.restrictions if restricted else None
    parts = [f"group {group.id}"]
    if restrictions is not None:
        parts.append(f"restrictions {sorted(restrictions)}")
    parts += [
        " or ".join(f"{path} in {sorted(map(str, values))}" for path, _, values in clause)
        for clause in requires
    ]
    return Guard(group.id, restrictions, requires, "granted by " + ", ".join(parts))


def _rule(type_id: str, action: str, guards: list[Guard]) -> Rule:
    # A clause whose value sets are all empty can never hold: drop such guards now.
    live = [g for g in guards if all(any(v for _, _, v in c) for c in g.requires)]
    for guard in live:
        if guard.restrictions is None and not guard.requires:
            return Rule(guard.group, f"granted by group {guard.group}", (), "")
    deny = f"no group grants {action} on {type_id} for this resource"
    if not live:
        deny = f"no group grants {action} on {type_id}"
    return Rule(None, "", tuple(live), deny)
