"""A hostile client on the main listener: every request is a precise 4xx or a normal answer.

Amounts with huge exponents or Unicode digits, a Unicode-digit consistency token, malformed
or absent `Host`, must-be-single headers sent twice, malformed HTTP (no traceback logged),
and every decision surface recording its decisions with one field set.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from groupgate.api.openapi import document
from groupgate.engine.graph import AMOUNT_SYNTAX
from tests.api.conftest import ADMIN_KEY, API_KEY, MakeClient, flush_audit
from tests.api.test_bad_input import ENDPOINTS, assert_problem

Client = TestClient[Any, Any]
PURCHASE = ENDPOINTS["/v1/purchases/evaluate"]
#: The decision surfaces of the main listener that take a JSON body.
DECISIONS = sorted(e for e in ENDPOINTS if not e.startswith("/v1/admin"))


async def raw_exchange(client: Client, request: bytes) -> bytes:
    """Send `request` as bytes on a new connection; return the whole answer."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> Any:
    return orjson.loads(answer.split(b"\r\n\r\n", 1)[1])


# --------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "amount",
    [
        "1e999999999",
        "1E5",
        "1e-999999999",
        "\u0661\u0662\u0663",  # Arabic-Indic digits: Decimal accepts them
        "1" * 19,
        "1." + "0" * 9,
        "+1.00",
        " 1.00",
        "1.00\n",
        ".5",
        "5.",
        "Infinity",
        "0x10",
        "1_000",
    ],
)
async def test_amounts_outside_the_syntax_are_422(make_client: MakeClient, amount: str) -> None:
    client = await make_client(decision_log=True)
    response = await client.post("/v1/purchases/evaluate", json={**PURCHASE, "amount": amount})
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 422 and problem["detail"].startswith("amount: ")
    assert "18 before the point and 8 after" in problem["detail"]
    assert len(problem["detail"]) < 300


@pytest.mark.parametrize("amount", ["0", "0.5", "123456789012345678.12345678", "0001.10"])
async def test_amounts_inside_the_syntax_are_decided(demo: Client, amount: str) -> None:
    response = await demo.post("/v1/purchases/evaluate", json={**PURCHASE, "amount": amount})
    assert response.status == 200, await response.text()


async def test_authzen_purchase_item_refuses_an_exponent(demo: Client) -> None:
    body = {
        "subject": {"type": "user", "id": "cust-buyer"},
        "action": {"name": "buy"},
        "resource": {
            "type": "purchase",
            "id": "cart-1",
            "properties": {"company": "c-parent", "amount": "1e999999999", "currency": "EUR"},
        },
    }
    response = await demo.post("/access/v1/evaluation", json=body)
    answer = await response.json()
    assert response.status == 200 and answer["decision"] is False
    assert answer["context"]["error"]["status"] == 422


async def test_account_limit_with_an_exponent_is_refused(demo: Client) -> None:
    company = {"name": "X", "account_limit": {"amount": "1e999999999", "currency": "EUR"}}
    response = await demo.put("/v1/admin/tenants/demo/companies/c-x", json=company)
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert "account_limit.amount" in problem["detail"]


def test_openapi_states_the_amount_syntax() -> None:
    schemas = document()["components"]["schemas"]
    patterns = [
        prop["pattern"]
        for schema in schemas.values()
        for name, prop in schema.get("properties", {}).items()
        if name == "amount"
    ]
    assert patterns and set(patterns) == {AMOUNT_SYNTAX}


