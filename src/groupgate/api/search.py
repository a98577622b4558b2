"""AuthZEN 1.0 search: `/access/v1/search/subject`, `/search/resource`, `/search/action`.

Every answer is `{"results": [...], "page": {"next_token": "..."}}`; an empty `next_token`
means the last page. Tokens are opaque (base64url JSON naming the endpoint and a cursor) and
`page.limit` is capped by `max_search_page` (default page: `search_page_size`).

- subject search: subjects of the tenant, in id order, allowed the action on the resource.
  Subjects are read page by page from the store and decided in batches; one request scans at
  most `SCAN_PAGES` store pages, so a sparse result may come back short with a next token.
  `subject.type` is echoed in the results, not used as a filter (one id space).
- resource search: groupgate holds no entity list, so it answers at the level it knows.
  Without `resource.type`: the resource *types* on which the subject may do the action on
  some entity, as `{"type": t}`. With `resource.type`: the restriction filter: `{"type": t}`
  alone when every entity is allowed, else one `{"type": t, "properties": {...}}` pattern per
  filter (entities whose `restrictions` intersect the listed values and whose attributes are
  among those listed), and no results when none is.
- action search: the level actions and the type's named actions the subject may do on the
  given resource, as `{"name": a}`, in name order.
"""

from __future__ import annotations

import base64
import binascii
from time import perf_counter
from typing import Any, NamedTuple

import orjson
from aiohttp import web

from groupgate.api import parsing
from groupgate.api.app import STATE, State
from groupgate.api.authzen import RESOURCE_ATTRIBUTES, route, tenant_of
from groupgate.api.native import caller_of, json_response, min_revision_header
from groupgate.api.problems import Unprocessable
from groupgate.api.record import record
from groupgate.auth import Caller
from groupgate.model import EMPTY, Resource

SCAN_PAGES = 10


def encode_token(surface: str, cursor: Any) -> str:
    raw = orjson.dumps({"s": surface, "c": cursor})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: Any, surface: str) -> Any:
    """Return the cursor of a page token issued by `surface`; None for the first page."""
    if token is None or token == "":
        return None
    if type(token) is not str or len(token) > 2048:
        raise Unprocessable("page.token: expected a token from a previous answer")
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise Unprocessable("page.token: not a token issued by this endpoint") from None
    if type(data) is not dict or data.get("s") != surface:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    return data.get("c")


def page_of(state: State, body: dict[str, Any]) -> tuple[Any, int]:
    limits = state.config.limits
    raw = body.get("page")
    if raw is None:
        return None, limits.search_page_size
    page = parsing.obj(raw, "page")
    limit = page.get("limit", limits.search_page_size)
    if type(limit) is not int or not 1 <= limit <= limits.max_search_page:
        raise Unprocessable(f"page.limit: expected an integer in [1, {limits.max_search_page}]")
    return page.get("token"), limit


def answer(results: list[dict[str, Any]], next_token: str | None) -> web.Response:
    return json_response({"results": results, "page": {"next_token": next_token or ""}})


def _resource(state: State, raw: Any, path: str, *, type_required: bool) -> Resource | None:
    body = parsing.obj(raw if raw is not None else {}, path)
    type_id = body.get("type")
    if type_id is None and not type_required:
        return None
    type_id = parsing.text(type_id, f"{path}.type", 256)
    if type_id not in state.actions:
        raise Unprocessable(f"{path}.type: unknown resource type {type_id!r}")
    rid = body.get("id")
    if rid is not None and type(rid) is not str:
        raise Unprocessable(f"{path}.id: expected a string")
    props = parsing.obj(body.get("properties") or {}, f"{path}.properties")
    attrs = {
        n: parsing.opt_text(props.get(n), f"{path}.properties.{n}") for n in RESOURCE_ATTRIBUTES
    }
    restrictions = parsing.text_set(props.get("restrictions"), f"{path}.properties.restrictions")
    return Resource(
        type_id,
        rid,
        attrs["company"],
        restrictions or EMPTY,
        attrs["vendor"],
        attrs["owner"],
        attrs["customer"],
        props,
    )


def _action(body: dict[str, Any]) -> str:
    return parsing.text(parsing.obj(body.get("action"), "action").get("name"), "action.name", 256)


def _subject_id(body: dict[str, Any]) -> str:
    # The input subject is a whole Subject, `type` and `id` (AuthZEN 1.0 §5.1, §8.5.1, §8.6.1).
    subject = parsing.obj(body.get("subject"), "subject")
    parsing.text(subject.get("type"), "subject.type", 256)
    return parsing.text(subject.get("id"), "subject.id", 256)


def _resource_id(body: dict[str, Any]) -> None:
    # The input resource is a whole Resource, `type` and `id` (AuthZEN 1.0 §5.2, §8.4.1, §8.6.1).
    parsing.text(parsing.obj(body.get("resource"), "resource").get("id"), "resource.id")


class Asked(NamedTuple):
    """What every search reads first: state, body, tenant, caller, token, start time."""

    state: State
    body: dict[str, Any]
    tenant: str
    caller: Caller
    min_revision: int | None
    started: float


async def _prologue(request: web.Request) -> Asked:
    started = perf_counter()
    state = request.app[STATE]
    limits = state.config.limits
    caller = await caller_of(state, request)
    body = await parsing.read_json(request, limits.max_body_bytes, limits.max_json_depth)
    tenant = await tenant_of(state, request.headers, caller)
    min_rev = parsing.revision(None, min_revision_header(request))
    return Asked(state, body, tenant, caller, min_rev, started)


