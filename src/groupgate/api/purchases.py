"""Purchase approvals for checkout services (SPEC sections 1 and 4): `/v1/purchases/evaluate`.

With `approval_id` (SPEC section 5, closing the loop) the answer is `allow` with rule
`approved` when that flow is APPROVED for the same subject, company and currency, the amount
is at most the approved one, the cart hash (`cart.hash`, when given) matches and no commit
used the flow; otherwise it is the answer without it. Either way `approval` says
`{"id", "usable", "reason"}`.

Answers `{"decision": "allow" | "approval_required" | "deny", "rule", "approvers": {"groups",
"subjects"}, "limit", "revision"}`. A currency other than the company's limit is a 422
problem, never an allow; an unknown company is a 404; an unknown subject is a deny.
"""

from __future__ import annotations

from dataclasses import replace
from time import perf_counter
from typing import Any

from aiohttp import web

from groupgate.api import parsing
from groupgate.api.app import STATE
from groupgate.api.native import (
    caller_of,
    json_response,
    min_revision_header,
    subject_id,
    tenant_field,
)
from groupgate.api.problems import Unprocessable, guarded
from groupgate.api.record import record
from groupgate.store.contract import PurchaseAnswer

PURCHASE_FIELDS = frozenset(
    {
        "tenant",
        "subject",
        "company",
        "amount",
        "currency",
        "min_revision",
        "context",
        "cost_center",
        "approval_id",
        "cart",
    }
)
CART_FIELDS = frozenset({"id", "hash", "cost_center"})


def purchase_body(answer: PurchaseAnswer) -> dict[str, Any]:
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
        "revision": answer.revision,
    }
    if answer.stale:
        body["stale"] = True
    return body


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
    raw_center = body.get("cost_center")
    cost_center = parsing.ident(raw_center, "cost_center") if raw_center is not None else None
    min_rev = parsing.revision(body.get("min_revision"), min_revision_header(request))
    approval_id = body.get("approval_id")
    if approval_id is not None:
        approval_id = parsing.ident(approval_id, "approval_id")
    cart_hash = _cart_hash(body.get("cart"))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    answer = await state.service.purchase(
        tenant, subject, company, money, min_revision=min_rev, cost_center=cost_center
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
        extra={"amount": body["amount"], "currency": money.currency, "decision": result.decision},
    )
    if result.error is not None:
        raise Unprocessable(result.error)
    body = purchase_body(answer)
    if approval is not None:
        body["approval"] = approval
    return json_response(body)


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
