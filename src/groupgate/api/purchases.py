"""Purchase approvals for checkout services (SPEC sections 1, 4, 5): `/v1/purchases/evaluate`.

With `approval_id` (SPEC section 5, closing the loop) the answer is `allow` with rule
`approved` when that flow is APPROVED for the same subject, company and currency, the amount
is at most the approved one, the cart hash (`cart.hash`, when given) matches and no commit
used the flow; otherwise it is the answer without it. Either way `approval` says
`{"id", "usable", "reason"}`.

Answers `{"decision": "allow" | "approval_required" | "deny", "rule", "approvers": {"groups",
"subjects"}, "limit", "tiers", "rules", "revision"}`: `tiers` lists what an approval needs, in
order (`[{"rule", "requires", "eligible": {"groups", "subjects"}}]`, the built-in rule's tier
first, then every matching approval rule's), `rules` the ids of the approval rules that
matched; `approvers` is who may fill the first tier. The question may name a `cost_center`
(an id); `explain: true` adds `explain`: every approval rule that applies to the company,
whether it matched and why, and what it requires. A currency other than the company's limit
is a 422 problem, never an allow; an unknown company is a 404; an unknown subject is a deny.
"""

from __future__ import annotations

from dataclasses import replace
from time import perf_counter
from typing import Any

from aiohttp import web

from groupgate.api import parsing
from groupgate.api.app import STATE
from groupgate.api.headers import request_id_of
from groupgate.api.native import (
    caller_of,
    json_response,
    min_revision_header,
    subject_id,
    tenant_field,
)
from groupgate.api.problems import Unprocessable, guarded
from groupgate.api.record import record
from groupgate.model import Eligible, PurchaseDecision
from groupgate.store.contract import PurchaseAnswer

PURCHASE_FIELDS = frozenset(
    {
        "tenant",
        "subject",
        "company",
        "amount",
        "currency",
        "cost_center",
        "explain",
        "min_revision",
        "context",
        "approval_id",
        "cart",
    }
)
CART_FIELDS = frozenset({"id", "hash", "cost_center"})


def purchase_body(answer: PurchaseAnswer, *, explain: bool = False) -> dict[str, Any]:
    """The SPEC section 4 answer for a purchase decision that is not an error."""
    result = answer.result
    body: dict[str, Any] = {
        "decision": result.decision,
        "rule": result.rule,
        "approvers": {
            "groups": list(result.approver_groups),
            "subjects": list(result.approver_subjects),
        },
        "limit": result.limit.as_json() if result.limit is not None else None,
        "tiers": tiers_body(result),
        "rules": list(result.rules),
        "revision": answer.revision,
    }
    if explain:
        body["explain"] = explain_body(result)
    if answer.stale:
        body["stale"] = True
    return body


def tiers_body(result: PurchaseDecision) -> list[dict[str, Any]]:
    """`[{"rule", "requires", "eligible": {"groups", "subjects"}}]`, in approval order."""
    out = []
    for i, tier in enumerate(result.tiers):
        found = result.eligible[i] if i < len(result.eligible) else Eligible((), ())
        out.append(
            {
                **tier.as_json(),
                "eligible": {"groups": list(found.groups), "subjects": list(found.subjects)},
            }
        )
    return out


def explain_body(result: PurchaseDecision) -> list[dict[str, Any]]:
    """Every approval rule that applies to the company: whether it matched, why, and what it
    requires (the built-in rule's outcome is `rule`)."""
    return [
        {
            "rule": check.rule,
            "source": check.source,
            "matched": check.matched,
            "why": check.why,
            "requires": [[list(names) for names in tier] for tier in check.requires],
        }
        for check in result.checked
    ]


async def evaluate(request: web.Request) -> web.Response:
    """POST /v1/purchases/evaluate."""
    started = perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    parsing.only(body, PURCHASE_FIELDS, "")
    subject = subject_id(body.get("subject"), "subject")
    company = parsing.ident(body.get("company"), "company")
    money = parsing.amount(body.get("amount"), body.get("currency"))
    cost_center = cost_center_field(body.get("cost_center"), "cost_center")
    explain = parsing.boolean(body.get("explain"), "explain")
    min_rev = parsing.revision(body.get("min_revision"), min_revision_header(request))
    approval_id = body.get("approval_id")
    if approval_id is not None:
        approval_id = parsing.ident(approval_id, "approval_id")
    cart_hash = _cart_hash(body.get("cart"))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    answer = await state.decider.purchase(
        tenant, subject, company, money, cost_center=cost_center, min_revision=min_rev
    )
    result = answer.result
    approval: dict[str, Any] | None = None
    if approval_id is not None:
        why = await state.service.flows.usable(
            tenant, approval_id, subject, company, money, cart_hash
        )
        approval = {"id": approval_id, "usable": why is None, "reason": why}
        if why is None:
            result = replace(
                result,
                decision="allow",
                rule="approved",
                approver_groups=(),
                approver_subjects=(),
                error=None,
                tiers=(),
            )
            answer = replace(answer, result=result)
    record(
        state,
        "purchase",
        started,
        tenant=tenant,
        caller=caller.name,
        subject=subject,
        action="purchase",
        type="companies",
        id=company,
        allow=result.decision == "allow" and result.error is None,
        reason=result.error or result.rule,
        revision=answer.revision,
        # The amount as sent, never a formatted Decimal (see `parsing.amount`).
        extra={
            "amount": body["amount"],
            "currency": money.currency,
            "decision": result.decision,
            **({"cost_center": cost_center} if cost_center is not None else {}),
            **({"rules": list(result.rules)} if result.rules else {}),
        },
        request_id=request_id_of(request.headers),
    )
    if result.error is not None:
        raise Unprocessable(result.error)
    body = purchase_body(answer, explain=explain)
    if approval is not None:
        body["approval"] = approval
    return json_response(body)


def cost_center_field(value: Any, path: str) -> str | None:
    """An optional cost centre: an id (letters, digits and `._:@+-`), or absent."""
    return None if value is None else parsing.ident(value, path)


def _cart_hash(raw: Any) -> str | None:
    """The cart's hash of an evaluate body (`cart: {id?, hash?, cost_center?}`), or None."""
    if raw is None:
        return None
    cart = parsing.obj(raw, "cart")
    parsing.only(cart, CART_FIELDS, "cart")
    if cart.get("id") is not None:
        parsing.ident(cart["id"], "cart.id")
    if cart.get("cost_center") is not None:
        parsing.ident(cart["cost_center"], "cart.cost_center")
    return parsing.text(cart["hash"], "cart.hash", 256) if cart.get("hash") is not None else None


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/purchases/evaluate", guarded(evaluate), name="purchases.evaluate")
