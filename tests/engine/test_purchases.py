"""Purchases and approvals (SPEC section 1, seeds 001 and 002), through `evaluate_purchase`:
what the table cases (`tests/data/purchases/*.yaml`, run by `test_purchase_cases.py`) do not
show: the ancestors a caller passes, and the tier the built-in answer carries.

Roles and members are taken from a parsed graph as the store takes them from Redis: the
subject's exclusive predefined roles in the company, and the members of its admin, buyer and
approval groups.
"""

from __future__ import annotations

from typing import Any

import pytest

from groupgate.engine import approvers, evaluate_purchase
from groupgate.model import Eligible, Graph, PurchaseDecision, Tier

from .helpers import graph, money, purchase_members, purchase_roles

DOC: dict[str, Any] = {
    "companies": [
        {"id": "c1", "name": "C1", "account_limit": {"amount": "5000.00", "currency": "EUR"}},
        {
            "id": "c1-sub",
            "name": "C1 Sub",
            "parent": "c1",
            "account_limit": {"amount": "100.00", "currency": "EUR"},
        },
        {
            "id": "c2",
            "name": "C2",
            "account_limit": {"amount": "1000.00", "currency": "EUR"},
            "approval_group": "c2-approvers",
        },
        {"id": "c3", "name": "C3 (no limit)"},
        {
            "id": "c4",
            "name": "C4",
            "account_limit": {"amount": "50", "currency": "USD"},
            "approval_group": "c4-approvers",
        },
    ],
    "groups": [
        {"id": "c2-approvers", "name": "Approvers", "kind": "customer", "company": "c2"},
        {"id": "c4-approvers", "name": "Approvers", "kind": "customer", "company": "c4"},
    ],
    "subjects": [
        {"id": "a1", "kind": "customer", "companies": {"c1": ["admin"], "c3": ["admin"]}},
        {"id": "a2", "kind": "customer", "companies": {"c1": ["admin"]}},
        {
            "id": "b1",
            "kind": "customer",
            "companies": {"c1": ["buyer"], "c2": ["buyer"], "c3": ["buyer"]},
        },
        {"id": "b2", "kind": "customer", "companies": {"c1": ["buyer"], "c4": ["buyer"]}},
        {
            "id": "r1",
            "kind": "customer",
            "companies": {
                "c1": ["requester"],
                "c2": ["requester"],
                "c3": ["requester"],
                "c4": ["requester"],
            },
            "groups": ["c4-approvers"],
        },
        {"id": "k1", "kind": "customer", "companies": {"c1": ["contact"]}},
        {"id": "a-sole", "kind": "customer", "companies": {"c2": ["admin"]}},
        {
            "id": "x1",
            "kind": "customer",
            "companies": {"c2": ["contact"]},
            "groups": ["c2-approvers"],
        },
        {
            "id": "x2",
            "kind": "customer",
            "companies": {"c2": ["buyer"]},
            "groups": ["c2-approvers"],
        },
        {"id": "emp", "kind": "employee"},
    ],
}


@pytest.fixture(scope="module")
def g() -> Graph:
    return graph(DOC)


def buy(
    g: Graph, subject: str, company: str, amount: str, currency: str = "EUR"
) -> PurchaseDecision:
    return evaluate_purchase(
        subject,
        g.companies[company],
        purchase_roles(g, subject, company),
        purchase_members(g, company),
        money(amount, currency),
    )


# --------------------------------------------------------------------------- SPEC section 5


def test_a_subsidiary_without_a_limit_uses_its_nearest_ancestors() -> None:
    doc = {
        "companies": [
            {"id": "top", "name": "Top", "account_limit": {"amount": "1000", "currency": "EUR"}},
            {"id": "mid", "name": "Mid", "parent": "top"},
            {"id": "low", "name": "Low", "parent": "mid"},
            {
                "id": "own",
                "name": "Own",
                "parent": "top",
                "account_limit": {"amount": "10", "currency": "EUR"},
            },
        ],
        "subjects": [
            {"id": "a", "kind": "customer", "companies": {"low": ["admin"]}},
            {"id": "b", "kind": "customer", "companies": {"low": ["buyer"], "own": ["buyer"]}},
        ],
    }
    g = graph(doc)

    def buy_in(subject: str, company: str, amount: str, currency: str = "EUR") -> PurchaseDecision:
        return evaluate_purchase(
            subject,
            g.companies[company],
            purchase_roles(g, subject, company),
            purchase_members(g, company),
            money(amount, currency),
            ancestors=approvers.company_ancestors(company, g.companies),
        )

    within = buy_in("b", "low", "1000")
    assert within.decision == "allow" and within.rule == "buyer_within_limit"
    assert within.limit == money("1000")
    over = buy_in("b", "low", "1000.01")
    assert over.rule == "buyer_over_limit" and over.approver_subjects == ("a",)
    # Its own limit wins over the ancestor's; the inherited limit's currency still holds.
    assert buy_in("b", "own", "11").rule == "buyer_over_limit"
    assert buy_in("b", "low", "1", currency="USD").rule == "currency_mismatch"
    # Without ancestors given, a company without a limit has none.
    assert buy(g, "b", "low", "5000").rule == "buyer_no_limit"


def test_the_built_in_answer_carries_its_tier_and_who_fills_it(g: Graph) -> None:
    result = buy(g, "r1", "c1", "10.00")
    assert result.tiers == (Tier("requester_within_limit", (("buyer", "admin"),)),)
    assert result.eligible == (Eligible(result.approver_groups, result.approver_subjects),)
    assert result.rules == () and result.checked == ()
