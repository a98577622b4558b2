"""Ids with every character `parsing.ID` allows (`:` included) work on every surface and store.

Keys of the store are built only in `store/keys.py` and never cut apart, so a tenant
`T..:a._@+-z` and entities named alike are written, read, decided and deleted on fakeredis,
a real Redis server (a private `redis_process`) and a Redis Cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.api import parsing
from groupgate.api.app import create_app
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService
from tests.api.conftest import POLICIES

Client = TestClient[Any, Any]
EVERY = ":a._@+-z"  # with a leading letter or digit: every character of parsing.ID


def ident(prefix: str) -> str:
    value = f"{prefix}0{uuid.uuid4().hex[:6]}{EVERY}"
    assert parsing.ID.match(value)
    return value


@pytest.fixture(params=["fakeredis", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def backend(request: pytest.FixtureRequest) -> str | None:
    if request.param == "fakeredis":
        return None
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return "redis+cluster://" + cluster.url.split("://", 1)[1]
    url: str = request.getfixturevalue("redis_process").url
    return url


class Ids:
    def __init__(self) -> None:
        self.tenant = ident("T")
        self.company = ident("c")
        self.child = ident("d")
        self.vendor = ident("v")
        self.group = ident("g")
        self.employee = ident("e")
        self.buyer = ident("b")
        self.admin = ident("a")
        self.newcomer = ident("n")

    def graph(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "vendors": [{"id": self.vendor, "name": "V"}],
            "companies": [
                {
                    "id": self.company,
                    "name": "C",
                    "parent": None,
                    "account_limit": {"amount": "5000.00", "currency": "EUR"},
                    "restrictions": ["DE"],
                }
            ],
            "groups": [{"id": self.group, "name": "G", "kind": "user", "role": "viewer"}],
            "subjects": [
                {"id": self.employee, "kind": "employee", "groups": [self.group]},
                {"id": self.buyer, "kind": "customer", "companies": {self.company: ["buyer"]}},
                {"id": self.admin, "kind": "customer", "companies": {self.company: ["admin"]}},
            ],
        }


@pytest.fixture
async def setup(aiohttp_client: Any, backend: str | None) -> AsyncIterator[tuple[Client, Ids]]:
    ids = Ids()
    config = load_config(env={}, overrides={"policies": str(POLICIES), "admin_open": True})
    service = await GraphService.open(load_policy(POLICIES), backend, poll_interval=0.2)
    try:
        await service.admin.import_graph(None, ids.graph())
        client: Client = await aiohttp_client(create_app(config, service))
        yield client, ids
        await service.admin.delete_tenant(ids.tenant)
    finally:
        await service.close()


async def ok(response: Any) -> dict[str, Any]:
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def purchase(
    client: Client, ids: Ids, subject: str, amount: str, after: int | None = None
) -> dict[str, Any]:
    """Ask a purchase; `after`: a write's revision, as a consistency token (the change event
    may reach the cache later than the write's answer, above all on a Cluster)."""
    body: dict[str, Any] = {
        "tenant": ids.tenant,
        "subject": {"id": subject},
        "company": ids.company,
        "amount": amount,
        "currency": "EUR",
    }
    if after is not None:
        body["min_revision"] = after
    return await ok(await client.post("/v1/purchases/evaluate", json=body))


async def test_decisions_with_every_id_character(setup: tuple[Client, Ids]) -> None:
    client, ids = setup
    check = {
        "tenant": ids.tenant,
        "subject": {"id": ids.employee},
        "action": "read",
        "resource": {"type": "orders", "id": ids.company},
    }
    assert (await ok(await client.post("/v1/check", json=check)))["allow"] is True
    body = await ok(await client.post("/v1/checks", json={**check, "checks": [{}]}))
    assert body["results"][0]["allow"] is True
    evaluation = {
        "subject": {"type": "user", "id": ids.employee},
        "action": {"name": "read"},
        "resource": {"type": "orders", "id": ids.company},
    }
    headers = {"X-Groupgate-Tenant": ids.tenant}
    answer = await ok(await client.post("/access/v1/evaluation", json=evaluation, headers=headers))
    assert answer["decision"] is True
    assert (await purchase(client, ids, ids.buyer, "10.00"))["decision"] == "allow"
    over = await purchase(client, ids, ids.buyer, "6200.00")
    assert over["decision"] == "approval_required"
    assert over["approvers"] == {"groups": [f"{ids.company}/admin"], "subjects": [ids.admin]}


async def test_admin_writes_with_every_id_character(setup: tuple[Client, Ids]) -> None:
    client, ids = setup
    base = f"/v1/admin/tenants/{ids.tenant}"
    child = {"name": "D", "parent": ids.company, "restrictions": ["DE"]}
    await ok(await client.put(f"{base}/companies/{ids.child}", json=child))
    group = ident("h")
    await ok(
        await client.put(
            f"{base}/groups/{group}", json={"name": "H", "kind": "user", "role": "viewer"}
        )
    )
    newcomer = {"kind": "customer", "companies": {ids.child: ["requester"]}}
    await ok(await client.put(f"{base}/subjects/{ids.newcomer}", json=newcomer))
    membership = {"company": ids.company, "role": "buyer"}
    added = await ok(
        await client.post(f"{base}/subjects/{ids.newcomer}/memberships", json=membership)
    )
    bought = await purchase(client, ids, ids.newcomer, "10.00", added["revision"])
    assert bought["decision"] == "allow"
    found = await ok(await client.get(f"{base}/subjects/{ids.newcomer}"))
    assert found["id"] == ids.newcomer
    assert (await ok(await client.get(f"{base}/companies/{ids.company}")))["id"] == ids.company
    removed = await ok(
        await client.delete(f"{base}/subjects/{ids.newcomer}/memberships/{ids.company}/buyer")
    )
    refused = await purchase(client, ids, ids.newcomer, "10.00", removed["revision"])
    assert refused["decision"] == "deny"
    await ok(await client.put(f"{base}/vendors/{ids.vendor}", json={"name": "V2"}))
    await ok(await client.delete(f"{base}/subjects/{ids.newcomer}"))
    await ok(await client.delete(f"{base}/groups/{group}"))
    await ok(await client.delete(f"{base}/companies/{ids.child}"))
    await ok(await client.delete(f"{base}/vendors/{ids.vendor}"))
    settings = {"company_contact_propagation": "UPWARD"}
    await ok(await client.put(f"{base}/settings", json=settings))
    response = await client.get(f"{base}/subjects/{ids.newcomer}")
    assert response.status == 404
