"""Gateway forward-auth: one decision per proxied request, answered with a status only.

Where the original request is read from:

| gateway | endpoint | method | URI |
|---|---|---|---|
| nginx `auth_request` | `/v1/gateway/auth` (or `/auth`) | `X-Original-Method` | `X-Original-URI` |
| Traefik ForwardAuth | `/v1/gateway/auth` (or `/auth`) | `X-Forwarded-Method` | `X-Forwarded-Uri` |
| Envoy `ext_authz` HTTP | `/v1/gateway/envoy/<path>` | the request's own | path after the prefix |

(Envoy: an HTTP `ext_authz` service with `path_prefix: /v1/gateway/envoy` and `authorization`
among the allowed headers.)

The subject comes from `Authorization: Bearer <JWT>` (verified per the `jwt_*` settings; its
tenant claim picks the tenant). The route table maps (method, path) to (type, action) and the
question is `Decider.some`: may the subject do the action on some entity of that type (the
service behind checks the entity itself).

Answers, all with empty bodies: 200 allowed (with `X-Groupgate-Subject` and
`X-Groupgate-Tenant` for the upstream), 401 no or bad token (with `WWW-Authenticate`), 403
denied, no route matches (unknown routes are denied), non-normalised paths (`..`, `.`, `//`,
backslashes, encoded `/`, `\\`, `.` or NUL: the upstream might read them differently), or a
tenant the caller may not use; 503 when the store is down past the staleness bound (fail
closed). A caller key is not required here (the token authenticates), but one sent in
`X-Groupgate-Key` must be valid and its tenant binding applies.
"""

from __future__ import annotations

import time
from urllib.parse import unquote

from aiohttp import web

from groupgate import log
from groupgate.api.app import STATE, State
from groupgate.api.native import MIN_REVISION
from groupgate.api.problems import guarded
from groupgate.auth import ANONYMOUS, Caller, credential
from groupgate.errors import AuthError, GroupgateError, StoreUnavailable

ENVOY_PREFIX = "/v1/gateway/envoy"
_FORBIDDEN_ESCAPES = ("%2f", "%5c", "%00", "%2e")
MAX_URI = 8192


def _empty(status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def _unauthorized(error: str | None) -> web.Response:
    value = 'Bearer realm="groupgate"'
    if error is not None:
        value += f', error="{error}"'
    return _empty(401, {"WWW-Authenticate": value})


def normalised_path(uri: str) -> str | None:
    """Return the decoded path of `uri`, or None when it is not in normal form."""
    if not uri.startswith("/") or len(uri) > MAX_URI:
        return None
    path = uri.split("?", 1)[0].split("#", 1)[0]
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


async def forward_auth(request: web.Request) -> web.Response:
    """`/v1/gateway/auth`, `/auth`: nginx and Traefik send the original request in headers."""
    headers = request.headers
    method = headers.get("X-Original-Method") or headers.get("X-Forwarded-Method")
    uri = headers.get("X-Original-URI") or headers.get("X-Forwarded-Uri")
    if not method or not uri:
        log.api.debug("forward-auth without X-Original-*/X-Forwarded-* headers")
        return _empty(403)
    return await _decide(request, method, uri)


async def envoy(request: web.Request) -> web.Response:
    """`/v1/gateway/envoy/<path>`: Envoy's ext_authz HTTP service keeps method and path."""
    raw = request.raw_path
    return await _decide(request, request.method, raw[len(ENVOY_PREFIX) :] or "/")


async def _decide(request: web.Request, method: str, uri: str) -> web.Response:
    started = time.perf_counter()
    state = request.app[STATE]
    try:
        return await _answer(state, request, method, uri, started)
    except AuthError as exc:
        # Forbidden is an AuthError too: a valid token for the wrong tenant is a 403.
        if exc.status == 403:
            return _empty(403)
        log.auth.info("gateway: %s", exc.detail)
        return _unauthorized("invalid_token")
    except StoreUnavailable as exc:
        log.api.warning("gateway: %s", exc.detail)
        return _empty(503)
    except GroupgateError as exc:
        log.api.info("gateway: %s", exc.detail)
        return _empty(403)


async def _answer(
    state: State, request: web.Request, method: str, uri: str, started: float
) -> web.Response:
    path = normalised_path(uri)
    if path is None:
        state.metrics.observe("gateway", False, time.perf_counter() - started)
        return _empty(403)
    token = credential(request.headers.get("Authorization"))
    if token is None:
        return _unauthorized(None)
    identity = await state.auth.verifier.verify(token)
    caller: Caller = ANONYMOUS
    key = request.headers.get("X-Groupgate-Key")
    if key is not None:
        caller = await state.auth.caller(None, key)
    tenant = await state.tenants.resolve(identity.tenant, caller)
    route = state.routes.match(method, path)
    if route is None:
        state.metrics.observe("gateway", False, time.perf_counter() - started)
        return _empty(403)
    header = request.headers.get(MIN_REVISION)
    min_rev = int(header) if header is not None and header.isdigit() and len(header) < 19 else None
    answer = await state.service.some(
        tenant, identity.subject, route.action, route.resource_type, min_revision=min_rev
    )
    allowed = answer.decision.allow
    state.metrics.observe("gateway", allowed, time.perf_counter() - started)
    if state.decision_log:
        log.decision(
            "gateway",
            tenant=tenant,
            subject=identity.subject,
            method=method,
            path=path,
            type=route.resource_type,
            action=route.action,
            allow=allowed,
            reason=answer.decision.reason,
            revision=answer.revision,
        )
    if not allowed:
        return _empty(403)
    return _empty(200, {"X-Groupgate-Subject": identity.subject, "X-Groupgate-Tenant": tenant})


def setup(app: web.Application) -> None:
    app.router.add_route("*", "/v1/gateway/auth", guarded(forward_auth), name="gateway.auth")
    app.router.add_route("*", "/auth", guarded(forward_auth), name="gateway.auth_short")
    app.router.add_route("*", ENVOY_PREFIX + "/{path:.*}", guarded(envoy), name="gateway.envoy")
