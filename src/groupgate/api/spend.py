"""The spend ledger for checkout services (SPEC section 5): commit and release an order.

`POST /v1/purchases/commit {tenant, order_id, subject, company, amount, currency,
cost_center?, approval_id?}` records an order's spend against the company's and the
subject's spending limits and the company's budgets, in one atomic step, idempotent by
`order_id`. It answers `200 {"order_id", "status": "committed", "amount", "currency",
"cost_center", "approval_id", "approved", "replayed", "totals": [...], "ledger_revision",
"revision"}`; a commit that would pass a limit without an approval that covers it is a 409
problem with `rule` (`period_limit_exceeded`, `budget_exceeded`, `approval_not_usable`,
`order_id_reused`, `order_released`) and, for limits, `limits` (each with what was spent).

`POST /v1/purchases/release {tenant, order_id}` subtracts what the order added, once, and
answers `200 {"order_id", "status": "released", ..., "ledger_revision"}` every time.

Both are recorded like every decision (`api/record.py`): surface `purchase.commit` or
`purchase.release`, allow when the spend was recorded (or released).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from aiohttp import web

from groupgate.api import parsing
from groupgate.api.app import STATE
from groupgate.api.native import caller_of, json_response, subject_id, tenant_field
from groupgate.api.problems import Unprocessable, guarded
from groupgate.api.record import record
from groupgate.engine import spend
from groupgate.errors import Refused
from groupgate.store.contract import CommitAnswer, Order, Released

COMMIT_FIELDS = frozenset(
    {"tenant", "order_id", "subject", "company", "amount", "currency", "cost_center", "approval_id"}
)
RELEASE_FIELDS = frozenset({"tenant", "order_id"})


def read_order(body: dict[str, Any]) -> Order:
    """Validate a commit body into an `Order` (422 naming the field otherwise)."""
    parsing.only(body, COMMIT_FIELDS, "")
    order_id = parsing.ident(body.get("order_id"), "order_id")
    subject = parsing.ident(subject_id(body.get("subject"), "subject"), "subject")
    company = parsing.ident(body.get("company"), "company")
    money = parsing.amount(body.get("amount"), body.get("currency"))
    try:
        units = spend.to_units(money.amount)
    except spend.AmountError as exc:
        raise Unprocessable(f"amount: {exc}") from None
    cost_center = body.get("cost_center")
    approval = body.get("approval_id")
    return Order(
        order_id,
        subject,
        company,
        money,
        body["amount"],
        units,
        parsing.ident(cost_center, "cost_center") if cost_center is not None else None,
        parsing.ident(approval, "approval_id") if approval is not None else None,
    )


def commit_body(order: Order, answer: CommitAnswer) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "status": "committed",
        "subject": order.subject,
        "company": order.company,
        "amount": order.text,
        "currency": order.amount.currency,
        "cost_center": order.cost_center,
        "approval_id": order.approval_id,
        "approved": answer.approved,
        "replayed": answer.replayed,
        "totals": [line.as_json(total) for line, total in answer.totals],
        "ledger_revision": answer.ledger_revision,
        "revision": answer.revision,
    }


def release_body(order_id: str, released: Released) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "status": "released",
        "subject": released.subject,
        "company": released.company,
        "amount": released.amount,
        "currency": released.currency,
        "cost_center": released.cost_center,
        "ledger_revision": released.ledger_revision,
    }


async def commit(request: web.Request) -> web.Response:
    """POST /v1/purchases/commit."""
    started = perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    order = read_order(body)
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    try:
        answer = await state.decider.commit(tenant, order)
    except Refused as exc:
        _record_commit(state, started, tenant, caller.name, order, exc.rule, None)
        raise
    reason = "approved" if answer.approved else "within_limits"
    _record_commit(state, started, tenant, caller.name, order, reason, answer.revision)
    return json_response(commit_body(order, answer))


def _record_commit(
    state: Any,
    started: float,
    tenant: str,
    caller: str,
    order: Order,
    reason: str,
    revision: int | None,
) -> None:
    """Record a commit: allowed when recorded (`within_limits`, `approved`), else the rule."""
    record(
        state,
        "purchase.commit",
        started,
        tenant=tenant,
        caller=caller,
        subject=order.subject,
        action="commit",
        type="companies",
        id=order.company,
        allow=reason in ("within_limits", "approved"),
        reason=reason,
        revision=revision,
        extra={"order_id": order.order_id, "amount": order.text, "currency": order.amount.currency},
    )


async def release(request: web.Request) -> web.Response:
    """POST /v1/purchases/release."""
    started = perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    parsing.only(body, RELEASE_FIELDS, "")
    order_id = parsing.ident(body.get("order_id"), "order_id")
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    released = await state.decider.release(tenant, order_id)
    record(
        state,
        "purchase.release",
        started,
        tenant=tenant,
        caller=caller.name,
        subject=released.subject,
        action="release",
        type="companies",
        id=released.company,
        allow=True,
        reason="released",
        revision=None,
        extra={"order_id": order_id},
    )
    return json_response(release_body(order_id, released))


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/purchases/commit", guarded(commit), name="purchases.commit")
    app.router.add_post("/v1/purchases/release", guarded(release), name="purchases.release")
