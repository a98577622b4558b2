"""Approval flows over HTTP (SPEC section 5): request, read, list, approve, decline, cancel;
and the delegations of the admin API.

    POST /v1/approvals                      {tenant?, subject, company, amount, currency,
                                             cart: {id, hash?, cost_center?}, comment?}
                                            with an Idempotency-Key header (required)
    GET  /v1/approvals/{id}?tenant=
    GET  /v1/approvals?approver=S[&status=PENDING]  what S may act on now
    GET  /v1/approvals?requester=S[&status=...]     what S asked for
                                            (both: &limit=&cursor=, oldest first)
    POST /v1/approvals/{id}/approve         {tenant?, subject, comment?}
    POST /v1/approvals/{id}/decline         {tenant?, subject, reason}
    POST /v1/approvals/{id}/cancel          {tenant?, subject}  (the requester: CLOSED)
    POST|GET /v1/admin/tenants/{t}/delegations, DELETE .../delegations/{id}

A request answers 201 with the flow when the purchase needs approval, 200
`{"decision": "allow"}` when it does not (nothing created) and a 403 problem when it is
denied; the same Idempotency-Key of the same subject returns the same flow (200), and a
different request under it is a 409. Acting is allowed only to a subject eligible for the
current tier at that moment (403 with why); a flow that is no longer PENDING is a 409.
"""

from __future__ import annotations

import re
from time import perf_counter
from typing import Any

from aiohttp import web

from groupgate.api import parsing
from groupgate.api.admin import _body, _revision, _tenant
from groupgate.api.app import STATE, State
from groupgate.api.headers import single
from groupgate.api.native import caller_of, json_response, subject_id, tenant_field
from groupgate.api.problems import Unprocessable, guarded
from groupgate.api.record import record
from groupgate.auth import Caller
from groupgate.engine.delegations import format_time
from groupgate.errors import Forbidden, GroupgateError, InvalidInput
from groupgate.model import FLOW_STATUSES
from groupgate.store.contract import FlowView
from groupgate.store.flows import Request

IDEMPOTENCY_KEY = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}\Z")
MAX_COMMENT = 2000
CREATE_FIELDS = frozenset({"tenant", "subject", "company", "amount", "currency", "cart", "comment"})
CART_FIELDS = frozenset({"id", "hash", "cost_center"})
LIST_PARAMS = frozenset({"tenant", "approver", "requester", "status", "limit", "cursor"})


def flow_body(view: FlowView) -> dict[str, Any]:
    """The answer for one flow."""
    flow = view.flow
    tiers = []
    for i, tier in enumerate(flow.tiers):
        groups, subjects = view.eligible[i]
        approvals = [
            {
                "subject": a.subject,
                "list": a.slot,
                "time": format_time(a.time),
                "comment": a.comment,
                "via": a.via,
            }
            for a in flow.approvals
            if a.tier == i
        ]
        tiers.append(
            {
                "rule": tier.rule,
                "requires": [list(names) for names in tier.requires],
                "approvals": approvals,
                "eligible": {"groups": list(groups), "subjects": list(subjects)},
            }
        )
    return {
        "id": flow.id,
        "status": flow.status,
        "requester": flow.requester,
        "company": flow.company,
        "amount": flow.amount,
        "currency": flow.currency,
        "cart": {
            "id": flow.cart_id,
            "hash": flow.cart_hash or None,
            "cost_center": flow.cost_center or None,
        },
        "comment": flow.comment or None,
        "rule": flow.rule,
        "tier": flow.tier,
        "tiers": tiers,
        "created_at": format_time(flow.created),
        "expires_at": format_time(flow.expires),
        "ended_at": format_time(flow.ended) if flow.ended is not None else None,
        "ended_by": flow.ended_by or None,
        "reason": flow.reason or None,
        "used_by": flow.used_by or None,
        "revision": view.revision,
    }


def _idempotency_key(request: web.Request) -> str:
    value = single(request.headers, IDEMPOTENCY_KEY)
    if value is None:
        raise InvalidInput(f"{IDEMPOTENCY_KEY}: this header is required")
    if not KEY_PATTERN.match(value):
        raise Unprocessable(
            f"{IDEMPOTENCY_KEY}: 1 to 255 visible ASCII characters, no spaces, expected"
        )
    return value


