"""The `purchases` section: does this purchase need approval, and who may approve it?

    purchases:
      - name: a buyer over the limit needs an admin
        subject: cust-buyer
        company: c-parent
        amount: "6200.00"          # a decimal string, never a float
        currency: EUR
        expect:
          decision: approval_required   # allow, approval_required or deny
          rule: buyer_over_limit        # optional, exact
          approvers: [cust-admin]       # optional, the approving subjects (any order)
          approver_groups: [c-parent/admin]   # optional, exact order

Each case is answered as `POST /v1/purchases/evaluate` answers it (the same store call).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from groupgate.engine.graph import AMOUNT_PATTERN, CURRENCY_PATTERN
from groupgate.model import Catalog, Graph, Money, PurchaseDecision
from groupgate.policytests import at as read
from groupgate.policytests.at import At
from groupgate.policytests.sections import Context, Outcome

PURCHASE_KEYS = frozenset({"subject", "company", "amount", "currency", "expect"})
EXPECT_KEYS = frozenset({"decision", "rule", "approvers", "approver_groups"})
DECISIONS = ("allow", "approval_required", "deny")


@dataclass(frozen=True, slots=True)
class Expected:
    decision: str
    rule: str | None
    approvers: frozenset[str] | None
    approver_groups: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class PurchaseSpec:
    subject: str
    company: str
    amount: Money
    expect: Expected


class Purchases:
    """The `purchases` section type."""

    name = "purchases"

    def parse(self, item: dict[str, Any], at: At, graph: Graph, catalog: Catalog) -> PurchaseSpec:
        read.only(item, PURCHASE_KEYS, at, required=PURCHASE_KEYS)
        subject, company, _, money = purchase_fields(item, at, graph)
        expect = _expected(item["expect"], at.key("expect"))
        return PurchaseSpec(subject, company, money, expect)

    async def run(self, spec: PurchaseSpec, context: Context) -> Outcome:
        answer = await context.service.decider.purchase(
            context.tenant, spec.subject, spec.company, spec.amount
        )
        result, expect = answer.result, spec.expect
        wrong = []
        if result.decision != expect.decision:
            wrong.append(f"decision {expect.decision}, got {result.decision}")
        if expect.rule is not None and result.rule != expect.rule:
            wrong.append(f"rule {expect.rule}, got {result.rule}")
        if expect.approvers is not None and frozenset(result.approver_subjects) != expect.approvers:
            wrong.append(
                f"approvers {sorted(expect.approvers)}, got {sorted(result.approver_subjects)}"
            )
        if expect.approver_groups is not None and result.approver_groups != expect.approver_groups:
            wrong.append(
                f"approver_groups {list(expect.approver_groups)}, "
                f"got {list(result.approver_groups)}"
            )
        summary = f"{result.decision} ({result.rule})"
        if wrong:
            return Outcome(False, "expected " + "; ".join(wrong), ("answer:", *_answer(result)))
        return Outcome(True, summary)


def purchase_fields(item: dict[str, Any], at: At, graph: Graph) -> tuple[str, str, str, Money]:
    """A case's subject and company (both in the suite's graph), its amount as written (a
    quoted decimal string) and as money: what every purchase-shaped case names."""
    subject = read.text(item["subject"], at.key("subject"))
    if subject not in graph.subjects:
        raise at.key("subject").fail(f"the suite's graph has no subject {subject!r}")
    company = read.text(item["company"], at.key("company"))
    if company not in graph.companies:
        raise at.key("company").fail(f"the suite's graph has no company {company!r}")
    amount = item["amount"]
    if not isinstance(amount, str) or not AMOUNT_PATTERN.match(amount):
        raise at.key("amount").fail('expected a decimal string such as "12.50" (quoted)')
    currency = read.text(item["currency"], at.key("currency"))
    if not CURRENCY_PATTERN.match(currency):
        raise at.key("currency").fail(f"expected an ISO 4217 code such as EUR, got {currency!r}")
    return subject, company, amount, Money(Decimal(amount), currency)


def _expected(value: Any, at: At) -> Expected:
    body = read.mapping(value, at)
    read.only(body, EXPECT_KEYS, at, required=("decision",))
    decision = read.choice(body["decision"], DECISIONS, at.key("decision"))
    approvers = body.get("approvers")
    groups = body.get("approver_groups")
    return Expected(
        decision,
        read.optional_text(body, "rule", at),
        None if approvers is None else frozenset(read.texts(approvers, at.key("approvers"))),
        None if groups is None else tuple(read.texts(groups, at.key("approver_groups"))),
    )


def _answer(result: PurchaseDecision) -> tuple[str, ...]:
    lines = [
        f"  decision: {result.decision}",
        f"  rule: {result.rule}",
        f"  approver_groups: {list(result.approver_groups)}",
        f"  approvers: {list(result.approver_subjects)}",
    ]
    if result.limit is not None:
        lines.append(f"  limit: {result.limit.amount:f} {result.limit.currency}")
    if result.error:
        lines.append(f"  error: {result.error}")
    lines += [
        f"  tier: {tier.rule} requires {[list(r) for r in tier.requires]}" for tier in result.tiers
    ]
    return tuple(lines)
