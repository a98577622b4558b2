"""Gateway forward-auth as a use case: one auth request in, a status and headers out.

`decide(state, method, target, headers)` takes the auth request's own method, its raw
request target and a case-insensitive view of its headers, and returns a `GatewayAnswer`.
Nothing here knows the HTTP server: `groupgate.api.gateway` wraps it for aiohttp, and any
other listener can call it with a `multidict.CIMultiDict` of the request's headers, or call
`answer` with the headers it reads (`Sent`: each header's first value and the first header
sent twice), as the decision listener does from the fields its parser picked out.

Endpoints (by the target's path; anything else is a 404):

| gateway kind (`gateway_kind`) | endpoint | original method | original URI |
|---|---|---|---|
| `nginx`, `haproxy` | `/v1/gateway/auth` or `/auth` | `X-Original-Method` | `X-Original-URI` |
| `caddy`, `traefik` | `/v1/gateway/auth` or `/auth` | `X-Forwarded-Method` | `X-Forwarded-Uri` |
| `envoy` | `/v1/gateway/envoy/<path>` | the auth request's own | the target after the prefix |

Trust model: the original request is read only from what the configured kind's proxy writes
itself; the proxies of the other kinds pass some client headers through, so a header the
configured proxy does not write may come from the client. These are refused with a 403,
logged at info with their reason (named in parentheses) and recorded as a denial, before any
token is read, so no decision is ever made on a spoofed value:

- a request to the endpoint of another kind (`wrong-endpoint`): the envoy prefix while the
  kind is a header kind, or `/v1/gateway/auth` while it is `envoy`;
- a repeated `Authorization`, `X-Groupgate-Key`, `X-Groupgate-Min-Revision`, or original-request
  header of either family (`duplicate-header`): a proxy that appends instead of replacing
  would otherwise let the client's copy decide;
- both families present and disagreeing on the method or the URI (`families-disagree`): Caddy
  and Traefik pass a client's `X-Original-*` through, nginx a client's `X-Forwarded-*`;
- the configured family missing (`no-original-request`), a method that is not an HTTP token
  (`bad-method`), a non-normalised path (`non-normalised-path`: `..`, `.`, `//`, backslashes,
  encoded `/`, `\\`, `.` or NUL, which the upstream might read differently), or an
  `X-Groupgate-Min-Revision` that `parsing.revision` refuses (`bad-min-revision`).

Methods: `HEAD` is decided as `GET` (the route table lists `GET`). `OPTIONS` gets no
exemption: a CORS preflight carries no credentials, so it is answered 401 like any request
without a token; answer preflights at the proxy, before the auth step.

Then the subject comes from `Authorization: Bearer <JWT>` (verified per the `jwt_*` settings;
its tenant claim picks the tenant). The route table maps (method, path) to (type, action) and
the question is `Decider.some`: may the subject do the action on some entity of that type
(the service behind checks the entity itself).

Answers, all with empty bodies: 200 allowed, always with `X-Groupgate-Subject` and
`X-Groupgate-Tenant` for the upstream (a subject or tenant that is not visible ASCII is
refused rather than sent); 401 no or bad token (with `WWW-Authenticate`); 403 for the above,
no route (unknown routes are denied), a tenant the caller may not use, or a denial; 503 when
the store is down past the staleness bound (fail closed). A caller key is not required here
(the token authenticates), but one sent in `X-Groupgate-Key` must be valid and its tenant
binding applies. Every answer but a 404, 401s and 503s included, is recorded through
`groupgate.api.record.record` (surface `gateway`, the method and path as extras).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from groupgate import log
from groupgate.api import http_rules, parsing
from groupgate.api.headers import Headers, first_values
from groupgate.api.record import record
from groupgate.auth import ANONYMOUS, Caller, Identity, credential
from groupgate.errors import AuthError, Forbidden, GroupgateError, InvalidInput, StoreUnavailable
from groupgate.model import Route, new_tuple
from groupgate.store.contract import Answer

if TYPE_CHECKING:
    from groupgate.api.app import State

AUTH_PATHS = frozenset({"/v1/gateway/auth", "/auth"})
ENVOY_PREFIX = "/v1/gateway/envoy"
AUTHORIZATION = "Authorization"
KEY = "X-Groupgate-Key"
MIN_REVISION = "X-Groupgate-Min-Revision"
SUBJECT = "X-Groupgate-Subject"
TENANT = "X-Groupgate-Tenant"
ORIGINAL = ("X-Original-Method", "X-Original-URI")
FORWARDED = ("X-Forwarded-Method", "X-Forwarded-Uri")
#: The header family each header kind's proxy writes itself (envoy writes none).
FAMILIES = {"nginx": ORIGINAL, "haproxy": ORIGINAL, "caddy": FORWARDED, "traefik": FORWARDED}
CHALLENGE = 'Bearer realm="groupgate"'
MAX_URI = 8192
_FORBIDDEN_ESCAPES = ("%2f", "%5c", "%00", "%2e")
#: A path of unreserved characters and sub-delims only: no escape, no backslash, no control.
_PLAIN = re.compile(r"[A-Za-z0-9/\-._~!$&'()*+,;=:@]*\Z")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}\Z")
#: Methods that are HTTP tokens, known without the pattern (most requests use one of them).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The longest subject or tenant sent to the upstream in a header.
MAX_IDENTITY = 512


class GatewayAnswer(NamedTuple):
    """The status and headers of an answer; the body is always empty."""

    status: int
    headers: tuple[tuple[str, str], ...]


NOT_FOUND = GatewayAnswer(404, ())
FORBIDDEN = GatewayAnswer(403, ())
UNAVAILABLE = GatewayAnswer(503, ())


class Refused(Exception):
    """A 403 before any decision: `reason` names the rule, `detail` says what was seen."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Original(NamedTuple):
    """The proxied request as the configured gateway reports it."""

    method: str
    uri: str
    path: str


