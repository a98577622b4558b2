"""Purchase approvals (SPEC section 1, seeds 001 and 002).

| subject's role in the company | amount <= limit            | amount > limit             |
|-------------------------------|----------------------------|----------------------------|
| admin                         | allow                      | approval by another admin  |
| buyer                         | allow                      | approval by an admin       |
| requester                     | approval by buyer or admin | approval by an admin       |
| none of these                 | deny                       | deny                       |

Choices where the sources are silent:
- No account limit: admins and buyers may buy any amount; a requester still needs a buyer's or
  an admin's approval (every requester purchase does).
- An admin above the limit needs another admin of the company; with none, the answer is still
  `approval_required` with no customer approver (the merchant decides).
- A company's approval group, when it has members (who may approve: see `approvers`),
  replaces the standard approvers in every approval case, even when its only member is the
  requester (then no customer approves: the merchant decides). SPEC section 5: the approvers
  are exactly the subjects a check allows `approve` on the company's approvals.
- A company without its own account limit uses its nearest ancestor's (SPEC section 5).
- Nobody approves their own purchase. A currency other than the limit's is an error, never an
  allow.

Approval rules (SPEC section 5, `approval_rules`): every rule that matches adds its tiers after
the built-in requirement, in order (tenant-wide rules, then the company's).
- Built-in `deny` stays `deny`: rules add approvals, they never let anyone buy.
- Built-in `allow` with a matching rule becomes `approval_required` with only the rules'
  tiers; `rule` is then the first matching rule's tier name (`rule:<id>`).
- Built-in `approval_required` keeps its `rule` and its tier first.
- `approvers` (the public answer's field) lists who may fill the first tier; `eligible` holds
  that for every tier, once `members` has their groups (`wanted_groups` says which).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from groupgate.engine import approval_rules
from groupgate.engine.approvers import effective_limit
from groupgate.engine.tiers import eligible, requirement_groups, tier_groups
from groupgate.model import (
    EMPTY,
    ApprovalRule,
    Company,
    Eligible,
    Money,
    PurchaseDecision,
    RuleCheck,
    Tier,
)


def evaluate_purchase(
    subject_id: str,
    company: Company,
    roles: frozenset[str],
    members: Mapping[str, frozenset[str]],
    amount: Money,
    *,
    ancestors: Sequence[Company] = (),
    policy_rules: Sequence[ApprovalRule] = (),
    cost_center: str | None = None,
    groups: Collection[str] = EMPTY,
) -> PurchaseDecision:
    """Decide a purchase of `amount` by `subject_id` for `company`.

    `roles` are the subject's predefined roles in that company; `members` maps the company's
    admin and buyer group ids and its approval group id (when it has one), and the groups of
    every tier to resolve, to the members who may approve (`approvers.purchase_members`: not
    those linked `ro`); `ancestors`, nearest first, give the limit and the rules of a company
    without its own; `policy_rules` are the tenant-wide rules; `groups` are every group the
    subject is linked to (for rules scoped to `requesters`).
    """
    builtin = _builtin(subject_id, company, roles, members, amount, ancestors)
    rules = approval_rules.applicable(company, ancestors, policy_rules)
    active = active_approval_group(company, members)
    if builtin.decision == "deny":
        why = f"not evaluated: the purchase is denied ({builtin.rule})"
        return replace(
            builtin, checked=tuple(RuleCheck(r.id, s, False, why, r.tiers) for s, r in rules)
        )
    checked = approval_rules.check_all(rules, amount, cost_center, company.id, groups)
    matched = tuple(c.rule for c in checked if c.matched)
    extra = tuple(
        Tier(approval_rules.tier_name(c.rule), tier)
        for c in checked
        if c.matched
        for tier in c.requires
    )
    if builtin.decision == "allow":
        if not extra:
            return replace(builtin, checked=checked)
        found = tuple(eligible(t, company.id, active, members, subject_id) for t in extra)
        return PurchaseDecision(
            "approval_required",
            extra[0].rule,
            found[0].groups,
            found[0].subjects,
            builtin.limit,
            tiers=extra,
            rules=matched,
            checked=checked,
            eligible=found,
        )
    first = Eligible(builtin.approver_groups, builtin.approver_subjects)
    rest = tuple(eligible(t, company.id, active, members, subject_id) for t in extra)
    return replace(
        builtin,
        tiers=builtin.tiers + extra,
        rules=matched,
        checked=checked,
        eligible=(first, *rest),
    )


def active_approval_group(company: Company, members: Mapping[str, frozenset[str]]) -> str | None:
    """The company's approval group when it has a member who may approve, else None."""
    group = company.approval_group
    return group if group is not None and members.get(group) else None


def wanted_groups(
    decision: PurchaseDecision, company: Company, members: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """The groups of `decision`'s tiers whose members `members` does not hold yet."""
    active = active_approval_group(company, members)
    found = {g for tier in decision.tiers for g in tier_groups(tier, company.id, active)}
    return frozenset(found - set(members))


def _builtin(
    subject_id: str,
    company: Company,
    roles: frozenset[str],
    members: Mapping[str, frozenset[str]],
    amount: Money,
    ancestors: Sequence[Company],
) -> PurchaseDecision:
    """The seed's table (the module docstring): the built-in rule set."""
    limit = effective_limit(company, ancestors)
    if limit is not None and amount.currency != limit.currency:
        return PurchaseDecision(
            "deny",
            "currency_mismatch",
            limit=limit,
            error=f"the account limit of {company.id} is in {limit.currency}, "
            f"the purchase in {amount.currency}",
        )
    within = limit is None or amount.amount <= limit.amount
    if "admin" in roles:
        if within:
            return PurchaseDecision("allow", _rule("admin", limit), limit=limit)
        return _approval(subject_id, company, "admin_over_limit", ("admin",), members, limit)
    if "buyer" in roles:
        if within:
            return PurchaseDecision("allow", _rule("buyer", limit), limit=limit)
        return _approval(subject_id, company, "buyer_over_limit", ("admin",), members, limit)
    if "requester" in roles:
        if within:
            rule = "requester_within_limit" if limit else "requester_no_limit"
            return _approval(subject_id, company, rule, ("buyer", "admin"), members, limit)
        return _approval(subject_id, company, "requester_over_limit", ("admin",), members, limit)
    return PurchaseDecision("deny", "not_a_purchaser", limit=limit)


def _rule(role: str, limit: Money | None) -> str:
    return f"{role}_within_limit" if limit is not None else f"{role}_no_limit"


def _approval(
    subject_id: str,
    company: Company,
    rule: str,
    roles: tuple[str, ...],
    members: Mapping[str, frozenset[str]],
    limit: Money | None,
) -> PurchaseDecision:
    """The built-in rule's answer: one tier of one list, `roles` (admin, buyer), which an
    active approval group stands for (`tiers.requirement_groups`)."""
    active = active_approval_group(company, members)
    if active is not None:
        rule = f"{rule}:approval_group"
    groups = tuple(sorted(requirement_groups(roles, company.id, active), key=_standard_order))
    approvers = frozenset().union(*(members.get(g, frozenset()) for g in groups)) - {subject_id}
    return PurchaseDecision(
        "approval_required",
        rule,
        groups,
        tuple(sorted(approvers)),
        limit,
        tiers=(Tier(rule, (roles,)),),
        eligible=(Eligible(groups, tuple(sorted(approvers))),),
    )


def _standard_order(group_id: str) -> tuple[bool, str]:
    """Buyers before Admins, as the answer always listed them."""
    return (not group_id.endswith("/buyer"), group_id)
