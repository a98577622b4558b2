"""Approval flows on fakeredis, a real Redis and the Cluster (SPEC section 5, issue 13).

Each scenario checks the flow and the tenant's event stream, which must hold exactly the
expected events in order. The clock is the test's: expiry and delegations move with it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from groupgate.errors import Conflict, Forbidden, GraphError, NotFound, StoreUnavailable
from groupgate.model import Money, PurchaseDecision, Resource, Tier
from groupgate.store import events, keys
from groupgate.store.contract import PurchaseAnswer
from groupgate.store.flows import Request, is_flow_id, new_flow_id
from groupgate.store.service import GraphService
from tests.store.conftest import Opener

HOUR = 3600.0
START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def graph(tenant: str, admins: int = 2) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "companies": [
            {"id": "co", "name": "Co", "account_limit": {"amount": "1000.00", "currency": "EUR"}},
            {"id": "other", "name": "Other"},
        ],
        "groups": [{"id": "finance", "name": "Finance", "kind": "customer", "company": "co"}],
        "subjects": [
            {"id": "req", "kind": "customer", "companies": {"co": ["requester"]}},
            {"id": "buy", "kind": "customer", "companies": {"co": ["buyer"]}},
            *[
                {"id": f"adm{i}", "kind": "customer", "companies": {"co": ["admin"]}}
                for i in range(1, admins + 1)
            ],
            {
                "id": "fin",
                "kind": "customer",
                "companies": {"co": ["contact"]},
                "groups": ["finance"],
            },
            {"id": "dlg", "kind": "customer", "companies": {"co": ["contact"]}},
            {"id": "out", "kind": "customer", "companies": {"other": ["admin"]}},
        ],
    }


TWO_TIERS = (Tier("t1", (("buyer", "admin"),)), Tier("t2", (("finance",), ("admin",))))


def purchase(amount: str = "100.00", subject: str = "req", cart_hash: str = "h1") -> Request:
    return Request(subject, "co", amount, Money(Decimal(amount), "EUR"), "cart-1", cart_hash)


async def opened(
    open_service: Opener, tenant: str, **graph_options: Any
) -> tuple[GraphService, Clock]:
    clock = Clock()
    service = await open_service(clock=clock, approval_ttl=24 * HOUR)
    await service.admin.import_graph(None, graph(tenant, **graph_options))
    return service, clock


async def request(
    service: GraphService, tenant: str, key: str, asked: Request | None = None, tiers: Any = None
) -> Any:
    asked = asked or purchase()

    async def evaluate(min_revision: int | None) -> PurchaseAnswer:
        answer = await service.decider.purchase(
            tenant, asked.subject, asked.company, asked.money, min_revision=min_revision
        )
        if tiers is None:
            return answer
        result = PurchaseDecision("approval_required", "two-tiers", tiers=tiers)
        return PurchaseAnswer(result, answer.revision)

    _, view, created = await service.flows.request(tenant, asked, key, evaluate)
    return view, created


async def stream(service: GraphService, tenant: str) -> list[dict[str, Any]]:
    """The tenant's events after the import."""
    found = [e for _, e in await events.read(service.client, tenant, "0", 1000)]
    assert found[0]["type"] == "graph.imported"
    return found[1:]


def types(found: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in found]


