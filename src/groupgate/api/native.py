"""Native decision API (SPEC section 4): `/v1/check`, `/v1/checks`, `/v1/filter`.

`/v1/check` is the hot path: one `orjson.loads` (plus the cheap safety pass of
`parsing.loads`), a few dict reads, one `Decider.check`, one `orjson.dumps`. Nothing is
compiled or formatted per request; the decision log costs one boolean test when off.

Unknown fields, unknown resource types and actions the type does not have are 422s: a typo
must not turn into a silent deny or, worse, look like a policy answer. An unknown subject is a
deny with a reason (the store says so), never an error.
"""

from __future__ import annotations

import time
from time import perf_counter
from typing import Any

import orjson
from aiohttp import web

from groupgate import log
from groupgate.api import parsing
from groupgate.api.app import STATE, State
from groupgate.api.problems import TooLarge, Unprocessable, guarded
from groupgate.auth import Caller
from groupgate.model import Decision, FilterResult, Resource
from groupgate.store.contract import Answer

CHECK_FIELDS = frozenset(
    {"tenant", "subject", "action", "resource", "context", "explain", "min_revision"}
)
CHECKS_FIELDS = CHECK_FIELDS | {"checks"}
ITEM_FIELDS = frozenset({"subject", "action", "resource", "context"})
SUBJECT_FIELDS = frozenset({"id", "type", "properties"})
FILTER_FIELDS = frozenset({"tenant", "subject", "action", "resource_type", "min_revision"})
MIN_REVISION = "X-Groupgate-Min-Revision"
AUTHORIZATION = "Authorization"
KEY_HEADER = "X-Groupgate-Key"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def caller_of(state: State, request: web.Request) -> Caller:
    headers = request.headers
    return await state.auth.caller(headers.get("Authorization"), headers.get("X-Groupgate-Key"))


def subject_id(raw: Any, path: str) -> str:
    """Read `{"id": ...}` (a bare string is accepted too)."""
    if type(raw) is str:
        return parsing.text(raw, path, 256)
    body = parsing.obj(raw, path)
    parsing.only(body, SUBJECT_FIELDS, path)
    return parsing.text(body.get("id"), f"{path}.id", 256)


def question(state: State, item: dict[str, Any], path: str) -> tuple[str, str, Resource]:
    """Validate one check's subject, action and resource against the catalog."""
    prefix = f"{path}." if path else ""
    subject = subject_id(item.get("subject"), f"{prefix}subject")
    action = parsing.text(item.get("action"), f"{prefix}action", 128)
    resource = parsing.resource(item.get("resource"), f"{prefix}resource")
    actions = state.actions.get(resource.type)
    if actions is None:
        raise Unprocessable(f"{prefix}resource.type: unknown resource type {resource.type!r}")
    if action not in actions:
        raise Unprocessable(f"{prefix}action: {resource.type!r} has no action {action!r}")
    context = item.get("context")
    if context is not None and type(context) is not dict:
        raise Unprocessable(f"{prefix}context: expected an object, got {parsing.kind(context)}")
    return subject, action, resource


def answer_body(answer: Answer, explain: bool) -> dict[str, Any]:
    decision: Decision = answer.decision
    body: dict[str, Any] = {
        "allow": decision.allow,
        "reason": decision.reason,
        "revision": answer.revision,
    }
    if decision.group is not None:
        body["group"] = decision.group
    if explain:
        body["explain"] = list(decision.explain or ())
    if answer.stale:
        body["stale"] = True
    return body


def tenant_field(value: Any) -> str | None:
    return None if value is None else parsing.ident(value, "tenant")


async def check(request: web.Request) -> web.Response:
    """POST /v1/check: one decision.

    The hot path: for an API-key caller with a bound tenant asking about a cached subject,
    nothing here awaits but the body read (`key_caller`, `Tenants.known`, `check_cached`);
    the awaiting forms run only when those answer None.
    """
    started = perf_counter()
    state = request.app[STATE]
    headers = request.headers
    caller = state.auth.key_caller(headers.get(AUTHORIZATION), headers.get(KEY_HEADER))
    if caller is None:
        caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    parsing.only(body, CHECK_FIELDS, "")
    subject, action, resource = question(state, body, "")
    explain = parsing.boolean(body.get("explain"), "explain")
    min_rev = parsing.revision(body.get("min_revision"), headers.get(MIN_REVISION))
    requested = tenant_field(body.get("tenant"))
    tenant = state.tenants.known(requested, caller) or await state.tenants.resolve(
        requested, caller
    )
    service = state.service
    answer = (
        None
        if explain or min_rev is not None
        else service.check_cached(tenant, subject, action, resource)
    )
    if answer is None:
        answer = await service.check(
            tenant, subject, action, resource, min_revision=min_rev, explain=explain
        )
    allowed = answer.decision.allow
    state.metrics.observe("check", allowed, perf_counter() - started)
    if state.decision_log:
        log.decision(
            "check",
            tenant=tenant,
            subject=subject,
            action=action,
            type=resource.type,
            id=resource.id,
            allow=allowed,
            reason=answer.decision.reason,
            revision=answer.revision,
            caller=caller.name,
        )
    return json_response(answer_body(answer, explain))


