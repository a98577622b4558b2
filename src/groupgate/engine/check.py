"""Decide checks against a compiled `Profile`: the hot path.

`check` is one dictionary look-up and, when the rule is guarded, a few set operations per
guard. It never raises on the resource's contents: an attribute of an unexpected type simply
does not match, so an odd input can only deny.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

from groupgate.engine.profile import Clause, Guard, Profile
from groupgate.model import Decision, Filter, FilterResult, Resource, frozen_map

_SCALARS = (str, int)


def check(profile: Profile, action: str, resource: Resource) -> Decision:
    """Return whether the profile's subject may do `action` on `resource`."""
    rule = profile.rules.get((resource.type, action))
    if rule is None:
        return _nothing(action, resource.type)
    if rule.allow is not None:
        return rule.allow
    for guard in rule.guards:
        if _passes(guard, resource):
            return guard.decision
    return rule.deny


@lru_cache(maxsize=4096)
def _nothing(action: str, type_id: str) -> Decision:
    return Decision(False, f"no group grants {action} on {type_id}")


def _passes(guard: Guard, resource: Resource) -> bool:
    if guard.restrictions is not None and guard.restrictions.isdisjoint(resource.restrictions):
        return False
    for clause in guard.requires:
        if not _holds(clause, resource):
            return False
    return True


def _holds(clause: Clause, resource: Resource) -> bool:
    for _, getter, values in clause:
        value = getter(resource)
        if isinstance(value, _SCALARS) and not isinstance(value, bool) and value in values:
            return True
    return False


def some(profile: Profile, action: str, type_id: str) -> Decision:
    """Return whether the subject may do `action` on *some* entity of `type_id`.

    This is the gateway's question: it knows the route, not the entity, so a guarded grant
    counts (the service behind the gateway checks the entity itself).
    """
    rule = profile.rules.get((type_id, action))
    if rule is None:
        return _nothing(action, type_id)
    if rule.allow is not None:
        return rule.allow
    guard = rule.guards[0]
    reason = f"{guard.decision.reason} (entity not known here: the service checks it)"
    return Decision(True, reason, guard.group)


def restriction_filter(profile: Profile, action: str, type_id: str) -> FilterResult:
    """Return which entities of `type_id` the subject may `action`: all, none, or filters.

    The filters form a disjunction; each is a conjunction of "restriction values intersect"
    and "attribute in values". A service turns it into a WHERE clause instead of checking
    row by row.
    """
    rule = profile.rules.get((type_id, action))
    if rule is None:
        return FilterResult(all=False)
    if rule.allow is not None:
        return FilterResult(all=True)
    filters: list[Filter] = []
    for guard in rule.guards:
        # Each clause is itself a disjunction: distribute it into separate filters.
        options = [
            [(path, values) for path, _, values in clause if values] for clause in guard.requires
        ]
        for combo in product(*options):
            attributes: dict[str, frozenset[str]] = {}
            for path, values in combo:
                known = attributes.get(path)
                attributes[path] = values if known is None else known & values
            filters.append(Filter(guard.restrictions, frozen_map(attributes), guard.group))
    return FilterResult(all=False, filters=tuple(filters))
