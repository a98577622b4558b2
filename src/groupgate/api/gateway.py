"""Gateway forward-auth on the main listener: the aiohttp routes over `forward_auth.decide`.

Every rule (which headers are trusted for which `gateway_kind`, what is refused, what each
status means) lives in `groupgate.api.forward_auth`; this module only routes aiohttp requests
to it and turns its `GatewayAnswer` into an empty-bodied response. Routes, every method:
`/v1/gateway/auth`, `/auth` (header kinds) and `/v1/gateway/envoy/<path>` (Envoy).
"""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from groupgate.api.app import STATE
from groupgate.api.forward_auth import ENVOY_PREFIX, decide
from groupgate.api.problems import guarded


async def forward_auth(request: web.Request) -> web.Response:
    """Decide one auth request; `raw_path` is the raw request target (path and query)."""
    answer = await decide(request.app[STATE], request.method, request.raw_path, request.headers)
    return web.Response(status=answer.status, headers=CIMultiDict(answer.headers))


def setup(app: web.Application) -> None:
    handler = guarded(forward_auth)
    app.router.add_route("*", "/v1/gateway/auth", handler, name="gateway.auth")
    app.router.add_route("*", "/auth", handler, name="gateway.auth_short")
    app.router.add_route("*", ENVOY_PREFIX + "/{path:.*}", handler, name="gateway.envoy")
