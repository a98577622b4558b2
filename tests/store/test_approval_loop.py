"""The whole approval loop on fakeredis, Redis and the Cluster (SPEC section 5): a purchase
past the company's monthly limit needs approval; the flow is requested, approved through
its tiers, closes the loop in `purchases/evaluate`, and is used up by exactly one commit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from groupgate.engine import spend
from groupgate.errors import Conflict
from groupgate.model import Money
from groupgate.store.contract import Order
from groupgate.store.flows import Request
from groupgate.store.service import GraphService
from tests.store.conftest import Opener

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def graph(tenant: str) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "companies": [
            {
                "id": "co",
                "name": "Co",
                "account_limit": {"amount": "5000.00", "currency": "EUR"},
                "spending_limits": [{"period": "month", "amount": "1000.00", "currency": "EUR"}],
            }
        ],
        "subjects": [
            {"id": "buy", "kind": "customer", "companies": {"co": ["buyer"]}},
            {"id": "adm", "kind": "customer", "companies": {"co": ["admin"]}},
        ],
    }


def order(order_id: str, amount: str, approval_id: str | None = None) -> Order:
    money = Money(Decimal(amount), "EUR")
    units = spend.to_units(money.amount)
    return Order(order_id, "buy", "co", money, amount, units, None, approval_id)


async def test_request_approve_evaluate_commit_once(open_service: Opener, tenant: str) -> None:
    service: GraphService = await open_service(clock=lambda: START)
    service.cache.clock = lambda: START
    await service.admin.import_graph(None, graph(tenant))
    money = Money(Decimal("1500.00"), "EUR")
    asked = await service.decider.purchase(tenant, "buy", "co", money)
    # Within the account limit, past the month's spending limit: the Admins approve.
    assert asked.result.decision == "approval_required"
    assert [t.rule for t in asked.result.tiers] == ["period_limit_exceeded"]
    with pytest.raises(Conflict):
        await service.decider.commit(tenant, order("o-1", "1500.00"))  # refused without approval

    async def evaluate(min_revision: int | None) -> Any:
        return await service.decider.purchase(tenant, "buy", "co", money, min_revision=min_revision)

    request = Request("buy", "co", "1500.00", money, "cart-1", "h1")
    _, view, created = await service.flows.request(tenant, request, "key-1", evaluate)
    assert created and view is not None
    done = await service.flows.approve(tenant, view.flow.id, "adm", "ok")
    assert done.flow.status == "APPROVED"
    usable = await service.flows.usable(tenant, view.flow.id, "buy", "co", money, "h1")
    assert usable is None
    committed = await service.decider.commit(tenant, order("o-1", "1500.00", view.flow.id))
    assert committed.approved
    # Used up: neither evaluate nor another order can use it again.
    assert await service.flows.usable(tenant, view.flow.id, "buy", "co", money, "h1")
    with pytest.raises(Conflict):
        await service.decider.commit(tenant, order("o-2", "1500.00", view.flow.id))
    replay = await service.decider.commit(tenant, order("o-1", "1500.00", view.flow.id))
    assert replay.replayed and replay.approved