def normalised_path(uri: str) -> str | None:
    """Return the decoded path of `uri`, or None when it is not in normal form."""
    if not uri.startswith("/") or len(uri) > MAX_URI:
        return None
    path = uri.split("?", 1)[0].split("#", 1)[0] if "?" in uri or "#" in uri else uri
    if _PLAIN.match(path) and "//" not in path and "/." not in path:
        return path  # the common case: nothing escaped, no dot segment, nothing to decode
    lowered = path.lower()
    if "//" in path or "\\" in path or any(e in lowered for e in _FORBIDDEN_ESCAPES):
        return None
    try:
        segments = [unquote(s, errors="strict") for s in path.split("/")[1:]]
    except UnicodeDecodeError:
        return None
    for segment in segments:
        if segment in (".", "..") or any(ord(c) < 0x20 or c == "\x7f" for c in segment):
            return None
    return "/" + "/".join(segments)


def visible(text: str) -> bool:
    """Whether `text` may be sent in a header as it is: 1 to `MAX_IDENTITY` visible ASCII
    characters (0x21-0x7e), nothing else."""
    return (
        0 < len(text) <= MAX_IDENTITY
        and text.isascii()
        and text.isprintable()  # of ASCII: 0x20-0x7e
        and " " not in text
    )


def unauthorized(error: str | None) -> GatewayAnswer:
    """A 401 with its challenge (`error="invalid_token"` when a token was refused)."""
    value = CHALLENGE if error is None else f'{CHALLENGE}, error="{error}"'
    return GatewayAnswer(401, (("WWW-Authenticate", value),))


#: The headers forward-auth reads, in the order in which a repeat of one is refused: the
#: original request's (while reading it), then the credentials'.
READ = (*ORIGINAL, *FORWARDED, AUTHORIZATION, KEY, MIN_REVISION)


class Sent(NamedTuple):
    """The first value of each header in `READ`, and the first of them that was sent more
    than once (its name and count; None when none was). A listener reads them its own way:
    `read` from any header view, the decision listener from the fields it picked out."""

    original_method: str | None
    original_uri: str | None
    forwarded_method: str | None
    forwarded_uri: str | None
    authorization: str | None
    key: str | None
    min_revision: str | None
    repeated: tuple[str, int] | None


def read(headers: Headers) -> Sent:
    """The headers of `READ` as `Sent`."""
    values, repeated = first_values(headers, READ)
    first = next(iter(repeated.items()), None)  # in `READ` order
    return new_tuple(Sent, (*values, first))


_FAMILY_HEADERS = frozenset(ORIGINAL + FORWARDED)
_METHODS_SENT = (ORIGINAL[0], FORWARDED[0])
_URIS_SENT = (ORIGINAL[1], FORWARDED[1])


def _refuse_repeated(sent: Sent) -> None:
    repeated = sent.repeated
    if repeated is not None:
        raise Refused("duplicate-header", f"{repeated[0]} sent {repeated[1]} times")


