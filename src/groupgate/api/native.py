"""Native decision API (SPEC section 4): `/v1/check`, `/v1/checks`, `/v1/filter`.

`/v1/check` is the hot path: one `orjson.loads`, one pass over the fields that also proves
a plain body safe (`read_check`; other bodies get the full safety walk), a few dict reads,
one `Decider.check_cached`, one `orjson.dumps`. For an API-key caller asking about a cached
subject nothing awaits but the body read. Nothing is compiled or formatted per request; the
decision log costs one boolean test when off. `answer` is that path without the transport:
the aiohttp handler `check` and the decision listener (`groupgate.api.decisions`) both call it.

Unknown fields, unknown resource types and actions the type does not have are 422s: a typo
must not turn into a silent deny or, worse, look like a policy answer. An unknown subject is a
deny with a reason (the store says so), never an error.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from groupgate.api import headers, parsing
from groupgate.api.app import STATE, State
from groupgate.api.headers import credentials, request_id_of, single
from groupgate.api.problems import TooLarge, Unprocessable, guarded
from groupgate.api.record import Decided, record, record_many
from groupgate.auth import Caller
from groupgate.model import EMPTY, Decision, FilterResult, Resource, new_tuple
from groupgate.store.contract import Answer

CHECK_FIELDS = frozenset(
    {"tenant", "subject", "action", "resource", "context", "explain", "min_revision"}
)
CHECKS_FIELDS = CHECK_FIELDS | {"checks"}
ITEM_FIELDS = frozenset({"subject", "action", "resource", "context"})
SUBJECT_FIELDS = frozenset({"id", "type", "properties"})
FILTER_FIELDS = frozenset({"tenant", "subject", "action", "resource_type", "min_revision"})
MIN_REVISION = headers.MIN_REVISION
AUTHORIZATION = headers.AUTHORIZATION
KEY_HEADER = headers.KEY_HEADER


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def caller_of(state: State, request: web.Request) -> Caller:
    """The caller of a request: its credentials, each header at most once (else a 400)."""
    return await state.auth.caller(*credentials(request.headers))


def min_revision_header(request: web.Request) -> str | None:
    """`X-Groupgate-Min-Revision`, at most once (else a 400)."""
    return single(request.headers, MIN_REVISION)


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


class CheckQuestion(NamedTuple):
    """A validated `/v1/check` body."""

    subject: str
    action: str
    resource: Resource
    explain: bool
    min_revision: int | None
    tenant: str | None


#: A sealed body's containers sit at levels 0 (the body), 1 (subject, resource) and 2
#: (restrictions): any `max_json_depth` of at least 3 admits it.
SEALED_DEPTH = 3


def read_check(
    state: State, body: bytes, value: Any, max_depth: int, header: str | None
) -> CheckQuestion:
    """The question of a `/v1/check` body (`value`, decoded from `body`), or a 4xx problem.

    `header` is the `X-Groupgate-Min-Revision` value. A *sealed* body (see `_sealed`) needs
    no safety walk: its only number is `min_revision`, range-checked there, it is three
    levels deep, and its keys are counted there for the duplicate-key test. Every other body
    takes the precise path, whose messages name the field at fault; tests/api/test_native.py
    holds both paths to the same answers and errors.
    """
    sealed = _sealed(state.actions, value) if max_depth >= SEALED_DEPTH else None
    if sealed is not None and parsing.raw_keys(body) == sealed[1]:
        found = sealed[0]
        if header is None:
            return found
        return found._replace(min_revision=parsing.revision(found.min_revision, header))
    parsing.check(body, value, max_depth)
    item = parsing.expect_object(value)
    parsing.only(item, CHECK_FIELDS, "")
    subject, action, resource = question(state, item, "")
    explain = parsing.boolean(item.get("explain"), "explain")
    min_rev = parsing.revision(item.get("min_revision"), header)
    return new_tuple(
        CheckQuestion,
        (subject, action, resource, explain, min_rev, tenant_field(item.get("tenant"))),
    )


def _sealed(actions: dict[str, frozenset[str]], value: Any) -> tuple[CheckQuestion, int] | None:
    """A valid check holding only plain fields, with its key count; else None.

    Plain fields: `subject` a string or `{"id"[, "type"]}` of strings, `action`, `resource`
    without `properties` whose values are strings and a list of strings, and optionally
    `explain` (a boolean), `min_revision` (an integer below 2**63) and `tenant` (an id). No
    `context`, no nulls, no other key.
    """
    if type(value) is not dict:
        return None
    subject = value.get("subject")
    action = value.get("action")
    raw = value.get("resource")
    keys = len(value)
    if type(subject) is dict:
        kind = subject.get("type")
        if len(subject) != (1 if kind is None else 2) or not (kind is None or type(kind) is str):
            return None
        keys += len(subject)
        subject = subject.get("id")
    if not (parsing.short(subject, 256) and parsing.short(action, 128) and type(raw) is dict):
        return None
    type_id = raw.get("type")
    if not parsing.short(type_id, 128):
        return None
    allowed = actions.get(type_id)
    if allowed is None or action not in allowed:
        return None
    rid = raw.get("id")
    company = raw.get("company")
    vendor = raw.get("vendor")
    owner = raw.get("owner")
    customer = raw.get("customer")
    read = 1
    for field in (rid, company, vendor, owner, customer):
        if field is not None:
            if type(field) is not str:
                return None
            read += 1
    codes = raw.get("restrictions")
    restrictions = EMPTY if codes is None else parsing.plain_set(codes)
    if restrictions is None:
        return None
    read += codes is not None
    if len(raw) != read:  # properties, a null or an unknown field
        return None
    plain = 3
    explain = value.get("explain")
    if explain is None:
        explain = False
    elif type(explain) is bool:
        plain += 1
    else:
        return None
    min_rev = value.get("min_revision")
    if min_rev is not None:
        if type(min_rev) is not int or not 0 <= min_rev < parsing.NUMBER_LIMIT:
            return None
        plain += 1
    tenant = value.get("tenant")
    if tenant is not None:
        if not (parsing.short(tenant, 128) and parsing.ID.match(tenant)):
            return None
        plain += 1
    if len(value) != plain:  # context, a null or an unknown field
        return None
    resource = new_tuple(
        Resource, (type_id, rid, company, restrictions, vendor, owner, customer, {}, {})
    )
    found = new_tuple(CheckQuestion, (subject, action, resource, explain, min_rev, tenant))
    return found, keys + read


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
    """POST /v1/check: one decision (the decision listener answers the same with `answer`)."""
    started = perf_counter()
    state = request.app[STATE]
    sent = request.headers
    limit = state.config.limits.max_body_bytes
    length = request.content_length
    if length is not None and length > limit:  # before authentication, as on every listener
        raise TooLarge(f"body of {length} bytes exceeds the limit of {limit}")
    authorization, key = credentials(sent)
    caller = state.auth.key_caller(authorization, key)
    if caller is None:
        caller = await state.auth.token_caller(authorization, key)
    body, value = await parsing.read_unchecked_json(request, limit)
    header = single(sent, MIN_REVISION)
    found = answer(state, caller, body, value, header, started)
    if not isinstance(found, bytes):
        found = await found
    return web.Response(body=found, content_type="application/json")


def answer(
    state: State, caller: Caller, body: bytes, value: Any, header: str | None, started: float
) -> bytes | Awaitable[bytes]:
    """The JSON answer to a `/v1/check` body (`value`, decoded from `body`) asked by `caller`.

    The hot path: for a caller with a bound or default tenant asking about a cached subject,
    without `explain` or a consistency token, the answer is returned at once
    (`Tenants.known`, `Decider.check_cached`); otherwise an awaitable of it. `header` is the
    `X-Groupgate-Min-Revision` value, `started` the `perf_counter` at arrival (for metrics).
    """
    question = read_check(state, body, value, state.config.limits.max_json_depth, header)
    tenant = state.tenants.known(question.tenant, caller)
    if tenant is None:
        return _answer_later(state, caller, question, None, started)
    found = _cached(state, question, tenant)
    if found is not None:
        return _answered(state, caller, question, tenant, found, started)
    return _answer_later(state, caller, question, tenant, started)


def _cached(state: State, question: CheckQuestion, tenant: str) -> Answer | None:
    """The answer from cache alone; None when it needs the store (or a token or explain)."""
    if question.explain or question.min_revision is not None:
        return None
    return state.decider.check_cached(tenant, question.subject, question.action, question.resource)


async def _answer_later(
    state: State, caller: Caller, question: CheckQuestion, tenant: str | None, started: float
) -> bytes:
    """`answer` for what needs the store: a tenant list to read (then the cache may do), an
    uncached subject, a consistency token or an explanation."""
    if tenant is None:
        tenant = await state.tenants.resolve(question.tenant, caller)
        found = _cached(state, question, tenant)
        if found is not None:
            return _answered(state, caller, question, tenant, found, started)
    found = await state.decider.check(
        tenant,
        question.subject,
        question.action,
        question.resource,
        min_revision=question.min_revision,
        explain=question.explain,
    )
    return _answered(state, caller, question, tenant, found, started)


def _answered(
    state: State,
    caller: Caller,
    question: CheckQuestion,
    tenant: str,
    found: Answer,
    started: float,
) -> bytes:
    """Record (`record.record`) and serialise one answer."""
    decision = found.decision
    resource = question.resource
    record(
        state,
        "check",
        started,
        tenant=tenant,
        caller=caller.name,
        subject=question.subject,
        action=question.action,
        type=resource.type,
        id=resource.id,
        allow=decision.allow,
        reason=decision.reason,
        revision=found.revision,
    )
    return orjson.dumps(answer_body(found, question.explain))


async def checks(request: web.Request) -> web.Response:
    """POST /v1/checks: a batch; items inherit the top-level subject/action/resource/context."""
    started = perf_counter()
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
    min_rev = parsing.revision(body.get("min_revision"), min_revision_header(request))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    answers = (
        await state.decider.check_many(tenant, questions, min_revision=min_rev, explain=explain)
        if questions
        else []
    )
    record_many(
        state,
        "checks",
        started,
        tenant=tenant,
        caller=caller.name,
        allowed=sum(1 for answer in answers if answer.decision.allow),
        count=len(answers),
        decided=(
            Decided(
                subject,
                action,
                resource.type,
                resource.id,
                answer.decision.allow,
                answer.decision.reason,
                answer.revision,
            )
            for (subject, action, resource), answer in zip(questions, answers, strict=True)
        ),
        request_id=request_id_of(request.headers),
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
    started = perf_counter()
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
    min_rev = parsing.revision(body.get("min_revision"), min_revision_header(request))
    tenant = await state.tenants.resolve(tenant_field(body.get("tenant")), caller)
    found = await state.decider.filter(tenant, subject, action, type_id, min_revision=min_rev)
    record(
        state,
        "filter",
        started,
        tenant=tenant,
        caller=caller.name,
        subject=subject,
        action=action,
        type=type_id,
        id=None,
        allow=found.result.all or bool(found.result.filters),
        reason=None,
        revision=found.revision,
        request_id=request_id_of(request.headers),
    )
    return json_response(filter_body(found.result, found.revision, found.stale))


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/check", guarded(check), name="native.check")
    app.router.add_post("/v1/checks", guarded(checks), name="native.checks")
    app.router.add_post("/v1/filter", guarded(filter_), name="native.filter")
