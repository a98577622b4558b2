"""Approval rules as policy data (SPEC section 5): validation at load, in policy files and in
graph documents, with errors that name the rule; and what `explain` is made of."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from groupgate.engine import evaluate_purchase
from groupgate.errors import GraphError, PolicyError
from groupgate.model import ApprovalRule, Money
from groupgate.policy import load_policy

from .helpers import POLICIES, catalog, graph, purchase_members, purchase_roles

RULE: dict[str, Any] = {
    "id": "big-orders",
    "when": {"amount_over": "10000.00", "currency": "EUR", "cost_center": ["CC-1", "CC-2"]},
    "requesters": ["buyer", "Purchaser", "field-staff"],
    "tiers": [[["admin"]], [["field-staff"], ["admin", "buyer"]]],
}


def company_doc(*rules: Any) -> dict[str, Any]:
    return {
        "companies": [
            {"id": "c0", "name": "Other"},
            {"id": "c1", "name": "C1"},
            {"id": "c", "name": "C", "approval_rules": list(rules)},
        ],
        "groups": [
            {"id": "field-staff", "name": "Field staff", "kind": "customer", "company": "c"},
            {"id": "other-staff", "name": "Other", "kind": "customer", "company": "c0"},
            {"id": "staff", "name": "Employees", "kind": "user"},
        ],
    }


def test_a_valid_rule_is_parsed_with_aliases_resolved_and_duplicates_dropped() -> None:
    g = graph(company_doc(RULE))
    (rule,) = g.companies["c"].approval_rules or ()
    assert rule == ApprovalRule(
        "big-orders",
        ((("admin",),), (("field-staff",), ("admin", "buyer"))),
        Decimal("10000.00"),
        "EUR",
        ("CC-1", "CC-2"),
        ("buyer", "field-staff"),
    )
    assert g.companies["c0"].approval_rules is None  # sets none: inherits
    assert graph(company_doc()).companies["c"].approval_rules == ()  # sets "none"


WHERE = "companies[2].approval_rules[0] (big-orders)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tiers": [[["nobody"]]]}, f"{WHERE}.tiers[0][0][0]: unknown group 'nobody'"),
        (
            {"tiers": [[["admin"]], [["other-staff"]]]},
            f"{WHERE}.tiers[1][0][0]: 'other-staff' is not a customer group of 'c'",
        ),
        ({"tiers": [[["staff"]]]}, f"{WHERE}.tiers[0][0][0]: 'staff' is not a customer group"),
        ({"requesters": ["nobody"]}, f"{WHERE}.requesters[0]: unknown group 'nobody'"),
        ({"requesters": []}, f"{WHERE}.requesters: expected at least one name"),
        ({"tiers": []}, f"{WHERE}.tiers: a rule has 1 to 5 tiers, got 0"),
        ({"tiers": [[["admin"]]] * 6}, f"{WHERE}.tiers: a rule has 1 to 5 tiers, got 6"),
        ({"tiers": [[]]}, f"{WHERE}.tiers[0]: a tier needs at least one list"),
        ({"tiers": [[[]]]}, f"{WHERE}.tiers[0][0]: expected at least one name"),
        ({"tiers": [["admin"]]}, f"{WHERE}.tiers[0][0]: expected a list, got str"),
        ({"tiers": None}, f"{WHERE}.tiers: expected a list, got null"),
        ({"tiers": [[["c/admin"]]]}, f"{WHERE}.tiers[0][0][0]: name a predefined group by its"),
        ({"tiers": [[[7]]]}, f"{WHERE}.tiers[0][0][0]: expected a non-empty string, got int"),
        (
            {"when": {"amount_over": "1e5", "currency": "EUR"}},
            f"{WHERE}.when.amount_over: not a decimal number",
        ),
        (
            {"when": {"amount_over": "\u0661\u0660\u0660", "currency": "EUR"}},
            f"{WHERE}.when.amount_over: not a decimal number",
        ),
        (
            {"when": {"amount_over": 100, "currency": "EUR"}},
            f"{WHERE}.when.amount_over: expected a decimal string",
        ),
        ({"when": {"amount_over": "100"}}, f"{WHERE}.when.amount_over: an amount needs its"),
        ({"when": {"currency": "eur"}}, f"{WHERE}.when.currency: expected an ISO 4217 code"),
        ({"when": {"cost_center": []}}, f"{WHERE}.when.cost_center: expected at least one"),
        ({"when": {"cost_center": ["CC 1"]}}, f"{WHERE}.when.cost_center[0]: invalid id"),
        ({"when": {"amount_under": "1"}}, f"{WHERE}.when.amount_under: unknown field"),
        ({"approvers": []}, f"{WHERE}.approvers: unknown field"),
        ({"id": "big orders"}, "companies[2].approval_rules[0].id: invalid id 'big orders'"),
    ],
)
def test_a_malformed_rule_is_refused_naming_the_rule(change: dict[str, Any], message: str) -> None:
    with pytest.raises(GraphError) as raised:
        graph(company_doc({**RULE, **change}))
    assert raised.value.detail.startswith(message), raised.value.detail


def test_rule_ids_are_unique_per_company_and_apart_from_the_tenant_wide_ones() -> None:
    with pytest.raises(GraphError, match=r"approval_rules\[1\] \(big-orders\).id: duplicate"):
        graph(company_doc(RULE, RULE))
    # Two companies may each have a rule of one id (a purchase meets one company's rules).
    doc = company_doc(RULE)
    doc["companies"][1]["approval_rules"] = [{"id": "big-orders", "tiers": [[["admin"]]]}]
    graph(doc)
    from dataclasses import replace

    policy = replace(catalog(), approval_rules=(ApprovalRule("big-orders", ((("admin",),),)),))
    with pytest.raises(GraphError, match="is the id of a tenant-wide rule"):
        graph(company_doc(RULE), policy)


def policy_with(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    (root / "approval_rules.yaml").write_text(text, encoding="utf-8")
    return root


def test_tenant_wide_rules_load_from_the_policy_directory(tmp_path: Path) -> None:
    assert load_policy(POLICIES).approval_rules == ()  # the repository's: none, an example
    root = policy_with(
        tmp_path,
        "approval_rules:\n"
        "  - {id: big, when: {amount_over: '5', currency: EUR}, tiers: [[[admin, finance]]]}\n",
    )
    (rule,) = load_policy(root).approval_rules
    assert rule.id == "big" and rule.tiers == ((("admin", "finance"),),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "approval_rules:\n  - {id: big, tiers: [[[admin]]]}\n  - {id: big, tiers: [[[x]]]}\n",
            "approval_rules.yaml: approval_rules[1] (big).id: duplicate approval rule id 'big'",
        ),
        (
            "approval_rules:\n  - {id: big, tiers: [[[admin]]], when: {currency: EURO}}\n",
            "approval_rules.yaml: approval_rules[0] (big).when.currency: expected an ISO 4217",
        ),
        ("approval_rules: {}\n", "approval_rules.yaml: approval_rules: expected a list"),
        ("rules: []\n", "approval_rules.yaml: unknown key 'rules'"),
    ],
)
def test_a_malformed_policy_file_is_refused_naming_the_file_and_the_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(PolicyError) as raised:
        load_policy(policy_with(tmp_path, text))
    assert raised.value.detail.startswith(message), raised.value.detail


def test_explain_says_which_rules_matched_which_did_not_and_why() -> None:
    doc = company_doc(
        RULE,
        {"id": "eur-only", "when": {"currency": "USD"}, "tiers": [[["admin"]]]},
        {"id": "anyone", "tiers": [[["field-staff"]]]},
    )
    doc["subjects"] = [
        {"id": "b", "kind": "customer", "companies": {"c": ["buyer"]}},
        {"id": "k", "kind": "customer", "companies": {"c": ["contact"]}},
    ]
    g = graph(doc)

    def buy(subject: str, amount: str, cost_center: str | None) -> Any:
        return evaluate_purchase(
            subject,
            g.companies["c"],
            purchase_roles(g, subject, "c"),
            purchase_members(g, "c"),
            Money(Decimal(amount), "EUR"),
            cost_center=cost_center,
            groups=frozenset(g.subjects[subject].group_ids()),
        )

    result = buy("b", "20000", "CC-3")
    assert result.rules == ("anyone",)
    assert [(c.rule, c.source, c.matched) for c in result.checked] == [
        ("big-orders", "c", False),
        ("eur-only", "c", False),
        ("anyone", "c", True),
    ]
    assert result.checked[0].why == "cost centre CC-3 is not one of CC-1, CC-2"
    assert result.checked[1].why == "the purchase is in EUR, the rule is for USD"
    assert result.checked[2].why == "the rule has no conditions"
    assert result.checked[2].requires == ((("field-staff",),),)
    matched = buy("b", "20000", "CC-1").checked[0]
    assert matched.matched and "amount 20000 over 10000.00 EUR" in matched.why
    assert buy("b", "100", "CC-1").checked[0].why == "the amount 100 is not over 10000.00 EUR"
    denied = buy("k", "20000", "CC-1")
    assert denied.decision == "deny" and denied.rules == ()
    assert all(not c.matched and "denied" in c.why for c in denied.checked)
