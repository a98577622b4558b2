"""Approval flows over HTTP (SPEC section 5): the whole loop on the demo graph, `approve`
checks on a flow, delegations in the admin API, and bad input for every field (a precise
4xx, nothing written)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.api.app import STATE
from groupgate.store import keys

Client = TestClient[Any, Any]
REQUEST = {
    "subject": {"id": "cust-requester"},
    "company": "c-parent",
    "amount": "100.00",
    "currency": "EUR",
    "cart": {"id": "cart-1", "hash": "h1"},
}


async def create(client: Client, key: str = "k1", **changes: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/v1/approvals", json=REQUEST | changes, headers={"Idempotency-Key": key}
    )
    body: dict[str, Any] = await response.json()
    return response.status, body


async def evaluate(client: Client, **extra: Any) -> dict[str, Any]:
    body = {k: v for k, v in REQUEST.items() if k != "cart"} | extra
    response = await client.post("/v1/purchases/evaluate", json=body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def check(client: Client, subject: str, flow_id: str) -> dict[str, Any]:
    body = {
        "subject": {"id": subject},
        "action": "approve",
        "resource": {"type": "approvals", "id": flow_id, "company": "c-parent"},
    }
    response = await client.post("/v1/check", json=body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def test_the_loop(demo: Client) -> None:
    status, flow = await create(demo)
    assert status == 201, flow
    assert flow["status"] == "PENDING" and flow["requester"] == "cust-requester"
    assert flow["tiers"][0]["eligible"] == {
        "groups": ["c-parent/admin", "c-parent/buyer"],
        "subjects": ["cust-admin", "cust-buyer", "cust-buyer-2"],
    }
    assert flow["tiers"][0]["requires"] == [["buyer", "admin"]]
    again_status, again = await create(demo)
    assert again_status == 200 and again["id"] == flow["id"]
    got = await demo.get(f"/v1/approvals/{flow['id']}")
    assert got.status == 200 and (await got.json())["id"] == flow["id"]
    inbox = await (await demo.get("/v1/approvals?approver=cust-admin&status=PENDING")).json()
    assert [f["id"] for f in inbox["approvals"]] == [flow["id"]]
    assert inbox["next_cursor"] is None
    mine = await (await demo.get("/v1/approvals?requester=cust-requester")).json()
    assert [f["id"] for f in mine["approvals"]] == [flow["id"]]
    # The check answers for this flow: eligible now or not.
    assert (await check(demo, "cust-admin", flow["id"]))["allow"] is True
    assert (await check(demo, "cust-requester", flow["id"]))["allow"] is False
    authzen = await demo.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": "cust-buyer"},
            "action": {"name": "approve"},
            "resource": {"type": "approvals", "id": flow["id"]},
        },
    )
    assert (await authzen.json())["decision"] is True
    before = await evaluate(demo, approval_id=flow["id"], cart={"hash": "h1"})
    assert before["decision"] == "approval_required"
    assert before["approval"]["usable"] is False and "PENDING" in before["approval"]["reason"]
    refused = await demo.post(
        f"/v1/approvals/{flow['id']}/approve", json={"subject": "cust-requester"}
    )
    assert refused.status == 403
    assert "own purchase" in (await refused.json())["detail"]
    approved = await demo.post(
        f"/v1/approvals/{flow['id']}/approve", json={"subject": "cust-buyer", "comment": "ok"}
    )
    assert approved.status == 200, await approved.text()
    body = await approved.json()
    assert body["status"] == "APPROVED"
    assert body["tiers"][0]["approvals"][0]["subject"] == "cust-buyer"
    assert (await check(demo, "cust-admin", flow["id"]))["allow"] is False
    allowed = await evaluate(demo, approval_id=flow["id"], cart={"id": "cart-1", "hash": "h1"})
    assert allowed["decision"] == "allow" and allowed["rule"] == "approved"
    changed = await evaluate(demo, approval_id=flow["id"], cart={"hash": "h2"})
    assert changed["decision"] == "approval_required"
    assert "cart changed" in changed["approval"]["reason"]
    late = await demo.post(
        f"/v1/approvals/{flow['id']}/decline", json={"subject": "cust-admin", "reason": "x"}
    )
    assert late.status == 409


async def test_allow_creates_nothing_and_deny_is_403(demo: Client) -> None:
    status, body = await create(demo, subject={"id": "cust-buyer"})
    assert status == 200 and body["decision"] == "allow"
    listed = await (await demo.get("/v1/approvals?requester=cust-buyer")).json()
    assert listed["approvals"] == []
    status, body = await create(demo, "k2", subject={"id": "emp-de"})
    assert status == 403 and "denied" in body["detail"]


async def test_cancel_and_decline(demo: Client) -> None:
    _, flow = await create(demo)
    _, other = await create(demo, "k2", amount="200.00")
    wrong = await demo.post(f"/v1/approvals/{flow['id']}/cancel", json={"subject": "cust-admin"})
    assert wrong.status == 403
    closed = await demo.post(
        f"/v1/approvals/{flow['id']}/cancel", json={"subject": "cust-requester"}
    )
    assert (await closed.json())["status"] == "CLOSED"
    declined = await demo.post(
        f"/v1/approvals/{other['id']}/decline", json={"subject": "cust-admin", "reason": "no"}
    )
    assert (await declined.json())["status"] == "DECLINED"
    listed = await (await demo.get("/v1/approvals?requester=cust-requester&status=CLOSED")).json()
    assert [f["id"] for f in listed["approvals"]] == [flow["id"]]


async def test_delegations_admin_api(demo: Client) -> None:
    base = "/v1/admin/tenants/demo/delegations"
    tenants = await (await demo.get("/v1/admin/tenants")).json()
    base = f"/v1/admin/tenants/{tenants['tenants'][0]}/delegations"
    body = {
        "id": "d1",
        "from": "cust-admin",
        "to": "cust-buyer",
        "company": "c-parent",
        "from_time": "2027-01-01T00:00:00Z",
        "until_time": "2027-02-01T00:00:00+01:00",
    }
    created = await demo.post(base, json=body)
    assert created.status == 201, await created.text()
    answer = await created.json()
    assert answer["id"] == "d1" and answer["replicas"] == 0  # the demo store has no replicas
    assert created.headers["X-Groupgate-Replicas"] == "0"
    listed = await (await demo.get(base)).json()
    assert listed["delegations"] == [body | {"until_time": "2027-01-31T23:00:00Z"}]
    bad = await demo.post(base, json=body | {"to": "cust-admin"})
    assert bad.status == 422 and "delegation.to" in (await bad.json())["detail"]
    assert (await demo.delete(base + "/d1")).status == 200
    assert (await demo.delete(base + "/d1")).status == 404
    assert (await (await demo.get(base)).json())["delegations"] == []


BAD_CREATES: list[tuple[dict[str, Any], int, str]] = [
    ({"extra": 1}, 422, "extra"),
    ({"subject": None}, 422, "subject"),
    ({"company": "bad id"}, 422, "company"),
    ({"company": "nope"}, 404, "company"),
    ({"amount": 100}, 422, "amount"),
    ({"amount": "1e5"}, 422, "amount"),
    ({"currency": "eur"}, 422, "currency"),
    ({"currency": "USD"}, 422, "EUR"),
    ({"cart": None}, 422, "cart"),
    ({"cart": {"hash": "h"}}, 422, "cart.id"),
    ({"cart": {"id": "c", "hash": 5}}, 422, "cart.hash"),
    ({"cart": {"id": "c", "cost_center": "a b"}}, 422, "cart.cost_center"),
    ({"cart": {"id": "c", "x": 1}}, 422, "cart.x"),
    ({"comment": "x" * 2001}, 422, "comment"),
    ({"comment": 5}, 422, "comment"),
    ({"tenant": "nope"}, 404, "tenant"),
]


@pytest.mark.parametrize(("change", "status", "detail"), BAD_CREATES)
async def test_bad_requests_write_nothing(
    demo: Client, change: dict[str, Any], status: int, detail: str
) -> None:
    got, body = await create(demo, **change)
    assert got == status, body
    assert body["type"].startswith("urn:groupgate:problem:") and detail in body["detail"]
    listed = await (await demo.get("/v1/approvals?requester=cust-requester")).json()
    assert listed["approvals"] == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"Idempotency-Key": ""}, 422),
        ({"Idempotency-Key": "a b"}, 422),
        ({"Idempotency-Key": "x" * 256}, 422),
    ],
)
async def test_idempotency_key_header(demo: Client, headers: dict[str, str], status: int) -> None:
    response = await demo.post("/v1/approvals", json=REQUEST, headers=headers)
    assert response.status == status
    assert "Idempotency-Key" in (await response.json())["detail"]


async def test_bad_actions_and_queries(demo: Client) -> None:
    _, flow = await create(demo)
    path = f"/v1/approvals/{flow['id']}"
    cases: list[tuple[str, str, Any, int, str]] = [
        ("post", path + "/approve", {"subject": "cust-admin", "x": 1}, 422, "x"),
        ("post", path + "/approve", {"subject": "cust-admin", "comment": 1}, 422, "comment"),
        ("post", path + "/approve", {}, 422, "subject"),
        ("post", path + "/decline", {"subject": "cust-admin"}, 422, "reason"),
        ("post", path + "/decline", {"subject": "cust-admin", "reason": ""}, 422, "reason"),
        ("post", path + "/cancel", {"subject": "cust-requester", "reason": "x"}, 422, "reason"),
        ("post", "/v1/approvals/bad%20id/approve", {"subject": "a"}, 422, "id"),
        ("post", "/v1/approvals/ap-none/approve", {"subject": "cust-admin"}, 404, "ap-none"),
        ("get", "/v1/approvals/ap-none", None, 404, "ap-none"),
        ("get", path + "?x=1", None, 422, "x"),
        ("get", "/v1/approvals", None, 422, "approver or requester"),
        ("get", "/v1/approvals?approver=a&requester=b", None, 422, "approver or requester"),
        ("get", "/v1/approvals?requester=a&status=OPEN", None, 422, "status"),
        ("get", "/v1/approvals?approver=a&status=APPROVED", None, 422, "status"),
        ("get", "/v1/approvals?requester=a&limit=0", None, 422, "limit"),
        ("get", "/v1/approvals?requester=a&limit=x", None, 422, "limit"),
        ("get", "/v1/approvals?requester=a&cursor=a%20b", None, 422, "cursor"),
        ("get", "/v1/approvals?requester=a&requester=b", None, 422, "requester"),
        ("get", "/v1/approvals?requester=a&y=1", None, 422, "y"),
    ]
    for method, url, body, status, detail in cases:
        response = (
            await getattr(demo, method)(url, json=body)
            if body is not None
            else await getattr(demo, method)(url)
        )
        problem = await response.json()
        assert response.status == status, (url, body, problem)
        assert detail in problem["detail"], (url, problem)
    unchanged = await (await demo.get(path)).json()
    assert unchanged["status"] == "PENDING" and unchanged["tiers"][0]["approvals"] == []
    assert unchanged["revision"] == flow["revision"]


async def test_evaluate_bad_approval_fields(demo: Client) -> None:
    for extra, detail in [
        ({"approval_id": 5}, "approval_id"),
        ({"approval_id": "a b"}, "approval_id"),
        ({"cart": {"hash": 1}}, "cart.hash"),
        ({"cart": {"x": 1}}, "cart.x"),
        ({"cart": []}, "cart"),
    ]:
        body = {k: v for k, v in REQUEST.items() if k != "cart"} | extra
        response = await demo.post("/v1/purchases/evaluate", json=body)
        assert response.status == 422 and detail in (await response.json())["detail"]
    unknown = await evaluate(demo, approval_id="ap-none")
    assert unknown["decision"] == "approval_required"
    assert unknown["approval"] == {
        "id": "ap-none",
        "usable": False,
        "reason": "unknown approval flow 'ap-none'",
    }


async def test_batch_checks_and_a_used_flow(demo: Client) -> None:
    _, flow = await create(demo)
    item = {"action": "approve", "resource": {"type": "approvals", "id": flow["id"]}}
    response = await demo.post(
        "/v1/checks",
        json={
            "checks": [
                item | {"subject": {"id": "cust-admin"}},
                item | {"subject": {"id": "cust-requester"}},
                {
                    "subject": {"id": "cust-admin"},
                    "action": "approve",
                    "resource": {"type": "approvals", "company": "c-parent"},
                },
            ]
        },
    )
    results = (await response.json())["results"]
    assert [r["allow"] for r in results] == [True, False, True]
    approved = await demo.post(
        f"/v1/approvals/{flow['id']}/approve", json={"subject": "cust-admin"}
    )
    assert approved.status == 200
    assert (await evaluate(demo, approval_id=flow["id"]))["rule"] == "approved"
    service = demo.app[STATE].service
    tenant = (await service.decider.tenants())[0]
    await service.client.hset(keys.flow(tenant, flow["id"]), "used_by", "order-7")
    used = await evaluate(demo, approval_id=flow["id"])
    assert used["decision"] == "approval_required"
    assert used["approval"] == {
        "id": flow["id"],
        "usable": False,
        "reason": f"approval flow {flow['id']} was used by order order-7",
    }
