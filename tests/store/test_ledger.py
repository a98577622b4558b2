"""The spend ledger (store/ledger.py) through `GraphService`, on fakeredis, Redis and the Cluster:
commit and release idempotent by order id, limits and budgets held by the commit script,
approval flows used once, and the spend gate of purchase evaluations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from groupgate.engine import spend
from groupgate.errors import NotFound, Refused, StoreUnavailable
from groupgate.model import Catalog, Money, Tier
from groupgate.store import keys
from groupgate.store.contract import CommitAnswer, Order
from groupgate.store.ledger import Ledger
from groupgate.store.service import GraphService
from tests.store.conftest import Opener, forget_tenant

NOW = datetime(2027, 6, 15, 10, 0, tzinfo=UTC)


def shop(tenant: str, month: str = "100.00") -> dict[str, Any]:
    """A company with a monthly limit and a budget, its admin, two buyers (one with a daily
    limit of their own) and a requester."""
    return {
        "tenant": tenant,
        "settings": {"time_zone": "Europe/Berlin"},
        "companies": [
            {
                "id": "shop",
                "name": "Shop AG",
                "spending_limits": [{"period": "month", "amount": month, "currency": "EUR"}],
                "budgets": [
                    {
                        "id": "cc1-2027",
                        "cost_center": "CC-1",
                        "from": "2027-01-01",
                        "until": "2027-12-31",
                        "amount": "50.00",
                        "currency": "EUR",
                    }
                ],
            },
            {"id": "other", "name": "Other AG"},
        ],
        "subjects": [
            {"id": "admin-1", "kind": "customer", "companies": {"shop": ["admin"]}},
            {"id": "buyer-1", "kind": "customer", "companies": {"shop": ["buyer"]}},
            {
                "id": "buyer-2",
                "kind": "customer",
                "companies": {"shop": ["buyer"]},
                "spending_limits": [{"period": "day", "amount": "30.00", "currency": "EUR"}],
            },
            {"id": "req-1", "kind": "customer", "companies": {"shop": ["requester"]}},
        ],
    }


def order(
    order_id: str,
    amount: str,
    subject: str = "buyer-1",
    *,
    company: str = "shop",
    currency: str = "EUR",
    cost_center: str | None = None,
    approval_id: str | None = None,
) -> Order:
    money = Money(Decimal(amount), currency)
    units = spend.to_units(money.amount)
    return Order(order_id, subject, company, money, amount, units, cost_center, approval_id)


async def ready(open_service: Opener, tenant: str, **doc: Any) -> GraphService:
    service = await open_service()
    service.cache.clock = NOW.timestamp
    await service.admin.import_graph(None, shop(tenant, **doc))
    return service


def spent(answer: CommitAnswer) -> dict[str, str]:
    """The totals of an answer by line: `company:month` -> amount."""
    out: dict[str, str] = {}
    for line, total in answer.totals:
        name = line.bucket.partition(":")[0] if line.scope != "budget" else line.bucket
        out[f"{line.scope}:{name}"] = spend.from_units(total)
    return out


async def month_total(service: GraphService, tenant: str, owner: str = "shop") -> int:
    scope = "company" if owner == "shop" else "subject"
    line = spend.Line(scope, owner, "month:2027-06", "EUR", 0)  # type: ignore[arg-type]
    return (await service.ledger.totals(tenant, [line]))[0]


async def test_commit_counts_once_per_order(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    first = await service.decider.commit(tenant, order("o-1", "30.00"))
    assert spent(first) == {"company:month": "30.00"}
    assert not first.replayed and not first.approved
    again = await service.decider.commit(tenant, order("o-1", "30.00"))
    assert again.replayed
    assert (again.totals, again.ledger_revision) == (first.totals, first.ledger_revision)
    second = await service.decider.commit(tenant, order("o-2", "20.5"))
    assert spent(second) == {"company:month": "50.50"}
    assert second.ledger_revision == first.ledger_revision + 1
    assert await month_total(service, tenant) == 505_000
    assert await month_total(service, tenant, "buyer-1") == 505_000


async def test_same_order_other_content_is_refused(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    await service.decider.commit(tenant, order("o-1", "30.00"))
    for other in (
        order("o-1", "30.01"),
        order("o-1", "30.00", "buyer-2"),
        order("o-1", "30.00", cost_center="CC-1"),
        order("o-1", "30.00", approval_id="f-1"),
    ):
        with pytest.raises(Refused) as caught:
            await service.decider.commit(tenant, other)
        assert caught.value.rule == "order_id_reused"
    assert await month_total(service, tenant) == 300_000
    # An equal amount written otherwise is the same content.
    assert (await service.decider.commit(tenant, order("o-1", "30"))).replayed


async def test_the_commit_holds_the_period_limit(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    await service.decider.commit(tenant, order("o-1", "60.00"))
    with pytest.raises(Refused) as caught:
        await service.decider.commit(tenant, order("o-2", "40.0001"))
    refused = caught.value
    assert refused.rule == spend.PERIOD_RULE and refused.status == 409
    assert refused.extensions["limits"] == [
        {
            "scope": "company",
            "id": "shop",
            "period": "month",
            "bucket": "2027-06",
            "spent": {"amount": "60.00", "currency": "EUR"},
            "limit": {"amount": "100.00", "currency": "EUR"},
        }
    ]
    assert await month_total(service, tenant) == 600_000  # nothing written
    with pytest.raises(NotFound):
        await service.decider.release(tenant, "o-2")
    exact = await service.decider.commit(tenant, order("o-3", "40.00"))  # exactly at the limit
    assert spent(exact) == {"company:month": "100.00"}


async def test_subject_limits_and_budgets(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    mine = await service.decider.commit(
        tenant, order("o-1", "25.00", "buyer-2", cost_center="CC-1")
    )
    assert spent(mine) == {
        "company:month": "25.00",
        "subject:day": "25.00",
        "budget:cc1-2027": "25.00",
    }
    with pytest.raises(Refused) as caught:  # the buyer's day limit (30) would pass
        await service.decider.commit(tenant, order("o-2", "5.01", "buyer-2"))
    assert caught.value.rule == spend.PERIOD_RULE
    assert caught.value.extensions["limits"][0]["scope"] == "subject"
    with pytest.raises(Refused) as caught:  # the budget (50) would pass
        await service.decider.commit(tenant, order("o-3", "25.01", cost_center="CC-1"))
    assert caught.value.rule == spend.BUDGET_RULE
    other_center = await service.decider.commit(tenant, order("o-4", "25.01", cost_center="CC-2"))
    assert spent(other_center) == {"company:month": "50.01"}
    usd = await service.decider.commit(
        tenant, order("o-5", "500", currency="USD", cost_center="CC-1")
    )
    assert usd.totals == ()  # no limit in USD


async def test_release_subtracts_once(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    await service.decider.commit(tenant, order("o-1", "70.00", cost_center="CC-2"))
    with pytest.raises(Refused):
        await service.decider.commit(tenant, order("o-2", "40.00"))
    released = await service.decider.release(tenant, "o-1")
    assert (released.subject, released.company, released.amount) == ("buyer-1", "shop", "70.00")
    assert (released.currency, released.cost_center) == ("EUR", "CC-2")
    assert await service.decider.release(tenant, "o-1") == released  # idempotent
    assert await month_total(service, tenant) == 0
    assert await month_total(service, tenant, "buyer-1") == 0
    assert spent(await service.decider.commit(tenant, order("o-2", "40.00"))) == {
        "company:month": "40.00"
    }
    with pytest.raises(Refused) as caught:
        await service.decider.commit(tenant, order("o-1", "70.00", cost_center="CC-2"))
    assert caught.value.rule == "order_released"
    with pytest.raises(NotFound):
        await service.decider.release(tenant, "never")
    assert await month_total(service, tenant) == 400_000


async def test_an_import_keeps_the_spend(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    await service.decider.commit(tenant, order("o-1", "90.00"))
    await service.admin.import_graph(None, shop(tenant, month="95.00"))
    with pytest.raises(Refused):
        await service.decider.commit(tenant, order("o-2", "5.01"))
    assert spent(await service.decider.commit(tenant, order("o-3", "5"))) == {
        "company:month": "95.00"
    }


async def test_unknown_subject_or_company(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    with pytest.raises(NotFound, match="unknown subject"):
        await service.decider.commit(tenant, order("o-1", "1", "nobody"))
    with pytest.raises(NotFound, match="unknown company"):
        await service.decider.commit(tenant, order("o-1", "1", company="nope"))
    assert await month_total(service, tenant) == 0


def flow(**fields: str) -> dict[str, str]:
    base = {
        "status": "APPROVED",
        "requester": "buyer-1",
        "company": "shop",
        "amount": "80.00",
        "currency": "EUR",
        "cart_id": "cart-1",
        "cart_hash": "",
        "cost_center": "",
        "used_by": "",
    }
    return {**base, **fields}


async def write_flow(
    service: GraphService, tenant: str, flow_id: str, body: dict[str, str]
) -> None:
    await service.client.hset(keys.flow(tenant, flow_id), mapping=body)  # type: ignore[arg-type]


async def used_by(service: GraphService, tenant: str, flow_id: str) -> bytes | None:
    value: bytes | None = await service.client.hget(keys.flow(tenant, flow_id), "used_by")
    return value


async def test_an_approved_flow_covers_one_commit(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    await service.decider.commit(tenant, order("o-0", "50.00"))
    await write_flow(service, tenant, "f-1", flow())
    with pytest.raises(Refused) as caught:  # over the limit without the approval
        await service.decider.commit(tenant, order("o-1", "80.00"))
    assert caught.value.rule == spend.PERIOD_RULE
    approved = await service.decider.commit(tenant, order("o-1", "80.00", approval_id="f-1"))
    assert approved.approved
    assert spent(approved) == {"company:month": "130.00"}
    assert await used_by(service, tenant, "f-1") == b"o-1"
    assert (await service.decider.commit(tenant, order("o-1", "80.00", approval_id="f-1"))).replayed
    with pytest.raises(Refused) as caught:  # single use
        await service.decider.commit(tenant, order("o-2", "1.00", approval_id="f-1"))
    assert caught.value.rule == "approval_not_usable"
    assert "used by order o-1" in caught.value.detail
    assert await month_total(service, tenant) == 1_300_000


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"status": "PENDING"}, "the approval flow is PENDING"),
        ({"status": "DECLINED"}, "the approval flow is DECLINED"),
        ({"requester": "buyer-2"}, "requested by another subject"),
        ({"company": "other"}, "for company other"),
        ({"currency": "USD"}, "in USD"),
        ({"amount": "79.99"}, "approved 79.99 only"),
        ({"cost_center": "CC-9"}, "for cost centre CC-9"),
        ({"used_by": "o-9"}, "used by order o-9"),
    ],
)
async def test_a_flow_that_does_not_cover_the_commit_is_refused(
    open_service: Opener, tenant: str, fields: dict[str, str], why: str
) -> None:
    service = await ready(open_service, tenant)
    await write_flow(service, tenant, "f-1", flow(**fields))
    with pytest.raises(Refused) as caught:
        await service.decider.commit(tenant, order("o-1", "80.00", approval_id="f-1"))
    assert caught.value.rule == "approval_not_usable"
    assert why in caught.value.detail
    assert await used_by(service, tenant, "f-1") == fields.get("used_by", "").encode()
    assert await month_total(service, tenant) == 0
    with pytest.raises(Refused, match="no such approval flow"):
        await service.decider.commit(tenant, order("o-2", "1", approval_id="f-none"))


async def test_a_flow_covers_up_to_its_amount_written_any_way(
    open_service: Opener, tenant: str
) -> None:
    service = await ready(open_service, tenant)
    await write_flow(service, tenant, "f-1", flow(amount="080.0", cost_center="CC-1"))
    done = await service.decider.commit(
        tenant, order("o-1", "80.0000", approval_id="f-1", cost_center="CC-1")
    )
    assert done.approved
    assert spent(done)["budget:cc1-2027"] == "80.00"  # past the budget, approved


async def test_evaluate_requires_the_admins_past_a_limit(open_service: Opener, tenant: str) -> None:
    service = await ready(open_service, tenant)
    eur = Money(Decimal("60.00"), "EUR")
    before = await service.decider.purchase(tenant, "buyer-1", "shop", eur)
    assert before.result.decision == "allow"
    await service.decider.commit(tenant, order("o-1", "45.00"))
    after = await service.decider.purchase(tenant, "buyer-1", "shop", eur)
    assert after.result.decision == "approval_required"
    assert after.result.rule == spend.PERIOD_RULE
    assert after.result.approver_groups == ("shop/admin",)
    assert after.result.approver_subjects == ("admin-1",)
    assert after.result.tiers == (Tier(spend.PERIOD_RULE, (("admin",),)),)
    small = Money(Decimal("6.00"), "EUR")
    budget = await service.decider.purchase(tenant, "buyer-1", "shop", small, cost_center="CC-1")
    assert budget.result.decision == "allow"
    await service.decider.commit(tenant, order("o-2", "45.00", "admin-1", cost_center="CC-1"))
    budget = await service.decider.purchase(tenant, "buyer-1", "shop", small, cost_center="CC-1")
    assert budget.result.rule == spend.BUDGET_RULE
    both = await service.decider.purchase(tenant, "buyer-1", "shop", eur, cost_center="CC-1")
    assert [t.rule for t in both.result.tiers] == [spend.PERIOD_RULE, spend.BUDGET_RULE]
    # A requester's purchase needed approval already: the limit adds its tier.
    requester = await service.decider.purchase(tenant, "req-1", "shop", eur)
    assert requester.result.rule == "requester_no_limit"
    assert [t.rule for t in requester.result.tiers] == ["requester_no_limit", spend.PERIOD_RULE]
    # An amount the ledger cannot hold exactly is never allowed under a limit.
    odd = await service.decider.purchase(
        tenant, "buyer-1", "shop", Money(Decimal("0.00001"), "EUR")
    )
    assert odd.result.decision == "approval_required"


async def test_concurrent_commits_never_pass_a_limit(real_redis_url: str, catalog: Catalog) -> None:
    """50 concurrent commits of 10.00 against a limit of 100.00: exactly 10 are recorded."""
    tenant = "ledger-race-" + datetime.now(UTC).strftime("%H%M%S%f")
    services = [await GraphService.open(catalog, real_redis_url) for _ in range(2)]
    try:
        for service in services:
            service.cache.clock = NOW.timestamp
        await services[0].admin.import_graph(None, shop(tenant))

        async def one(i: int) -> bool:
            try:
                await services[i % 2].decider.commit(tenant, order(f"o-{i}", "10.00"))
            except Refused as exc:
                assert exc.rule == spend.PERIOD_RULE
                return False
            return True

        results = await asyncio.gather(*(one(i) for i in range(50)))
        assert sum(results) == 10
        assert await month_total(services[0], tenant) == 1_000_000
        assert await month_total(services[0], tenant, "buyer-1") == 1_000_000
        # Retrying every order changes nothing.
        again = await asyncio.gather(*(one(i) for i in range(50)))
        assert again == results
        assert await month_total(services[0], tenant) == 1_000_000
    finally:
        for service in services:
            await service.close()
        forget_tenant(real_redis_url, tenant)


async def test_evaluate_fails_closed_without_totals(catalog: Catalog, redis_process: Any) -> None:
    """When the totals cannot be read, evaluate raises (503): it never allows, and no commit
    is recorded (a ledger on a port nobody listens on; then the whole Redis stopped)."""
    service = await GraphService.open(catalog, redis_process.url, socket_timeout=0.5)
    nowhere = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        service.cache.clock = NOW.timestamp
        await service.admin.import_graph(None, shop("down"))
        eur = Money(Decimal("1.00"), "EUR")
        budget = await service.decider.purchase("down", "buyer-1", "shop", eur, cost_center="CC-1")
        assert budget.result.decision == "allow"
        working = service.decider.ledger
        service.decider.ledger = Ledger(nowhere, 86_400)
        with pytest.raises(StoreUnavailable):
            await service.decider.commit("down", order("o-1", "1.00"))
        service.decider.ledger = working
        assert await month_total(service, "down") == 0
        with pytest.raises(NotFound):
            await service.decider.release("down", "o-1")
        redis_process.stop()
        with pytest.raises(StoreUnavailable):
            await service.decider.purchase("down", "buyer-1", "shop", eur)
        with pytest.raises(StoreUnavailable):
            await service.decider.purchase("down", "buyer-1", "shop", eur, cost_center="CC-1")
        with pytest.raises(StoreUnavailable):
            await service.decider.commit("down", order("o-2", "1.00"))
    finally:
        await service.close()
        await nowhere.aclose()
