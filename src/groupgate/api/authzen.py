"""AuthZEN Authorization API 1.0: evaluation, evaluations and the PDP metadata document.

Mapping to the model (the search endpoints are in `search.py`):
- `subject.id` is the subject; `subject.type` is not interpreted (subjects have one id space);
- `action.name` is the action; `resource.type` and `resource.id` are the type and id;
- `resource.properties` keeps every property for conditions (the Todo scenario's `ownerID`),
  and its keys `company`, `restrictions`, `vendor`, `owner`, `customer` fill the resource's
  attributes of the same names;
- `resource.type == "route"` (the interop gateway scenario): `action.name` is the HTTP method,
  `resource.id` the route template or path, mapped through the route table; a route is allowed
  when the subject may do its action on some entity of its type (`Decider.some`);
- `resource.type == "purchase"`: `properties.company/amount/currency` ask the purchase
  question; approval required is `decision: false` with `context.approval_required: true` and
  the approvers.
(`route`/`purchase` are only special when the catalog has no type of that name.)

AuthZEN requests carry no tenant: it is the credential's, else `X-Groupgate-Tenant`, else the
configured default, else the only tenant loaded. Structural errors (not JSON, a missing
`subject.id`, wrong types) are 400/422 problems for the whole request. Semantic ones inside a
well-formed item (unknown type or action, no matching route) are a `decision: false` with
`context.error: {status, message}`, so one bad item never sinks a batch; never an allow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from groupgate import log
from groupgate.api import parsing
from groupgate.api.app import STATE, State
from groupgate.api.native import MIN_REVISION, caller_of, json_response
from groupgate.api.problems import TooLarge, Unprocessable
from groupgate.auth import Caller
from groupgate.errors import InvalidInput, NotFound
from groupgate.model import EMPTY, Money, Resource

TENANT_HEADER = "X-Groupgate-Tenant"
SEMANTICS = frozenset({"execute_all", "deny_on_first_deny", "permit_on_first_permit"})
ITEM_KEYS = ("subject", "action", "resource", "context")
RESOURCE_ATTRIBUTES = ("company", "vendor", "owner", "customer")


@dataclass(frozen=True, slots=True)
class Item:
    """One AuthZEN question, validated: `kind` is check, route, purchase or error."""

    kind: str
    subject: str
    action: str
    resource: Resource | None = None
    money: Money | None = None
    company: str | None = None
    error: tuple[int, str] | None = None


def _subject(raw: Any, path: str) -> str:
    body = parsing.obj(raw, path)
    props = body.get("properties")
    if props is not None:
        parsing.obj(props, f"{path}.properties")
    if body.get("type") is not None:
        parsing.text(body["type"], f"{path}.type", 256)
    return parsing.text(body.get("id"), f"{path}.id", 256)


def parse_item(state: State, raw: dict[str, Any], path: str) -> Item:
    """Validate the structure of one evaluation; map it onto the model."""
    prefix = f"{path}." if path else ""
    subject = _subject(raw.get("subject"), f"{prefix}subject")
    action_body = parsing.obj(raw.get("action"), f"{prefix}action")
    action = parsing.text(action_body.get("name"), f"{prefix}action.name", 256)
    body = parsing.obj(raw.get("resource"), f"{prefix}resource")
    type_id = parsing.text(body.get("type"), f"{prefix}resource.type", 256)
    rid = body.get("id")
    if rid is not None and type(rid) is not str:
        raise Unprocessable(f"{prefix}resource.id: expected a string, got {parsing.kind(rid)}")
    props = body.get("properties")
    props = {} if props is None else parsing.obj(props, f"{prefix}resource.properties")
    context = raw.get("context")
    if context is not None:
        parsing.obj(context, f"{prefix}context")
    actions = state.actions.get(type_id)
    if actions is None:
        if type_id == "route":
            return Item("route", subject, action, Resource(type_id, rid))
        if type_id == "purchase":
            return _purchase(subject, action, props, f"{prefix}resource.properties")
        return Item("error", subject, action, error=(422, f"unknown resource type {type_id!r}"))
    if action not in actions:
        return Item("error", subject, action, error=(422, f"{type_id!r} has no action {action!r}"))
    try:
        attributes = {
            name: parsing.opt_text(props.get(name), f"{prefix}resource.properties.{name}")
            for name in RESOURCE_ATTRIBUTES
        }
        restrictions = parsing.text_set(
            props.get("restrictions"), f"{prefix}resource.properties.restrictions"
        )
    except InvalidInput as exc:
        return Item("error", subject, action, error=(422, exc.detail))
    resource = Resource(
        type_id,
        rid,
        attributes["company"],
        restrictions or EMPTY,
        attributes["vendor"],
        attributes["owner"],
        attributes["customer"],
        props,
    )
    return Item("check", subject, action, resource)


def _purchase(subject: str, action: str, props: dict[str, Any], path: str) -> Item:
    try:
        company = parsing.ident(props.get("company"), f"{path}.company")
        money = parsing.amount(props.get("amount"), props.get("currency"), path)
    except InvalidInput as exc:
        return Item("error", subject, action, error=(422, exc.detail))
    return Item("purchase", subject, action, money=money, company=company)


async def decide(
    state: State, tenant: str, items: list[Item], min_rev: int | None
) -> list[dict[str, Any]]:
    """Answer items in order: plain checks in one batch, routes and purchases one by one."""
    out: list[dict[str, Any] | None] = [None] * len(items)
    batch = [(i, it) for i, it in enumerate(items) if it.kind == "check"]
    if batch:
        questions = [(it.subject, it.action, it.resource) for _, it in batch]
        answers = await state.service.check_many(
            tenant,
            questions,  # type: ignore[arg-type]
            min_revision=min_rev,
        )
        for (i, _), answer in zip(batch, answers, strict=True):
            out[i] = _decision(answer.decision.allow, answer.decision.reason, answer.revision)
            if answer.decision.group is not None:
                out[i]["context"]["group"] = answer.decision.group  # type: ignore[index]
    for i, item in enumerate(items):
        if item.kind == "route":
            out[i] = await _route(state, tenant, item, min_rev)
        elif item.kind == "purchase":
            out[i] = await _purchase_decision(state, tenant, item, min_rev)
        elif item.kind == "error":
            status, message = item.error or (422, "invalid item")
            out[i] = {
                "decision": False,
                "context": {"reason": message, "error": {"status": status, "message": message}},
            }
    return [d for d in out if d is not None]


def _decision(allow: bool, reason: str, revision: int) -> dict[str, Any]:
    return {"decision": allow, "context": {"reason": reason, "revision": revision}}


async def _route(state: State, tenant: str, item: Item, min_rev: int | None) -> dict[str, Any]:
    assert item.resource is not None
    path = item.resource.id or ""
    route = state.routes.match(item.action, path)
    if route is None:
        return _decision(False, f"no route matches {item.action.upper()} {path}", 0)
    answer = await state.service.some(
        tenant, item.subject, route.action, route.resource_type, min_revision=min_rev
    )
    result = _decision(answer.decision.allow, answer.decision.reason, answer.revision)
    result["context"]["route"] = {"type": route.resource_type, "action": route.action}
    return result


async def _purchase_decision(
    state: State, tenant: str, item: Item, min_rev: int | None
) -> dict[str, Any]:
    assert item.company is not None and item.money is not None
    try:
        answer = await state.service.purchase(
            tenant, item.subject, item.company, item.money, min_revision=min_rev
        )
    except NotFound as exc:
        return {"decision": False, "context": {"reason": exc.detail, "error": {"status": 404}}}
    result = answer.result
    context: dict[str, Any] = {"reason": result.error or result.rule, "revision": answer.revision}
    if result.decision == "approval_required":
        context["approval_required"] = True
        context["approvers"] = {
            "groups": list(result.approver_groups),
            "subjects": list(result.approver_subjects),
        }
    if result.error is not None:
        context["error"] = {"status": 422, "message": result.error}
    return {"decision": result.decision == "allow" and result.error is None, "context": context}


async def tenant_of(state: State, request: web.Request, caller: Caller) -> str:
    """The tenant of an AuthZEN request (see the module docstring)."""
    requested = request.headers.get(TENANT_HEADER)
    if requested is not None:
        requested = parsing.ident(requested, TENANT_HEADER)
    return await state.tenants.resolve(requested, caller)


def _respond(request: web.Request, body: Any) -> web.Response:
    response = json_response(body)
    request_id = request.headers.get("X-Request-ID")
    if request_id is not None and len(request_id) <= 256:
        response.headers["X-Request-ID"] = request_id
    return response


def _observe(state: State, surface: str, decisions: list[dict[str, Any]], started: float) -> None:
    elapsed = time.perf_counter() - started
    for decision in decisions:
        state.metrics.observe(surface, decision["decision"], elapsed / len(decisions))
    if state.decision_log:
        for decision in decisions:
            log.decision(surface, allow=decision["decision"], context=decision["context"])


async def evaluation(request: web.Request) -> web.Response:
    """POST /access/v1/evaluation."""
    started = time.perf_counter()
    state = request.app[STATE]
    limits = state.config.limits
    caller = await caller_of(state, request)
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    tenant = await tenant_of(state, request, caller)
    item = parse_item(state, body, "")
    min_rev = parsing.revision(None, request.headers.get(MIN_REVISION))
    [decision] = await decide(state, tenant, [item], min_rev)
    _observe(state, "authzen", [decision], started)
    return _respond(request, decision)


async def evaluations(request: web.Request) -> web.Response:
    """POST /access/v1/evaluations: a batch with defaults and evaluation semantics."""
    started = time.perf_counter()
    state = request.app[STATE]
    limits = state.config.limits
    caller = await caller_of(state, request)
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    tenant = await tenant_of(state, request, caller)
    min_rev = parsing.revision(None, request.headers.get(MIN_REVISION))
    raw_items = body.get("evaluations")
    if raw_items is None or raw_items == []:
        # No array: behave as the single evaluation API (AuthZEN 1.0).
        [decision] = await decide(state, tenant, [parse_item(state, body, "")], min_rev)
        _observe(state, "authzen", [decision], started)
        return _respond(request, decision)
    if type(raw_items) is not list:
        raise Unprocessable(f"evaluations: expected an array, got {parsing.kind(raw_items)}")
    if len(raw_items) > limits.max_batch:
        raise TooLarge(f"evaluations: {len(raw_items)} items, the limit is {limits.max_batch}")
    semantic = _semantic(body.get("options"))
    defaults = {k: body[k] for k in ITEM_KEYS if k in body}
    items = []
    for i, raw in enumerate(raw_items):
        entry = parsing.obj(raw, f"evaluations[{i}]")
        items.append(parse_item(state, {**defaults, **entry}, f"evaluations[{i}]"))
    decisions = await decide(state, tenant, items, min_rev)
    if semantic != "execute_all":
        stop_on = semantic == "permit_on_first_permit"
        for i, decision in enumerate(decisions):
            if decision["decision"] is stop_on:
                decisions = decisions[: i + 1]
                break
    _observe(state, "authzen", decisions, started)
    return _respond(request, {"evaluations": decisions})


def _semantic(options: Any) -> str:
    if options is None:
        return "execute_all"
    body = parsing.obj(options, "options")
    value = body.get("evaluations_semantic", "execute_all")
    if value not in SEMANTICS:
        raise Unprocessable(
            f"options.evaluations_semantic: expected one of {', '.join(sorted(SEMANTICS))}"
        )
    return str(value)


async def configuration(request: web.Request) -> web.Response:
    """GET /.well-known/authzen-configuration: the PDP metadata document."""
    state = request.app[STATE]
    base = (state.config.public_url or str(request.url.origin())).rstrip("/")
    return json_response(
        {
            "policy_decision_point": base,
            "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
            "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
            "search_subject_endpoint": f"{base}/access/v1/search/subject",
            "search_resource_endpoint": f"{base}/access/v1/search/resource",
            "search_action_endpoint": f"{base}/access/v1/search/action",
        }
    )


def setup(app: web.Application) -> None:
    from groupgate.api import search

    app.router.add_post("/access/v1/evaluation", evaluation, name="authzen.evaluation")
    app.router.add_post("/access/v1/evaluations", evaluations, name="authzen.evaluations")
    app.router.add_get(
        "/.well-known/authzen-configuration", configuration, name="authzen.configuration"
    )
    search.setup(app)
