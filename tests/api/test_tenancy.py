"""Tenant isolation: a credential bound to tenant A never decides or writes in tenant B."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import DEMO, MakeClient, document

Client = TestClient[Any, Any]
KEY_A = "tenant-a-key-0123456789"
KEY_B = "tenant-b-key-0123456789"
ADMIN_A = "tenant-a-admin-0123456789"


def graph(tenant: str) -> dict[str, Any]:
    doc: dict[str, Any] = copy.deepcopy(document(DEMO))
    doc["tenant"] = tenant
    return doc


@pytest.fixture
async def two(make_client: MakeClient) -> Client:
    return await make_client(
        documents=[graph("a"), graph("b")],
        api_keys=f"{KEY_A}:a,{KEY_B}:b",
        admin_keys=f"{ADMIN_A}:a",
    )


CHECK = {
    "subject": {"id": "emp-viewer"},
    "action": "read",
    "resource": {"type": "orders", "restrictions": ["DE"]},
}


async def test_bound_key_decides_in_its_tenant(two: Client) -> None:
    for body in (CHECK, {**CHECK, "tenant": "a"}):
        response = await two.post("/v1/check", json=body, headers={"Authorization": KEY_A})
        assert response.status == 200 and (await response.json())["allow"] is True


async def test_bound_key_refused_in_other_tenant(two: Client) -> None:
    response = await two.post(
        "/v1/check", json={**CHECK, "tenant": "b"}, headers={"Authorization": f"Bearer {KEY_A}"}
    )
    assert response.status == 403
    assert "'a'" in (await response.json(content_type=None))["detail"]
    response = await two.post(
        "/v1/purchases/evaluate",
        json={
            "tenant": "b",
            "subject": {"id": "cust-buyer"},
            "company": "c-parent",
            "amount": "1.00",
            "currency": "EUR",
        },
        headers={"X-Groupgate-Key": KEY_A},
    )
    assert response.status == 403


async def test_authzen_uses_the_key_tenant(two: Client) -> None:
    body = {
        "subject": {"type": "user", "id": "emp-viewer"},
        "action": {"name": "read"},
        "resource": {"type": "orders", "id": "o-1"},
    }
    response = await two.post("/access/v1/evaluation", json=body, headers={"Authorization": KEY_B})
    assert response.status == 200 and (await response.json())["decision"] is True
    response = await two.post(
        "/access/v1/evaluation",
        json=body,
        headers={"Authorization": KEY_B, "X-Groupgate-Tenant": "a"},
    )
    assert response.status == 403


async def test_no_tenant_with_two_loaded_and_no_binding(make_client: MakeClient) -> None:
    client = await make_client(documents=[graph("a"), graph("b")])
    response = await client.post("/v1/check", json=CHECK)
    assert response.status == 404
    assert "2 tenants" in (await response.json(content_type=None))["detail"]
    client = await make_client(documents=[graph("a"), graph("b")], default_tenant="b")
    response = await client.post("/v1/check", json=CHECK)
    assert response.status == 200


async def test_tenant_admin_key_writes_only_its_tenant(two: Client) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_A}"}
    subject = {"kind": "employee", "groups": ["viewers"]}
    response = await two.put("/v1/admin/tenants/a/subjects/new-1", json=subject, headers=headers)
    assert response.status == 200
    response = await two.put("/v1/admin/tenants/b/subjects/new-1", json=subject, headers=headers)
    assert response.status == 403
    response = await two.get("/v1/admin/tenants", headers=headers)
    assert (await response.json())["tenants"] == ["a"]
    # A decision key is not an admin key.
    response = await two.put(
        "/v1/admin/tenants/a/subjects/new-2", json=subject, headers={"Authorization": KEY_A}
    )
    assert response.status == 403
