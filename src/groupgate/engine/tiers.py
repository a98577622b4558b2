"""Approval tiers (SPEC section 5): what an approval-required purchase needs, and who fills it.

A purchase that needs approval carries one or more tiers, approved in order. A tier is ALL of
its lists; each list is ANY of its roles or groups, and is filled by one approval from a
subject who holds one of them in the purchase's company:

    Tier("requester_within_limit", (("buyer", "admin"),))      # one buyer or admin
    Tier("big-orders", (("finance",), ("admin", "buyer")))     # finance AND (admin or buyer)

Names are resolved against the company (`requirement_groups`): the predefined roles `admin`,
`buyer`, `requester` and `contact` stand for the company's predefined groups, any other name
is a group id. Where the company's approval group is active (it has a member who may approve,
`approvers.active_approval_groups`), its members are the company's approvers and its Admins
and Buyers are not (SPEC section 5), so `admin` and `buyer` stand for the approval group.

Nobody fills a list of their own purchase, and a person fills at most one list per tier.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from groupgate.engine.approvers import REPLACED_ROLES
from groupgate.model import PREDEFINED_ROLES, Approval, Eligible, Tier, predefined_group_id


def requirement_groups(
    names: Iterable[str], company: str, approval_group: str | None
) -> frozenset[str]:
    """The group ids standing for one list of names in `company`.

    `approval_group` is the company's approval group when it is active, else None.
    """
    out: set[str] = set()
    for name in names:
        if name in PREDEFINED_ROLES:
            if approval_group is not None and name in REPLACED_ROLES:
                out.add(approval_group)
            else:
                out.add(predefined_group_id(company, name))
        else:
            out.add(name)
    return frozenset(out)


def tier_groups(tier: Tier, company: str, approval_group: str | None) -> tuple[str, ...]:
    """Every group id standing for some list of `tier`, in the order the tier names them."""
    out: dict[str, None] = {}
    for names in tier.requires:
        for name in names:
            out.update(dict.fromkeys(sorted(requirement_groups((name,), company, approval_group))))
    return tuple(out)


def eligible(
    tier: Tier,
    company: str,
    approval_group: str | None,
    members: Mapping[str, frozenset[str]],
    requester: str,
) -> Eligible:
    """Who may fill some list of `tier` now: its groups, and their members who approve
    (`members`: group id -> approving members, see `approvers.purchase_members`), never
    the requester."""
    groups = tier_groups(tier, company, approval_group)
    subjects = frozenset().union(*(members.get(g, frozenset()) for g in groups)) - {requester}
    return Eligible(groups, tuple(sorted(subjects)))


def open_slots(tier: Tier, approvals: Sequence[Approval]) -> list[int]:
    """The indices of the tier's lists nobody has filled yet."""
    filled = {a.slot for a in approvals}
    return [i for i in range(len(tier.requires)) if i not in filled]


def tier_complete(tier: Tier, approvals: Sequence[Approval]) -> bool:
    return not open_slots(tier, approvals)


def slot_for(
    tier: Tier,
    approvals: Sequence[Approval],
    subject: str,
    subject_groups: Collection[str],
    *,
    company: str,
    approval_group: str | None,
    requester: str,
) -> int | None:
    """The open list of `tier` that `subject` may fill now, or None.

    `subject_groups` are the groups `subject` approves through (links that are not `ro`,
    plus what a running delegation lends them); `approval_group` as in `requirement_groups`.
    """
    if subject == requester or any(a.subject == subject for a in approvals):
        return None
    for slot in open_slots(tier, approvals):
        wanted = requirement_groups(tier.requires[slot], company, approval_group)
        if any(g in wanted for g in subject_groups):
            return slot
    return None
