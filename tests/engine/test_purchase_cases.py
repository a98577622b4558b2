"""Run the purchase cases of `tests/data/purchases/*.yaml` against the engine.

The graph is parsed as an import parses it, and the purchase is decided as the store decides
it: the subject's roles and groups in the company, every company ancestor, and the approving
members (no `ro` link) of every group.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from groupgate.engine import approvers, evaluate_purchase, parse_graph
from groupgate.model import Money
from tests.purchase_cases import answer_json, document, load_cases, mismatches, policy_rules

from .helpers import catalog, purchase_roles


@pytest.mark.parametrize("case", load_cases())
def test_purchase_case(case: dict[str, Any]) -> None:
    policy = replace(catalog(), approval_rules=policy_rules(case))
    g = parse_graph(document(case, "t"), policy)
    members = {gid: approvers.approving_members(g, gid) for gid in g.groups}
    failures: list[str] = []
    for item in case["purchases"]:
        subject, company = item["subject"], item["company"]
        known = subject in g.subjects
        result = evaluate_purchase(
            subject,
            g.companies[company],
            purchase_roles(g, subject, company) if known else frozenset(),
            members,
            Money(Decimal(item["amount"]), item.get("currency", "EUR")),
            ancestors=approvers.company_ancestors(company, g.companies),
            policy_rules=policy.approval_rules,
            cost_center=item.get("cost_center"),
            groups=frozenset(g.subjects[subject].group_ids()) if known else frozenset(),
        )
        failures += mismatches(item, answer_json(result))
    assert not failures, "\n".join(failures)
