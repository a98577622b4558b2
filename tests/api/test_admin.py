"""Admin API: every write returns the new revision (and how many replicas acknowledged it:
none here, the embedded store has no replicas); refused writes name the entry."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient

from tests.api.conftest import ADMIN_KEY, API_KEY, MakeClient

Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
T = "/v1/admin/tenants/demo"


@pytest.fixture
async def admin(make_client: MakeClient) -> Client:
    return await make_client(api_keys=API_KEY, admin_keys=ADMIN_KEY)


async def revision(response: Any) -> int:
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["replicas"] == 0 and response.headers["X-Groupgate-Replicas"] == "0"
    assert set(body) == {"revision", "replicas"}
    value: int = body["revision"]
    return value


async def allowed(client: Client, subject: str, action: str, resource: dict[str, Any]) -> bool:
    response = await client.post(
        "/v1/check",
        json={"subject": {"id": subject}, "action": action, "resource": resource},
        headers=ADMIN,
    )
    assert response.status == 200
    return bool((await response.json())["allow"])


async def test_every_write_bumps_the_revision(admin: Client) -> None:
    revisions = [
        await revision(await admin.put(f"{T}/vendors/v2", json={"name": "V2"}, headers=ADMIN)),
        await revision(
            await admin.put(
                f"{T}/companies/c-new",
                json={"name": "New", "parent": "c-parent", "restrictions": ["DE"]},
                headers=ADMIN,
            )
        ),
        await revision(
            await admin.put(
                f"{T}/groups/fr-managers",
                json={"name": "FR", "kind": "user", "role": "manager", "restrictions": ["FR"]},
                headers=ADMIN,
            )
        ),
        await revision(
            await admin.put(
                f"{T}/subjects/emp-fr", json={"kind": "employee", "groups": []}, headers=ADMIN
            )
        ),
        await revision(
            await admin.post(
                f"{T}/subjects/emp-fr/memberships", json={"group": "fr-managers"}, headers=ADMIN
            )
        ),
        await revision(
            await admin.put(
                f"{T}/settings", json={"company_contact_propagation": "DOWNWARD"}, headers=ADMIN
            )
        ),
    ]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    assert await allowed(admin, "emp-fr", "update", {"type": "orders", "restrictions": ["FR"]})
    response = await admin.get(f"{T}/subjects/emp-fr", headers=ADMIN)
    assert response.status == 200 and (await response.json())["id"] == "emp-fr"
    response = await admin.get(f"{T}/groups/c-new/admin", headers=ADMIN)
    assert response.status == 200 and (await response.json())["id"] == "c-new/admin"
    await revision(
        await admin.delete(f"{T}/subjects/emp-fr/memberships/fr-managers", headers=ADMIN)
    )
    assert not await allowed(admin, "emp-fr", "update", {"type": "orders", "restrictions": ["FR"]})
    await revision(await admin.delete(f"{T}/subjects/emp-fr", headers=ADMIN))
    response = await admin.get(f"{T}/subjects/emp-fr", headers=ADMIN)
    assert response.status == 404


async def test_membership_by_company_role_and_assignment_rule(admin: Client) -> None:
    await revision(
        await admin.put(f"{T}/subjects/cust-new", json={"kind": "customer"}, headers=ADMIN)
    )
    await revision(
        await admin.post(
            f"{T}/subjects/cust-new/memberships",
            json={"company": "c-parent", "role": "Purchaser"},
            headers=ADMIN,
        )
    )
    response = await admin.post(
        f"{T}/subjects/cust-new/memberships",
        json={"company": "c-parent", "role": "admin"},
        headers=ADMIN,
    )
    assert response.status == 422
    problem = await response.json(content_type=None)
    assert "only one of admin, buyer, requester" in problem["detail"]


async def test_refused_writes_name_the_entry(admin: Client) -> None:
    response = await admin.put(
        f"{T}/subjects/x-1", json={"kind": "employee", "groups": ["no-such"]}, headers=ADMIN
    )
    assert response.status == 422
    assert "no-such" in (await response.json(content_type=None))["detail"]
    response = await admin.put(
        f"{T}/companies/c-parent", json={"name": "P", "parent": "c-sub"}, headers=ADMIN
    )
    assert response.status == 422
    assert "cycle" in (await response.json(content_type=None))["detail"]
    response = await admin.put(
        f"{T}/subjects/a", json={"id": "b", "kind": "employee"}, headers=ADMIN
    )
    assert response.status == 422
    response = await admin.delete(f"{T}/groups/nothing-here", headers=ADMIN)
    assert response.status == 404


async def test_import_json_and_yaml(admin: Client) -> None:
    doc = {
        "tenant": "fresh",
        "groups": [{"id": "v", "name": "V", "kind": "user", "role": "viewer"}],
        "subjects": [{"id": "e1", "kind": "employee", "groups": ["v"]}],
    }
    response = await admin.post("/v1/admin/tenants/fresh/import", json=doc, headers=ADMIN)
    first = await revision(response)
    response = await admin.post(
        "/v1/admin/tenants/fresh/import",
        data=yaml.safe_dump(doc),
        headers={**ADMIN, "Content-Type": "application/yaml"},
    )
    assert await revision(response) > first
    response = await admin.get("/v1/admin/tenants", headers=ADMIN)
    assert sorted((await response.json())["tenants"]) == ["demo", "fresh"]


async def test_import_refusals(admin: Client) -> None:
    bad = {"tenant": "fresh", "subjects": [{"id": "e1", "kind": "employee", "groups": ["nope"]}]}
    response = await admin.post("/v1/admin/tenants/fresh/import", json=bad, headers=ADMIN)
    assert response.status == 422
    assert "subjects[0].groups[0]" in (await response.json(content_type=None))["detail"]
    other = {"tenant": "elsewhere"}
    response = await admin.post("/v1/admin/tenants/fresh/import", json=other, headers=ADMIN)
    assert response.status == 422
    bomb = "a: &x [1, 2]\nb: [*x, *x]\n"
    response = await admin.post(
        "/v1/admin/tenants/fresh/import",
        data=bomb,
        headers={**ADMIN, "Content-Type": "application/yaml"},
    )
    assert (
        response.status == 400 and "aliases" in (await response.json(content_type=None))["detail"]
    )
    response = await admin.post(
        "/v1/admin/tenants/fresh/import", data="x", headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert response.status == 415


async def test_create_and_delete_tenant(admin: Client) -> None:
    response = await admin.post(
        "/v1/admin/tenants", json={"tenant": "t2", "settings": {}}, headers=ADMIN
    )
    assert response.status == 201
    response = await admin.post("/v1/admin/tenants", json={"tenant": "t2"}, headers=ADMIN)
    assert response.status == 409
    await revision(await admin.delete("/v1/admin/tenants/t2", headers=ADMIN))
    response = await admin.delete("/v1/admin/tenants/t2", headers=ADMIN)
    assert response.status == 404


async def test_admin_needs_an_admin_credential(admin: Client) -> None:
    response = await admin.get("/v1/admin/tenants")
    assert response.status == 401
    response = await admin.get("/v1/admin/tenants", headers={"Authorization": API_KEY})
    assert response.status == 403
    response = await admin.get("/v1/admin/tenants", headers={"Authorization": "Bearer wrong"})
    assert response.status == 401


async def test_admin_closed_without_keys_unless_opened(make_client: MakeClient) -> None:
    closed = await make_client()
    response = await closed.get("/v1/admin/tenants")
    assert response.status == 403
    assert "GROUPGATE_ADMIN_OPEN" in (await response.json(content_type=None))["detail"]
    opened = await make_client(admin_open=True)
    response = await opened.get("/v1/admin/tenants")
    assert response.status == 200


async def test_approval_group_members_must_be_customers_of_the_company(admin: Client) -> None:
    """SPEC section 5: refused with the entry named, through every admin write and import."""

    async def stored(kind: str, entity: str) -> str:
        response = await admin.get(f"{T}/{kind}/{entity}", headers=ADMIN)
        return f"{response.status} {await response.text()}"

    async def refused(response: Any, path: str) -> None:
        assert response.status == 422, await response.text()
        detail = (await response.json(content_type=None))["detail"]
        assert path in detail and "not a customer of 'c-parent'" in detail, detail

    group = {"name": "Approvers", "kind": "customer", "company": "c-parent"}
    await revision(await admin.put(f"{T}/groups/p-approvers", json=group, headers=ADMIN))
    # us-1 is a customer of c-us only (c-sub's customers are contacts of c-parent: UPWARD).
    us = {"kind": "customer", "companies": {"c-us": ["buyer"]}}
    await revision(await admin.put(f"{T}/subjects/us-1", json=us, headers=ADMIN))
    await revision(
        await admin.post(
            f"{T}/subjects/us-1/memberships",
            json={"group": "p-approvers"},
            headers=ADMIN,
        )
    )
    company = {"name": "Parent AG", "approval_group": "p-approvers"}
    await refused(
        await admin.put(f"{T}/companies/c-parent", json=company, headers=ADMIN),
        "company.approval_group",
    )
    assert "p-approvers" not in await stored("companies", "c-parent")
    await revision(await admin.delete(f"{T}/subjects/us-1/memberships/p-approvers", headers=ADMIN))
    await revision(await admin.put(f"{T}/companies/c-parent", json=company, headers=ADMIN))
    await refused(
        await admin.post(
            f"{T}/subjects/us-1/memberships",
            json={"group": "p-approvers"},
            headers=ADMIN,
        ),
        "membership.group",
    )
    outsider = {"kind": "customer", "companies": {"c-us": ["buyer"]}, "groups": ["p-approvers"]}
    await refused(
        await admin.put(f"{T}/subjects/outsider", json=outsider, headers=ADMIN),
        "subject.groups[0]",
    )
    assert "p-approvers" not in await stored("subjects", "us-1")
    assert (await stored("subjects", "outsider")).startswith("404")
    # A customer of c-parent may join; so may one assigned in the same write.
    await revision(
        await admin.post(
            f"{T}/subjects/cust-buyer/memberships", json={"group": "p-approvers"}, headers=ADMIN
        )
    )
    inside = {"kind": "customer", "companies": {"c-parent": []}, "groups": ["p-approvers"]}
    await revision(await admin.put(f"{T}/subjects/insider", json=inside, headers=ADMIN))

    doc = {
        "tenant": "fresh",
        "companies": [{"id": "c-parent", "name": "P", "approval_group": "p-approvers"}],
        "groups": [{"id": "p-approvers", **group}],
        "subjects": [{"id": "x", "kind": "customer", "groups": ["p-approvers"]}],
    }
    response = await admin.post("/v1/admin/tenants/fresh/import", json=doc, headers=ADMIN)
    await refused(response, "subjects[0].groups[0]")
    response = await admin.get("/v1/admin/tenants", headers=ADMIN)
    assert "fresh" not in (await response.json())["tenants"]
