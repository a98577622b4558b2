"""Purchase approvals for checkout services (SPEC sections 1 and 4): `/v1/purchases/evaluate`.

Answers `{"decision": "allow" | "approval_required" | "deny", "rule", "approvers": {"groups",
"subjects"}, "limit", "revision"}`. A currency other than the company's limit is a 422
problem, never an allow; an unknown company is a 404; an unknown subject is a deny.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from groupgate import log
from groupgate.api import parsing
from groupgate.api.app import STATE
from groupgate.api.native import MIN_REVISION, caller_of, json_response, subject_id, tenant_field
from groupgate.api.problems import Unprocessable, guarded
from groupgate.store.contract import PurchaseAnswer

PURCHASE_FIELDS = frozenset(
    {"tenant", "subject", "company", "amount", "currency", "min_revision", "context"}
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
    started = time.perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    parsing.only(body, PURCHASE_FIELDS, "")
    subject = subject_id(body.get("subject"), "subject")
    company = parsing.ident(body.get("company"), "company")
    money = parsing.amount(body.get("amount"), body.get("currency"))
    min_rev = parsing.revision(body.get("min_revision"), request.headers.get(MIN_REVISION))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    answer = await state.service.purchase(tenant, subject, company, money, min_revision=min_rev)
    if answer.result.error is not None:
        raise Unprocessable(answer.result.error)
    allowed = answer.result.decision == "allow"
    state.metrics.observe("purchase", allowed, time.perf_counter() - started)
    if state.decision_log:
        log.decision(
            "purchase",
            tenant=tenant,
            subject=subject,
            company=company,
            amount=f"{money.amount:f}",
            currency=money.currency,
            decision=answer.result.decision,
            rule=answer.result.rule,
            revision=answer.revision,
            caller=caller.name,
        )
    return json_response(purchase_body(answer))


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/purchases/evaluate", guarded(evaluate), name="purchases.evaluate")
