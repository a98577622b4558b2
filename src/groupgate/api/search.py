"""AuthZEN 1.0 search: `/access/v1/search/subject`, `/search/resource`, `/search/action`.

Every answer is `{"results": [...], "page": {"next_token": "..."}}`; an empty `next_token`
means the last page. `page.limit` is a non-negative integer capped by `max_search_page`
(default page: `search_page_size`); `limit: 0` answers no results and a token for the same
position. Tokens are opaque (base64url JSON naming the endpoint, a cursor and a digest of
the tenant and the request without its `page`): a token sent with another request is a 400
(the spec's SHOULD); one that was never issued is a 422. Each result evaluates to `true`
when asked as an evaluation naming it (with the held attributes of a held resource).

An unknown subject type, resource type or action names nothing: 200 with no results (the
interop scenario's "valid empty response").

- subject search: subjects of the asked type (`Catalog.subject_types`: `user` and `identity`
  name every subject, `employee`, `customer`, `vendor_user` their kind, a policy may declare
  more), in id order, allowed the action on the resource. Subjects are read page by page and
  decided in batches; one request scans at most `SCAN_PAGES` pages, so a sparse result may
  come back short with a next token.
- resource search: the entities groupgate holds, in id order, each allowed for the subject
  and action: held resource entities of the type (`resources` of the graph), else the
  tenant's companies (`companies`) or customers (`customers`); such an entity is asked with
  its type and id only (plus held attributes), as an evaluation naming it would be. For a
  type whose entities live elsewhere (orders, products...), an empty page whose `context`
  says so and points to `/v1/filter`, which answers how to filter them. `resource.type`
  is required (AuthZEN 1.0 section 8.5.1): without it the answer is a 400.
- action search: the level actions and the type's named actions the subject may do on the
  given resource, as `{"name": a}`, in name order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Sequence
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
from groupgate.errors import InvalidInput
from groupgate.model import EMPTY, Resource, SubjectKind

SCAN_PAGES = 10
#: Candidates decided per batch of a resource search (at least the page limit).
SCAN_CHUNK = 100
FILTER_POINTER = "/v1/filter"
ALL_KINDS = frozenset(SubjectKind)


class TokenMismatch(InvalidInput):
    """A page token sent with a request other than the one it was issued for."""

    title = "Page token of another request"


class Paging(NamedTuple):
    """A search's page: the cursor of its token (None: first page), its limit and the
    digest that binds tokens to the request."""

    cursor: Any
    limit: int
    digest: str


def request_digest(tenant: str, body: dict[str, Any]) -> str:
    """A digest of the tenant and the request without its `page`."""
    asked = {k: v for k, v in body.items() if k != "page"}
    raw = orjson.dumps([tenant, asked], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:24]


def encode_token(surface: str, digest: str, cursor: Any) -> str:
    raw = orjson.dumps({"s": surface, "r": digest, "c": cursor})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: Any, surface: str, digest: str) -> Any:
    """Return the cursor of a page token issued by `surface` for this request; None for the
    first page."""
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
    if data.get("r") != digest:
        raise TokenMismatch(
            "page.token: issued for another request (a token continues the request that "
            "received it, with only its page changed)"
        )
    return data.get("c")


def page_of(state: State, tenant: str, body: dict[str, Any], surface: str) -> Paging:
    limits = state.config.limits
    digest = request_digest(tenant, body)
    raw = body.get("page")
    if raw is None:
        return Paging(None, limits.search_page_size, digest)
    page = parsing.obj(raw, "page")
    limit = page.get("limit", limits.search_page_size)
    if type(limit) is not int or not 0 <= limit <= limits.max_search_page:
        raise Unprocessable(f"page.limit: expected an integer in [0, {limits.max_search_page}]")
    return Paging(decode_token(page.get("token"), surface, digest), limit, digest)


def answer(
    results: list[dict[str, Any]],
    next_token: str | None,
    context: dict[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"results": results, "page": {"next_token": next_token or ""}}
    if context is not None:
        body["context"] = context
    return json_response(body)


def _resource(state: State, raw: Any, path: str) -> Resource | None:
    """The resource of a search (its type is required); None for a type groupgate does not
    know (the search then finds nothing)."""
    body = parsing.obj(raw if raw is not None else {}, path)
    type_id = parsing.text(body.get("type"), f"{path}.type", 256)
    rid = body.get("id")
    if rid is not None and type(rid) is not str:
        raise Unprocessable(f"{path}.id: expected a string")
    props = parsing.obj(body.get("properties") or {}, f"{path}.properties")
    attrs = {
        n: parsing.opt_text(props.get(n), f"{path}.properties.{n}") for n in RESOURCE_ATTRIBUTES
    }
    restrictions = parsing.text_set(props.get("restrictions"), f"{path}.properties.restrictions")
    if type_id not in state.actions:
        return None
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


#: Read candidates after a cursor: (candidates, last id read, whether more follow it).
Fetch = Callable[[str | None, int], Awaitable[tuple[list[str], str | None, bool]]]
#: Decide candidates: one allow flag each, in order.
Decide = Callable[[list[str]], Awaitable[list[bool]]]


async def scan(
    fetch: Fetch, decide: Decide, cursor: str | None, limit: int
) -> tuple[list[str], str | None, bool]:
    """Up to `limit` allowed candidates after `cursor`, with the next cursor and whether
    more may follow. Reads at most `SCAN_PAGES` batches."""
    if limit == 0:
        _, last, _ = await fetch(cursor, 1)
        return [], cursor, last is not None
    found: list[str] = []
    more = False
    for _ in range(SCAN_PAGES):
        candidates, last, more = await fetch(cursor, max(limit, SCAN_CHUNK))
        if last is None:
            return found, cursor, False
        allowed = await decide(candidates) if candidates else []
        for candidate, ok in zip(candidates, allowed, strict=True):
            if ok:
                found.append(candidate)
                if len(found) == limit:
                    return found, candidate, more or candidate != last
        cursor = last
        if not more:
            break
    return found, cursor, more


def listed(ids: Sequence[str]) -> Fetch:
    """A `Fetch` over a sorted id sequence held in memory."""

    async def fetch(after: str | None, n: int) -> tuple[list[str], str | None, bool]:
        start = 0 if after is None else bisect_right(ids, after)
        chunk = list(ids[start : start + n])
        return chunk, chunk[-1] if chunk else None, start + n < len(ids)

    return fetch


def subjects_of(
    state: State, tenant: str, kinds: frozenset[SubjectKind], min_rev: int | None
) -> Fetch:
    """A `Fetch` over the tenant's subjects of `kinds`, page by page from the store."""

    async def fetch(after: str | None, n: int) -> tuple[list[str], str | None, bool]:
        page = await state.decider.subject_ids(tenant, after, n)
        ids = list(page.items)
        last = ids[-1] if ids else None
        if ids and kinds != ALL_KINDS:
            found = await state.decider.subject_kinds(tenant, ids, min_revision=min_rev)
            ids = [sid for sid, kind in zip(ids, found, strict=True) if kind in kinds]
        return ids, last, page.next_token is not None

    return fetch