def _request(body: dict[str, Any]) -> Request:
    parsing.only(body, CREATE_FIELDS, "")
    subject = subject_id(body.get("subject"), "subject")
    company = parsing.ident(body.get("company"), "company")
    money = parsing.amount(body.get("amount"), body.get("currency"))
    cart = parsing.obj(body.get("cart"), "cart")
    parsing.only(cart, CART_FIELDS, "cart")
    cart_id = parsing.ident(cart.get("id"), "cart.id")
    cart_hash = parsing.text(cart["hash"], "cart.hash", 256) if cart.get("hash") is not None else ""
    center = cart.get("cost_center")
    cost_center = parsing.ident(center, "cart.cost_center") if center is not None else ""
    comment = body.get("comment")
    text = parsing.text(comment, "comment", MAX_COMMENT) if comment is not None else ""
    return Request(subject, company, body["amount"], money, cart_id, cart_hash, cost_center, text)


async def create(request: web.Request) -> web.Response:
    """POST /v1/approvals."""
    started = perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    key = _idempotency_key(request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    asked = _request(body)
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)

    async def evaluate(min_revision: int | None) -> Any:
        return await state.decider.purchase(
            tenant,
            asked.subject,
            asked.company,
            asked.money,
            min_revision=min_revision,
            cost_center=asked.cost_center or None,
        )

    answer, view, created = await state.service.flows.request(tenant, asked, key, evaluate)
    if view is None:
        assert answer is not None  # an evaluation that made no flow
        result = answer.result
        _record(
            state,
            caller,
            tenant,
            asked.subject,
            "request",
            asked.company,
            started,
            allow=result.decision == "allow" and result.error is None,
            reason=result.error or result.rule,
            revision=answer.revision,
        )
        if result.error is not None:
            raise Unprocessable(result.error)
        if result.decision == "deny":
            raise Forbidden(f"the purchase is denied ({result.rule}): nothing to approve")
        return json_response(
            {"decision": "allow", "rule": result.rule, "revision": answer.revision}
        )
    _record(
        state,
        caller,
        tenant,
        asked.subject,
        "request",
        view.flow.id,
        started,
        allow=True,
        reason="created" if created else "existing",
        revision=view.revision,
    )
    return json_response(flow_body(view), status=201 if created else 200)


def _record(
    state: State,
    caller: Caller,
    tenant: str,
    subject: str,
    action: str,
    target: str,
    started: float,
    *,
    allow: bool,
    reason: str,
    revision: int | None = None,
) -> None:
    record(
        state,
        "approval",
        started,
        tenant=tenant,
        caller=caller.name,
        subject=subject,
        action=action,
        type="approvals",
        id=target,
        allow=allow,
        reason=reason,
        revision=revision,
    )


async def _query_tenant(state: State, request: web.Request, caller: Caller) -> str:
    raw = request.query.getall("tenant", [])
    if len(raw) > 1:
        raise Unprocessable("tenant: given more than once")
    return await state.tenants.resolve(tenant_field(raw[0]) if raw else None, caller)


async def get(request: web.Request) -> web.Response:
    """GET /v1/approvals/{id}."""
    state = request.app[STATE]
    caller = await caller_of(state, request)
    flow_id = parsing.ident(request.match_info["id"], "id")
    for name in request.query:
        if name != "tenant":
            raise Unprocessable(f"{name}: unknown query parameter (allowed: tenant)")
    tenant = await _query_tenant(state, request, caller)
    view = await state.service.flows.get(tenant, flow_id)
    return json_response(flow_body(view))


