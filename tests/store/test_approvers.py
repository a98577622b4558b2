"""SPEC section 5 through the store: the approvers a purchase lists are exactly the subjects
`/v1/check` allows `approve` on the company's approvals, on fakeredis, Redis and the Cluster,
and a change of the approval group reaches cached profiles of other instances by its event."""

from __future__ import annotations

from decimal import Decimal

import pytest

from groupgate.errors import GraphError
from groupgate.model import Money, Resource
from groupgate.store.service import GraphService
from tests.store.conftest import Opener
from tests.store.data import acme
from tests.store.test_store import eventually

APPROVALS = Resource(type="approvals", id="a-1", company="c-parent")
OVER = Money(Decimal("6200.00"), "EUR")
SUBJECTS = ("cust-1", "cust-7", "cust-8", "cust-9")
#: The Admins and Buyers of c-parent who may approve when no approval group is active.
STANDARD = {"cust-1", "cust-7", "cust-8"}


async def approvers_by_check(service: GraphService, tenant: str, rev: int) -> set[str]:
    found = set()
    for subject in SUBJECTS:
        answer = await service.decider.check(
            tenant, subject, "approve", APPROVALS, min_revision=rev
        )
        if answer.decision.allow:
            found.add(subject)
    return found


async def listed(service: GraphService, tenant: str, requester: str, rev: int) -> set[str]:
    answer = await service.decider.purchase(tenant, requester, "c-parent", OVER, min_revision=rev)
    assert answer.result.decision == "approval_required"
    return set(answer.result.approver_subjects)


async def test_listed_approvers_are_the_checked_ones(open_service: Opener, tenant: str) -> None:
    writer, reader = await open_service(), await open_service()
    rev = await writer.admin.import_graph(None, acme(tenant))
    rev = await writer.admin.put_subject(
        tenant, {"id": "cust-8", "kind": "customer", "companies": {"c-parent": ["buyer"]}}
    )
    # cust-1 is the approval group's only member: it replaces the Admins (cust-7) and Buyers.
    assert await approvers_by_check(reader, tenant, rev) == {"cust-1"}
    assert await listed(reader, tenant, "cust-8", rev) == {"cust-1"}

    # Read-only in the approval group: it no longer approves through it, the Admins and Buyers
    # do again (a Buyer's over-limit purchase lists the Admins), and the cached profile of the
    # Admin on the other instance is evicted by the write's event.
    rev = await writer.admin.add_membership(
        tenant, "cust-1", {"group": "c-parent-approvers", "permission": "ro"}
    )
    await eventually(lambda: _allowed(reader, tenant, "cust-7"))
    assert await approvers_by_check(reader, tenant, rev) == STANDARD
    assert await listed(reader, tenant, "cust-8", rev) == {"cust-7"}

    # An `ro`-linked Admin is no approver either.
    rev = await writer.admin.put_subject(
        tenant,
        {
            "id": "cust-9",
            "kind": "customer",
            "groups": [{"group": "c-parent/admin", "permission": "ro"}, "c-parent/contact"],
        },
    )
    assert await approvers_by_check(reader, tenant, rev) == STANDARD
    assert await listed(reader, tenant, "cust-8", rev) == {"cust-7"}

    # cust-9 joins the approval group: active again, the Admin is replaced on both instances.
    rev = await writer.admin.add_membership(tenant, "cust-9", {"group": "c-parent-approvers"})
    await eventually(lambda: _denied(reader, tenant, "cust-7"))
    assert await approvers_by_check(reader, tenant, rev) == {"cust-9"}
    assert await listed(reader, tenant, "cust-8", rev) == {"cust-9"}

    # Leaving it (the last approving member) gives the Admin back.
    rev = await writer.admin.remove_membership(tenant, "cust-9", "c-parent-approvers")
    await eventually(lambda: _allowed(reader, tenant, "cust-7"))
    assert await approvers_by_check(reader, tenant, rev) == STANDARD

    # The company naming no approval group any more: Admins approve, members of the former
    # group do not.
    rev = await writer.admin.add_membership(tenant, "cust-9", {"group": "c-parent-approvers"})
    await eventually(lambda: _denied(reader, tenant, "cust-7"))
    company = {
        "id": "c-parent",
        "name": "Parent AG",
        "account_limit": {"amount": "5000.00", "currency": "EUR"},
        "restrictions": ["DE"],
    }
    rev = await writer.admin.put_company(tenant, company)
    await eventually(lambda: _allowed(reader, tenant, "cust-7"))
    assert await approvers_by_check(reader, tenant, rev) == STANDARD
    assert await listed(reader, tenant, "cust-8", rev) == {"cust-7"}

    # Deleting the only approving member restores the Admins too (naming the group again).
    rev = await writer.admin.put_company(
        tenant, {**company, "approval_group": "c-parent-approvers"}
    )
    await eventually(lambda: _denied(reader, tenant, "cust-7"))
    rev = await writer.admin.delete_subject(tenant, "cust-9")
    await eventually(lambda: _allowed(reader, tenant, "cust-7"))
    assert await approvers_by_check(reader, tenant, rev) == STANDARD
    assert await listed(reader, tenant, "cust-8", rev) == {"cust-7"}


async def _allowed(service: GraphService, tenant: str, subject: str) -> bool:
    return (await service.decider.check(tenant, subject, "approve", APPROVALS)).decision.allow


async def _denied(service: GraphService, tenant: str, subject: str) -> bool:
    return not await _allowed(service, tenant, subject)


async def test_leaving_the_company_while_approving_is_refused(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    await service.admin.put_subject(
        tenant,
        {
            "id": "cust-10",
            "kind": "customer",
            "companies": {"c-parent": ["buyer"]},
            "groups": ["c-parent-approvers"],
        },
    )
    await service.admin.remove_membership(tenant, "cust-10", "c-parent/buyer")  # still its Contact
    rev = await service.decider.revision(tenant)
    with pytest.raises(GraphError, match="not a customer of 'c-parent'"):
        await service.admin.remove_membership(tenant, "cust-10", "c-parent/contact")
    assert await service.decider.revision(tenant) == rev  # nothing written
    entity = await service.admin.get_entity(tenant, "subject", "cust-10")
    assert "c-parent/contact" in str(entity["groups"])
    await service.admin.remove_membership(tenant, "cust-10", "c-parent-approvers")
    await service.admin.remove_membership(tenant, "cust-10", "c-parent/contact")
