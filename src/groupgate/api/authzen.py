"""AuthZEN Authorization API 1.0: evaluation, evaluations and the PDP metadata document.

Mapping to the model (the search endpoints are in `search.py`):
- `subject.id` is the subject; `subject.type` is required and checked, not interpreted
  (subjects have one id space);
- `action.name` is the action; `resource.type` and `resource.id` are the type and id;
- `resource.properties` keeps every property, any JSON value, for conditions (the Todo
  scenario's `ownerID`); its keys `company`, `vendor`, `owner`, `customer` (strings) and
  `restrictions` (strings of an array) fill the resource's attributes of the same names, and
  a value of another type leaves the attribute unknown, which never allows;
- `subject.properties` and `action.properties` reach the conditions as the request paths
  `subject.properties.<name>` and `action.properties.<name>` (`model.Resource.request`);
- `resource.type == "route"` (the interop gateway scenario): `action.name` is the HTTP method,
  `resource.id` the route template or path, mapped through the route table; a route is allowed
  when the subject may do its action on some entity of its type (`Decider.some`);
- `action.name == "purchase"` on `resource.type == "carts"` (SPEC section 5), and
  `resource.type == "purchase"` (any action): `resource.id` is the cart and
  `properties.company/amount/currency` (and `cost_center`, optional) ask the purchase
  question. `allow` is `decision: true`; `deny` is `decision: false` with the reason;
  approval required is `decision: false` with `context.approval_required: true`, the
  approvers of the first tier, and `context.approval` (ARAP-style: the approval can be
  requested): `{rule, rules, tiers: [{rule, requires, eligible: {groups, subjects}}],
  requestable: true, request: {method: "POST", href: "/v1/approvals", body}}`, where `body`
  is what to send to request it.
(`route`/`purchase` types are only special when the catalog has no type of that name; only
the precise path reaches a purchase, as `purchase` is no action of `carts`: the fast path of
plain checks is not touched.)

AuthZEN requests carry no tenant: it is the credential's, else `X-Groupgate-Tenant`, else the
configured default, else the only tenant loaded (a per-tenant metadata document says so).

Errors, as AuthZEN 1.0 asks (section numbers of the 1.0 text, "Authorization API 1.0"):
- a missing or mistyped required attribute (`subject.type`, `subject.id`, `action.name`,
  `resource.type`, `resource.id`, §5.1, §5.2, §5.3, §6.1) is a 400 "Bad Request" problem
  (§10.1.1 "JSON Serialization" MUST), as is every other malformed field here: the native
  API's 422 and 415 become 400 on every AuthZEN endpoint (`spec_error`);
- in a batch, an item that still lacks a required part (or has one mistyped) after the
  top-level defaults are merged is a `decision: false` with `context.error: {status: 400,
  message}` (§7.2.1 "Errors": errors in individual evaluations), the others are answered; a
  malformed top level (a default, `options`, the array itself) stays a 400 for the whole;
- semantic errors inside a well-formed item (unknown type or action, no matching route) are
  a `decision: false` with `context.error: {status: 422, message}`; never an allow;
- every response of an AuthZEN endpoint, problems included, carries the PEP's
  `X-Request-ID` back (§10.1.3 "Request Identification" MUST; `route`, and
  `answer_evaluation`'s callers).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Iterator, Mapping
from time import perf_counter
from typing import Any, NamedTuple, cast

import orjson
from aiohttp import web

from groupgate.api import parsing
from groupgate.api.app import STATE, State
from groupgate.api.headers import (
    AUTHORIZATION,
    KEY_HEADER,
    MIN_REVISION,
    REQUEST_ID,
    TENANT_HEADER,
    Headers,
    duplicate,
    first_values,
    request_id_of,
    single,
    valid_request_id,
)
from groupgate.api.native import caller_of, json_response, min_revision_header
from groupgate.api.problems import (
    BadRequest,
    Handler,
    TooLarge,
    Unprocessable,
    UnsupportedMedia,
    guarded,
    to_problem,
)
from groupgate.api.purchases import tiers_body
from groupgate.api.record import Decided, record, record_many
from groupgate.auth import Caller
from groupgate.config import Config
from groupgate.errors import InvalidInput, NotFound
from groupgate.model import EMPTY, NO_PROPERTIES, Decision, Money, Resource, new_tuple
from groupgate.store.contract import Answer

#: The AuthZEN purchase question (SPEC section 5): this action on a cart.
PURCHASE = "purchase"
CARTS = "carts"
SEMANTICS = frozenset({"execute_all", "deny_on_first_deny", "permit_on_first_permit"})
ITEM_KEYS = ("subject", "action", "resource", "context")
RESOURCE_ATTRIBUTES = ("company", "vendor", "owner", "customer")
#: How deep a sealed item reaches, counted as `parsing.inspect` does from a batch's root (0):
#: the array 1, the item 2, its resource 3, the properties 4, the restrictions 5.
SEALED_DEPTH = 6


class Item(NamedTuple):
    """One AuthZEN question, validated: `kind` is check, route, purchase or error.

    A named tuple, not a frozen dataclass: a batch builds hundreds per request and a tuple is
    three times cheaper to make.
    """

    kind: str
    subject: str
    action: str
    resource: Resource | None = None
    money: Money | None = None
    company: str | None = None
    error: tuple[int, str] | None = None


def _subject(raw: Any, path: str) -> tuple[str, Mapping[str, Any] | None]:
    """A Subject (§5.1): `type` and `id` REQUIRED strings, `properties` an OPTIONAL object."""
    body = parsing.obj(raw, path)
    parsing.text(body.get("type"), f"{path}.type", 256)
    return parsing.text(body.get("id"), f"{path}.id", 256), _properties(body, path)


def _action(raw: Any, path: str) -> tuple[str, Mapping[str, Any] | None]:
    """An Action (§5.3): `name` a REQUIRED string, `properties` an OPTIONAL object."""
    body = parsing.obj(raw, path)
    return parsing.text(body.get("name"), f"{path}.name", 256), _properties(body, path)


def _resource(raw: Any, path: str) -> tuple[str, str, dict[str, Any]]:
    """A Resource (§5.2): `type` and `id` REQUIRED strings, `properties` an OPTIONAL object
    of any values; returns them (no properties: an empty object)."""
    body = parsing.obj(raw, path)
    type_id = parsing.text(body.get("type"), f"{path}.type", 256)
    rid = parsing.text(body.get("id"), f"{path}.id")
    props = body.get("properties")
    return type_id, rid, {} if props is None else parsing.obj(props, f"{path}.properties")


def _properties(body: dict[str, Any], path: str) -> Mapping[str, Any] | None:
    props = body.get("properties")
    return None if props is None else parsing.obj(props, f"{path}.properties")


def _request(
    subject: Mapping[str, Any] | None, action: Mapping[str, Any] | None
) -> Mapping[str, Any]:
    """`Resource.request`: the subject's and the action's properties, when sent."""
    if subject is None and action is None:
        return NO_PROPERTIES
    found = {} if subject is None else {"subject": subject}
    if action is not None:
        found["action"] = action
    return found


def _attribute(value: Any) -> str | None:
    """A resource attribute from its property: a string is one; any other JSON value (§5.1.1,
    §10.1.1: properties hold any JSON value) leaves it unknown, and unknown never allows."""
    return value if parsing.short(value, parsing.MAX_TEXT) else None


def _restrictions(value: Any) -> frozenset[str]:
    """The restriction values from `properties.restrictions`: its strings (as `_attribute`)."""
    if type(value) is not list:
        return EMPTY
    return frozenset(v for v in value if type(v) is str) or EMPTY


def parse_item(state: State, raw: dict[str, Any], index: int | None = None) -> Item:
    """Validate the structure of one evaluation (`evaluations[index]`); map it onto the model.

    The common shape (a check with string ids and string attributes, no subject or action
    properties) takes `_plain_check`, which builds no error paths; anything else, and every
    error, takes `_parse_item`, whose messages name the field. An item the fast path answers
    gets the same `Item` from the precise path (tests/api/test_authzen.py holds them to it).
    A malformed item is a `BadRequest` (400, AuthZEN 1.0 §10.1.1).
    """
    plain = _plain_check(state.actions, raw)
    if plain is not None:
        return plain[0]
    path = "" if index is None else f"evaluations[{index}]"
    try:
        return _parse_item(state.actions, raw, path)
    except Unprocessable as exc:
        raise BadRequest(exc.detail) from None


def _plain_check(
    actions: dict[str, frozenset[str]], raw: dict[str, Any]
) -> tuple[Item, int] | None:
    """The fast path of `parse_item`: a valid plain check, or None to take the precise path.

    With the item comes how many object keys it holds when it is *sealed*, else -1. A sealed
    item holds nothing but the fields read and type-checked here (no context, no subject
    properties, no other keys, no nulls): only strings and lists of strings, so no numbers,
    and at most `SEALED_DEPTH` levels deep from a batch's root (see `read_batch`).
    """
    subject = raw.get("subject")
    action_body = raw.get("action")
    body = raw.get("resource")
    if type(subject) is not dict or type(action_body) is not dict or type(body) is not dict:
        return None
    sid = subject.get("id")
    action = action_body.get("name")
    type_id = body.get("type")
    if not (parsing.short(sid, 256) and parsing.short(action, 256) and parsing.short(type_id, 256)):
        return None
    allowed = actions.get(type_id)
    if allowed is None or action not in allowed:
        return None
    rid = body.get("id")
    context = raw.get("context")
    if (
        not parsing.short(rid, parsing.MAX_TEXT)
        or not parsing.short(subject.get("type"), 256)
        or subject.get("properties") is not None  # for conditions: the precise path
        or action_body.get("properties") is not None
        or (context is not None and type(context) is not dict)
    ):
        return None
    props = body.get("properties")
    if props is None:
        props = {}
        read = 2  # keys read in the resource object
    elif type(props) is not dict:
        return None
    else:
        read = 3
    company = props.get("company")
    vendor = props.get("vendor")
    owner = props.get("owner")
    customer = props.get("customer")
    attributes = 0
    for value in (company, vendor, owner, customer):
        if value is not None:
            if not parsing.short(value, parsing.MAX_TEXT):
                return None
            attributes += 1
    codes = props.get("restrictions")
    restrictions = EMPTY if codes is None else parsing.plain_set(codes)
    if restrictions is None:
        return None
    attributes += codes is not None
    resource = new_tuple(
        Resource,
        (type_id, rid, company, restrictions, vendor, owner, customer, props, NO_PROPERTIES),
    )
    item = new_tuple(Item, ("check", sid, action, resource, None, None, None))
    if (
        len(raw) == 3
        and len(action_body) == 1
        and len(subject) == 2
        and len(body) == read
        and len(props) == attributes
    ):
        return item, 6 + read + attributes
    return item, -1


def read_batch(
    actions: dict[str, frozenset[str]], body: bytes, value: Any, max_depth: int, max_batch: int
) -> tuple[dict[str, Any], list[Item | None]]:
    """The safety pass over a decoded `/access/v1/evaluations` body, plus its plain checks.

    Items that `_plain_check` accepts and finds sealed are proven free of numbers and deep
    nesting already, so `parsing.check` walks the rest of the document only, with their keys
    counted in: the same verdicts and messages as `parsing.loads` (tests/api/test_authzen.py
    compares them on generated batches); for 100 plain checks the pass drops from about
    150 µs to 45 µs. Returns the body and, per item, the `Item` `_plain_check` built (sealed
    or not: without defaults it is the item's whole meaning), else None.
    """
    parsed: list[Item | None] = []
    known = 0
    shadow = value
    raw_items = value.get("evaluations") if type(value) is dict else None
    if (
        type(raw_items) is list
        and 0 < len(raw_items) <= max_batch
        and max_depth >= SEALED_DEPTH
        and not any(key in value for key in ITEM_KEYS)  # no defaults to merge
    ):
        rest: list[Any] = []
        for raw in raw_items:
            plain = _plain_check(actions, raw) if type(raw) is dict else None
            parsed.append(None if plain is None else plain[0])
            if plain is None or plain[1] < 0:
                rest.append(raw)  # the safety pass walks it
            else:
                known += plain[1]
                rest.append(None)
        if known:
            shadow = {**value, "evaluations": rest}
    parsing.check(body, shadow, max_depth, known)
    return parsing.expect_object(value), parsed


def _parse_item(actions: dict[str, frozenset[str]], raw: dict[str, Any], path: str) -> Item:
    """The precise path: `Unprocessable` naming the field for a malformed item (its callers
    turn it into a 400), an error `Item` for a well-formed one that names nothing."""
    prefix = f"{path}." if path else ""
    subject, subject_props = _subject(raw.get("subject"), f"{prefix}subject")
    action, action_props = _action(raw.get("action"), f"{prefix}action")
    type_id, rid, props = _resource(raw.get("resource"), f"{prefix}resource")
    context = raw.get("context")
    if context is not None:
        parsing.obj(context, f"{prefix}context")
    allowed = actions.get(type_id)
    if action == PURCHASE and type_id == CARTS:
        return _purchase(subject, action, type_id, rid, props, f"{prefix}resource.properties")
    if allowed is None:
        if type_id == "route":
            return Item("route", subject, action, Resource(type_id, rid))
        if type_id == "purchase":
            return _purchase(subject, action, type_id, rid, props, f"{prefix}resource.properties")
        unknown = f"unknown resource type {type_id!r}"
        return Item("error", subject, action, Resource(type_id, rid), error=(422, unknown))
    if action not in allowed:
        missing = f"{type_id!r} has no action {action!r}"
        return Item("error", subject, action, Resource(type_id, rid), error=(422, missing))
    resource = Resource(
        type_id,
        rid,
        _attribute(props.get("company")),
        _restrictions(props.get("restrictions")),
        _attribute(props.get("vendor")),
        _attribute(props.get("owner")),
        _attribute(props.get("customer")),
        props,
        _request(subject_props, action_props),
    )
    return Item("check", subject, action, resource)


def _failed(raw: Any, detail: str) -> Item:
    """The error item of a batch item that is not a valid evaluation (§7.2.1 "Errors"), with
    what it names, as far as it names anything, for the decision log."""
    part = raw if type(raw) is dict else {}

    def read(key: str, field: str) -> Any:
        found = part.get(key)
        return found.get(field) if type(found) is dict else None

    subject, action = read("subject", "id"), read("action", "name")
    type_id, rid = read("resource", "type"), read("resource", "id")
    resource = None
    if type(type_id) is str:
        resource = Resource(type_id, rid if type(rid) is str else None)
    return Item(
        "error",
        subject if type(subject) is str else "",
        action if type(action) is str else "",
        resource,
        error=(400, detail),
    )


def _purchase(
    subject: str, action: str, type_id: str, rid: str, props: dict[str, Any], path: str
) -> Item:
    """A purchase question; the resource keeps the cart id and, as its `customer`, the cost
    centre (a purchase item has no other use for it)."""
    try:
        company = parsing.ident(props.get("company"), f"{path}.company")
        money = parsing.amount(props.get("amount"), props.get("currency"), path)
        center = props.get("cost_center")
        cost_center = None if center is None else parsing.ident(center, f"{path}.cost_center")
    except InvalidInput as exc:
        return Item("error", subject, action, error=(422, exc.detail))
    cart = Resource(type_id, rid, company, customer=cost_center)
    return Item("purchase", subject, action, cart, money=money, company=company)


async def decide(
    state: State, tenant: str, items: list[Item], min_rev: int | None
) -> list[dict[str, Any]]:
    """Answer items in order: plain checks in one batch, routes and purchases one by one."""
    checks = [it for it in items if it.kind == "check"]
    answers: Iterator[Answer] = iter(())
    if checks:
        # A check item always has its resource (see `_plain_check` and `_parse_item`).
        questions = [(it.subject, it.action, cast(Resource, it.resource)) for it in checks]
        answers = iter(await state.decider.check_many(tenant, questions, min_revision=min_rev))
    out: list[dict[str, Any]] = []
    for item in items:
        if item.kind == "check":
            answer = next(answers)
            out.append(_decision(answer.decision, answer.revision, answer.stale))
        elif item.kind == "route":
            out.append(await _route(state, tenant, item, min_rev))
        elif item.kind == "purchase":
            out.append(await _purchase_decision(state, tenant, item, min_rev))
        else:
            status, message = item.error or (422, "invalid item")
            out.append(
                {
                    "decision": False,
                    "context": {"reason": message, "error": {"status": status, "message": message}},
                }
            )
    return out


def _decision(decision: Decision, revision: int, stale: bool) -> dict[str, Any]:
    """An AuthZEN decision: the reason, the revision, the group that allowed, stale answers."""
    context: dict[str, Any] = {"reason": decision.reason, "revision": revision}
    if decision.group is not None:
        context["group"] = decision.group
    if stale:
        context["stale"] = True
    return {"decision": decision.allow, "context": context}


async def _route(state: State, tenant: str, item: Item, min_rev: int | None) -> dict[str, Any]:
    assert item.resource is not None
    path = item.resource.id or ""
    route = state.routes.match(item.action, path)
    if route is None:
        nothing = Decision(False, f"no route matches {item.action.upper()} {path}")
        return _decision(nothing, 0, False)
    answer = await state.decider.some(
        tenant, item.subject, route.action, route.resource_type, min_revision=min_rev
    )
    result = _decision(answer.decision, answer.revision, answer.stale)
    result["context"]["route"] = {"type": route.resource_type, "action": route.action}
    return result


async def _purchase_decision(
    state: State, tenant: str, item: Item, min_rev: int | None
) -> dict[str, Any]:
    assert item.company is not None and item.money is not None and item.resource is not None
    cost_center = item.resource.customer
    try:
        answer = await state.decider.purchase(
            tenant,
            item.subject,
            item.company,
            item.money,
            cost_center=cost_center,
            min_revision=min_rev,
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
        cart: dict[str, Any] = {"id": item.resource.id}
        if cost_center is not None:
            cart["cost_center"] = cost_center
        context["approval"] = {
            "rule": result.rule,
            "rules": list(result.rules),
            "tiers": tiers_body(result),
            "requestable": True,
            "request": {
                "method": "POST",
                "href": "/v1/approvals",
                "body": {
                    "subject": {"id": item.subject},
                    "company": item.company,
                    # The amount as sent: `Money` keeps the exact decimal it was given.
                    "amount": f"{item.money.amount:f}",
                    "currency": item.money.currency,
                    "cart": cart,
                },
            },
        }
    if result.error is not None:
        context["error"] = {"status": 422, "message": result.error}
    return {"decision": result.decision == "allow" and result.error is None, "context": context}


async def tenant_of(state: State, headers: Headers, caller: Caller) -> str:
    """The tenant of an AuthZEN request (see the module docstring)."""
    return await state.tenants.resolve(_requested_tenant(headers), caller)


def _requested_tenant(headers: Headers) -> str | None:
    """`X-Groupgate-Tenant`, at most once and a valid id, or None."""
    return _tenant_id(single(headers, TENANT_HEADER))


def _tenant_id(requested: str | None) -> str | None:
    return None if requested is None else parsing.ident(requested, TENANT_HEADER)


#: The headers a single evaluation reads (`Asked`), in its order.
ASKED = (AUTHORIZATION, KEY_HEADER, "Content-Type", TENANT_HEADER, MIN_REVISION, REQUEST_ID)


class Asked(NamedTuple):
    """The headers a single evaluation reads, each read once: their first values, and the
    names of those sent more than once. A repeat is refused (`duplicate`) where the
    evaluation reads that header, in its order: credentials, tenant, consistency token;
    `Content-Type` and `X-Request-ID` take their first copy, as `getall` readers do. A
    listener fills it its own way: `asked` from any header view, the decision listener from
    the fields its parser picked out."""

    authorization: str | None
    key: str | None
    content_type: str | None
    tenant: str | None
    min_revision: str | None
    request_id: str | None
    repeated: frozenset[str]


NONE_REPEATED: frozenset[str] = frozenset()


def asked(headers: Headers) -> Asked:
    """The headers of `ASKED` as `Asked`."""
    values, repeated = first_values(headers, ASKED)
    return new_tuple(Asked, (*values, frozenset(repeated) if repeated else NONE_REPEATED))


def _once(sent: Asked, name: str, value: str | None) -> str | None:
    """`value` of header `name`, unless it came twice (then the 400 `single` raises)."""
    if sent.repeated and name in sent.repeated:
        raise duplicate(name)
    return value


def _asked_tenant(sent: Asked) -> str | None:
    """`_requested_tenant` of what was sent."""
    return _tenant_id(_once(sent, TENANT_HEADER, sent.tenant))


def _credentials(sent: Asked) -> tuple[str | None, str | None]:
    """`credentials` of what was sent."""
    return (
        _once(sent, AUTHORIZATION, sent.authorization),
        _once(sent, KEY_HEADER, sent.key),
    )


def echo_line(sent: Asked) -> tuple[bytes, ...]:
    """The `X-Request-ID` header line to add to any answer to what was `sent` (the decision
    listener's form of `request_id_of`): empty when there is none to echo."""
    return echo_of(valid_request_id(sent.request_id))


def echo_of(request_id: str | None) -> tuple[bytes, ...]:
    """`echo_line` for a request id already checked (`valid_request_id`)."""
    return () if request_id is None else (f"{REQUEST_ID}: {request_id}".encode("ascii"),)


def spec_error(exc: Exception) -> Exception:
    """The error an AuthZEN endpoint raises for `exc`: a 400 "Bad Request" where the native
    API answers 422 (a missing or mistyped field) or 415 (not JSON): AuthZEN 1.0 §10.1.1
    MUST (a missing required attribute is a Bad Request) and §10.1.2's status table."""
    if isinstance(exc, Unprocessable | UnsupportedMedia):
        return BadRequest(exc.detail)
    return exc


def route(handler: Handler) -> Handler:
    """`handler` as an AuthZEN endpoint of the main listener, guarded: its errors as
    `spec_error` says, and the PEP's `X-Request-ID` on every answer, problems included."""

    @functools.wraps(handler)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except Exception as exc:
            response = to_problem(request, spec_error(exc))
        request_id = request_id_of(request.headers)
        if request_id is not None:
            response.headers[REQUEST_ID] = request_id
        return response

    return guarded(endpoint)


def _record(
    state: State,
    started: float,
    tenant: str,
    caller: Caller,
    items: list[Item],
    decisions: list[dict[str, Any]],
    request_id: str | None = None,
) -> None:
    """Record the decisions of `items` (a batch may stop early: `decisions` may be shorter),
    with the PEP's `X-Request-ID` (`request_id_of`) when it sent one. A single evaluation is
    recorded by `_record_one`."""
    if len(decisions) == 1:
        _record_one(state, started, tenant, caller, items[0], decisions[0], request_id)
        return
    record_many(
        state,
        "authzen",
        started,
        tenant=tenant,
        caller=caller.name,
        allowed=sum(1 for decision in decisions if decision["decision"]),
        count=len(decisions),
        decided=(
            _decided(item, decision)
            for item, decision in zip(items[: len(decisions)], decisions, strict=True)
        ),
        request_id=request_id,
    )


def _record_one(
    state: State,
    started: float,
    tenant: str,
    caller: Caller,
    item: Item,
    decision: dict[str, Any],
    request_id: str | None,
) -> None:
    """`_record` of one decision: `record`, without the batch path's generator."""
    subject, action, kind, rid, allow, reason, revision = _decided(item, decision)
    record(
        state,
        "authzen",
        started,
        tenant=tenant,
        caller=caller.name,
        subject=subject,
        action=action,
        type=kind,
        id=rid,
        allow=allow,
        reason=reason,
        revision=revision,
        request_id=request_id,
    )


def _decided(item: Item, decision: dict[str, Any]) -> Decided:
    context = decision["context"]
    kind: str | None
    rid: str | None
    if item.kind == "purchase":
        kind, rid = "companies", item.company
    elif item.resource is not None:
        kind, rid = item.resource.type, item.resource.id
    else:
        kind = rid = None
    return new_tuple(
        Decided,
        (
            item.subject or None,  # an item too malformed to name one (`_failed`)
            item.action or None,
            kind,
            rid,
            decision["decision"],
            context.get("reason"),
            context.get("revision"),
        ),
    )


async def evaluation(request: web.Request) -> web.Response:
    """POST /access/v1/evaluation (the decision listener answers the same with
    `answer_evaluation`)."""
    state = request.app[STATE]
    raw = await parsing.read_body(request, state.config.limits.max_body_bytes)
    body, _ = await answer_evaluation(state, asked(request.headers), raw)
    return web.Response(body=body, content_type="application/json")


async def answer_evaluation(state: State, sent: Asked, body: bytes) -> tuple[bytes, str | None]:
    """`POST /access/v1/evaluation` without the transport: the JSON answer to `body` sent
    with the headers `sent` (`asked`), and the `X-Request-ID` to echo (None: none). The
    caller has read `body` within the size limit.

    Errors are raised as `spec_error` says; the caller echoes `X-Request-ID` on them too
    (`echo_line`, `route`). `evaluation_answer` without the await."""
    found = evaluation_answer(state, sent, body)
    return found if isinstance(found, tuple) else await found


def evaluation_answer(
    state: State, sent: Asked, body: bytes
) -> tuple[bytes, str | None] | Awaitable[tuple[bytes, str | None]]:
    """`answer_evaluation`, answered at once for an API-key caller whose tenant is known
    asking a plain check about a cached subject without a consistency token (the decision
    listener then answers without a task); otherwise an awaitable of the answer."""
    started = perf_counter()
    try:
        authorization, key = _credentials(sent)
        caller = state.auth.key_caller(authorization, key)
        if caller is None:  # a service token: verified before anything else is read
            return _evaluation_later(state, sent, body, started, None)
        item = _evaluation_item(state, sent.content_type, body)
        tenant = state.tenants.known(_asked_tenant(sent), caller)
        min_rev = parsing.revision(None, _once(sent, MIN_REVISION, sent.min_revision))
    except (Unprocessable, UnsupportedMedia) as exc:
        raise spec_error(exc) from None
    if tenant is not None and min_rev is None and item.kind == "check":
        assert item.resource is not None  # a check item always has its resource
        found = state.decider.check_cached(tenant, item.subject, item.action, item.resource)
        if found is not None:
            decision = _decision(found.decision, found.revision, found.stale)
            request_id = valid_request_id(sent.request_id)
            _record_one(state, started, tenant, caller, item, decision, request_id)
            return orjson.dumps(decision), request_id
    return _evaluation_later(state, sent, body, started, (caller, item, min_rev))


async def _evaluation_later(
    state: State,
    sent: Asked,
    body: bytes,
    started: float,
    read: tuple[Caller, Item, int | None] | None,
) -> tuple[bytes, str | None]:
    """`evaluation_answer` for what must be awaited (`read`: what it has read already)."""
    try:
        if read is None:
            caller = await state.auth.caller(*_credentials(sent))
            item = _evaluation_item(state, sent.content_type, body)
            min_rev = parsing.revision(None, _once(sent, MIN_REVISION, sent.min_revision))
        else:
            caller, item, min_rev = read
        tenant = await state.tenants.resolve(_asked_tenant(sent), caller)
    except (Unprocessable, UnsupportedMedia) as exc:
        raise spec_error(exc) from None
    [decision] = await decide(state, tenant, [item], min_rev)
    request_id = valid_request_id(sent.request_id)
    _record_one(state, started, tenant, caller, item, decision, request_id)
    return orjson.dumps(decision), request_id


def _evaluation_item(state: State, content_type: str | None, body: bytes) -> Item:
    """The media type checked and the body read into one evaluation item.

    A sealed item (see `_plain_check`) skips the safety walk as a batch's do (`read_batch`):
    as the document's root its containers sit two levels higher than in a batch, so any
    `max_json_depth` of at least `SEALED_DEPTH - 2` admits it, and only its key count is
    compared with the raw text's (duplicate keys)."""
    parsing.check_media_type(parsing.media_type(content_type))
    max_depth = state.config.limits.max_json_depth
    value = parsing.decode(body)
    if type(value) is dict and max_depth >= SEALED_DEPTH - 2:
        plain = _plain_check(state.actions, value)
        if plain is not None and plain[1] >= 0:
            parsing.check(body, None, max_depth, plain[1])
            return plain[0]
    parsing.check(body, value, max_depth)
    return parse_item(state, parsing.expect_object(value))


async def evaluations(request: web.Request) -> web.Response:
    """POST /access/v1/evaluations: a batch with defaults and evaluation semantics."""
    started = perf_counter()
    state = request.app[STATE]
    limits = state.config.limits
    caller = await caller_of(state, request)
    raw, value = await parsing.read_unchecked_json(request, limits.max_body_bytes)
    body, parsed = read_batch(state.actions, raw, value, limits.max_json_depth, limits.max_batch)
    tenant = await tenant_of(state, request.headers, caller)
    min_rev = parsing.revision(None, min_revision_header(request))
    raw_items = body.get("evaluations")
    if raw_items is None or raw_items == []:
        # No array: behave as the single evaluation API (AuthZEN 1.0 §7.1).
        item = parse_item(state, body)
        [decision] = await decide(state, tenant, [item], min_rev)
        _record(state, started, tenant, caller, [item], [decision], request_id_of(request.headers))
        return json_response(decision)
    if type(raw_items) is not list:
        raise Unprocessable(f"evaluations: expected an array, got {parsing.kind(raw_items)}")
    if len(raw_items) > limits.max_batch:
        raise TooLarge(f"evaluations: {len(raw_items)} items, the limit is {limits.max_batch}")
    semantic = _semantic(body.get("options"))
    items = parse_items(state, body, parsed)
    decisions = await decide(state, tenant, items, min_rev)
    if semantic != "execute_all":
        stop_on = semantic == "permit_on_first_permit"
        for i, decision in enumerate(decisions):
            if decision["decision"] is stop_on:
                decisions = decisions[: i + 1]
                break
    _record(state, started, tenant, caller, items, decisions, request_id_of(request.headers))
    return json_response({"evaluations": decisions})


#: The readers of the top-level defaults of a batch (§7.1.1 "Default values").
DEFAULTS = {"subject": _subject, "action": _action, "resource": _resource, "context": parsing.obj}


def parse_items(state: State, body: dict[str, Any], parsed: list[Item | None]) -> list[Item]:
    """The items of a batch, defaults merged; `parsed` holds those `read_batch` built.

    A malformed default is a 400 for the whole batch; an item that is not a valid evaluation
    once the defaults are merged (a required part missing or mistyped) is an error item,
    answered `decision: false` (§7.2.1 "Errors", the certification's execute_all case).
    """
    defaults = {k: body[k] for k in ITEM_KEYS if k in body}
    for key, value in defaults.items():
        try:
            DEFAULTS[key](value, key)
        except Unprocessable as exc:
            raise BadRequest(exc.detail) from None
    items = []
    for i, raw in enumerate(body["evaluations"]):
        item = parsed[i] if parsed else None
        if item is None:
            if type(raw) is not dict:
                parsing.obj(raw, f"evaluations[{i}]")  # raises, naming the item
            merged = {**defaults, **raw} if defaults else raw
            try:
                item = parse_item(state, merged, i)
            except BadRequest as exc:
                item = _failed(merged, exc.detail)
        items.append(item)
    return items


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


def public_base(config: Config) -> str:
    """The service's base URL: `public_url`, else the bind address; never the Host header
    (a client must not be able to point the metadata document elsewhere)."""
    if config.public_url:
        return config.public_url.rstrip("/")
    host = config.host
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{config.port}"


WELL_KNOWN = "/.well-known/authzen-configuration"
#: How the tenant of a request is chosen, as a per-tenant metadata document says it.
TENANT_SELECTION = (
    "the endpoints are shared by every tenant: a request is answered in the tenant its "
    "credential is bound to, else in the one its X-Groupgate-Tenant header names"
)


def metadata(base: str, tenant: str | None = None) -> dict[str, Any]:
    """The PDP metadata document (§9.1). With a tenant, the document of the PDP identifier
    `<base>/<tenant>`, published at `/.well-known/authzen-configuration/<tenant>` (§9.2:
    the well-known string goes between the host and the path; §9.2.3: `policy_decision_point`
    MUST be the identifier it was derived from). The endpoints stay the shared ones (§10.1:
    the URL MUST be the endpoint parameter's value), and `groupgate_tenant` tells the PEP how
    to ask in that tenant (a parameter a PEP does not know it MUST ignore, §9.2.2)."""
    found: dict[str, Any] = {
        "policy_decision_point": base if tenant is None else f"{base}/{tenant}",
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
        "search_subject_endpoint": f"{base}/access/v1/search/subject",
        "search_resource_endpoint": f"{base}/access/v1/search/resource",
        "search_action_endpoint": f"{base}/access/v1/search/action",
    }
    if tenant is not None:
        found["groupgate_tenant"] = {
            "id": tenant,
            "header": TENANT_HEADER,
            "selection": TENANT_SELECTION,
        }
    return found


async def configuration(request: web.Request) -> web.Response:
    """GET /.well-known/authzen-configuration: the PDP metadata document."""
    return json_response(metadata(public_base(request.app[STATE].config)))


async def tenant_configuration(request: web.Request) -> web.Response:
    """GET /.well-known/authzen-configuration/<tenant>: a tenant's PDP metadata document.

    Served for any well-formed tenant id, loaded or not (the document is public: whether a
    tenant exists is not said to a caller without a credential); a malformed one is a 404.
    """
    tenant = request.match_info["tenant"]
    if not (parsing.short(tenant, 128) and parsing.ID.match(tenant)):
        raise NotFound(f"no metadata document for {tenant!r}: not a tenant id")
    return json_response(metadata(public_base(request.app[STATE].config), tenant))


def setup(app: web.Application) -> None:
    from groupgate.api import search

    app.router.add_post("/access/v1/evaluation", route(evaluation), name="authzen.evaluation")
    app.router.add_post("/access/v1/evaluations", route(evaluations), name="authzen.evaluations")
    app.router.add_get(WELL_KNOWN, route(configuration), name="authzen.configuration")
    app.router.add_get(
        WELL_KNOWN + "/{tenant}", route(tenant_configuration), name="authzen.tenant_configuration"
    )
    search.setup(app)
