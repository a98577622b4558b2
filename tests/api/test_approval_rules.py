"""Approval rules over HTTP (SPEC section 5): per company through the admin API (validated
whole, nothing written on an error), `cost_center` and `explain` on
`/v1/purchases/evaluate`, and the AuthZEN purchase of a cart (`context.approval`)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.api import authzen
from tests.api.conftest import MakeClient

Client = TestClient[Any, Any]
T = "/v1/admin/tenants/demo"
BIG = {
    "id": "big",
    "when": {"amount_over": "1000.00", "currency": "EUR", "cost_center": ["CC-1"]},
    "requesters": ["buyer"],
    "tiers": [[["admin"]], [["admin", "buyer"]]],
}
PARENT = {
    "name": "Parent AG",
    "account_limit": {"amount": "5000.00", "currency": "EUR"},
    "restrictions": ["DE"],
}


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    """The demo graph with `big` on c-parent, written through the admin API."""
    made = await make_client(admin_open=True)
    response = await made.put(f"{T}/companies/c-parent", json={**PARENT, "approval_rules": [BIG]})
    assert response.status == 200, await response.text()
    return made


async def evaluate(client: Client, subject: str, amount: str, **extra: Any) -> dict[str, Any]:
    body = {"subject": {"id": subject}, "company": "c-parent", "amount": amount, "currency": "EUR"}
    response = await client.post("/v1/purchases/evaluate", json={**body, **extra})
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def test_rules_are_read_back_and_decide(client: Client) -> None:
    stored = await (await client.get(f"{T}/companies/c-parent")).json()
    assert stored["approval_rules"] == [BIG]
    assert (await evaluate(client, "cust-buyer", "2000.00"))["decision"] == "allow"
    found = await evaluate(client, "cust-buyer", "2000.00", cost_center="CC-1")
    assert found["decision"] == "approval_required" and found["rule"] == "rule:big"
    assert found["rules"] == ["big"]
    assert found["approvers"] == {"groups": ["c-parent/admin"], "subjects": ["cust-admin"]}
    assert found["tiers"] == [
        {
            "rule": "rule:big",
            "requires": [["admin"]],
            "eligible": {"groups": ["c-parent/admin"], "subjects": ["cust-admin"]},
        },
        {
            "rule": "rule:big",
            "requires": [["admin", "buyer"]],
            "eligible": {
                "groups": ["c-parent/admin", "c-parent/buyer"],
                "subjects": ["cust-admin", "cust-buyer-2"],
            },
        },
    ]
    assert "explain" not in found


async def test_explain_lists_every_rule_with_why(client: Client) -> None:
    result = await evaluate(client, "cust-requester", "2000.00", cost_center="CC-1", explain=True)
    assert result["rule"] == "requester_within_limit" and result["rules"] == []
    assert result["explain"] == [
        {
            "rule": "big",
            "source": "c-parent",
            "matched": False,
            "why": "the requester holds none of buyer in c-parent",
            "requires": [[["admin"]], [["admin", "buyer"]]],
        }
    ]
    sub = await client.post(
        "/v1/purchases/evaluate",
        json={
            "subject": {"id": "cust-sub-admin"},
            "company": "c-sub",
            "amount": "1.00",
            "currency": "EUR",
            "explain": True,
        },
    )
    # c-sub sets no rules: c-parent's reach it (and match nothing here).
    assert [e["source"] for e in (await sub.json())["explain"]] == ["c-parent"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"cost_center": "CC 1"}, "cost_center: invalid id"),
        ({"cost_center": 7}, "cost_center: expected a non-empty string, got a number"),
        ({"cost_center": ""}, "cost_center: expected a non-empty string"),
        ({"explain": "yes"}, "explain: expected true or false"),
    ],
)
async def test_bad_purchase_fields_are_precise_422s(
    client: Client, extra: dict[str, Any], message: str
) -> None:
    body = {
        "subject": {"id": "cust-buyer"},
        "company": "c-parent",
        "amount": "1",
        "currency": "EUR",
    }
    response = await client.post("/v1/purchases/evaluate", json={**body, **extra})
    assert response.status == 422
    assert message in (await response.json(content_type=None))["detail"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{**BIG, "tiers": [[["finance"]]]}], "(big).tiers[0][0][0]: unknown group 'finance'"),
        ([{**BIG, "tiers": [[["admin"]]] * 6}], "(big).tiers: a rule has 1 to 5 tiers, got 6"),
        ([{**BIG, "when": {"amount_over": "-1", "currency": "EUR"}}], "not a decimal number"),
        ([{**BIG, "when": {"currency": "EURO"}}], "(big).when.currency: expected an ISO 4217"),
        ([BIG, BIG], "approval_rules[1] (big).id: duplicate approval rule id 'big'"),
        ({"id": "big"}, "company.approval_rules: expected a list, got dict"),
    ],
)
async def test_a_bad_rule_through_the_admin_api_writes_nothing(
    client: Client, rules: Any, message: str
) -> None:
    before = await (await client.get(f"{T}/companies/c-parent")).json()
    revision = (await evaluate(client, "cust-buyer", "1"))["revision"]
    response = await client.put(f"{T}/companies/c-parent", json={**PARENT, "approval_rules": rules})
    assert response.status == 422
    problem = await response.json(content_type=None)
    assert message in problem["detail"], problem["detail"]
    assert await (await client.get(f"{T}/companies/c-parent")).json() == before
    assert (await evaluate(client, "cust-buyer", "1"))["revision"] == revision


async def authzen_purchase(
    client: Client, subject: str, amount: str, **properties: Any
) -> dict[str, Any]:
    body = {
        "subject": {"type": "user", "id": subject},
        "action": {"name": "purchase"},
        "resource": {
            "type": "carts",
            "id": "cart-9",
            "properties": {
                "company": "c-parent",
                "amount": amount,
                "currency": "EUR",
                **properties,
            },
        },
    }
    response = await client.post("/access/v1/evaluation", json=body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def test_authzen_purchase_of_a_cart(client: Client) -> None:
    allowed = await authzen_purchase(client, "cust-buyer", "100.00")
    assert allowed["decision"] is True and "approval" not in allowed["context"]
    denied = await authzen_purchase(client, "cust-sub-admin", "100.00")
    assert denied["decision"] is False
    assert denied["context"]["reason"] == "not_a_purchaser" and "approval" not in denied["context"]
    needed = await authzen_purchase(client, "cust-buyer", "2000.00", cost_center="CC-1")
    assert needed["decision"] is False
    context = needed["context"]
    assert context["approval_required"] is True and context["reason"] == "rule:big"
    approval = context["approval"]
    assert approval["rule"] == "rule:big" and approval["rules"] == ["big"]
    assert approval["requestable"] is True
    assert [t["eligible"]["subjects"] for t in approval["tiers"]] == [
        ["cust-admin"],
        ["cust-admin", "cust-buyer-2"],
    ]
    assert approval["request"] == {
        "method": "POST",
        "href": "/v1/approvals",
        "body": {
            "subject": {"id": "cust-buyer"},
            "company": "c-parent",
            "amount": "2000.00",
            "currency": "EUR",
            "cart": {"id": "cart-9", "cost_center": "CC-1"},
        },
    }


async def test_authzen_purchase_errors_are_never_an_allow(client: Client) -> None:
    bad = await authzen_purchase(client, "cust-buyer", "1", cost_center="CC 1")
    assert bad["decision"] is False and bad["context"]["error"]["status"] == 422
    assert "cost_center: invalid id" in bad["context"]["reason"]
    other = await authzen_purchase(client, "cust-buyer", "1", currency="USD")
    assert other["decision"] is False and other["context"]["error"]["status"] == 422


def test_a_purchase_never_takes_the_fast_path_of_plain_checks() -> None:
    raw = {
        "subject": {"type": "user", "id": "cust-buyer"},
        "action": {"name": "purchase"},
        "resource": {"type": "carts", "id": "cart-9", "properties": {"company": "c-parent"}},
    }
    actions = {"carts": frozenset({"read", "update", "create", "delete", "manage"})}
    assert authzen._plain_check(actions, raw) is None
    assert authzen._parse_item(actions, raw, "").kind == "error"  # no amount: an error item


async def test_an_import_with_a_bad_rule_is_refused_whole(client: Client) -> None:
    revision = (await evaluate(client, "cust-buyer", "1"))["revision"]
    doc = {
        "companies": [
            {"id": "c-parent", "name": "P"},
            {"id": "c-x", "name": "X", "approval_rules": [{**BIG, "requesters": ["ghost"]}]},
        ]
    }
    response = await client.post(f"{T}/import", json=doc)
    assert response.status == 422
    detail = (await response.json(content_type=None))["detail"]
    assert detail == "companies[1].approval_rules[0] (big).requesters[0]: unknown group 'ghost'"
    assert (await evaluate(client, "cust-buyer", "1"))["revision"] == revision


async def test_the_authzen_request_creates_a_flow_with_the_rules_tiers(client: Client) -> None:
    needed = await authzen_purchase(client, "cust-buyer", "2000.00", cost_center="CC-1")
    request = needed["context"]["approval"]["request"]
    response = await client.request(
        request["method"], request["href"], json=request["body"], headers={"Idempotency-Key": "k"}
    )
    assert response.status == 201, await response.text()
    flow = await response.json()
    assert [(t["rule"], t["requires"]) for t in flow["tiers"]] == [
        ("rule:big", [["admin"]]),
        ("rule:big", [["admin", "buyer"]]),
    ]
    # Approved in order: an admin, then an admin or a buyer, never the requester.
    url = f"/v1/approvals/{flow['id']}"
    first = await client.post(f"{url}/approve", json={"subject": "cust-admin"})
    assert first.status == 200 and (await first.json())["status"] == "PENDING"
    own = await client.post(f"{url}/approve", json={"subject": "cust-buyer"})
    assert own.status == 403
    last = await client.post(f"{url}/approve", json={"subject": "cust-buyer-2"})
    assert last.status == 200 and (await last.json())["status"] == "APPROVED"