async def checks(request: web.Request) -> web.Response:
    """POST /v1/checks: a batch; items inherit the top-level subject/action/resource/context."""
    started = time.perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    parsing.only(body, CHECKS_FIELDS, "")
    items = body.get("checks")
    if type(items) is not list:
        raise Unprocessable(f"checks: expected an array, got {parsing.kind(items)}")
    if len(items) > limits.max_batch:
        raise TooLarge(f"checks: {len(items)} items, the limit is {limits.max_batch}")
    defaults = {k: body[k] for k in ITEM_FIELDS if k in body}
    questions: list[tuple[str, str, Resource]] = []
    for i, raw in enumerate(items):
        item = parsing.obj(raw, f"checks[{i}]")
        parsing.only(item, ITEM_FIELDS, f"checks[{i}]")
        questions.append(question(state, {**defaults, **item}, f"checks[{i}]"))
    explain = parsing.boolean(body.get("explain"), "explain")
    min_rev = parsing.revision(body.get("min_revision"), request.headers.get(MIN_REVISION))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    answers = (
        await state.service.check_many(tenant, questions, min_revision=min_rev, explain=explain)
        if questions
        else []
    )
    allowed = sum(1 for answer in answers if answer.decision.allow)
    state.metrics.observe_many("checks", allowed, len(answers) - allowed, started)
    if state.decision_log:
        for (subject, action, resource), answer in zip(questions, answers, strict=True):
            log.decision(
                "checks",
                tenant=tenant,
                subject=subject,
                action=action,
                type=resource.type,
                id=resource.id,
                allow=answer.decision.allow,
                reason=answer.decision.reason,
                revision=answer.revision,
                caller=caller.name,
            )
    return json_response({"results": [answer_body(a, explain) for a in answers]})


def filter_body(result: FilterResult, revision: int, stale: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "all": result.all,
        "filters": [
            {
                "restrictions": None if f.restrictions is None else sorted(f.restrictions),
                "attributes": {k: sorted(map(str, v)) for k, v in f.attributes.items()},
                "group": f.group,
            }
            for f in result.filters
        ],
        "revision": revision,
    }
    if stale:
        body["stale"] = True
    return body


async def filter_(request: web.Request) -> web.Response:
    """POST /v1/filter: which entities of a type the subject may act on (all, none, filters).

    `{"all": false, "filters": []}` means none. Each filter is a conjunction: the entity's
    restriction values intersect `restrictions` (null: any), and each attribute's value is
    one of those listed; the filters form a disjunction.
    """
    started = time.perf_counter()
    state = request.app[STATE]
    caller = await caller_of(state, request)
    limits = state.config.limits
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    parsing.only(body, FILTER_FIELDS, "")
    subject = subject_id(body.get("subject"), "subject")
    action = parsing.text(body.get("action"), "action", 128)
    type_id = parsing.text(body.get("resource_type"), "resource_type", 128)
    actions = state.actions.get(type_id)
    if actions is None:
        raise Unprocessable(f"resource_type: unknown resource type {type_id!r}")
    if action not in actions:
        raise Unprocessable(f"action: {type_id!r} has no action {action!r}")
    min_rev = parsing.revision(body.get("min_revision"), request.headers.get(MIN_REVISION))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    found = await state.service.filter(tenant, subject, action, type_id, min_revision=min_rev)
    allowed = found.result.all or bool(found.result.filters)
    state.metrics.observe("filter", allowed, time.perf_counter() - started)
    return json_response(filter_body(found.result, found.revision, found.stale))


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/check", guarded(check), name="native.check")
    app.router.add_post("/v1/checks", guarded(checks), name="native.checks")
    app.router.add_post("/v1/filter", guarded(filter_), name="native.filter")