def _record(
    asked: Asked,
    search: str,
    subject: str | None,
    action: str | None,
    resource: Resource | None,
    found: int,
) -> None:
    """Record a search as one decision: allowed when it found something."""
    record(
        asked.state,
        "authzen",
        asked.started,
        tenant=asked.tenant,
        caller=asked.caller.name,
        subject=subject,
        action=action,
        type=None if resource is None else resource.type,
        id=None if resource is None else resource.id,
        allow=found > 0,
        reason=f"{search} search: {found} found",
        revision=None,
        extra={"search": search},
    )


async def search_subject(request: web.Request) -> web.Response:
    """POST /access/v1/search/subject."""
    asked = await _prologue(request)
    state, body, tenant, min_rev = asked.state, asked.body, asked.tenant, asked.min_revision
    subject = parsing.obj(body.get("subject"), "subject")
    subject_type = parsing.text(subject.get("type"), "subject.type", 256)  # §8.4.1 MUST
    action = _action(body)
    _resource_id(body)
    resource = _resource(state, body.get("resource"), "resource", type_required=True)
    assert resource is not None
    if action not in state.actions[resource.type]:
        raise Unprocessable(f"action.name: {resource.type!r} has no action {action!r}")
    token, limit = page_of(state, body)
    cursor = decode_token(token, "subject")
    if cursor is not None and type(cursor) is not str:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    results: list[dict[str, Any]] = []
    more = False
    for _ in range(SCAN_PAGES):
        page = await state.service.subject_ids(tenant, cursor, limit)
        if not page.items:
            more = False
            break
        answers = await state.service.check_many(
            tenant, [(sid, action, resource) for sid in page.items], min_revision=min_rev
        )
        more = page.next_token is not None
        for index, (sid, found) in enumerate(zip(page.items, answers, strict=True)):
            cursor = sid
            if found.decision.allow:
                results.append({"type": subject_type, "id": sid})
                if len(results) == limit:
                    more = more or index + 1 < len(page.items)
                    break
        if len(results) == limit or not more:
            break
    _record(asked, "subject", None, action, resource, len(results))
    return answer(results, encode_token("subject", cursor) if more else None)


async def search_resource(request: web.Request) -> web.Response:
    """POST /access/v1/search/resource."""
    asked = await _prologue(request)
    state, body, tenant, min_rev = asked.state, asked.body, asked.tenant, asked.min_revision
    subject = _subject_id(body)
    action = _action(body)
    resource = _resource(state, body.get("resource"), "resource", type_required=True)  # §8.5.1
    token, limit = page_of(state, body)
    offset = decode_token(token, "resource") or 0
    if type(offset) is not int or offset < 0:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    results: list[dict[str, Any]] = []
    if resource is None:
        for type_id in sorted(state.actions):
            if action not in state.actions[type_id]:
                continue
            found = await state.service.some(tenant, subject, action, type_id, min_revision=min_rev)
            if found.decision.allow:
                results.append({"type": type_id})
    else:
        if action not in state.actions[resource.type]:
            raise Unprocessable(f"action.name: {resource.type!r} has no action {action!r}")
        found_filter = await state.service.filter(
            tenant, subject, action, resource.type, min_revision=min_rev
        )
        if found_filter.result.all:
            results.append({"type": resource.type})
        for item in found_filter.result.filters:
            properties: dict[str, Any] = {
                k: sorted(map(str, v)) for k, v in item.attributes.items()
            }
            if item.restrictions is not None:
                properties["restrictions"] = sorted(item.restrictions)
            results.append({"type": resource.type, "properties": properties})
    window = results[offset : offset + limit]
    more = offset + limit < len(results)
    _record(asked, "resource", subject, action, resource, len(window))
    return answer(window, encode_token("resource", offset + limit) if more else None)


async def search_action(request: web.Request) -> web.Response:
    """POST /access/v1/search/action."""
    asked = await _prologue(request)
    state, body, tenant, min_rev = asked.state, asked.body, asked.tenant, asked.min_revision
    subject = _subject_id(body)
    _resource_id(body)
    resource = _resource(state, body.get("resource"), "resource", type_required=True)
    assert resource is not None
    token, limit = page_of(state, body)
    offset = decode_token(token, "action") or 0
    if type(offset) is not int or offset < 0:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    candidates = sorted(state.actions[resource.type])
    answers = await state.service.check_many(
        tenant, [(subject, a, resource) for a in candidates], min_revision=min_rev
    )
    allowed = [
        {"name": a} for a, found in zip(candidates, answers, strict=True) if found.decision.allow
    ]
    window = allowed[offset : offset + limit]
    more = offset + limit < len(allowed)
    _record(asked, "action", subject, None, resource, len(window))
    return answer(window, encode_token("action", offset + limit) if more else None)


def setup(app: web.Application) -> None:
    # `route`: 400 for a missing or mistyped field, X-Request-ID echoed (see `authzen`).
    app.router.add_post(
        "/access/v1/search/subject", route(search_subject), name="authzen.search_subject"
    )
    app.router.add_post(
        "/access/v1/search/resource", route(search_resource), name="authzen.search_resource"
    )
    app.router.add_post(
        "/access/v1/search/action", route(search_action), name="authzen.search_action"
    )