async def test_decision_log_writes_the_amount_as_sent(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(decision_log=True)
    with caplog.at_level(logging.INFO, logger="groupgate.decisions"):
        response = await client.post(
            "/v1/purchases/evaluate", json={**PURCHASE, "amount": "0012.50"}
        )
        assert response.status == 200
        await flush_audit(client)
    [record] = [r for r in caplog.records if r.name == "groupgate.decisions"]
    fields = record.__dict__
    assert fields["surface"] == "purchase" and fields["action"] == "purchase"
    assert fields["type"] == "companies" and fields["id"] == "c-parent"
    assert fields["amount"] == "0012.50" and fields["currency"] == "EUR"
    assert fields["subject"] == "cust-buyer" and fields["allow"] is True


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("endpoint", DECISIONS)
@pytest.mark.parametrize("token", ["\u00b2", "\u0661", "12a", "-1", "1" * 19, ""])
async def test_bad_consistency_header_is_422(demo: Client, endpoint: str, token: str) -> None:
    headers = {"X-Groupgate-Min-Revision": token}
    response = await demo.post(endpoint, json=ENDPOINTS[endpoint], headers=headers)
    problem = assert_problem(response.status, await response.read(), response.content_type)
    # AuthZEN endpoints answer 400 where the native API answers 422 (`authzen.spec_error`).
    status = 400 if endpoint.startswith("/access/") else 422
    assert problem["status"] == status and "X-Groupgate-Min-Revision" in problem["detail"]


@pytest.fixture
async def keyed(make_client: MakeClient) -> Client:
    return await make_client(api_keys=API_KEY, admin_keys=ADMIN_KEY)


DUPLICATES = {
    "Authorization": [("Authorization", API_KEY), ("Authorization", "client-key")],
    "X-Groupgate-Key": [("X-Groupgate-Key", API_KEY), ("X-Groupgate-Key", "client-key")],
    "X-Groupgate-Min-Revision": [
        ("Authorization", API_KEY),
        ("X-Groupgate-Min-Revision", "1"),
        ("X-Groupgate-Min-Revision", "2"),
    ],
    "X-Groupgate-Tenant": [
        ("Authorization", API_KEY),
        ("X-Groupgate-Tenant", "demo"),
        ("X-Groupgate-Tenant", "other"),
    ],
}


@pytest.mark.parametrize("endpoint", DECISIONS)
@pytest.mark.parametrize("header", sorted(DUPLICATES))
async def test_duplicate_headers_are_400(keyed: Client, endpoint: str, header: str) -> None:
    if header == "X-Groupgate-Tenant" and not endpoint.startswith("/access"):
        pytest.skip("only AuthZEN requests read X-Groupgate-Tenant")
    response = await keyed.post(
        endpoint, json=ENDPOINTS[endpoint], headers=CIMultiDict(DUPLICATES[header])
    )
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 400
    assert problem["type"] == "urn:groupgate:problem:duplicate-header"
    assert header in problem["detail"]


@pytest.mark.parametrize("header", ["Authorization", "X-Groupgate-Key"])
async def test_duplicate_admin_credentials_are_400(keyed: Client, header: str) -> None:
    pairs = [(header, f"Bearer {ADMIN_KEY}"), (header, "client-key")]
    response = await keyed.get("/v1/admin/tenants", headers=CIMultiDict(pairs))
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["type"] == "urn:groupgate:problem:duplicate-header"


async def test_single_headers_still_work(keyed: Client) -> None:
    headers = {"Authorization": API_KEY, "X-Groupgate-Min-Revision": "1"}
    response = await keyed.post("/v1/check", json=ENDPOINTS["/v1/check"], headers=headers)
    assert response.status == 200


# --------------------------------------------------------------------------- Host


# An empty Host and an empty port are valid (RFC 3986: `reg-name = *(...)`, `port = *DIGIT`;
# RFC 9112 section 3.2 refuses only invalid values): see `test_wellformed_host_is_served`.
BAD_HOSTS = [b"x:99999", b"x:y:z", b"[", b"a b", b"[::1", b"x:-1", b"\xc2\xb2:80"]
ROUTES = [
    b"GET /.well-known/authzen-configuration",
    b"GET /healthz",
    b"GET /nowhere",
    b"POST /v1/check",
    b"POST /access/v1/evaluation",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
@pytest.mark.parametrize("route", ROUTES)
async def test_malformed_host_is_400(demo: Client, host: bytes, route: bytes) -> None:
    request = route + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 0\r\n"
    answer = await raw_exchange(demo, request + b"Connection: close\r\n\r\n")
    assert status_of(answer) == 400, answer
    assert b"application/problem+json" in answer
    assert "Host" in body_of(answer)["detail"]


@pytest.mark.parametrize(
    "host", [b"localhost", b"127.0.0.1:8181", b"[::1]:80", b"a.b-c_d~e", b"", b"x:"]
)
async def test_wellformed_host_is_served(demo: Client, host: bytes) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    assert status_of(await raw_exchange(demo, request)) == 200


async def test_metadata_without_host_uses_the_bind_address(make_client: MakeClient) -> None:
    client = await make_client(host="127.0.0.2", port=9191)
    request = b"GET /.well-known/authzen-configuration HTTP/1.0\r\n\r\n"
    answer = await raw_exchange(client, request)
    assert status_of(answer) == 200
    meta = body_of(answer)
    assert meta["policy_decision_point"] == "http://127.0.0.2:9191"
    assert meta["access_evaluation_endpoint"] == "http://127.0.0.2:9191/access/v1/evaluation"


async def test_metadata_never_reflects_the_host(make_client: MakeClient) -> None:
    client = await make_client(host="::1", port=9191)
    response = await client.get(
        "/.well-known/authzen-configuration", headers={"Host": "evil.example"}
    )
    meta = await response.json()
    assert all(value.startswith("http://[::1]:9191") for value in meta.values()), meta
    client = await make_client(public_url="https://pdp.example/")
    response = await client.get(
        "/.well-known/authzen-configuration", headers={"Host": "evil.example"}
    )
    meta = await response.json()
    assert meta["search_action_endpoint"] == "https://pdp.example/access/v1/search/action"


# --------------------------------------------------------------------------- malformed HTTP


MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"POST /v1/check HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    b"NOT-HTTP\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
async def test_malformed_http_logs_no_error(
    demo: Client, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    with caplog.at_level(logging.DEBUG):
        # Twice on one connection is impossible (the server closes it): two connections.
        for _ in range(2):
            answer = await raw_exchange(demo, request_bytes)
            assert answer == b"" or 400 <= status_of(answer) < 500, answer
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("aiohttp"))


@pytest.mark.parametrize("endpoint", [*DECISIONS, "/v1/admin/tenants/demo/import"])
async def test_a_content_coded_body_is_415_and_never_decoded(
    demo: Client, caplog: pytest.LogCaptureFixture, endpoint: str
) -> None:
    # Bodies are never decompressed (no decompression bombs): refused before they are read,
    # as on the decision listener (`http_rules.head_problem`).
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with caplog.at_level(logging.INFO):
        response = await demo.post(endpoint, data=b"not gzip at all", headers=headers)
        problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 415 and "content coding" in problem["detail"]
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]


# --------------------------------------------------------------------------- decision log

RECORDED = {
    "/v1/check": ("check", "emp-de", "update", "orders"),
    "/v1/checks": ("checks", "emp-de", "update", "orders"),
    "/v1/filter": ("filter", "emp-de", "read", "orders"),
    "/v1/purchases/evaluate": ("purchase", "cust-buyer", "purchase", "companies"),
    "/access/v1/evaluation": ("authzen", "emp-de", "read", "orders"),
    "/access/v1/evaluations": ("authzen", "emp-de", "read", "orders"),
    "/access/v1/search/subject": ("authzen", None, "read", "orders"),
    "/access/v1/search/resource": ("authzen", "emp-de", "read", "orders"),
    "/access/v1/search/action": ("authzen", "emp-de", None, "orders"),
}
FIELD_SET = {
    "surface", "tenant", "caller", "subject", "action", "type", "id", "allow", "reason",
    "revision", "latency_ms",
}  # fmt: skip


@pytest.mark.parametrize("endpoint", sorted(RECORDED))
async def test_every_surface_records_one_field_set(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, endpoint: str
) -> None:
    client = await make_client(decision_log=True, api_keys=f"{API_KEY}:demo")
    with caplog.at_level(logging.INFO, logger="groupgate.decisions"):
        response = await client.post(
            endpoint, json=ENDPOINTS[endpoint], headers={"Authorization": API_KEY}
        )
        assert response.status == 200, await response.text()
        await flush_audit(client)
    records = [r.__dict__ for r in caplog.records if r.name == "groupgate.decisions"]
    assert len(records) == 1
    [fields] = records
    assert set(fields) >= FIELD_SET
    surface, subject, action, kind = RECORDED[endpoint]
    assert fields["surface"] == surface and fields["tenant"] == "demo"
    assert fields["caller"] is not None
    assert (fields["subject"], fields["action"], fields["type"]) == (subject, action, kind)
