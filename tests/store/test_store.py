"""The store suite: writes, reads, rules and invalidation, on fakeredis and a real Redis."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from groupgate.engine.profile import ProfileCompiler
from groupgate.errors import Conflict, GraphError, NotFound
from groupgate.model import Money, Resource
from groupgate.store.codec import GroupMemo
from groupgate.store.decider import StoreDecider
from groupgate.store.guard import Guard
from groupgate.store.reader import StoreReader
from groupgate.store.service import GraphService
from tests.store.conftest import Opener, import_settled
from tests.store.data import acme

DE_ORDER = Resource(type="orders", id="o-1", company="c-parent", restrictions=frozenset({"DE"}))
US_ORDER = Resource(type="orders", id="o-2", company="c-parent", restrictions=frozenset({"US"}))


async def allowed(
    service: GraphService,
    tenant: str,
    subject: str,
    action: str,
    resource: Resource,
    min_revision: int | None = None,
) -> bool:
    answer = await service.decider.check(
        tenant, subject, action, resource, min_revision=min_revision
    )
    return answer.decision.allow


async def test_import_then_decide(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    rev = await service.admin.import_graph(None, acme(tenant))
    assert rev == 1
    assert await allowed(service, tenant, "emp-1", "update", DE_ORDER)
    assert not await allowed(service, tenant, "emp-1", "update", US_ORDER)
    assert not await allowed(service, tenant, "emp-1", "update", Resource(type="users_and_groups"))
    assert await allowed(service, tenant, "emp-1", "read", Resource(type="products"))
    assert await allowed(service, tenant, "cust-1", "read", Resource(type="coupons"))
    assert await allowed(service, tenant, "vu-1", "update", Resource(type="orders", vendor="abc"))
    assert not await allowed(service, tenant, "vu-1", "update", Resource(type="orders", vendor="x"))
    answer = await service.decider.check(tenant, "nobody", "read", Resource(type="orders"))
    assert not answer.decision.allow and "unknown subject" in answer.decision.reason
    assert tenant in await service.decider.tenants()
    assert await service.decider.revision(tenant) == 1


async def test_check_cached_answers_only_from_the_cache(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await import_settled(service, acme(tenant))
    # Not resolved yet:
    assert service.decider.check_cached(tenant, "emp-1", "update", DE_ORDER) is None
    assert (service.cache.hits, service.cache.misses) == (0, 0)  # the `check` after counts
    for subject, resource in (("emp-1", DE_ORDER), ("emp-1", US_ORDER), ("nobody", DE_ORDER)):
        answer = await service.decider.check(tenant, subject, "update", resource)
        assert service.decider.check_cached(tenant, subject, "update", resource) == answer
    assert service.decider.check_cached("t-unknown", "emp-1", "update", DE_ORDER) is None
    # The first check of each subject missed; every later look-up hit, each counted once.
    assert (service.cache.hits, service.cache.misses) == (4, 2)
    await service.admin.put_subject(tenant, {"id": "emp-1", "kind": "employee"})  # drops its entry
    await eventually(
        lambda: _true(service.decider.check_cached(tenant, "emp-1", "update", DE_ORDER) is None)
    )


async def test_a_decider_over_the_bare_reader_answers_as_the_cached_one(
    open_service: Opener, tenant: str
) -> None:
    """The cache decorates the store reader with the reader's interface (`store/cached.py`):
    the same decider over a reader of its own (no cache) answers alike and keeps nothing."""
    service = await open_service()
    doc = acme(tenant)
    doc["resources"] = [{"type": "orders", "id": "o-1", "attributes": {"restrictions": ["US"]}}]
    rev = await import_settled(service, doc)
    reader = StoreReader(
        service.graphs, ProfileCompiler(service.catalog), Guard(), time.time, GroupMemo()
    )
    bare = StoreDecider(
        service.catalog,
        reader,
        service.graphs,
        service.flows,
        service.ledger,
        Guard(),
        time.time,
        service.client,
    )
    cached = service.decider
    subjects = ["emp-1", "cust-1", "vu-1", "nobody"]
    items = [(sid, "update", r) for sid in subjects for r in (DE_ORDER, US_ORDER)]
    for token in (None, rev):
        assert await bare.check_many(tenant, items, min_revision=token) == (
            await cached.check_many(tenant, items, min_revision=token)
        )
        for sid, action, resource in items:
            for explain in (False, True):
                want = await cached.check(
                    tenant, sid, action, resource, min_revision=token, explain=explain
                )
                got = await bare.check(
                    tenant, sid, action, resource, min_revision=token, explain=explain
                )
                assert got == want
            assert await bare.some(tenant, sid, "read", "orders", min_revision=token) == (
                await cached.some(tenant, sid, "read", "orders", min_revision=token)
            )
            assert await bare.filter(tenant, sid, "read", "orders", min_revision=token) == (
                await cached.filter(tenant, sid, "read", "orders", min_revision=token)
            )
        assert await bare.subject_kinds(tenant, subjects, min_revision=token) == (
            await cached.subject_kinds(tenant, subjects, min_revision=token)
        )
        assert await bare.held_ids(tenant, "orders", min_revision=token) == ("o-1",)
    assert cached.check_cached(tenant, "emp-1", "update", DE_ORDER) is not None
    assert bare.check_cached(tenant, "emp-1", "update", DE_ORDER) is None
    assert bare.some_cached(tenant, "emp-1", "read", "orders") is None
    with pytest.raises(Conflict):
        await bare.check(tenant, "emp-1", "update", DE_ORDER, min_revision=rev + 100)
    with pytest.raises(NotFound):
        await bare.check("t-unknown", "emp-1", "update", DE_ORDER)


async def _true(value: bool) -> bool:
    return value


async def test_unknown_tenant_is_not_found(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    with pytest.raises(NotFound):
        await service.decider.check(tenant, "emp-1", "read", DE_ORDER)
    with pytest.raises(NotFound):
        await service.admin.put_subject(tenant, {"id": "x", "kind": "employee"})


async def test_invalid_import_changes_nothing(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    broken = acme(tenant)
    broken["subjects"][2]["companies"]["c-sub"] = ["admin", "buyer"]
    with pytest.raises(GraphError, match=r"subjects\[2\]\.companies\.c-sub"):
        await service.admin.import_graph(None, broken)
    assert await service.decider.revision(tenant) == 1
    assert await allowed(service, tenant, "emp-1", "update", DE_ORDER)


async def test_reimport_replaces_the_graph(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    smaller = acme(tenant)
    smaller["subjects"] = [s for s in smaller["subjects"] if s["id"] != "emp-1"]
    rev = await service.admin.import_graph(tenant, smaller)
    assert rev == 2
    assert not await allowed(service, tenant, "emp-1", "update", DE_ORDER, min_revision=rev)
    with pytest.raises(NotFound):
        await service.admin.get_entity(tenant, "subject", "emp-1")


async def test_every_write_bumps_the_revision(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    revs = [await service.admin.put_settings(tenant, {"company_contact_propagation": "DOWNWARD"})]
    revs.append(await service.admin.put_company(tenant, {"id": "c1", "name": "One"}))
    revs.append(
        await service.admin.put_company(tenant, {"id": "c2", "name": "Two", "parent": "c1"})
    )
    revs.append(await service.admin.put_vendor(tenant, {"id": "v", "name": "V"}))
    revs.append(
        await service.admin.put_group(
            tenant, {"id": "g", "name": "G", "kind": "user", "role": "viewer"}
        )
    )
    revs.append(
        await service.admin.put_subject(tenant, {"id": "e", "kind": "employee", "groups": ["g"]})
    )
    revs.append(await service.admin.put_subject(tenant, {"id": "k", "kind": "customer"}))
    revs.append(
        await service.admin.add_membership(tenant, "k", {"company": "c1", "role": "Purchaser"})
    )
    revs.append(await service.admin.remove_membership(tenant, "e", "g"))
    revs.append(await service.admin.delete_subject(tenant, "e"))
    revs.append(await service.admin.delete_group(tenant, "g"))
    revs.append(await service.admin.delete_vendor(tenant, "v"))
    assert revs == list(range(1, len(revs) + 1))
    customer = await service.admin.get_entity(tenant, "subject", "k")
    # Buyer in c1, contact in c1 and, with DOWNWARD propagation, contact in c2.
    assert sorted(customer["groups"]) == ["c1/buyer", "c1/contact", "c2/contact"]


async def test_company_creates_predefined_groups_and_vendor_its_groups(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await service.admin.put_settings(tenant, {})
    await service.admin.put_company(tenant, {"id": "c1", "name": "One"})
    await service.admin.put_vendor(tenant, {"id": "v", "name": "V"})
    for role in ("admin", "contact", "buyer", "requester"):
        group = await service.admin.get_entity(tenant, "group", f"c1/{role}")
        assert group["predefined"] and group["company"] == "c1"
    for role in ("order.manager", "order.viewer", "product.manager", "product.viewer"):
        group = await service.admin.get_entity(tenant, "group", f"v/vendor.{role}")
        assert group["vendor"] == "v"


async def test_refused_writes_change_nothing(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    refused = [
        service.admin.add_membership(tenant, "cust-1", {"company": "c-sub", "role": "buyer"}),
        service.admin.put_group(tenant, {"id": "c-parent/admin", "name": "x", "kind": "customer"}),
        service.admin.put_company(tenant, {"id": "c-parent", "name": "P", "parent": "c-sub"}),
        service.admin.put_company(tenant, {"id": "c-x", "name": "X", "parent": "nope"}),
        service.admin.put_subject(tenant, {"id": "e9", "kind": "employee", "groups": ["nope"]}),
        service.admin.put_subject(
            tenant, {"id": "e9", "kind": "employee", "groups": ["newsletter"]}
        ),
        service.admin.put_subject(tenant, {"id": "v9", "kind": "vendor_user", "vendor": "nope"}),
        service.admin.put_group(
            tenant,
            {"id": "abc/vendor.product.viewer", "name": "x", "actions": {"products": ["publish"]}},
        ),
        service.admin.delete_group(tenant, "c-parent-approvers"),
        service.admin.delete_group(tenant, "newsletter"),
        service.admin.delete_company(tenant, "c-parent"),
        service.admin.put_settings(tenant, {"default_customer_groups": ["de-managers"]}),
        service.admin.put_company(
            tenant,
            {
                "id": "c-sub",
                "name": "S",
                "parent": "c-parent",
                "approval_group": "c-parent-approvers",
            },
        ),
    ]
    for write in refused:
        with pytest.raises(GraphError):
            await write
    with pytest.raises(NotFound):
        await service.admin.remove_membership(tenant, "emp-1", "viewers")
    assert await service.decider.revision(tenant) == 1
    customer = await service.admin.get_entity(tenant, "subject", "cust-1")
    assert "c-sub/buyer" not in customer["groups"]


async def test_vendor_product_manager_may_be_granted_publish(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    await service.admin.put_subject(
        tenant,
        {
            "id": "vu-2",
            "kind": "vendor_user",
            "vendor": "abc",
            "groups": ["abc/vendor.product.manager"],
        },
    )
    product = Resource(type="products", vendor="abc")
    assert not await allowed(service, tenant, "vu-2", "publish", product)
    rev = await service.admin.put_group(
        tenant,
        {"id": "abc/vendor.product.manager", "name": "PM", "actions": {"products": ["publish"]}},
    )
    assert await allowed(service, tenant, "vu-2", "publish", product, min_revision=rev)
    assert not await allowed(
        service, tenant, "vu-2", "publish", Resource(type="products", vendor="z")
    )


async def test_group_change_evicts_its_members_everywhere(
    open_service: Opener, tenant: str
) -> None:
    writer, reader = await open_service(), await open_service()
    await writer.admin.import_graph(None, acme(tenant))
    assert await allowed(reader, tenant, "emp-2", "read", DE_ORDER)
    await writer.admin.put_group(
        tenant, {"id": "viewers", "name": "Viewers", "kind": "user", "access": {"products": "read"}}
    )
    await eventually(lambda: denied(reader, tenant, "emp-2", "read", DE_ORDER))


async def test_deleted_group_unlinks_members(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    rev = await service.admin.delete_group(tenant, "viewers")
    assert not await allowed(service, tenant, "emp-2", "read", DE_ORDER, min_revision=rev)
    rev = await service.admin.put_group(
        tenant, {"id": "viewers", "name": "Viewers", "kind": "user", "role": "viewer"}
    )
    assert not await allowed(service, tenant, "emp-2", "read", DE_ORDER, min_revision=rev)
    assert (await service.admin.get_entity(tenant, "subject", "emp-2"))["groups"] == []


async def test_settings_change_reaches_cached_customers(open_service: Opener, tenant: str) -> None:
    writer, reader = await open_service(), await open_service()
    await writer.admin.import_graph(None, acme(tenant))
    assert await allowed(reader, tenant, "cust-1", "read", Resource(type="coupons"))
    rev = await writer.admin.put_settings(tenant, {"default_customer_groups": []})
    assert not await allowed(reader, tenant, "cust-1", "read", Resource(type="coupons"), rev)


async def test_consistency_token_sees_the_revoking_write(open_service: Opener, tenant: str) -> None:
    writer, reader = await open_service(), await open_service()
    await writer.admin.import_graph(None, acme(tenant))
    assert await allowed(reader, tenant, "emp-1", "update", DE_ORDER)
    rev = await writer.admin.remove_membership(tenant, "emp-1", "de-managers")
    answer = await reader.decider.check(tenant, "emp-1", "update", DE_ORDER, min_revision=rev)
    assert not answer.decision.allow and answer.revision >= rev
    with pytest.raises(Conflict):
        await reader.decider.check(tenant, "emp-1", "update", DE_ORDER, min_revision=rev + 100)


async def test_purchases_read_the_store(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    eur = lambda amount: Money(Decimal(amount), "EUR")  # noqa: E731
    within = await service.decider.purchase(tenant, "cust-1", "c-parent", eur("100.00"))
    assert within.result.decision == "allow"
    over = await service.decider.purchase(tenant, "cust-1", "c-parent", eur("6200.00"))
    assert over.result.decision == "approval_required"
    # cust-1 alone is in c-parent-approvers, which still replaces the Admins (SPEC section 5):
    # nobody approves their own purchase, so no customer approver is left.
    assert over.result.approver_groups == ("c-parent-approvers",)
    assert over.result.approver_subjects == ()
    # An approval group member must be a customer of the company (SPEC section 5).
    cust_9 = {"id": "cust-9", "kind": "customer", "groups": ["c-parent-approvers"]}
    with pytest.raises(GraphError, match="not a customer of 'c-parent'"):
        await service.admin.put_subject(tenant, cust_9)
    rev = await service.admin.put_subject(tenant, {**cust_9, "companies": {"c-parent": []}})
    over = await service.decider.purchase(
        tenant, "cust-1", "c-parent", eur("6200.00"), min_revision=rev
    )
    assert over.result.approver_groups == ("c-parent-approvers",)
    assert over.result.approver_subjects == ("cust-9",)
    mismatch = await service.decider.purchase(
        tenant, "cust-1", "c-parent", Money(Decimal("1"), "USD")
    )
    assert mismatch.result.decision == "deny" and mismatch.result.error
    with pytest.raises(NotFound):
        await service.decider.purchase(tenant, "cust-1", "nope", eur("1"))


async def test_a_subsidiary_without_a_limit_uses_its_parents(
    open_service: Opener, tenant: str
) -> None:
    # SPEC section 5: account limits reach down the tree (c-sub has none; c-parent 5000 EUR).
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    eur = lambda amount: Money(Decimal(amount), "EUR")  # noqa: E731
    within = await service.decider.purchase(tenant, "cust-1", "c-sub", eur("100.00"))
    assert within.result.decision == "allow"
    assert within.result.limit == eur("5000.00")
    over = await service.decider.purchase(tenant, "cust-1", "c-sub", eur("6200.00"))
    assert over.result.decision != "allow" and over.result.limit == eur("5000.00")
    usd = await service.decider.purchase(tenant, "cust-1", "c-sub", Money(Decimal("1"), "USD"))
    assert usd.result.decision == "deny" and usd.result.error  # the inherited currency


async def test_subject_pages_are_stable(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    seen: list[str] = []
    token = None
    while True:
        page = await service.decider.subject_ids(tenant, token, 2)
        seen += page.items
        token = page.next_token
        if token is None:
            break
    assert seen == sorted(["emp-1", "emp-2", "cust-1", "cust-7", "vu-1"])


async def test_concurrent_conflicting_assignments(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    await service.admin.put_subject(tenant, {"id": "cust-x", "kind": "customer"})
    roles = ["admin", "buyer"] * 25

    async def assign(role: str) -> str | None:
        try:
            await service.admin.add_membership(tenant, "cust-x", {"company": "c-sub", "role": role})
        except GraphError:
            return None
        return role

    results = await asyncio.gather(*(assign(r) for r in roles))
    winners = {r for r in results if r is not None}
    assert len(winners) == 1, winners
    groups = (await service.admin.get_entity(tenant, "subject", "cust-x"))["groups"]
    assert sum(g in ("c-sub/admin", "c-sub/buyer") for g in groups) == 1


async def test_lost_events_are_caught_by_the_poll(open_service: Opener, tenant: str) -> None:
    writer = await open_service()
    reader = await open_service(poll_interval=0.1)
    await writer.admin.import_graph(None, acme(tenant))
    assert await allowed(reader, tenant, "emp-1", "update", DE_ORDER)
    reader.freshness.on_event = lambda message: None  # type: ignore[method-assign]
    await writer.admin.remove_membership(tenant, "emp-1", "de-managers")
    await eventually(lambda: denied(reader, tenant, "emp-1", "update", DE_ORDER))


async def test_revision_going_backwards_drops_the_cache(open_service: Opener, tenant: str) -> None:
    service = await open_service(poll_interval=0.1)
    await service.admin.import_graph(None, acme(tenant))
    assert await allowed(service, tenant, "emp-1", "update", DE_ORDER)
    # A failover that lost writes: same revision, other content, no event.
    await service.client.hset(f"gg:{{{tenant}}}:meta", mapping={"rev": 1, "stamp": "other"})
    flushes = service.cache.flushes
    await eventually(lambda: asyncio.sleep(0, service.cache.flushes > flushes))


async def denied(
    service: GraphService, tenant: str, subject: str, action: str, resource: Resource
) -> bool:
    return not await allowed(service, tenant, subject, action, resource)


async def eventually(predicate, limit: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_joining_a_predefined_group_by_id_makes_a_contact(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await service.admin.import_graph(None, acme(tenant))
    await service.admin.put_subject(tenant, {"id": "k1", "kind": "customer"})
    await service.admin.add_membership(tenant, "k1", "c-sub/buyer")
    groups = (await service.admin.get_entity(tenant, "subject", "k1"))["groups"]
    # Contact in c-sub, and UPWARD propagation makes it a contact of c-parent too.
    assert sorted(groups) == ["c-parent/contact", "c-sub/buyer", "c-sub/contact"]
    await service.admin.put_subject(
        tenant, {"id": "k2", "kind": "customer", "groups": ["c-sub/admin"]}
    )
    groups = (await service.admin.get_entity(tenant, "subject", "k2"))["groups"]
    assert sorted(groups) == ["c-parent/contact", "c-sub/admin", "c-sub/contact"]
