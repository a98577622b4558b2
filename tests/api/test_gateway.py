"""Gateway forward-auth: nginx/Traefik headers, Envoy prefix, tokens, routes, normalisation."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.auth import mint_token
from tests.api.conftest import MakeClient

Client = TestClient[Any, Any]
SECRET = "gateway-test-secret-0123456789abcdef"


@pytest.fixture
async def gw(make_client: MakeClient) -> Client:
    return await make_client(jwt_secret=SECRET, jwt_audience="shop", jwt_issuer="idp")


def token(sub: str, **kw: Any) -> str:
    kw.setdefault("audience", "shop")
    kw.setdefault("issuer", "idp")
    return mint_token(SECRET, sub, **kw)


async def nginx(client: Client, method: str, uri: str, tok: str | None) -> Any:
    headers = {"X-Original-Method": method, "X-Original-URI": uri}
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    return await client.get("/v1/gateway/auth", headers=headers)


@pytest.mark.parametrize(
    ("subject", "method", "uri", "status"),
    [
        ("emp-de", "GET", "/api/orders", 200),
        ("emp-de", "PUT", "/api/orders/o-17", 200),  # some DE order: the service checks which
        ("emp-de", "GET", "/api/products", 403),
        ("emp-viewer", "GET", "/api/orders/o-1?expand=lines", 200),
        ("emp-viewer", "DELETE", "/api/orders/o-1", 403),
        ("emp-catalog", "POST", "/api/products/p-1/publish", 200),
        ("emp-catalog", "GET", "/api/products/p-1/media", 200),
        ("emp-viewer", "GET", "/api/unknown", 403),
        ("emp-viewer", "TRACE", "/api/orders", 403),
        ("nobody", "GET", "/api/orders", 403),
    ],
)
async def test_nginx_headers(gw: Client, subject: str, method: str, uri: str, status: int) -> None:
    response = await nginx(gw, method, uri, token(subject))
    assert response.status == status
    assert await response.read() == b""
    if status == 200:
        assert response.headers["X-Groupgate-Subject"] == subject
        assert response.headers["X-Groupgate-Tenant"] == "demo"


async def test_traefik_headers_and_short_path(gw: Client) -> None:
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Uri": "/api/orders",
        "Authorization": f"Bearer {token('emp-viewer')}",
    }
    for path in ("/v1/gateway/auth", "/auth"):
        response = await gw.get(path, headers=headers)
        assert response.status == 200


async def test_envoy_prefix(gw: Client) -> None:
    auth = {"Authorization": f"Bearer {token('emp-viewer')}"}
    response = await gw.get("/v1/gateway/envoy/api/orders/o-1", headers=auth)
    assert response.status == 200
    response = await gw.delete("/v1/gateway/envoy/api/orders/o-1", headers=auth)
    assert response.status == 403


async def test_missing_original_request_is_denied(gw: Client) -> None:
    response = await gw.get("/v1/gateway/auth", headers={"Authorization": f"Bearer {token('x')}"})
    assert response.status == 403


@pytest.mark.parametrize(
    "uri",
    [
        "/api/../api/orders",
        "/api/orders/..",
        "/api/./orders",
        "//api/orders",
        "/api//orders",
        "/api/orders%2Fo-1",
        "/api/orders%2fo-1",
        "/api/%2e%2e/orders",
        "/api\\orders",
        "/api/orders/o-1%00",
        "api/orders",
        "http://evil/api/orders",
        "/api/orders/%ff",
    ],
)
async def test_non_normalised_paths_are_denied(gw: Client, uri: str) -> None:
    response = await nginx(gw, "GET", uri, token("emp-viewer"))
    assert response.status == 403


async def test_encoded_literal_segment_matches_its_route(gw: Client) -> None:
    # The upstream decodes %70 to 'p': the decision must be about the same route.
    response = await nginx(gw, "POST", "/api/products/p-1/%70ublish", token("emp-viewer"))
    assert response.status == 403
    response = await nginx(gw, "POST", "/api/products/p-1/%70ublish", token("emp-catalog"))
    assert response.status == 200


async def test_missing_and_bad_tokens_are_401(gw: Client) -> None:
    response = await nginx(gw, "GET", "/api/orders", None)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="groupgate"'
    for bad in ("garbage", token("emp-de", audience="other"), token("emp-de", ttl=-120)):
        response = await nginx(gw, "GET", "/api/orders", bad)
        assert response.status == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert await response.read() == b""


async def test_token_tenant_claim_is_used_and_never_crossed(make_client: MakeClient) -> None:
    import copy

    from tests.api.conftest import DEMO, document

    other = copy.deepcopy(document(DEMO))
    other["tenant"] = "other"
    for subject in other["subjects"]:
        if subject["id"] == "emp-viewer":
            subject["groups"] = []
    client = await make_client(
        documents=[document(DEMO), other],
        jwt_secret=SECRET,
        api_keys="demo-bound-key-0123456789:demo",
    )
    ok = mint_token(SECRET, "emp-viewer", tenant="demo")
    assert (await nginx(client, "GET", "/api/orders", ok)).status == 200
    stripped = mint_token(SECRET, "emp-viewer", tenant="other")
    assert (await nginx(client, "GET", "/api/orders", stripped)).status == 403
    # No tenant claim and two tenants loaded: no decision.
    assert (
        await nginx(client, "GET", "/api/orders", mint_token(SECRET, "emp-viewer"))
    ).status == 403
    # A caller key bound to demo cannot be used with a token for another tenant.
    headers = {
        "X-Original-Method": "GET",
        "X-Original-URI": "/api/orders",
        "Authorization": f"Bearer {mint_token(SECRET, 'emp-viewer', tenant='other')}",
        "X-Groupgate-Key": "demo-bound-key-0123456789",
    }
    assert (await client.get("/v1/gateway/auth", headers=headers)).status == 403
    headers["X-Groupgate-Key"] = "wrong-key-0123456789abc"
    assert (await client.get("/v1/gateway/auth", headers=headers)).status == 401


async def test_gateway_without_jwt_configuration_refuses(demo: Client) -> None:
    response = await nginx(demo, "GET", "/api/orders", "anything")
    assert response.status == 401
