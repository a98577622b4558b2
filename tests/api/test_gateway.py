"""Gateway forward-auth: the trust model of every gateway kind, tokens, routes, normalisation.

The HTTP tests go through the aiohttp routes (`groupgate.api.gateway`); the `decide` tests call
the transport-free use case directly with a `CIMultiDict`, as another listener would.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from groupgate.api import forward_auth
from groupgate.api.app import STATE
from groupgate.api.forward_auth import GatewayAnswer, decide
from groupgate.auth import mint_token
from groupgate.config import GATEWAY_KINDS
from tests.api.conftest import MakeClient

Client = TestClient[Any, Any]
Headers = list[tuple[str, str]]
SECRET = "gateway-test-secret-0123456789abcdef"
ORIGINAL = ("X-Original-Method", "X-Original-URI")
FORWARDED = ("X-Forwarded-Method", "X-Forwarded-Uri")
FAMILY = {"nginx": ORIGINAL, "haproxy": ORIGINAL, "caddy": FORWARDED, "traefik": FORWARDED}
OTHER = {"nginx": FORWARDED, "haproxy": FORWARDED, "caddy": ORIGINAL, "traefik": ORIGINAL}
HEADER_KINDS = tuple(FAMILY)


async def kind_client(make_client: MakeClient, kind: str, **settings: Any) -> Client:
    settings.setdefault("jwt_audience", "shop")
    settings.setdefault("jwt_issuer", "idp")
    return await make_client(jwt_secret=SECRET, gateway_kind=kind, **settings)


@pytest.fixture
async def gw(make_client: MakeClient) -> Client:
    """The default kind (nginx)."""
    return await kind_client(make_client, "nginx")


def token(sub: str, **kw: Any) -> str:
    kw.setdefault("audience", "shop")
    kw.setdefault("issuer", "idp")
    return mint_token(SECRET, sub, **kw)


def bearer(sub: str, **kw: Any) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token(sub, **kw)}")


def family(names: tuple[str, str], method: str, uri: str) -> Headers:
    return [(names[0], method), (names[1], uri)]


def asking(kind: str, method: str, uri: str, *extra: tuple[str, str]) -> tuple[str, str, Headers]:
    """(auth method, target, headers) for a proxied `method uri` the way `kind` asks."""
    if kind == "envoy":
        return method, "/v1/gateway/envoy" + uri, list(extra)
    return "GET", "/v1/gateway/auth", [*family(FAMILY[kind], method, uri), *extra]


async def send(client: Client, method: str, target: str, headers: Headers) -> Any:
    response = await client.request(method, target, headers=CIMultiDict(headers))
    assert await response.read() == b""
    return response


async def nginx(client: Client, method: str, uri: str, tok: str | None) -> Any:
    headers = family(ORIGINAL, method, uri)
    if tok is not None:
        headers.append(("Authorization", f"Bearer {tok}"))
    return await send(client, "GET", "/v1/gateway/auth", headers)


# --------------------------------------------------------------------------- routes and tokens


@pytest.mark.parametrize(
    ("subject", "method", "uri", "status"),
    [
        ("emp-de", "GET", "/api/orders", 200),
        ("emp-de", "PUT", "/api/orders/o-17", 200),  # some DE order: the service checks which
        ("emp-de", "GET", "/api/products", 403),
        ("emp-viewer", "GET", "/api/orders/o-1?expand=lines", 200),
        ("emp-viewer", "HEAD", "/api/orders/o-1", 200),  # HEAD follows GET's route
        ("emp-viewer", "DELETE", "/api/orders/o-1", 403),
        ("emp-catalog", "POST", "/api/products/p-1/publish", 200),
        ("emp-catalog", "GET", "/api/products/p-1/media", 200),
        ("emp-catalog", "HEAD", "/api/products/p-1/media", 200),
        ("emp-de", "HEAD", "/api/products", 403),
        ("emp-viewer", "GET", "/api/unknown", 403),
        ("emp-viewer", "TRACE", "/api/orders", 403),
        ("emp-viewer", "OPTIONS", "/api/orders", 403),  # no exemption: no route lists it
        ("emp-viewer", "G(T", "/api/orders", 403),  # not an HTTP token
        ("nobody", "GET", "/api/orders", 403),
    ],
)
async def test_nginx_headers(gw: Client, subject: str, method: str, uri: str, status: int) -> None:
    response = await nginx(gw, method, uri, token(subject))
    assert response.status == status
    if status == 200:
        assert response.headers.getall("X-Groupgate-Subject") == [subject]
        assert response.headers.getall("X-Groupgate-Tenant") == ["demo"]
    else:
        assert "X-Groupgate-Subject" not in response.headers


async def test_cors_preflight_without_a_token_is_401(gw: Client) -> None:
    response = await nginx(gw, "OPTIONS", "/api/orders", None)
    assert response.status == 401


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


async def test_a_subject_that_is_not_visible_ascii_is_never_sent(gw: Client) -> None:
    for subject in ("emp viewer", "emp-\u00e9", "emp\r\nX-Groupgate-Tenant: other"):
        response = await nginx(gw, "GET", "/api/orders", token(subject))
        assert response.status == 403


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
    headers = family(ORIGINAL, "GET", "/api/orders")
    headers.append(("Authorization", f"Bearer {mint_token(SECRET, 'emp-viewer', tenant='other')}"))
    keyed = [*headers, ("X-Groupgate-Key", "demo-bound-key-0123456789")]
    assert (await send(client, "GET", "/v1/gateway/auth", keyed)).status == 403
    wrong = [*headers, ("X-Groupgate-Key", "wrong-key-0123456789abc")]
    assert (await send(client, "GET", "/v1/gateway/auth", wrong)).status == 401


async def test_gateway_without_jwt_configuration_refuses(demo: Client) -> None:
    response = await nginx(demo, "GET", "/api/orders", "anything")
    assert response.status == 401


async def test_min_revision_header(gw: Client) -> None:
    base = [*family(ORIGINAL, "GET", "/api/orders"), bearer("emp-viewer")]
    ok = await send(gw, "GET", "/v1/gateway/auth", [*base, ("X-Groupgate-Min-Revision", "1")])
    assert ok.status == 200
    for bad in ("abc", "-1", "1.5", "", "0x1", "9" * 30):
        response = await send(
            gw, "GET", "/v1/gateway/auth", [*base, ("X-Groupgate-Min-Revision", bad)]
        )
        assert response.status == 403, bad


# --------------------------------------------------------------------------- trust model per kind


@pytest.mark.parametrize("kind", GATEWAY_KINDS)
async def test_each_kind_reads_its_own_request(make_client: MakeClient, kind: str) -> None:
    client = await kind_client(make_client, kind)
    method, target, headers = asking(kind, "GET", "/api/orders?x=1", bearer("emp-viewer"))
    response = await send(client, method, target, headers)
    assert response.status == 200
    assert response.headers.getall("X-Groupgate-Subject") == ["emp-viewer"]
    assert response.headers.getall("X-Groupgate-Tenant") == ["demo"]
    method, target, headers = asking(kind, "DELETE", "/api/orders/o-17", bearer("emp-viewer"))
    assert (await send(client, method, target, headers)).status == 403
    method, target, headers = asking(kind, "HEAD", "/api/orders", bearer("emp-viewer"))
    assert (await send(client, method, target, headers)).status == 200


@pytest.mark.parametrize("kind", HEADER_KINDS)
async def test_the_other_family_alone_is_not_read(make_client: MakeClient, kind: str) -> None:
    client = await kind_client(make_client, kind)
    headers = [*family(OTHER[kind], "GET", "/api/orders"), bearer("emp-viewer")]
    assert (await send(client, "GET", "/v1/gateway/auth", headers)).status == 403


@pytest.mark.parametrize("kind", GATEWAY_KINDS)
async def test_the_spoofed_family_never_decides(make_client: MakeClient, kind: str) -> None:
    """The brief's attack: a DELETE dressed up as a GET of a list in the other family."""
    client = await kind_client(make_client, kind)
    spoof = OTHER.get(kind, ORIGINAL)
    method, target, headers = asking(
        kind, "DELETE", "/api/orders/o-17", *family(spoof, "GET", "/api/orders")
    )
    headers.append(bearer("emp-viewer"))
    assert (await send(client, method, target, headers)).status == 403


