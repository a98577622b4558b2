"""The OpenAPI document: well-formed OpenAPI 3.1, complete, and true to what the app answers.

The structure tests walk the document (every `$ref` resolves, every route of the router is an
operation, every operation has a 2xx answer and the HTTP front's refusals). The spot checks
drive the real app and require each status it answers, and the problem `type` it carries, to
be listed on that operation.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.api.openapi import ANY, FRONT, OPERATIONS, PROBLEMS, document
from groupgate.api.problems import PROBLEM
from tests.api.test_ops import router_operations

Client = TestClient[Any, Any]
DOC = document()
METHODS = frozenset(ANY) | {"trace"}


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    found: Any = DOC
    for part in pointer[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(found, dict) and part in found, f"unresolved $ref {pointer}"
        found = found[part]
    return found


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def responses_of(path: str, method: str) -> dict[str, Any]:
    found = DOC["paths"][path][method]["responses"]
    return {code: resolve(r["$ref"]) if "$ref" in r else r for code, r in found.items()}


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in DOC["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_structure() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] and DOC["info"]["version"]
    for ref in refs(DOC):
        resolve(ref)
    schemes = DOC["components"]["securitySchemes"]
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))
    for path, method, op in operations():
        where = f"{method.upper()} {path}"
        names = set(re.findall(r"{([^}]+)}", path))
        params = [*DOC["paths"][path].get("parameters", []), *op.get("parameters", [])]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == names, where
        assert all(p["required"] for p in params if p["in"] == "path"), where
        for requirement in op.get("security", DOC["security"]):
            assert set(requirement) <= set(schemes), where
        responses = responses_of(path, method)
        assert all(re.fullmatch(r"[1-5][0-9][0-9]", code) for code in responses), where
        assert any(code.startswith("2") for code in responses), where
        front = {str(PROBLEMS[name].status) for name in FRONT}
        assert front <= set(responses), where
        for code, response in responses.items():
            assert response["description"], f"{where} {code}"
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"]


async def test_every_route_is_documented(demo: Client) -> None:
    response = await demo.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == DOC
    documented = {(path, method) for path, method, _ in operations()}
    assert documented == router_operations(demo.app)


#: Admin operations that take no body.
BODYLESS = {"reloadPolicies"}


def test_admin_writes_have_body_schemas() -> None:
    for op in OPERATIONS:
        if op.op_id in BODYLESS:
            continue
        if op.path.startswith("/v1/admin/") and op.methods[0] in ("put", "post"):
            assert op.request not in (None, "Object"), op.op_id
            body = DOC["components"]["schemas"][op.request]
            assert "properties" in body or "oneOf" in body or "anyOf" in body
    groups = DOC["components"]["schemas"]["Group"]["properties"]
    assert groups["kind"]["enum"] == ["user", "customer"]
    assert groups["access"]["additionalProperties"]["enum"] == ["none", "read", "manage"]
    subject = DOC["components"]["schemas"]["SubjectEntity"]["properties"]
    assert subject["kind"]["enum"] == ["employee", "customer", "vendor_user"]


def test_gateway_contract() -> None:
    for path in ("/v1/gateway/auth", "/auth", "/v1/gateway/envoy/{path}"):
        item = DOC["paths"][path]
        for method in ANY:
            op = item[method]
            assert "forward_auth" in op["description"]
            headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
            assert "X-Groupgate-Min-Revision" in headers
            if path != "/v1/gateway/envoy/{path}":
                assert {"X-Original-Method", "X-Original-URI"} <= headers
                assert {"X-Forwarded-Method", "X-Forwarded-Uri"} <= headers
            assert {"subjectJwt": []} in op["security"]
            answers = responses_of(path, method)
            assert set(answers["200"]["headers"]) == {"X-Groupgate-Subject", "X-Groupgate-Tenant"}
            assert "WWW-Authenticate" in answers["401"]["headers"]
            for code in ("200", "401", "403", "404"):
                assert "content" not in answers[code]


async def assert_documented(response: Any, path: str, method: str) -> int:
    """The response's status is listed for the operation, with its problem type."""
    responses = responses_of(path, method)
    status = str(response.status)
    assert status in responses, f"{method.upper()} {path} answered {status}: not documented"
    documented = responses[status]
    if response.content_type == PROBLEM:
        kind = (await response.json())["type"]
        schema = documented["content"][PROBLEM]["schema"]
        assert kind in schema["allOf"][1]["properties"]["type"]["enum"], (path, status, kind)
    if status == "401":
        assert "WWW-Authenticate" in response.headers
    return int(response.status)


ADMIN = "admin-key-0123456789abcdef"
CHECK = {
    "subject": {"id": "emp-de"},
    "action": "update",
    "resource": {"type": "orders", "restrictions": ["DE"]},
}