def endpoint(target: str) -> str | None:
    """`"headers"` or `"envoy"`: which endpoint `target` names; None for neither (404).

    The target routes as on every listener (`http_rules.route_path`: absolute-form accepted,
    percent-escapes of the path decoded but `%2F`)."""
    path = http_rules.route_path(target.encode("utf-8", "surrogateescape")).decode(
        "utf-8", "surrogateescape"
    )
    if path in AUTH_PATHS:
        return "headers"
    if path == ENVOY_PREFIX or path.startswith(ENVOY_PREFIX + "/"):
        return "envoy"
    return None


def original(kind: str, method: str, target: str, sent: Sent, where: str | None = None) -> Original:
    """Read the proxied request under `kind`'s trust rules; raise `Refused` otherwise.

    `where` is `endpoint(target)` when the caller has it already."""
    envoy = (endpoint(target) if where is None else where) == "envoy"
    if envoy != (kind == "envoy"):
        path = target.split("?", 1)[0]
        raise Refused("wrong-endpoint", f"{path[:64]!r} is not the endpoint of kind {kind}")
    repeated = sent.repeated
    if repeated is not None and repeated[0] in _FAMILY_HEADERS:
        _refuse_repeated(sent)
    for ours, theirs, a, b in (
        (*_METHODS_SENT, sent.original_method, sent.forwarded_method),
        (*_URIS_SENT, sent.original_uri, sent.forwarded_uri),
    ):
        if a is not None and b is not None and a != b:
            raise Refused("families-disagree", f"{ours} {a[:64]!r} but {theirs} {b[:64]!r}")
    if envoy:
        origin = http_rules.origin_form(target.encode("utf-8", "surrogateescape"))
        raw = origin.decode("utf-8", "surrogateescape")
        if not raw.startswith(ENVOY_PREFIX):  # the prefix itself escaped: read it no further
            raise Refused("non-normalised-path", f"target {raw[:128]!r}")
        uri = raw[len(ENVOY_PREFIX) :]
        found_method: str | None = method
        found_uri: str | None = uri if uri.startswith("/") else "/" + uri
    elif FAMILIES[kind] is ORIGINAL:
        found_method, found_uri = sent.original_method, sent.original_uri
    else:
        found_method, found_uri = sent.forwarded_method, sent.forwarded_uri
    if not found_method or not found_uri:
        raise Refused("no-original-request", f"no {' / '.join(FAMILIES.get(kind, ()))}")
    if found_method not in _METHODS and not _METHOD.match(found_method):
        raise Refused("bad-method", f"method {found_method[:32]!r}")
    normal = normalised_path(found_uri)
    if normal is None:
        raise Refused("non-normalised-path", f"URI {found_uri[:128]!r}")
    return new_tuple(Original, (found_method, found_uri, normal))


@dataclass(slots=True)
class Trace:
    """What is known of one auth request so far, for the decision record."""

    started: float
    asked: Original | None = None
    subject: str | None = None
    caller: str | None = None
    tenant: str | None = None
    action: str | None = None
    type: str | None = None
    revision: int | None = None

    def record(self, state: State, reason: str, allow: bool = False) -> None:
        """Record the answer through `groupgate.api.record` (denials included)."""
        asked = self.asked
        record(
            state,
            "gateway",
            self.started,
            tenant=self.tenant,
            caller=self.caller,
            subject=self.subject,
            action=self.action,
            type=self.type,
            id=None,
            allow=allow,
            reason=reason,
            revision=self.revision,
            extra=None if asked is None else {"method": asked.method, "path": asked.path},
        )


async def decide(state: State, method: str, target: str, headers: Headers) -> GatewayAnswer:
    """Answer one forward-auth request (see the module docstring for every rule).

    `method` and `target` are the auth request's own (`GET`, `/v1/gateway/auth`); a target
    that names neither endpoint is a 404. `answer` on the headers `read`, without the await.
    """
    found = answer(state, method, target, read(headers))
    return found if isinstance(found, GatewayAnswer) else await found


def answer(
    state: State, method: str, target: str, sent: Sent, where: str | None = None
) -> GatewayAnswer | Awaitable[GatewayAnswer]:
    """`decide` on the headers `sent`, answered at once when everything it needs is cached
    (a verified token, the caller key, the tenant, the subject's profile, no consistency
    token); otherwise an awaitable of the answer. The decision listener answers without a
    task that way, and passes `where` (`endpoint(target)`), having routed the target
    already."""
    trace = Trace(perf_counter())
    if where is None:
        where = endpoint(target)
        if where is None:
            return NOT_FOUND
    try:
        trace.asked = original(state.config.gateway_kind, method, target, sent, where)
        _refuse_repeated(sent)  # of the credentials' headers (the others are refused above)
        token = credential(sent.authorization)
        key = sent.key
        min_revision = _min_revision(sent.min_revision)
    except Refused as refused:
        return _refused(state, trace, refused)
    if token is None:
        trace.record(state, "no-token")
        return unauthorized(None)
    try:
        found = _decide_now(state, trace, trace.asked, token, key, min_revision)
    except (GroupgateError, Refused) as exc:
        return _refused(state, trace, exc)
    if found is not None:
        return found
    return _decide_later(state, trace, trace.asked, token, key, min_revision)