def _one(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise Unprocessable(f"{name}: given more than once")
    return values[0] if values else None


async def list_(request: web.Request) -> web.Response:
    """GET /v1/approvals?approver=S or ?requester=S."""
    state = request.app[STATE]
    caller = await caller_of(state, request)
    for name in request.query:
        if name not in LIST_PARAMS:
            raise Unprocessable(
                f"{name}: unknown query parameter (allowed: {', '.join(sorted(LIST_PARAMS))})"
            )
    approver, requester = _one(request, "approver"), _one(request, "requester")
    if (approver is None) == (requester is None):
        raise Unprocessable("approver or requester: give exactly one")
    who = parsing.text(approver or requester, "approver" if approver else "requester", 256)
    status = _one(request, "status")
    if status is not None and status not in FLOW_STATUSES:
        raise Unprocessable(f"status: expected one of {', '.join(FLOW_STATUSES)}")
    if approver is not None and status not in (None, "PENDING"):
        raise Unprocessable("status: an approver acts on PENDING flows only")
    limits = state.config.limits
    raw_limit = _one(request, "limit")
    limit = limits.search_page_size
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6):
            raise Unprocessable("limit: expected a positive integer")
        limit = int(raw_limit)
        if not 1 <= limit <= limits.max_search_page:
            raise Unprocessable(f"limit: expected 1 to {limits.max_search_page}")
    cursor_raw = _one(request, "cursor")
    cursor = parsing.ident(cursor_raw, "cursor") if cursor_raw is not None else None
    tenant = await _query_tenant(state, request, caller)
    flows = state.service.flows
    if approver is not None:
        found, after, revision = await flows.inbox(tenant, who, cursor, limit)
    else:
        found, after = await flows.requested(tenant, who, status, cursor, limit)
        revision = await state.decider.revision(tenant)
    items = [flow_body(FlowView(f, tuple(((), ()) for _ in f.tiers), revision)) for f in found]
    for item in items:
        del item["revision"]
    return json_response({"approvals": items, "next_cursor": after, "revision": revision})


async def _act(request: web.Request, action: str) -> web.Response:
    started = perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    flow_id = parsing.ident(request.match_info["id"], "id")
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    allowed = {"tenant", "subject"} | ({"comment"} if action == "approve" else set())
    allowed |= {"reason"} if action == "decline" else set()
    parsing.only(body, frozenset(allowed), "")
    subject = subject_id(body.get("subject"), "subject")
    note: str | None = None
    if action == "approve" and body.get("comment") is not None:
        note = parsing.text(body["comment"], "comment", MAX_COMMENT)
    if action == "decline":
        note = parsing.text(body.get("reason"), "reason", MAX_COMMENT)
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    flows = state.service.flows
    where = (state, caller, tenant, subject, action, flow_id, started)
    try:
        if action == "approve":
            view = await flows.approve(tenant, flow_id, subject, note)
        elif action == "decline":
            view = await flows.decline(tenant, flow_id, subject, note or "")
        else:
            view = await flows.cancel(tenant, flow_id, subject)
    except GroupgateError as exc:
        if exc.status < 500:  # a refusal is a decision too; a store error is not
            _record(*where, allow=False, reason=exc.detail)
        raise
    _record(*where, allow=True, reason=view.flow.status, revision=view.revision)
    return json_response(flow_body(view))


async def approve(request: web.Request) -> web.Response:
    return await _act(request, "approve")


async def decline(request: web.Request) -> web.Response:
    return await _act(request, "decline")


async def cancel(request: web.Request) -> web.Response:
    return await _act(request, "cancel")


# ---------------------------------------------------------------------- admin: delegations


async def put_delegation(request: web.Request) -> web.Response:
    """POST /v1/admin/tenants/{t}/delegations: 201 {"id", "revision", "replicas"}."""
    state, tenant = await _tenant(request)
    body = await _body(state, request)
    delegation_id, revision = await state.admin.put_delegation(tenant, body)
    return _revision(revision, status=201, id=delegation_id)


async def list_delegations(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    found, revision = await state.admin.delegations(tenant)
    return json_response({"delegations": found, "revision": revision})


async def delete_delegation(request: web.Request) -> web.Response:
    state, tenant = await _tenant(request)
    delegation_id = parsing.ident(request.match_info["id"], "id")
    return _revision(await state.admin.delete_delegation(tenant, delegation_id))


def setup(app: web.Application) -> None:
    """Add the routes (before the admin API's generic `{kind}/{id}` routes)."""
    add = app.router.add_route
    add("POST", "/v1/approvals", guarded(create), name="approvals.create")
    add("GET", "/v1/approvals", guarded(list_), name="approvals.list")
    add("GET", "/v1/approvals/{id}", guarded(get), name="approvals.get")
    add("POST", "/v1/approvals/{id}/approve", guarded(approve), name="approvals.approve")
    add("POST", "/v1/approvals/{id}/decline", guarded(decline), name="approvals.decline")
    add("POST", "/v1/approvals/{id}/cancel", guarded(cancel), name="approvals.cancel")
    base = "/v1/admin/tenants/{tenant}/delegations"
    add("POST", base, guarded(put_delegation), name="admin.put_delegation")
    add("GET", base, guarded(list_delegations), name="admin.delegations")
    add("DELETE", base + "/{id}", guarded(delete_delegation), name="admin.delete_delegation")