@pytest.mark.parametrize(
    ("expected", "kwargs"),
    [
        (200, {"json": CHECK}),
        (422, {"json": {**CHECK, "action": "no-such-action"}}),
        (422, {"json": {**CHECK, "surprise": 1}}),
        (400, {"data": b"{", "headers": {"Content-Type": "application/json"}}),
        (400, {"data": b'{"a":1,"a":2}', "headers": {"Content-Type": "application/json"}}),
        (415, {"data": b"{}", "headers": {"Content-Type": "text/plain"}}),
        (404, {"json": {**CHECK, "tenant": "no-such-tenant"}}),
        (
            400,
            {
                "json": CHECK,
                "headers": [("X-Groupgate-Min-Revision", "1"), ("X-Groupgate-Min-Revision", "2")],
            },
        ),
    ],
)
async def test_check_statuses_are_documented(
    demo: Client, expected: int, kwargs: dict[str, Any]
) -> None:
    response = await demo.post("/v1/check", **kwargs)
    assert await assert_documented(response, "/v1/check", "post") == expected


async def test_authzen_statuses_are_documented(demo: Client) -> None:
    for body, expected in (({}, 400), ({"subject": {"type": "user"}}, 400)):
        response = await demo.post("/access/v1/evaluation", json=body)
        assert await assert_documented(response, "/access/v1/evaluation", "post") == expected
    response = await demo.post(
        "/access/v1/evaluation", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert await assert_documented(response, "/access/v1/evaluation", "post") == 400
    search = {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "read"},
        "resource": {"type": "orders"},
        "page": {"token": "not-a-token"},
    }
    response = await demo.post("/access/v1/search/resource", json=search)
    assert await assert_documented(response, "/access/v1/search/resource", "post") == 400
    response = await demo.get("/.well-known/authzen-configuration/-bad-")
    path = "/.well-known/authzen-configuration/{tenant}"
    assert await assert_documented(response, path, "get") == 404


async def test_gateway_statuses_are_documented(demo: Client) -> None:
    # No original-request headers: refused before any token is read.
    response = await demo.get("/v1/gateway/auth")
    assert await assert_documented(response, "/v1/gateway/auth", "get") == 403
    original = {"X-Original-Method": "GET", "X-Original-URI": "/orders"}
    response = await demo.post("/auth", headers=original)
    assert await assert_documented(response, "/auth", "post") == 401
    response = await demo.get("/auth", headers={**original, "Authorization": "Bearer x.y.z"})
    assert await assert_documented(response, "/auth", "get") == 401
    response = await demo.get("/v1/gateway/envoy/orders")
    assert await assert_documented(response, "/v1/gateway/envoy/{path}", "get") == 403


async def test_admin_statuses_are_documented(demo: Client) -> None:
    base = "/v1/admin/tenants"
    response = await demo.post(base, json={"tenant": "demo"})
    assert await assert_documented(response, base, "post") == 409
    response = await demo.post(base, json={"tenant": "fresh"})
    assert await assert_documented(response, base, "post") == 201
    entity = base + "/{tenant}/{kind}/{id}"
    response = await demo.put(base + "/demo/groups/g-new", json={"name": "G", "kind": "bogus"})
    assert await assert_documented(response, entity, "put") == 422
    response = await demo.put(base + "/demo/subjects/s-1", json={"id": "s-2", "kind": "employee"})
    assert await assert_documented(response, entity, "put") == 422
    response = await demo.get(base + "/demo/subjects/nobody")
    assert await assert_documented(response, entity, "get") == 404
    response = await demo.post(
        base + "/demo/import", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert await assert_documented(response, base + "/{tenant}/import", "post") == 415
    memberships = base + "/{tenant}/subjects/{id}/memberships"
    response = await demo.post(base + "/demo/subjects/nobody/memberships", json={"group": "g"})
    assert await assert_documented(response, memberships, "post") == 404


async def test_front_refusals_are_documented(demo: Client) -> None:
    response = await demo.get("/healthz", headers={"Expect": "something-else"})
    assert await assert_documented(response, "/healthz", "get") == 417
    response = await demo.get("/readyz")
    assert await assert_documented(response, "/readyz", "get") == 200


async def test_credential_statuses_are_documented(make_client: Any) -> None:
    client = await make_client(api_keys="pep-key-0123456789abcdef:demo", admin_keys=ADMIN)
    pep = {"Authorization": "Bearer pep-key-0123456789abcdef"}
    response = await client.post("/v1/check", json={**CHECK, "tenant": "other"}, headers=pep)
    assert await assert_documented(response, "/v1/check", "post") == 403
    response = await client.post("/v1/check", json=CHECK)
    assert await assert_documented(response, "/v1/check", "post") == 401
    response = await client.get("/v1/admin/tenants", headers=pep)
    assert await assert_documented(response, "/v1/admin/tenants", "get") == 403
    response = await client.get("/v1/admin/tenants")
    assert await assert_documented(response, "/v1/admin/tenants", "get") == 401


async def test_purchase_and_batch_statuses_are_documented(make_client: Any) -> None:
    demo = await make_client(admin_open=True, max_batch=2)
    purchase = {"subject": {"id": "emp-de"}, "company": "no-such", "amount": "1", "currency": "EUR"}
    response = await demo.post("/v1/purchases/evaluate", json=purchase)
    assert await assert_documented(response, "/v1/purchases/evaluate", "post") == 404
    response = await demo.post("/v1/checks", json={"checks": [CHECK] * 3})
    assert await assert_documented(response, "/v1/checks", "post") == 413
    response = await demo.post("/access/v1/evaluations", json={"evaluations": [{}] * 3})
    assert await assert_documented(response, "/access/v1/evaluations", "post") == 413