def _refused(state: State, trace: Trace, exc: GroupgateError | Refused) -> GatewayAnswer:
    """The answer to a refusal or an error (each logged and recorded with its reason)."""
    if isinstance(exc, Refused):
        log.api.info("gateway: refused (%s): %s", exc.reason, exc.detail)
        trace.record(state, exc.reason)
        return FORBIDDEN
    if isinstance(exc, Forbidden):
        # A valid token for a tenant the caller key may not use.
        log.auth.info("gateway: %s", exc.detail)
        trace.record(state, "forbidden")
        return FORBIDDEN
    if isinstance(exc, AuthError):
        log.auth.info("gateway: %s", exc.detail)
        trace.record(state, "invalid-credential")
        return unauthorized("invalid_token")
    if isinstance(exc, StoreUnavailable):
        log.api.warning("gateway: %s", exc.detail)
        trace.record(state, "store-unavailable")
        return UNAVAILABLE
    # An unknown tenant, or no tenant named while several are loaded.
    log.api.info("gateway: %s", exc.detail)
    trace.record(state, "invalid")
    return FORBIDDEN


def _min_revision(header: str | None) -> int | None:
    try:
        return parsing.revision(None, header)
    except InvalidInput as exc:
        raise Refused("bad-min-revision", exc.detail) from None


def _decide_now(
    state: State,
    trace: Trace,
    asked: Original,
    token: str,
    key: str | None,
    min_revision: int | None,
) -> GatewayAnswer | None:
    """`_decide_later` from caches alone, or None when something must be awaited."""
    if min_revision is not None:
        return None
    identity = state.auth.verifier.verified(token)
    if identity is None:
        return None
    caller = ANONYMOUS if key is None else state.auth.key_caller(None, key)
    if caller is None:  # a service token in X-Groupgate-Key: verified by `token_caller`
        return None
    tenant = state.tenants.known(identity.tenant, caller)
    if tenant is None:
        return None
    route = _route(state, trace, asked, identity, caller, tenant)
    if route is None:
        return FORBIDDEN
    found = state.decider.some_cached(tenant, identity.subject, route.action, route.resource_type)
    return None if found is None else _answered(state, trace, identity, tenant, found)


async def _decide_later(
    state: State,
    trace: Trace,
    asked: Original,
    token: str,
    key: str | None,
    min_revision: int | None,
) -> GatewayAnswer:
    """Verify the token (and key), resolve the tenant, match the route, ask the store."""
    try:
        identity = await state.auth.verifier.verify(token)
        caller = ANONYMOUS if key is None else await state.auth.caller(None, key)
        tenant = await state.tenants.resolve(identity.tenant, caller)
        route = _route(state, trace, asked, identity, caller, tenant)
        if route is None:
            return FORBIDDEN
        found = await state.decider.some(
            tenant, identity.subject, route.action, route.resource_type, min_revision=min_revision
        )
    except (GroupgateError, Refused) as exc:
        return _refused(state, trace, exc)
    return _answered(state, trace, identity, tenant, found)


def _route(
    state: State, trace: Trace, asked: Original, identity: Identity, caller: Caller, tenant: str
) -> Route | None:
    """The route of the original request (None: no route, recorded); refuses an identity
    that could not be sent in a header."""
    trace.subject, trace.caller, trace.tenant = identity.subject, caller.name, tenant
    if not (visible(identity.subject) and visible(tenant)):
        raise Refused("unsafe-identity", "the subject or tenant is not visible ASCII")
    route = state.routes.match("GET" if asked.method == "HEAD" else asked.method, asked.path)
    if route is None:
        trace.record(state, "no-route")
        return None
    trace.action, trace.type = route.action, route.resource_type
    return route


def _answered(
    state: State, trace: Trace, identity: Identity, tenant: str, found: Answer
) -> GatewayAnswer:
    trace.revision = found.revision
    allowed = found.decision.allow
    trace.record(state, found.decision.reason, allowed)
    if not allowed:
        return FORBIDDEN
    return GatewayAnswer(200, ((SUBJECT, identity.subject), (TENANT, tenant)))
