"""nginx `auth_request` in front of the real sidecar: allowed passes, denied 403, bad token 401.

The sidecar runs on a free loopback port (AppRunner + TCPSite); nginx protects `/api/` with
`auth_request` to `/v1/gateway/auth` and proxies allowed requests to a second nginx server
block standing in for the upstream (a `return` in the protected location itself would run
before the access phase and bypass the check).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from groupgate.api.app import create_app
from groupgate.auth import mint_token
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService
from tests.api.conftest import DEMO, POLICIES, document
from tests.support.servers import free_port

pytestmark = pytest.mark.nginx
SECRET = "nginx-test-secret-0123456789abcdef"

CONF = """
http {
    @PATHS@
    server {
        listen 127.0.0.1:%(front)d;
        location = /_groupgate {
            internal;
            proxy_pass http://127.0.0.1:%(app)d/v1/gateway/auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
        }
        location /api/ {
            auth_request /_groupgate;
            auth_request_set $gg_subject $upstream_http_x_groupgate_subject;
            proxy_set_header X-Subject $gg_subject;
            proxy_pass http://127.0.0.1:%(upstream)d;
        }
    }
    server {
        listen 127.0.0.1:%(upstream)d;
        location / {
            return 200 "upstream saw $http_x_subject\\n";
        }
    }
}
"""


@pytest.fixture
async def sidecar() -> AsyncIterator[int]:
    config = load_config(env={}, overrides={"policies": str(POLICIES), "jwt_secret": SECRET})
    service = await GraphService.open(load_policy(POLICIES), None)
    await service.import_graph(None, document(DEMO))
    runner = web.AppRunner(create_app(config, service))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
        await service.close()


async def test_nginx_auth_request(sidecar: int, nginx_factory: Callable[..., Any]) -> None:
    front, upstream = free_port(), free_port()
    nginx_factory(CONF % {"front": front, "app": sidecar, "upstream": upstream}, front)
    base = f"http://127.0.0.1:{front}"
    viewer = {"Authorization": f"Bearer {mint_token(SECRET, 'emp-viewer')}"}
    catalog = {"Authorization": f"Bearer {mint_token(SECRET, 'emp-catalog')}"}
    async with aiohttp.ClientSession() as session:

        async def call(method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
            url = URL(base + path, encoded=True)
            async with session.request(method, url, headers=headers) as response:
                return response.status, await response.text()

        status, text = await call("GET", "/api/orders", viewer)
        assert status == 200 and text == "upstream saw emp-viewer\n"
        assert (await call("GET", "/api/orders/o-1?x=1", viewer))[0] == 200
        assert (await call("DELETE", "/api/orders/o-1", viewer))[0] == 403
        assert (await call("POST", "/api/products/p-1/publish", viewer))[0] == 403
        assert (await call("POST", "/api/products/p-1/publish", catalog))[0] == 200
        assert (await call("GET", "/api/not-a-route", viewer))[0] == 403
        assert (await call("GET", "/api/orders%2Fo-1", viewer))[0] == 403
        assert (await call("GET", "/api/x/../orders", viewer))[0] == 403
        assert (await call("GET", "/api/orders", {}))[0] == 401
        bad = {"Authorization": "Bearer not.a.token"}
        assert (await call("GET", "/api/orders", bad))[0] == 401
        forged = {"Authorization": f"Bearer {mint_token('x' * 40, 'emp-viewer')}"}
        assert (await call("GET", "/api/orders", forged))[0] == 401