async def search_subject(request: web.Request) -> web.Response:
    """POST /access/v1/search/subject."""
    asked = await _prologue(request)
    state, body, tenant, min_rev = asked.state, asked.body, asked.tenant, asked.min_revision
    subject = parsing.obj(body.get("subject"), "subject")
    subject_type = parsing.text(subject.get("type"), "subject.type", 256)  # §8.4.1 MUST
    action = _action(body)
    _resource_id(body)
    resource = _resource(state, body.get("resource"), "resource")
    paging = page_of(state, tenant, body, "subject")
    cursor = paging.cursor
    if cursor is not None and type(cursor) is not str:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    kinds = state.service.catalog.subject_types.get(subject_type)
    if resource is None or kinds is None or action not in state.actions[resource.type]:
        _record(asked, "subject", None, action, resource, 0)
        return answer([], None)
    asked_about = resource

    async def decide(ids: list[str]) -> list[bool]:
        answers = await state.decider.check_many(
            tenant, [(sid, action, asked_about) for sid in ids], min_revision=min_rev
        )
        return [found.decision.allow for found in answers]

    fetch = subjects_of(state, tenant, kinds, min_rev)
    ids, cursor, more = await scan(fetch, decide, cursor, paging.limit)
    _record(asked, "subject", None, action, resource, len(ids))
    results = [{"type": subject_type, "id": sid} for sid in ids]
    return answer(results, encode_token("subject", paging.digest, cursor) if more else None)