@pytest.mark.parametrize("kind", GATEWAY_KINDS)
@pytest.mark.parametrize(
    ("original", "forwarded"),
    [
        (("GET", "/api/orders"), ("DELETE", "/api/orders")),
        (("GET", "/api/orders"), ("GET", "/api/orders/o-1")),
        (("GET", "/api/orders"), ("get", "/api/orders")),
    ],
)
async def test_disagreeing_families_are_refused(
    make_client: MakeClient,
    kind: str,
    original: tuple[str, str],
    forwarded: tuple[str, str],
) -> None:
    client = await kind_client(make_client, kind)
    headers = [*family(ORIGINAL, *original), *family(FORWARDED, *forwarded), bearer("emp-viewer")]
    if kind == "envoy":
        response = await send(client, "GET", "/v1/gateway/envoy/api/orders", headers)
    else:
        response = await send(client, "GET", "/v1/gateway/auth", headers)
    assert response.status == 403


@pytest.mark.parametrize("kind", HEADER_KINDS)
async def test_agreeing_families_are_accepted(make_client: MakeClient, kind: str) -> None:
    client = await kind_client(make_client, kind)
    headers = [
        *family(ORIGINAL, "GET", "/api/orders"),
        *family(FORWARDED, "GET", "/api/orders"),
        bearer("emp-viewer"),
    ]
    assert (await send(client, "GET", "/v1/gateway/auth", headers)).status == 200


