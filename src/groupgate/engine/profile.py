"""Compile a subject's groups into a `Profile`: the look-up table the hot path reads.

A profile maps `(resource type, action)` to a `Rule`:

- `Rule.allow` set: some group grants the action with no restriction and no condition, so
  the answer needs no resource attribute at all (the prebuilt allow `Decision` is returned);
- otherwise `Rule.guards`, tried in order: a guard passes when the resource's restriction
  values meet the group's (site-aware types only) and every `requires` clause holds. Every
  scope is a clause: a customer group's company, a vendor group's vendor, the "same customer"
  link permission, and named conditions such as ownership, with the subject's side resolved
  at compile time, so a check compares resource attributes with frozensets.

Dependent types (media) and every level action (read, view, list, ...) get their own keys,
so a check is one dictionary look-up and, at most, a few set operations. Decisions are
prebuilt: the hot path allocates nothing.

Compiling is the cold path. `ProfileCompiler` compiles each group once into a `Fragment`
(its rules as if it were the subject's only group) and shares it across subjects; a
subject's profile is then mostly C-level dict merges of its groups' fragments.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from groupgate.engine.approvers import APPROVALS, APPROVE, REPLACED_ROLES, approves_through
from groupgate.model import (
    EMPTY,
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

Getter = Callable[[Resource], Any]
EMPTY_MAP: Mapping[str, str] = MappingProxyType({})
#: One clause: it holds when some (path, getter, values) finds the attribute among the values.
Clause = tuple[tuple[str, Getter, frozenset[Any]], ...]
Key = tuple[str, str]
#: A fragment's memo key: group identity, link level, approve replaced by an approval group.
MemoKey = tuple[int, str | None, bool]


@dataclass(frozen=True, slots=True)
class Guard:
    group: str
    restrictions: frozenset[str] | None
    requires: tuple[Clause, ...]
    decision: Decision


@dataclass(frozen=True, slots=True)
class Rule:
    allow: Decision | None
    guards: tuple[Guard, ...]
    deny: Decision


@dataclass(frozen=True, slots=True)
class Profile:
    tenant: str
    subject: str
    revision: int
    groups: tuple[str, ...]
    rules: Mapping[Key, Rule]


@dataclass(frozen=True, slots=True)
class Fragment:
    """One group's contribution, seen through one kind of link, for any subject."""

    allows: dict[Key, Rule]
    guarded: dict[Key, Guard]
    #: Named actions granted only under a condition: (key, condition id, guard template).
    conditional: tuple[tuple[Key, str, Guard], ...]


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
    """Return the group's levels and named actions as seen through the link's permission.

    A link never widens a predefined group (SPEC section 5): `rw` means its own grants.
    """
    if link.level is None or (link.level == "rw" and group.predefined):
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