async def test_two_tiers(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, created = await request(service, tenant, "k1", tiers=TWO_TIERS)
    assert created and view.flow.status == "PENDING" and view.flow.tier == 0
    assert view.eligible[0] == (("co/admin", "co/buyer"), ("adm1", "adm2", "buy"))
    assert view.eligible[1] == (("co/admin", "finance"), ("adm1", "adm2", "fin"))
    flows = service.flows
    step = await flows.approve(tenant, view.flow.id, "buy", "fine")
    assert step.flow.tier == 1 and step.flow.status == "PENDING"
    with pytest.raises(Forbidden, match="buy may not approve"):
        await flows.approve(tenant, view.flow.id, "buy", None)  # buyers are not in tier 2
    step = await flows.approve(tenant, view.flow.id, "fin", None)
    assert step.flow.status == "PENDING"
    assert step.eligible[1] == (("co/admin",), ("adm1", "adm2"))
    with pytest.raises(Forbidden, match="already acted"):
        await flows.approve(tenant, view.flow.id, "fin", None)
    done = await flows.approve(tenant, view.flow.id, "adm2", None)
    assert done.flow.status == "APPROVED" and done.flow.ended_by == "adm2"
    assert [(a.tier, a.slot, a.subject) for a in done.flow.approvals] == [
        (0, 0, "buy"),
        (1, 0, "fin"),
        (1, 1, "adm2"),
    ]
    found = await stream(service, tenant)
    assert types(found) == [
        "approval.requested",
        "approval.progressed",
        "approval.progressed",
        "approval.approved",
    ]
    assert [e["approval"].get("by") for e in found] == [None, "buy", "fin", "adm2"]
    revisions = [e["revision"] for e in found]
    assert revisions == sorted(revisions) and len(set(revisions)) == 4
    assert revisions[-1] == await service.decider.revision(tenant)
    stored = await service.client.hgetall(keys.flow(tenant, view.flow.id))
    assert stored[b"status"] == b"APPROVED" and stored[b"used_by"] == b""
    assert stored[b"amount"] == b"100.00" and stored[b"cart_hash"] == b"h1"


async def test_decline(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    with pytest.raises(Forbidden):
        await service.flows.decline(tenant, view.flow.id, "out", "not mine")
    declined = await service.flows.decline(tenant, view.flow.id, "adm1", "too expensive")
    assert declined.flow.status == "DECLINED" and declined.flow.reason == "too expensive"
    with pytest.raises(Conflict, match="DECLINED"):
        await service.flows.approve(tenant, view.flow.id, "adm2", None)
    found = await stream(service, tenant)
    assert types(found) == ["approval.requested", "approval.declined"]
    assert found[1]["approval"]["reason"] == "too expensive"


async def test_cancel(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    with pytest.raises(Forbidden, match="only the requester"):
        await service.flows.cancel(tenant, view.flow.id, "adm1")
    closed = await service.flows.cancel(tenant, view.flow.id, "req")
    assert closed.flow.status == "CLOSED"
    with pytest.raises(Conflict):
        await service.flows.cancel(tenant, view.flow.id, "req")
    assert types(await stream(service, tenant)) == ["approval.requested", "approval.closed"]


async def test_expire(open_service: Opener, tenant: str) -> None:
    service, clock = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    other, _ = await request(service, tenant, "k2", purchase("200.00"))
    clock.now += 24 * HOUR - 1
    assert (await service.flows.get(tenant, view.flow.id)).flow.status == "PENDING"
    clock.now += 1
    with pytest.raises(Conflict, match="expired"):
        await service.flows.approve(tenant, view.flow.id, "adm1", None)
    assert (await service.flows.get(tenant, view.flow.id)).flow.status == "EXPIRED"
    assert await service.flows.sweep(tenant) == 1  # the other one; the first only once
    assert await service.flows.sweep(tenant) == 0
    assert (await service.flows.get(tenant, other.flow.id)).flow.status == "EXPIRED"
    assert types(await stream(service, tenant)) == [
        "approval.requested",
        "approval.requested",
        "approval.expired",
        "approval.expired",
    ]
    decided = await service.flows.may_approve(tenant, view.flow.id, "adm1")
    assert decided is not None and not decided[0].allow


async def test_delegation_runs_then_expires(open_service: Opener, tenant: str) -> None:
    service, clock = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    assert "dlg" not in view.eligible[0][1]
    _, rev = await service.admin.put_delegation(
        tenant,
        {
            "id": "d1",
            "from": "adm1",
            "to": "dlg",
            "company": "co",
            "from_time": "2027-01-15T08:00:00Z",
            "until_time": "2027-01-15T09:00:00Z",
        },
    )
    clock.now = START - 1  # before the delegation starts (START is 2027-01-15T08:00:00Z)
    decided = await service.flows.may_approve(tenant, view.flow.id, "dlg")
    assert decided is not None and not decided[0].allow
    clock.now = START
    decided = await service.flows.may_approve(tenant, view.flow.id, "dlg")
    assert decided is not None and decided[0].allow and "delegated by adm1" in decided[0].reason
    assert "dlg" in (await service.flows.get(tenant, view.flow.id)).eligible[0][1]
    clock.now += HOUR  # the delegation ended
    decided = await service.flows.may_approve(tenant, view.flow.id, "dlg")
    assert decided is not None and not decided[0].allow
    with pytest.raises(Forbidden):
        await service.flows.approve(tenant, view.flow.id, "dlg", None)
    clock.now -= 1  # running again: the approval records whose right was used
    done = await service.flows.approve(tenant, view.flow.id, "dlg", None)
    assert done.flow.status == "APPROVED" and done.flow.approvals[0].via == "adm1"
    found = await stream(service, tenant)
    assert types(found) == ["approval.requested", "delegation.created", "approval.approved"]
    assert found[1]["revision"] == rev and found[2]["approval"]["via"] == "adm1"


async def test_delegate_never_approves_own_purchase(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    await service.admin.put_delegation(
        tenant,
        {
            "from": "adm1",
            "to": "req",
            "company": "co",
            "from_time": "2027-01-15T00:00:00Z",
            "until_time": "2027-01-16T00:00:00+00:00",
        },
    )
    view, _ = await request(service, tenant, "k1")
    assert "req" not in view.eligible[0][1]
    with pytest.raises(Forbidden, match="own purchase"):
        await service.flows.approve(tenant, view.flow.id, "req", None)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"to": "out"}, "delegation.to"),
        ({"from": "out"}, "delegation.from"),
        ({"to": "nobody"}, "delegation.to"),
        ({"to": "adm1"}, "delegation.to"),
        ({"company": "nope"}, "delegation.company"),
        ({"until_time": "2027-01-15T00:00:00Z"}, "delegation.until_time"),
        ({"from_time": "2027-01-15"}, "delegation.from_time"),
        ({"from_time": "2027-01-15T00:00:00"}, "delegation.from_time"),
        ({"from_time": 5}, "delegation.from_time"),
        ({"extra": 1}, "delegation.extra"),
        ({"id": "bad id"}, "delegation.id"),
    ],
)
async def test_bad_delegations_write_nothing(
    open_service: Opener, tenant: str, change: dict[str, Any], where: str
) -> None:
    service, _ = await opened(open_service, tenant)
    before = await service.decider.revision(tenant)
    body = {
        "from": "adm1",
        "to": "dlg",
        "company": "co",
        "from_time": "2027-01-15T00:00:00Z",
        "until_time": "2027-01-16T00:00:00Z",
    }
    with pytest.raises((GraphError, NotFound)) as caught:
        await service.admin.put_delegation(tenant, body | change)
    assert where in str(caught.value)
    assert await service.decider.revision(tenant) == before
    assert (await service.admin.delegations(tenant))[0] == []