DUPLICABLE = (
    "Authorization",
    "X-Groupgate-Key",
    "X-Groupgate-Min-Revision",
    "X-Original-Method",
    "X-Original-URI",
    "X-Forwarded-Method",
    "X-Forwarded-Uri",
)
KEY = "gateway-key-0123456789abc"
SAMPLE = {
    "Authorization": f"Bearer {token('emp-viewer')}",
    "X-Groupgate-Key": KEY,
    "X-Groupgate-Min-Revision": "1",
    "X-Original-Method": "GET",
    "X-Original-URI": "/api/orders",
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Uri": "/api/orders",
}


@pytest.mark.parametrize("kind", GATEWAY_KINDS)
@pytest.mark.parametrize("name", DUPLICABLE)
async def test_repeated_headers_are_refused(make_client: MakeClient, kind: str, name: str) -> None:
    client = await kind_client(make_client, kind, api_keys=KEY)
    method, target, headers = asking(kind, "GET", "/api/orders", bearer("emp-viewer"))
    headers.append(("X-Groupgate-Key", KEY))
    assert (await send(client, method, target, headers)).status == 200
    sent = {n.lower(): v for n, v in headers}
    value = sent.get(name.lower(), SAMPLE[name])
    again = [(name, value)] if name.lower() in sent else [(name, value)] * 2
    assert (await send(client, method, target, [*headers, *again])).status == 403


@pytest.mark.parametrize("kind", GATEWAY_KINDS)
async def test_the_endpoint_of_another_kind_is_refused(make_client: MakeClient, kind: str) -> None:
    client = await kind_client(make_client, kind)
    auth = bearer("emp-viewer")
    if kind == "envoy":
        headers = [*family(ORIGINAL, "GET", "/api/orders"), auth]
        for path in ("/v1/gateway/auth", "/auth"):
            assert (await send(client, "GET", path, headers)).status == 403
    else:
        headers = [*family(FAMILY[kind], "GET", "/api/orders"), auth]
        assert (await send(client, "GET", "/v1/gateway/envoy/api/orders", headers)).status == 403


async def test_short_path(make_client: MakeClient) -> None:
    client = await kind_client(make_client, "traefik")
    headers = [*family(FORWARDED, "GET", "/api/orders"), bearer("emp-viewer")]
    assert (await send(client, "GET", "/auth", headers)).status == 200


# --------------------------------------------------------------------------- decide, log, record


async def test_decide_is_transport_free(make_client: MakeClient) -> None:
    client = await kind_client(make_client, "envoy")
    state = client.app[STATE]
    headers = CIMultiDict([bearer("emp-viewer")])
    answer = await decide(state, "GET", "/v1/gateway/envoy/api/orders?x=1", headers)
    assert answer == GatewayAnswer(
        200, (("X-Groupgate-Subject", "emp-viewer"), ("X-Groupgate-Tenant", "demo"))
    )
    assert (await decide(state, "GET", "/v1/gateway/envoyx/api", headers)).status == 404
    assert (await decide(state, "GET", "/elsewhere", headers)).status == 404
    assert (await decide(state, "GET", "/v1/gateway/envoy/api/orders", CIMultiDict())).status == 401


def test_forward_auth_imports_no_http_server() -> None:
    tree = ast.parse(Path(forward_auth.__file__).read_bytes())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "aiohttp" not in imported


async def test_refusals_are_logged_and_recorded(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await kind_client(make_client, "caddy")
    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(forward_auth, "record", lambda *a, **kw: recorded.append(kw))
    monkeypatch.setattr(logging.getLogger("groupgate"), "propagate", True)
    spoofed = [
        *family(FORWARDED, "DELETE", "/api/orders/o-17"),
        *family(ORIGINAL, "GET", "/api/orders"),
        bearer("emp-viewer"),
    ]
    with caplog.at_level(logging.INFO, logger="groupgate.api"):
        assert (await send(client, "GET", "/v1/gateway/auth", spoofed)).status == 403
    assert any("families-disagree" in r.getMessage() for r in caplog.records)
    assert recorded[-1]["allow"] is False and recorded[-1]["reason"] == "families-disagree"
    twice = [*family(FORWARDED, "GET", "/api/orders"), bearer("emp-viewer"), bearer("emp-de")]
    assert (await send(client, "GET", "/v1/gateway/auth", twice)).status == 403
    assert recorded[-1]["reason"] == "duplicate-header"
    assert recorded[-1]["extra"] == {"method": "GET", "path": "/api/orders"}
    allowed = [*family(FORWARDED, "GET", "/api/orders"), bearer("emp-viewer")]
    assert (await send(client, "GET", "/v1/gateway/auth", allowed)).status == 200
    last = recorded[-1]
    assert last["allow"] is True and last["subject"] == "emp-viewer" and last["tenant"] == "demo"
    assert (last["type"], last["action"]) == ("orders", "list")
