"""Approval rules (SPEC section 5): which rules apply to a purchase, and whether each matches.

Rules come from two places: the policy directory (`approval_rules.yaml`, every tenant and
company) and the companies of the graph (`companies[i].approval_rules`). A company's rules
apply to it and to its subsidiaries, unless a subsidiary sets its own: the nearest company
(itself first, then its ancestors) whose `approval_rules` is set wins, and an empty list set
on a company means "no company rules here and below". Tenant-wide rules always apply; their
tiers come before the company's.

A rule matches when every condition it states holds:
- `when.amount_over` (with `when.currency`): the amount, in that currency, is over it;
- `when.currency`: the purchase is in that currency;
- `when.cost_center`: the purchase names one of these cost centres (none named: no match);
- `requesters`: the requester holds one of these names in the purchase's company: a
  predefined role through their link to `<company>/<role>`, a group by being linked to it
  (any link, `ro` included: it says who they are, not what they may do).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from groupgate.model import (
    PREDEFINED_ROLES,
    ApprovalRule,
    Company,
    Money,
    RuleCheck,
    predefined_group_id,
)

#: The `source` of a rule check for the tenant-wide rules of the policy directory.
POLICY = "policy"


def company_rules(
    company: Company, ancestors: Iterable[Company]
) -> tuple[str | None, tuple[ApprovalRule, ...]]:
    """The company rules that apply to `company` and the company that set them (None: none
    did). `ancestors` nearest first."""
    for found in (company, *ancestors):
        if found.approval_rules is not None:
            return found.id, found.approval_rules
    return None, ()


def applicable(
    company: Company, ancestors: Iterable[Company], policy: Sequence[ApprovalRule]
) -> list[tuple[str, ApprovalRule]]:
    """Every rule that applies to purchases of `company`, with its source, in tier order:
    the tenant-wide rules, then the nearest company's."""
    source, own = company_rules(company, ancestors)
    out = [(POLICY, rule) for rule in policy]
    if source is not None:
        out += [(source, rule) for rule in own]
    return out


def holds(name: str, company: str, groups: Collection[str]) -> bool:
    """Whether a subject linked to `groups` holds `name` (a role or a group id) in `company`."""
    if name in PREDEFINED_ROLES:
        return predefined_group_id(company, name) in groups
    return name in groups


def match(
    rule: ApprovalRule,
    amount: Money,
    cost_center: str | None,
    company: str,
    groups: Collection[str],
) -> tuple[bool, str]:
    """Whether `rule` matches a purchase of `amount` by a subject linked to `groups`, and
    why (the first condition that fails, or every condition that held)."""
    held: list[str] = []
    if rule.currency is not None:
        if amount.currency != rule.currency:
            return False, f"the purchase is in {amount.currency}, the rule is for {rule.currency}"
        held.append(f"currency {rule.currency}")
    if rule.amount_over is not None:
        limit = f"{rule.amount_over:f} {rule.currency}"
        if amount.amount <= rule.amount_over:
            return False, f"the amount {amount.amount:f} is not over {limit}"
        held.append(f"amount {amount.amount:f} over {limit}")
    if rule.cost_centers:
        wanted = ", ".join(rule.cost_centers)
        if cost_center is None:
            return False, f"no cost centre given (the rule is for {wanted})"
        if cost_center not in rule.cost_centers:
            return False, f"cost centre {cost_center} is not one of {wanted}"
        held.append(f"cost centre {cost_center}")
    if rule.requesters:
        found = [n for n in rule.requesters if holds(n, company, groups)]
        if not found:
            wanted = ", ".join(rule.requesters)
            return False, f"the requester holds none of {wanted} in {company}"
        held.append(f"the requester holds {found[0]}")
    return True, "; ".join(held) if held else "the rule has no conditions"


def check_all(
    rules: Sequence[tuple[str, ApprovalRule]],
    amount: Money,
    cost_center: str | None,
    company: str,
    groups: Collection[str],
) -> tuple[RuleCheck, ...]:
    """`match` for every applicable rule, in order."""
    out = []
    for source, rule in rules:
        matched, why = match(rule, amount, cost_center, company, groups)
        out.append(RuleCheck(rule.id, source, matched, why, rule.tiers))
    return tuple(out)


def tier_name(rule_id: str) -> str:
    """The name a policy rule's tiers (and a purchase it alone requires approval for) carry:
    `rule:<id>`, never one of the built-in rules' names."""
    return f"rule:{rule_id}"
