"""Approval rules in the store (SPEC section 5), on fakeredis, a real Redis and the Cluster:
the purchase cases decided from Redis, and per-company rules written through the admin
writes: inherited down the tree, replaced by a subsidiary's own, validated whole (an error
names the rule and nothing is written), never left naming a deleted group."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from groupgate.errors import GraphError
from groupgate.model import Money
from groupgate.store.service import GraphService
from tests.purchase_cases import answer_json, document, load_cases, mismatches
from tests.store.conftest import Opener

BIG = {"id": "big", "when": {"amount_over": "100", "currency": "EUR"}, "tiers": [[["finance"]]]}


@pytest.mark.parametrize("case", load_cases(with_policy_rules=False))
async def test_purchase_cases_from_the_store(
    open_service: Opener, tenant: str, case: dict[str, Any]
) -> None:
    service = await open_service()
    await service.admin.import_graph(None, document(case, tenant))
    failures: list[str] = []
    for item in case["purchases"]:
        answer = await service.decider.purchase(
            tenant,
            item["subject"],
            item["company"],
            Money(Decimal(item["amount"]), item.get("currency", "EUR")),
            cost_center=item.get("cost_center"),
        )
        failures += mismatches(item, answer_json(answer.result))
    assert not failures, "\n".join(failures)


def tree(tenant: str) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "companies": [
            {"id": "top", "name": "Top"},
            {"id": "sub", "name": "Sub", "parent": "top"},
        ],
        "groups": [{"id": "finance", "name": "Finance", "kind": "customer", "company": "top"}],
        "subjects": [
            {"id": "b", "kind": "customer", "companies": {"top": ["buyer"], "sub": ["buyer"]}},
            {
                "id": "f",
                "kind": "customer",
                "companies": {"top": ["contact"]},
                "groups": ["finance"],
            },
        ],
    }


async def buy(service: GraphService, tenant: str, company: str, amount: str) -> tuple[str, str]:
    answer = await service.decider.purchase(tenant, "b", company, Money(Decimal(amount), "EUR"))
    return answer.result.decision, answer.result.rule


async def test_company_rules_written_through_the_admin_api_reach_subsidiaries(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await service.admin.import_graph(None, tree(tenant))
    assert await buy(service, tenant, "sub", "500") == ("allow", "buyer_no_limit")
    await service.admin.put_company(tenant, {"id": "top", "name": "Top", "approval_rules": [BIG]})
    stored = await service.admin.get_entity(tenant, "company", "top")
    assert stored["approval_rules"] == [BIG]
    assert await buy(service, tenant, "top", "500") == ("approval_required", "rule:big")
    # The subsidiary inherits the rule; the tier names its parent's group, resolved as it is.
    answer = await service.decider.purchase(tenant, "b", "sub", Money(Decimal("500"), "EUR"))
    assert answer.result.rules == ("big",)
    assert [(e.groups, e.subjects) for e in answer.result.eligible] == [(("finance",), ("f",))]
    # A subsidiary that sets its own rules (none) is no longer under its parent's.
    await service.admin.put_company(
        tenant, {"id": "sub", "name": "Sub", "parent": "top", "approval_rules": []}
    )
    assert await buy(service, tenant, "sub", "500") == ("allow", "buyer_no_limit")
    assert await buy(service, tenant, "top", "500") == ("approval_required", "rule:big")
    # The subsidiary drops its own (the field absent): it inherits again.
    await service.admin.put_company(tenant, {"id": "sub", "name": "Sub", "parent": "top"})
    assert await buy(service, tenant, "sub", "500") == ("approval_required", "rule:big")
    # The parent drops its rules: nobody sets any, nothing matches anywhere.
    await service.admin.put_company(tenant, {"id": "top", "name": "Top"})
    assert "approval_rules" not in await service.admin.get_entity(tenant, "company", "top")
    assert await buy(service, tenant, "sub", "500") == ("allow", "buyer_no_limit")
    assert await buy(service, tenant, "top", "500") == ("allow", "buyer_no_limit")


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [{**BIG, "tiers": [[["nobody"]]]}],
            "company.approval_rules[0] (big).tiers[0][0][0]: unknown group 'nobody'",
        ),
        ([{**BIG, "tiers": []}], "company.approval_rules[0] (big).tiers: a rule has 1 to 5"),
        ([BIG, BIG], "company.approval_rules[1] (big).id: duplicate approval rule id 'big'"),
        (
            [{**BIG, "requesters": ["finance"]}],
            "company.approval_rules[0] (big).requesters[0]: 'finance' is not a customer group "
            "of 'sub'",
        ),
    ],
)
async def test_a_bad_rule_is_refused_and_nothing_is_written(
    open_service: Opener, tenant: str, rules: list[Any], message: str
) -> None:
    service = await open_service()
    rev = await service.admin.import_graph(None, tree(tenant))
    before = await service.admin.get_entity(tenant, "company", "sub")
    document = {"id": "sub", "name": "Sub", "parent": "top", "approval_rules": rules}
    with pytest.raises(GraphError) as raised:
        await service.admin.put_company(tenant, document)
    assert raised.value.detail.startswith(message), raised.value.detail
    assert await service.decider.revision(tenant) == rev
    assert await service.admin.get_entity(tenant, "company", "sub") == before


async def test_a_group_named_by_rules_cannot_be_deleted_or_moved(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    doc = tree(tenant)
    doc["companies"][0]["approval_rules"] = [BIG]
    doc["subjects"] = doc["subjects"][:1]  # finance without members: it could otherwise move
    rev = await service.admin.import_graph(None, doc)
    with pytest.raises(GraphError, match="named by the approval rules of 'top'"):
        await service.admin.delete_group(tenant, "finance")
    moved = {"id": "finance", "name": "Finance", "kind": "customer", "company": "sub"}
    with pytest.raises(GraphError, match="named by the approval rules of 'top'"):
        await service.admin.put_group(tenant, moved)
    assert await service.decider.revision(tenant) == rev
    # Once the rules name it no more, it goes.
    await service.admin.put_company(tenant, {"id": "top", "name": "Top", "approval_rules": []})
    await service.admin.delete_group(tenant, "finance")


async def test_a_tier_lists_only_approvers_whose_link_holds_now(
    open_service: Opener, tenant: str
) -> None:
    doc = tree(tenant)
    doc["companies"][0]["approval_rules"] = [BIG]
    doc["subjects"] += [
        {
            "id": f"f-{name}",
            "kind": "customer",
            "companies": {"top": ["contact"]},
            "groups": [{"group": "finance", **window}],
        }
        for name, window in (
            ("ended", {"valid_until": "2020-01-01T00:00:00Z"}),
            ("later", {"valid_from": "2999-01-01T00:00:00Z"}),
            ("ro", {"permission": "ro"}),
        )
    ]
    service = await open_service()
    await service.admin.import_graph(None, doc)
    answer = await service.decider.purchase(tenant, "b", "sub", Money(Decimal("500"), "EUR"))
    assert answer.result.rule == "rule:big"
    assert [(e.groups, e.subjects) for e in answer.result.eligible] == [(("finance",), ("f",))]
