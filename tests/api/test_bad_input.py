"""Bad input on every JSON endpoint: always a 4xx problem+json, never a 5xx, never an allow."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]

CHECK = {"subject": {"id": "emp-de"}, "action": "update", "resource": {"type": "orders"}}
ENDPOINTS: dict[str, dict[str, Any]] = {
    "/v1/check": CHECK,
    "/v1/checks": {"checks": [CHECK]},
    "/v1/filter": {"subject": {"id": "emp-de"}, "action": "read", "resource_type": "orders"},
    "/v1/purchases/evaluate": {
        "subject": {"id": "cust-buyer"},
        "company": "c-parent",
        "amount": "1.00",
        "currency": "EUR",
    },
    # AuthZEN: whole entities (a subject's `type` and `id`, a resource's `type` and `id`).
    "/access/v1/evaluation": {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "read"},
        "resource": {"type": "orders", "id": "o-1"},
    },
    "/access/v1/evaluations": {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "read"},
        "evaluations": [{"resource": {"type": "orders", "id": "o-1"}}],
    },
    "/access/v1/search/subject": {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": {"type": "orders", "id": "o-1"},
    },
    "/access/v1/search/resource": {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "read"},
        "resource": {"type": "orders"},
    },
    "/access/v1/search/action": {
        "subject": {"type": "user", "id": "emp-de"},
        "resource": {"type": "orders", "id": "o-1"},
    },
    "/v1/admin/tenants/demo/settings": {"company_contact_propagation": "UPWARD"},
}

BAD_BODIES: dict[str, bytes] = {
    "empty": b"",
    "not json": b"{not json",
    "trailing garbage": b'{"a": 1} x',
    "array": b"[1, 2]",
    "string": b'"hello"',
    "null": b"null",
    "nan": b'{"a": NaN}',
    "deep nesting": b'{"a":' * 40 + b"1" + b"}" * 40,
    "huge integer": b'{"min_revision": 123456789012345678901234567890}',
    "huge float": b'{"x": 1e300}',
    "duplicate key": b'{"subject": {"id": "emp-viewer"}, "subject": {"id": "emp-de"}}',
    "duplicate nested": b'{"resource": {"type": "orders", "type": "carts"}}',
    "duplicate with spaces": b'{"action" : "read", "action"  :"update"}',
    "bad utf-8": b'{"a": "\xff"}',
}


def assert_problem(status: int, body: bytes, content_type: str) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body)
    assert content_type == "application/problem+json"
    problem: dict[str, Any] = orjson.loads(body)
    assert set(problem) >= {"type", "title", "status", "detail"}
    assert problem["status"] == status and problem["detail"]
    assert problem.get("allow") is not True and problem.get("decision") is not True
    return problem


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
async def test_bad_bodies(demo: Client, endpoint: str, case: str) -> None:
    method = demo.put if endpoint.endswith("/settings") else demo.post
    response = await method(
        endpoint, data=BAD_BODIES[case], headers={"Content-Type": "application/json"}
    )
    assert_problem(response.status, await response.read(), response.content_type)


async def test_duplicate_key_is_named(demo: Client) -> None:
    response = await demo.post(
        "/v1/check",
        data=BAD_BODIES["duplicate nested"],
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 400 and "'type'" in problem["detail"]


async def test_false_alarm_of_duplicate_scan_is_accepted(demo: Client) -> None:
    # A string value containing an escaped quote before a colon looks like a key to the scan.
    body = {**CHECK, "resource": {"type": "orders", "id": 'a\\":b', "restrictions": ["DE"]}}
    response = await demo.post("/v1/check", data=orjson.dumps(body))
    assert response.status == 200 and (await response.json())["allow"] is True


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_oversized_body_is_413(make_client: Any, endpoint: str) -> None:
    client = await make_client(max_body_bytes=4096, admin_open=True)
    method = client.put if endpoint.endswith("/settings") else client.post
    padding = {"pad": "x" * 5000}
    response = await method(endpoint, json={**ENDPOINTS[endpoint], **padding})
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 413


async def test_chunked_oversized_body_is_413(make_client: Any) -> None:
    client = await make_client(max_body_bytes=4096)

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post(
        "/v1/check", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response.status, await response.read(), response.content_type)


@pytest.mark.parametrize("endpoint", ["/v1/checks", "/access/v1/evaluations"])
async def test_too_many_batch_items(make_client: Any, endpoint: str) -> None:
    client = await make_client(max_batch=3)
    body = dict(ENDPOINTS[endpoint])
    key = "checks" if endpoint == "/v1/checks" else "evaluations"
    body[key] = body[key] * 4
    response = await client.post(endpoint, json=body)
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 413 and "limit is 3" in problem["detail"]


WRONG: list[tuple[dict[str, Any], str]] = [
    ({**CHECK, "subject": "emp-de", "extra": 1}, "extra"),
    ({**CHECK, "subject": {"id": 7}}, "subject.id"),
    ({**CHECK, "subject": {"id": ""}}, "subject.id"),
    ({**CHECK, "subject": {"name": "x"}}, "subject.name"),
    ({**CHECK, "action": ["read"]}, "action"),
    ({**CHECK, "resource": "orders"}, "resource"),
    ({**CHECK, "resource": {"type": "orders", "restrictions": "DE"}}, "resource.restrictions"),
    ({**CHECK, "resource": {"type": "orders", "restrictions": [1]}}, "resource.restrictions[0]"),
    ({**CHECK, "resource": {"type": "orders", "company": 5}}, "resource.company"),
    ({**CHECK, "resource": {"type": "orders", "colour": "red"}}, "resource.colour"),
    ({**CHECK, "resource": {"type": "spaceships"}}, "unknown resource type"),
    ({**CHECK, "action": "fly"}, "no action 'fly'"),
    ({**CHECK, "explain": "yes"}, "explain"),
    ({**CHECK, "min_revision": -1}, "min_revision"),
    ({**CHECK, "min_revision": 1.5}, "min_revision"),
    ({**CHECK, "min_revision": True}, "min_revision"),
    ({**CHECK, "tenant": "bad tenant!"}, "tenant"),
    ({**CHECK, "context": []}, "context"),
]


@pytest.mark.parametrize(("body", "needle"), WRONG)
async def test_wrong_fields_are_named(demo: Client, body: dict[str, Any], needle: str) -> None:
    response = await demo.post("/v1/check", json=body)
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 422 and needle in problem["detail"]


PURCHASES: list[tuple[dict[str, Any], int, str]] = [
    ({"amount": 100.5}, 422, "amount"),
    ({"amount": "1e3x"}, 422, "amount"),
    ({"amount": "-5"}, 422, "amount"),
    ({"amount": "NaN"}, 422, "amount"),
    ({"currency": "eur"}, 422, "currency"),
    ({"currency": "EUR\n"}, 422, "currency"),
    ({"currency": "USD"}, 422, "USD"),
    ({"company": "c-nowhere"}, 404, "c-nowhere"),
    ({"company": None}, 422, "company"),
]


@pytest.mark.parametrize(("change", "status", "needle"), PURCHASES)
async def test_purchase_errors(
    demo: Client, change: dict[str, Any], status: int, needle: str
) -> None:
    body = {**ENDPOINTS["/v1/purchases/evaluate"], **change}
    response = await demo.post("/v1/purchases/evaluate", json=body)
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == status and needle in problem["detail"]


async def test_form_content_type_is_415(demo: Client) -> None:
    response = await demo.post(
        "/v1/check", data=orjson.dumps(CHECK), headers={"Content-Type": "text/plain"}
    )
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 415


async def test_missing_content_type_is_accepted(demo: Client) -> None:
    response = await demo.post(
        "/v1/check", data=orjson.dumps(CHECK), skip_auto_headers=["Content-Type"]
    )
    assert response.status == 200


async def test_unknown_route_and_wrong_method_are_problems(demo: Client) -> None:
    response = await demo.get("/v1/nothing")
    assert_problem(response.status, await response.read(), response.content_type)
    response = await demo.get("/v1/check")
    problem = assert_problem(response.status, await response.read(), response.content_type)
    assert problem["status"] == 405 and response.headers["Allow"] == "POST"