class ProfileCompiler:
    """Compiles profiles, sharing each group's compiled fragment across subjects.

    Fragments are memoised by group object identity (the store hands out one object per
    stored group version, so a changed group is a new object) and link kind, in a bounded
    LRU that holds the group, so an identity is never reused while its entry lives.
    """

    def __init__(self, catalog: Catalog, memo_size: int = 20_000) -> None:
        self.catalog = catalog
        self._memo_size = memo_size
        self._memo: OrderedDict[MemoKey, tuple[Group, Fragment]] = OrderedDict()
        self._dependents: dict[str, list[str]] = {}
        for rtype in catalog.types.values():
            if rtype.parent is not None:
                self._dependents.setdefault(rtype.parent, []).append(rtype.id)
        self._level_actions: dict[Level, tuple[str, ...]] = {
            level: tuple(a for a, needed in catalog.levels.items() if level >= needed)
            for level in (Level.READ, Level.MANAGE)
        }

    def compile(
        self,
        subject: Subject,
        groups: Mapping[str, Group],
        settings: Settings,
        *,
        tenant: str = "",
        revision: int = 0,
        approval_groups: Mapping[str, str] = EMPTY_MAP,
    ) -> Profile:
        """Compile the subject's profile.

        `approval_groups` maps each company whose approval group has an approver to that
        group (`approvers.active_approval_groups`): its members approve the company's
        purchases, its Admins and Buyers do not.
        """
        pairs = effective_groups(subject, groups, settings)
        companies = subject_companies(pairs)
        allows: dict[Key, Rule] = {}
        guarded: dict[Key, list[Guard]] = {}
        for link, group in pairs:
            replaced = replaced_approver(group, approval_groups)
            fragment = self.fragment(group, link.level, replaced)
            approver = _approval_guard(self.catalog, link, group, approval_groups)
            if approver is not None:
                fragment = Fragment(
                    fragment.allows,
                    {**fragment.guarded, (APPROVALS, APPROVE): approver},
                    fragment.conditional,
                )
            extra: Clause | None = None
            if link.same_customer:
                extra = _same_customer_clause(subject, companies)
            if extra is None:
                allows.update(fragment.allows)
                items: Iterable[tuple[Key, Guard]] = fragment.guarded.items()
            else:
                # The link narrows every grant of the group to the subject's own entities.
                items = [
                    *((k, _narrow(r.guards[0], extra)) for k, r in fragment.allows.items()),
                    *((k, _narrow(g, extra)) for k, g in fragment.guarded.items()),
                ]
            for key, guard in items:
                guarded.setdefault(key, []).append(guard)
            for key, condition_id, template in fragment.conditional:
                clause = _condition_clause(self.catalog, condition_id, subject, companies)
                guard = _narrow(template, clause)
                if extra is not None:
                    guard = _narrow(guard, extra)
                guarded.setdefault(key, []).append(guard)
        rules: dict[Key, Rule] = {}
        for key, found in guarded.items():
            if key not in allows:
                rule = _rule(key, found)
                if rule is not None:
                    rules[key] = rule
        rules.update(allows)
        return Profile(tenant, subject.id, revision, tuple(g.id for _, g in pairs), rules)

    def fragment(self, group: Group, level: str | None, replaced: bool = False) -> Fragment:
        memo_key = (id(group), level, replaced)
        found = self._memo.get(memo_key)
        if found is not None and found[0] is group:
            self._memo.move_to_end(memo_key)
            return found[1]
        link = Membership(group.id, level)  # type: ignore[arg-type]
        fragment = self._build(group, link, replaced)
        self._memo[memo_key] = (group, fragment)
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return fragment

    def _build(self, group: Group, link: Membership, replaced: bool = False) -> Fragment:
        levels, actions = group_grants(link, group)
        if replaced and APPROVALS in actions:
            actions[APPROVALS] = [a for a in actions[APPROVALS] if a[0] != APPROVE]
        scope = _scope_clauses(group)
        allows: dict[Key, Rule] = {}
        guarded: dict[Key, Guard] = {}
        conditional: list[tuple[Key, str, Guard]] = []
        types = self.catalog.types
        for type_id, level in levels.items():
            if level is Level.NONE or type_id not in types:
                continue
            guard = _guard(self.catalog, group, type_id, scope)
            for action in self._level_actions[level]:
                self._place(type_id, action, guard, allows, guarded)
        for type_id, named in actions.items():
            if type_id not in types:
                continue
            guard = _guard(self.catalog, group, type_id, scope)
            for action, condition_id in named:
                if condition_id is None:
                    self._place(type_id, action, guard, allows, guarded)
                    continue
                for key in self._keys(type_id, action):
                    conditional.append((key, condition_id, guard))
        return Fragment(allows, guarded, tuple(conditional))

    def _keys(self, type_id: str, action: str) -> list[Key]:
        return [(type_id, action)] + [(d, action) for d in self._dependents.get(type_id, ())]

    def _place(
        self,
        type_id: str,
        action: str,
        guard: Guard,
        allows: dict[Key, Rule],
        guarded: dict[Key, Guard],
    ) -> None:
        for key in self._keys(type_id, action):
            if guard.restrictions is None and not guard.requires:
                allows[key] = Rule(guard.decision, (guard,), _deny(key, True))
            else:
                guarded[key] = guard