async def _entities(asked: Asked, type_id: str) -> Fetch | None:
    """Where the entities of `type_id` come from; None when groupgate holds none."""
    decider, tenant = asked.state.decider, asked.tenant
    held = await decider.held_ids(tenant, type_id, min_revision=asked.min_revision)
    if held:
        return listed(held)
    if type_id == "companies":
        return listed(await decider.company_ids(tenant))
    if type_id == "customers":
        customers = frozenset({SubjectKind.CUSTOMER})
        return subjects_of(asked.state, tenant, customers, asked.min_revision)
    return None


async def search_resource(request: web.Request) -> web.Response:
    """POST /access/v1/search/resource."""
    asked = await _prologue(request)
    state, body, tenant, min_rev = asked.state, asked.body, asked.tenant, asked.min_revision
    subject = _subject_id(body)
    action = _action(body)
    raw = body.get("resource")
    resource = _resource(state, raw, "resource")  # §8.5.1 MUST
    paging = page_of(state, tenant, body, "resource")
    if resource is None:  # a type groupgate does not know: no results
        _record(asked, "resource", subject, action, None, 0)
        return answer([], None)
    type_id = resource.type
    if action not in state.actions[type_id]:
        _record(asked, "resource", subject, action, resource, 0)
        return answer([], None)
    cursor = paging.cursor
    if cursor is not None and type(cursor) is not str:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    fetch = await _entities(asked, type_id)
    if fetch is None:
        _record(asked, "resource", subject, action, resource, 0)
        context = {
            "reason": f"groupgate holds no {type_id} entities: they live in the service "
            f"that owns them; {FILTER_POINTER} answers how to filter them for this subject",
            "filter": FILTER_POINTER,
        }
        return answer([], None, context)

    async def decide(ids: list[str]) -> list[bool]:
        answers = await state.decider.check_many(
            tenant, [(subject, action, Resource(type_id, rid)) for rid in ids], min_revision=min_rev
        )
        return [found.decision.allow for found in answers]

    ids, cursor, more = await scan(fetch, decide, cursor, paging.limit)
    _record(asked, "resource", subject, action, resource, len(ids))
    results = [{"type": type_id, "id": rid} for rid in ids]
    return answer(results, encode_token("resource", paging.digest, cursor) if more else None)


async def search_action(request: web.Request) -> web.Response:
    """POST /access/v1/search/action."""
    asked = await _prologue(request)
    state, body, tenant, min_rev = asked.state, asked.body, asked.tenant, asked.min_revision
    subject = _subject_id(body)
    _resource_id(body)
    resource = _resource(state, body.get("resource"), "resource")
    paging = page_of(state, tenant, body, "action")
    offset = paging.cursor or 0
    if type(offset) is not int or offset < 0:
        raise Unprocessable("page.token: not a token issued by this endpoint")
    if resource is None:
        _record(asked, "action", subject, None, None, 0)
        return answer([], None)
    candidates = sorted(state.actions[resource.type])
    answers = await state.decider.check_many(
        tenant, [(subject, a, resource) for a in candidates], min_revision=min_rev
    )
    allowed = [
        {"name": a} for a, found in zip(candidates, answers, strict=True) if found.decision.allow
    ]
    window = allowed[offset : offset + paging.limit]
    more = offset + paging.limit < len(allowed)
    _record(asked, "action", subject, None, resource, len(window))
    token = encode_token("action", paging.digest, offset + paging.limit) if more else None
    return answer(window, token)


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
