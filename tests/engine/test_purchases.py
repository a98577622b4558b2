"""Purchases and approvals (SPEC section 1, seeds 001 and 002), through `evaluate_purchase`.

Roles and members are taken from a parsed graph as the store takes them from Redis: the
subject's exclusive predefined roles in the company, and the members of its admin, buyer and
approval groups.
"""

from __future__ import annotations

from typing import Any

import pytest

from groupgate.engine import approvers, evaluate_purchase
from groupgate.model import Graph, PurchaseDecision

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


# --------------------------------------------------------------------------- the five cases


@pytest.mark.parametrize(
    ("subject", "company"), [("k1", "c1"), ("emp", "c1"), ("a1", "c1-sub"), ("b2", "c2")]
)
def test_a_subject_not_buyer_requester_or_admin_of_the_company_is_denied(
    g: Graph, subject: str, company: str
) -> None:
    result = buy(g, subject, company, "1.00")
    assert result.decision == "deny"
    assert result.rule == "not_a_purchaser"
    assert result.approver_subjects == () and result.error is None


@pytest.mark.parametrize("subject", ["a1", "b1"])
@pytest.mark.parametrize("amount", ["0.01", "4999.99", "5000.00", "5000"])
def test_admin_or_buyer_within_the_limit_is_allowed_without_approval(
    g: Graph, subject: str, amount: str
) -> None:
    result = buy(g, subject, "c1", amount)
    assert result.decision == "allow"
    assert result.rule in {"admin_within_limit", "buyer_within_limit"}
    assert result.approver_groups == () and result.approver_subjects == ()
    assert result.limit == money("5000.00")


def test_buyer_above_the_limit_needs_an_admins_approval(g: Graph) -> None:
    result = buy(g, "b1", "c1", "5000.01")
    assert result.decision == "approval_required"
    assert result.rule == "buyer_over_limit"
    assert result.approver_groups == ("c1/admin",)
    assert result.approver_subjects == ("a1", "a2")


def test_requester_within_the_limit_needs_a_buyers_or_admins_approval(g: Graph) -> None:
    result = buy(g, "r1", "c1", "10.00")
    assert result.decision == "approval_required"
    assert result.rule == "requester_within_limit"
    assert result.approver_groups == ("c1/buyer", "c1/admin")
    assert result.approver_subjects == ("a1", "a2", "b1", "b2")


def test_requester_above_the_limit_needs_an_admins_approval(g: Graph) -> None:
    result = buy(g, "r1", "c1", "9000.00")
    assert result.decision == "approval_required"
    assert result.rule == "requester_over_limit"
    assert result.approver_groups == ("c1/admin",)
    assert result.approver_subjects == ("a1", "a2")


# --------------------------------------------------------------------------- documented choices


def test_admin_above_the_limit_needs_another_admin_never_themselves(g: Graph) -> None:
    result = buy(g, "a1", "c1", "5000.01")
    assert result.decision == "approval_required"
    assert result.rule == "admin_over_limit"
    assert result.approver_groups == ("c1/admin",)
    assert result.approver_subjects == ("a2",)


def test_sole_admin_above_the_limit_gets_approval_required_with_no_customer_approver() -> None:
    doc = {
        "companies": [
            {"id": "c", "name": "C", "account_limit": {"amount": "1", "currency": "EUR"}}
        ],
        "subjects": [{"id": "a", "kind": "customer", "companies": {"c": ["admin"]}}],
    }
    result = buy(graph(doc), "a", "c", "2")
    assert result.decision == "approval_required"
    assert result.approver_subjects == ()


@pytest.mark.parametrize(("subject", "rule"), [("a1", "admin_no_limit"), ("b1", "buyer_no_limit")])
def test_without_a_limit_admins_and_buyers_may_buy_any_amount(
    g: Graph, subject: str, rule: str
) -> None:
    result = buy(g, subject, "c3", "99999999.99")
    assert result.decision == "allow" and result.rule == rule and result.limit is None