async def test_removed_approver_is_refused(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    inbox, _, _ = await service.flows.inbox(tenant, "adm1", None, 10)
    assert [f.id for f in inbox] == [view.flow.id]
    await service.admin.remove_membership(tenant, "adm1", "co/admin")
    with pytest.raises(Forbidden, match="adm1 may not approve"):
        await service.flows.approve(tenant, view.flow.id, "adm1", None)
    assert (await service.flows.inbox(tenant, "adm1", None, 10))[0] == []
    assert (await service.flows.get(tenant, view.flow.id)).flow.approvals == ()


async def test_self_approval_refused(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1", purchase("5000.00", subject="adm1"))
    assert view.eligible[0][1] == ("adm2",)
    with pytest.raises(Forbidden, match="own purchase"):
        await service.flows.approve(tenant, view.flow.id, "adm1", None)


async def test_idempotency(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    first, created = await request(service, tenant, "k1")
    again, created_again = await request(service, tenant, "k1")
    assert created and not created_again and again.flow.id == first.flow.id
    with pytest.raises(Conflict, match="Idempotency-Key"):
        await request(service, tenant, "k1", purchase("101.00"))
    mine, _ = await request(service, tenant, "k1", purchase(subject="buy", amount="5000.00"))
    assert mine.flow.id != first.flow.id  # keys are per requester
    listed, _ = await service.flows.requested(tenant, "req", None, None, 10)
    assert [f.id for f in listed] == [first.flow.id]
    assert types(await stream(service, tenant)) == ["approval.requested"] * 2


async def test_usable_closes_the_loop(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    flow_id = view.flow.id
    money = Money(Decimal("100.00"), "EUR")
    usable = service.flows.usable
    assert "PENDING" in (await usable(tenant, flow_id, "req", "co", money, "h1") or "")
    await service.flows.approve(tenant, flow_id, "buy", None)
    assert await usable(tenant, flow_id, "req", "co", money, "h1") is None
    assert await usable(tenant, flow_id, "req", "co", Money(Decimal("99"), "EUR"), None) is None
    assert "over the approved" in (
        await usable(tenant, flow_id, "req", "co", Money(Decimal("100.01"), "EUR"), None) or ""
    )
    assert "cart changed" in (await usable(tenant, flow_id, "req", "co", money, "h2") or "")
    assert "another subject" in (await usable(tenant, flow_id, "buy", "co", money, None) or "")
    assert "in EUR" in (
        await usable(tenant, flow_id, "req", "co", Money(Decimal("1"), "USD"), None) or ""
    )
    await service.client.hset(keys.flow(tenant, flow_id), "used_by", "order-1")
    assert "order-1" in (await usable(tenant, flow_id, "req", "co", money, None) or "")


async def test_customer_events_in_the_write(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    rev = await service.admin.put_subject(
        tenant, {"id": "new", "kind": "customer", "companies": {"co": ["buyer"]}}
    )
    rev2 = await service.admin.add_membership(tenant, "new", {"company": "other", "role": "buyer"})
    rev3 = await service.admin.remove_membership(tenant, "new", "other/buyer")
    found = await stream(service, tenant)
    assert types(found) == [
        "customer.created",
        "customer.assigned",
        "group.membership_changed",
        "customer.assigned",
        "group.membership_changed",
        "group.membership_changed",
    ]
    assert [e["revision"] for e in found] == [rev, rev, rev, rev2, rev2, rev3]
    assert found[0]["customer"] == {"id": "new", "kind": "customer", "companies": ["co"]}
    assert found[3]["company"] == "other"
    assert found[5]["removed"] == ["other/buyer"]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_concurrent_approvals_advance_a_tier_once(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant, admins=20)
    view, _ = await request(service, tenant, "k1", purchase("5000.00"))
    assert len(view.eligible[0][1]) == 20

    async def approve(i: int) -> str:
        try:
            await service.flows.approve(tenant, view.flow.id, f"adm{i}", None)
        except Conflict as exc:
            return "conflict: " + exc.detail
        return "ok"

    results = await asyncio.gather(*(approve(i) for i in range(1, 21)))
    assert results.count("ok") == 1
    assert all("APPROVED" in r or "concurrent" in r for r in results if r != "ok")
    flow = (await service.flows.get(tenant, view.flow.id)).flow
    assert flow.status == "APPROVED" and len(flow.approvals) == 1
    assert types(await stream(service, tenant)) == ["approval.requested", "approval.approved"]


async def test_no_change_without_its_event(open_service: Opener, tenant: str) -> None:
    """The scripts write the event first: when it cannot be written, nothing is."""
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    rev = await service.decider.revision(tenant)
    await service.client.delete(keys.events(tenant))
    await service.client.set(keys.events(tenant), "not a stream")
    with pytest.raises(StoreUnavailable):
        await service.flows.approve(tenant, view.flow.id, "adm1", None)
    with pytest.raises(StoreUnavailable):
        await service.admin.put_subject(tenant, {"id": "new", "kind": "customer"})
    with pytest.raises(StoreUnavailable):
        await request(service, tenant, "k2", purchase("200.00"))
    assert await service.decider.revision(tenant) == rev
    stored = await service.flows.load(tenant, view.flow.id)
    assert stored is not None and stored.status == "PENDING" and stored.approvals == ()
    assert await service.admin.get_entity(tenant, "subject", "adm1")
    with pytest.raises(NotFound):
        await service.admin.get_entity(tenant, "subject", "new")
    listed, _ = await service.flows.requested(tenant, "req", None, None, 10)
    assert [f.id for f in listed] == [view.flow.id]


async def test_inbox_pages(open_service: Opener, tenant: str) -> None:
    service, clock = await opened(open_service, tenant)
    made = []
    for i in range(5):
        clock.now += 1
        view, _ = await request(service, tenant, f"k{i}", purchase(f"{100 + i}.00"))
        made.append(view.flow.id)
    await service.flows.cancel(tenant, made[2], "req")
    pages: list[list[str]] = []
    cursor = None
    while True:
        found, cursor, _ = await service.flows.inbox(tenant, "buy", cursor, 2)
        pages.append([f.id for f in found])
        if cursor is None:
            break
    assert pages == [[made[0], made[1]], [made[3], made[4]]]
    assert (await service.flows.inbox(tenant, "out", None, 10))[0] == []


async def test_delegations_in_the_graph_document(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    document = graph(tenant)
    document["delegations"] = [
        {
            "id": "d1",
            "from": "adm1",
            "to": "dlg",
            "company": "co",
            "from_time": "2027-01-15T00:00:00Z",
            "until_time": "2027-01-16T00:00:00Z",
        }
    ]
    await service.admin.import_graph(None, document)
    assert [d["id"] for d in (await service.admin.delegations(tenant))[0]] == ["d1"]
    view, _ = await request(service, tenant, "k1")
    assert "dlg" in view.eligible[0][1]
    before = await service.decider.revision(tenant)
    bad = graph(tenant)
    bad["delegations"] = [document["delegations"][0] | {"to": "out"}]
    with pytest.raises(GraphError, match=r"delegations\[0\]\.to: 'out' is not a customer"):
        await service.admin.import_graph(None, bad)
    assert await service.decider.revision(tenant) == before


async def test_deleting_the_tenant_deletes_its_flows(open_service: Opener, tenant: str) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    await service.flows.approve(tenant, view.flow.id, "adm1", None)
    await request(service, tenant, "k2", purchase("200.00"))
    await service.admin.delete_tenant(tenant)
    left = [k async for k in service.client.scan_iter(match=keys.flow_patterns(tenant)[0])]
    assert left == []
    assert not await service.client.exists(keys.events(tenant))
    for pattern in keys.flow_patterns(tenant)[1:]:
        assert [k async for k in service.client.scan_iter(match=pattern)] == []


async def test_a_decision_without_tiers_needs_its_approver_groups(
    open_service: Opener, tenant: str
) -> None:
    service, _ = await opened(open_service, tenant)
    asked = purchase()

    async def evaluate(min_revision: int | None) -> PurchaseAnswer:
        answer = await service.decider.purchase(tenant, "req", "co", asked.money)
        result = PurchaseDecision("approval_required", "budget_exceeded", ("co/admin",))
        return PurchaseAnswer(result, answer.revision)

    _, view, _ = await service.flows.request(tenant, asked, "k1", evaluate)
    assert view is not None
    assert view.flow.tiers == (Tier("budget_exceeded", (("co/admin",),)),)
    assert view.eligible[0][1] == ("adm1", "adm2")
    with pytest.raises(Forbidden):
        await service.flows.approve(tenant, view.flow.id, "buy", None)


def test_flow_ids_have_one_form() -> None:
    made = new_flow_id(int(START * 1000))
    assert is_flow_id(made) and made.startswith("ap-") and len(made) == 25
    for other in ("a-1", made.upper(), made[:-1], made + "0", " " + made[1:], "ap-" + "g" * 22):
        assert not is_flow_id(other)


async def test_approve_on_an_id_no_flow_can_have_is_decided_for_the_company(
    open_service: Opener, tenant: str
) -> None:
    service, _ = await opened(open_service, tenant)
    view, _ = await request(service, tenant, "k1")
    flow = await service.decider.check(
        tenant, "adm1", "approve", Resource("approvals", view.flow.id)
    )
    assert flow.decision.allow and view.flow.id in flow.decision.reason
    # Not a flow's id: the company-level answer, from the cache too (no flow look-up),
    # the same for an admin of the company and a requester who may not approve.
    for subject, allowed in (("adm1", True), ("req", False)):
        other = Resource("approvals", "order-17", company="co")
        asked = await service.decider.check(tenant, subject, "approve", other)
        cached = service.decider.check_cached(tenant, subject, "approve", other)
        assert cached is not None and cached.decision == asked.decision
        assert asked.decision.allow is allowed and "order-17" not in asked.decision.reason
    # A flow's id is never answered from the cache: the flow decides.
    assert (
        service.decider.check_cached(tenant, "adm1", "approve", Resource("approvals", view.flow.id))
        is None
    )
