"""Who may act on an approval flow now (SPEC section 5, issue 13 item 4).

Decided against the current graph at the moment of acting, never from a snapshot taken
when the flow was created. A subject may fill a list of the flow's current tier
(`tiers.slot_for`) through:

- its own links in the flow's company that approve (`approvers.approves_through`: not `ro`),
  where the company's active approval group stands for `admin` and `buyer`;
- a running delegation of that company to it: it may then fill what the delegator may, when
  the delegator is not the requester, is still a customer of the company, and neither of
  them acted in this tier yet (a person fills at most one list per tier, directly or
  through a delegate).

Nobody acts on their own purchase, whoever lends them the right.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from groupgate.engine.approvers import approves_through
from groupgate.engine.tiers import open_slots, requirement_groups, slot_for
from groupgate.model import Delegation, Flow, Membership


@dataclass(frozen=True, slots=True)
class CompanyView:
    """What eligibility reads of the flow's company at one revision.

    `approval_group` is the company's approval group when it is active (it has a member
    who approves through it), else None; `delegations` are the company's delegations
    running now; `customers` the subjects among their ends who are customers of it.
    """

    company: str
    approval_group: str | None
    delegations: tuple[Delegation, ...]
    customers: frozenset[str]


@dataclass(frozen=True, slots=True)
class Seat:
    """The list (`slot`) of the current tier a subject may fill, and the delegator whose
    right it uses (None: its own)."""

    slot: int
    via: str | None = None


def approving_groups(links: Iterable[Membership]) -> frozenset[str]:
    """The groups a subject approves through: its links that are not `ro`."""
    return frozenset(link.group for link in links if approves_through(link))


def seat(
    flow: Flow,
    subject: str,
    own: Iterable[Membership],
    view: CompanyView,
    lenders: Mapping[str, Iterable[Membership]],
) -> Seat | None:
    """The list of the flow's current tier `subject` may fill now, or None.

    `own` are the subject's links; `lenders` maps the source of each running delegation to
    `subject` in the company to the source's links.
    """
    if flow.status != "PENDING" or flow.tier >= len(flow.tiers) or subject == flow.requester:
        return None
    persons = flow.persons_of(flow.tier)
    if subject in persons:
        return None
    tier = flow.tiers[flow.tier]
    approvals = flow.approvals_of(flow.tier)
    found = slot_for(
        tier,
        approvals,
        subject,
        approving_groups(own),
        company=view.company,
        approval_group=view.approval_group,
        requester=flow.requester,
    )
    if found is not None:
        return Seat(found)
    if subject not in view.customers:
        return None
    for source in sorted(lenders):
        if source == flow.requester or source in persons or source not in view.customers:
            continue
        found = slot_for(
            tier,
            approvals,
            subject,
            approving_groups(lenders[source]),
            company=view.company,
            approval_group=view.approval_group,
            requester=flow.requester,
        )
        if found is not None:
            return Seat(found, source)
    return None


def lenders_of(subject: str, view: CompanyView) -> list[str]:
    """The sources of the company's running delegations to `subject`."""
    return sorted({d.source for d in view.delegations if d.to == subject})


def wanted_groups(flow: Flow, tier_index: int, view: CompanyView) -> frozenset[str]:
    """The group ids standing for the open lists of one tier of the flow."""
    tier = flow.tiers[tier_index]
    approvals = flow.approvals_of(tier_index) if tier_index == flow.tier else ()
    out: set[str] = set()
    for slot in open_slots(tier, approvals):
        out |= requirement_groups(tier.requires[slot], view.company, view.approval_group)
    return frozenset(out)


def eligible(
    flow: Flow,
    tier_index: int,
    view: CompanyView,
    members: Mapping[str, Collection[str]],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The groups and subjects that may fill an open list of one tier (the current tier as
    it stands, a later tier as it will start); `members` maps each group of
    `wanted_groups` to the subjects who approve through it."""
    groups = wanted_groups(flow, tier_index, view)
    persons = flow.persons_of(tier_index) if tier_index == flow.tier else frozenset()
    holders: set[str] = set()
    for group in groups:
        holders |= set(members.get(group, ()))
    excluded = persons | {flow.requester}
    subjects = holders - excluded
    for delegation in view.delegations:
        if (
            delegation.source in holders
            and delegation.source not in excluded
            and delegation.to not in excluded
            and {delegation.source, delegation.to} <= view.customers
        ):
            subjects.add(delegation.to)
    return tuple(sorted(groups)), tuple(sorted(subjects))
