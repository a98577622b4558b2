"""Who may approve a company's purchases, and which account limit applies (SPEC section 5).

One reading shared by the purchase answer and the check, so the approvers a purchase lists
are exactly the subjects `/v1/check` allows `approve` on `approvals` of that company:

- a member approves only through a link that keeps named actions (not `ro`);
- where a company's approval group has such members, they are its approvers, and its Admins
  and Buyers are not (`active_approval_groups` says which companies that is);
- a member of a company's approval group must be a customer of that company
  (`check_approval_member`);
- a company without its own account limit uses its nearest ancestor's (`effective_limit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from groupgate.errors import GraphError
from groupgate.model import Company, Graph, Membership, Money, predefined_group_id

APPROVALS = "approvals"
APPROVE = "approve"
#: The predefined roles whose `approve` an active approval group of their company replaces.
REPLACED_ROLES = frozenset({"admin", "buyer"})


def approves_through(link: Membership) -> bool:
    """A read-only link never carries a named action such as `approve`."""
    return link.level != "ro"


def active_approval_groups(graph: Graph) -> dict[str, str]:
    """Company id -> its approval group id, for the companies whose group has an approver."""
    approving = {
        link.group
        for subject in graph.subjects.values()
        for link in subject.memberships
        if approves_through(link)
    }
    return {
        c.id: c.approval_group
        for c in graph.companies.values()
        if c.approval_group is not None and c.approval_group in approving
    }


def approving_members(graph: Graph, group_id: str) -> frozenset[str]:
    """The subjects linked to `group_id` through a link that may approve."""
    return frozenset(
        s.id
        for s in graph.subjects.values()
        if any(m.group == group_id and approves_through(m) for m in s.memberships)
    )


def purchase_members(graph: Graph, company: str) -> dict[str, frozenset[str]]:
    """The approvers `evaluate_purchase` needs: admin, buyer and approval group, by group id."""
    ids = [predefined_group_id(company, "admin"), predefined_group_id(company, "buyer")]
    approval = graph.companies[company].approval_group
    if approval is not None:
        ids.append(approval)
    return {gid: approving_members(graph, gid) for gid in ids}


def effective_limit(company: Company, ancestors: Iterable[Company]) -> Money | None:
    """The company's own account limit, else its nearest ancestor's (`ancestors` nearest first)."""
    if company.account_limit is not None:
        return company.account_limit
    for ancestor in ancestors:
        if ancestor.account_limit is not None:
            return ancestor.account_limit
    return None


def company_ancestors(company: str, companies: Mapping[str, Company]) -> list[Company]:
    """The company's ancestors, nearest first (a broken tree simply ends the walk)."""
    out: list[Company] = []
    seen = {company}
    parent = companies[company].parent if company in companies else None
    while parent is not None and parent not in seen and parent in companies:
        seen.add(parent)
        out.append(companies[parent])
        parent = companies[parent].parent
    return out


def check_approval_member(
    subject: str,
    company: str,
    approval_group: str,
    group_companies: Mapping[str, str | None],
    path: str,
) -> None:
    """Refuse a member of `company`'s approval group who is in no other group of `company`.

    `group_companies` maps each group the subject is linked to to that group's company.
    """
    if any(gid != approval_group and owner == company for gid, owner in group_companies.items()):
        return
    raise GraphError(
        path,
        f"{subject!r} is in {approval_group!r}, the approval group of {company!r}, but is not "
        f"a customer of {company!r} (in none of its groups, not its Contact)",
    )
