"""Translations of a groupgate tenant for other authorization engines (cedarpy, pycasbin).

Both peers get the same parsed `Graph` (memberships expanded, contacts propagated) and the
same questions, and encode them the way each engine is meant to be used: roles shared by
many groups become one policy (Cedar) or one set of policy lines (casbin), and only what is
specific to a group (a company scope, an override) is written per group.

`grant_spec` is the one place that reads a group's access matrix for the peers: the levels
and explicitly granted actions, with dependent types (media, payment methods) expanded and
types split into site-aware (subject to restrictions) and the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from groupgate.model import Catalog, Group, Level


@dataclass(frozen=True, slots=True)
class GrantSpec:
    """What a group grants, as action -> types, split by site-awareness.

    Actions are `lvl_read` (read, view, list), `lvl_manage` (create, update, delete, manage)
    and named actions (publish, approve, ...). A manage grant also appears under `lvl_read`.
    """

    site: tuple[tuple[str, tuple[str, ...]], ...]
    plain: tuple[tuple[str, tuple[str, ...]], ...]

    def signature(self) -> tuple[object, ...]:
        return (self.site, self.plain)


def action_parent(catalog: Catalog, action: str) -> str:
    """Return the level pseudo-action of a level action, or the named action itself."""
    level = catalog.levels.get(action)
    if level is None:
        return action
    return "lvl_manage" if level is Level.MANAGE else "lvl_read"


def grant_spec(
    catalog: Catalog, group: Group, *, replaced: bool = False, approves: bool = False
) -> GrantSpec:
    """Return what `group` grants, with dependents expanded (unconditional grants only).

    SPEC section 5, as `engine/profile.py` compiles it: `replaced`, the group is an Admin or
    Buyer group of a company whose approval group is active (it does not approve);
    `approves`, the group is that approval group (it approves the company's approvals)."""
    dependents: dict[str, list[str]] = {}
    for rtype in catalog.types.values():
        if rtype.parent is not None:
            dependents.setdefault(rtype.parent, []).append(rtype.id)
    by_action: dict[str, set[str]] = {}
    for type_id, level in group.access.items():
        if level is Level.NONE or type_id not in catalog.types:
            continue
        covered = [type_id, *dependents.get(type_id, ())]
        by_action.setdefault("lvl_read", set()).update(covered)
        if level is Level.MANAGE:
            by_action.setdefault("lvl_manage", set()).update(covered)
    for type_id, grants in group.actions.items():
        for grant in grants:
            if replaced and type_id == "approvals" and grant.action == "approve":
                continue
            if grant.condition is not None:
                raise ValueError(f"group {group.id}: conditional grants are not translated")
            covered = [type_id, *dependents.get(type_id, ())]
            by_action.setdefault(grant.action, set()).update(covered)
    if approves:
        by_action.setdefault("approve", set()).add("approvals")
    site: list[tuple[str, tuple[str, ...]]] = []
    plain: list[tuple[str, tuple[str, ...]]] = []
    for action, types in sorted(by_action.items()):
        # A dependent type follows its parent's restrictions, as it follows its permission.
        aware = tuple(sorted(t for t in types if _site_aware(catalog, t)))
        other = tuple(sorted(t for t in types if not _site_aware(catalog, t)))
        if aware:
            site.append((action, aware))
        if other:
            plain.append((action, other))
    return GrantSpec(tuple(site), tuple(plain))


def _site_aware(catalog: Catalog, type_id: str) -> bool:
    return catalog.types[catalog.permission_type(type_id)].site_aware