def compile_profile(
    catalog: Catalog,
    subject: Subject,
    groups: Mapping[str, Group],
    settings: Settings,
    *,
    tenant: str = "",
    revision: int = 0,
    approval_groups: Mapping[str, str] = EMPTY_MAP,
) -> Profile:
    """Compile one profile without sharing fragments (tests, one-off questions)."""
    compiler = ProfileCompiler(catalog)
    return compiler.compile(
        subject,
        groups,
        settings,
        tenant=tenant,
        revision=revision,
        approval_groups=approval_groups,
    )


def replaced_approver(group: Group, approval_groups: Mapping[str, str]) -> bool:
    """Whether an active approval group of its company replaces this group's `approve`."""
    return (
        group.predefined
        and group.company is not None
        and group.company in approval_groups
        and group.role in REPLACED_ROLES
    )


def _approval_guard(
    catalog: Catalog, link: Membership, group: Group, approval_groups: Mapping[str, str]
) -> Guard | None:
    """The `approve` a company's approval group gives its members, on that company only."""
    if group.company is None or approval_groups.get(group.company) != group.id:
        return None
    if not approves_through(link) or APPROVALS not in catalog.types:
        return None
    return _guard(catalog, group, APPROVALS, _scope_clauses(group))


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
    return (
        *(
            (path, resource_getter(path), subject_values(subject, subject_path, companies))
            for path, subject_path in condition.pairs
        ),
        *((path, resource_getter(path), values) for path, values in condition.equals),
    )


def words(values: Iterable[Any]) -> str:
    """A value set in plain words: sorted, comma-separated (`DE, FR`)."""
    return ", ".join(sorted(map(str, values)))


def _alternative(path: str, values: frozenset[Any]) -> str:
    return f"{path} is {words(values)}" if len(values) == 1 else f"{path} is one of {words(values)}"


def _reason(group: str, restrictions: frozenset[str] | None, requires: tuple[Clause, ...]) -> str:
    """`granted by group G`, then what scopes it: `; restricted to DE, FR; company is c1`."""
    parts = [f"granted by group {group}"]
    if restrictions is not None:
        parts.append(f"restricted to {words(restrictions)}")
    for clause in requires:
        alternatives = [_alternative(p, v) for p, _, v in clause if v]
        parts.append(" or ".join(alternatives) or "never")
    return "; ".join(parts)


def _guard(catalog: Catalog, group: Group, type_id: str, requires: tuple[Clause, ...]) -> Guard:
    restricted = catalog.types[type_id].site_aware and bool(group.restrictions)
    restrictions = group.restrictions if restricted else None
    reason = _reason(group.id, restrictions, requires)
    return Guard(group.id, restrictions, requires, Decision(True, reason, group.id))


def _narrow(guard: Guard, clause: Clause) -> Guard:
    requires = (*guard.requires, clause)
    reason = _reason(guard.group, guard.restrictions, requires)
    return Guard(guard.group, guard.restrictions, requires, Decision(True, reason, guard.group))


def _deny(key: Key, granted: bool) -> Decision:
    type_id, action = key
    if granted:
        return Decision(False, f"no group grants {action} on {type_id} for this resource")
    return Decision(False, f"no group grants {action} on {type_id}")


def _rule(key: Key, guards: list[Guard]) -> Rule | None:
    # A clause whose value sets are all empty can never hold: drop such guards now.
    live = tuple(g for g in guards if all(any(v for _, _, v in c) for c in g.requires))
    if not live:
        return None
    for guard in live:
        if guard.restrictions is None and not guard.requires:
            return Rule(guard.decision, (guard,), _deny(key, True))
    return Rule(None, live, _deny(key, True))