def test_without_a_limit_a_requester_still_needs_approval(g: Graph) -> None:
    result = buy(g, "r1", "c3", "1.00")
    assert result.decision == "approval_required"
    assert result.rule == "requester_no_limit"
    assert result.approver_subjects == ("a1", "b1")


@pytest.mark.parametrize(
    ("subject", "company"), [("a1", "c1"), ("b1", "c1"), ("r1", "c1"), ("b2", "c4")]
)
def test_a_currency_other_than_the_limits_is_an_error_never_an_allow(
    g: Graph, subject: str, company: str
) -> None:
    result = buy(g, subject, company, "1.00", currency="CHF")
    assert result.decision == "deny"
    assert result.rule == "currency_mismatch"
    assert result.error is not None and "CHF" in result.error
    assert result.approver_subjects == ()


# --------------------------------------------------------------------------- approval groups


def test_approval_group_members_replace_the_standard_approvers(g: Graph) -> None:
    over = buy(g, "b1", "c2", "1000.01")
    assert over.decision == "approval_required"
    assert over.rule == "buyer_over_limit:approval_group"
    assert over.approver_groups == ("c2-approvers",)
    assert over.approver_subjects == ("x1", "x2")
    within = buy(g, "r1", "c2", "10")
    assert within.rule == "requester_within_limit:approval_group"
    assert within.approver_subjects == ("x1", "x2")
    # Without approval needed the approval group changes nothing.
    assert buy(g, "b1", "c2", "10").decision == "allow"


def test_a_requester_in_the_approval_group_never_approves_their_own_purchase(g: Graph) -> None:
    result = buy(g, "x2", "c2", "5000")
    assert result.decision == "approval_required"
    assert result.approver_subjects == ("x1",)
    assert "x2" not in result.approver_subjects


def test_an_approval_group_with_only_the_requester_leaves_no_customer_approver(
    g: Graph,
) -> None:
    # SPEC section 5: r1 is the only member of c4-approvers, so c4-approvers still replaces
    # the Buyers and Admins (who may not approve c4's purchases), and r1 never approves their
    # own purchase: no customer approver is left, the merchant decides.
    result = buy(g, "r1", "c4", "10", currency="USD")
    assert result.decision == "approval_required"
    assert result.rule == "requester_within_limit:approval_group"
    assert result.approver_groups == ("c4-approvers",)
    assert result.approver_subjects == ()


def test_an_empty_approval_group_falls_back_to_the_standard_approvers() -> None:
    doc = {
        "companies": [
            {
                "id": "c",
                "name": "C",
                "account_limit": {"amount": "1", "currency": "EUR"},
                "approval_group": "c-approvers",
            }
        ],
        "groups": [{"id": "c-approvers", "name": "A", "kind": "customer", "company": "c"}],
        "subjects": [
            {"id": "a", "kind": "customer", "companies": {"c": ["admin"]}},
            {"id": "b", "kind": "customer", "companies": {"c": ["buyer"]}},
        ],
    }
    result = buy(graph(doc), "b", "c", "2")
    assert result.rule == "buyer_over_limit"
    assert result.approver_groups == ("c/admin",) and result.approver_subjects == ("a",)


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


def test_a_read_only_linked_admin_is_no_approver() -> None:
    doc = {
        "companies": [
            {"id": "c", "name": "C", "account_limit": {"amount": "1", "currency": "EUR"}}
        ],
        "subjects": [
            {
                "id": "a-ro",
                "kind": "customer",
                "groups": [{"group": "c/admin", "permission": "ro"}],
            },
            {"id": "a", "kind": "customer", "companies": {"c": ["admin"]}},
            {"id": "b", "kind": "customer", "companies": {"c": ["buyer"]}},
        ],
    }
    result = buy(graph(doc), "b", "c", "2")
    assert result.approver_groups == ("c/admin",)
    assert result.approver_subjects == ("a",)
