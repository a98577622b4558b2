"""Purchase approvals for checkout services (SPEC sections 1 and 4): `/v1/purchases/evaluate`.

Answers `{"decision": "allow" | "approval_required" | "deny", "rule", "approvers": {"groups",
"subjects"}, "limit", "revision"}`. A currency other than the company's limit is a 422
problem, never an allow; an unknown company is a 404; an unknown subject is a deny.
"""

from __future__ import annotations

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
    {"tenant", "subject", "company", "amount", "currency", "min_revision", "context", "cost_center"}
)


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
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    answer = await state.service.purchase(
        tenant, subject, company, money, min_revision=min_rev, cost_center=cost_center
    )
    result = answer.result
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
    return json_response(purchase_body(answer))


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/purchases/evaluate", guarded(evaluate), name="purchases.evaluate")
