"""The spend ledger over HTTP: POST /v1/purchases/commit and /release, the spend gate of
/v1/purchases/evaluate, limits and budgets in admin writes; bad input is a precise 4xx that
writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import ADMIN_KEY, API_KEY, MakeClient

Client = TestClient[Any, Any]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def graph() -> dict[str, Any]:
    return {
        "tenant": "acme",
        "settings": {"time_zone": "Europe/Berlin"},
        "companies": [
            {
                "id": "shop",
                "name": "Shop AG",
                "spending_limits": [{"period": "year", "amount": "100.00", "currency": "EUR"}],
                "budgets": [
                    {
                        "id": "cc1",
                        "cost_center": "CC-1",
                        "from": "2000-01-01",
                        "until": "2999-12-31",
                        "amount": "50.00",
                        "currency": "EUR",
                    }
                ],
            }
        ],
        "subjects": [
            {"id": "admin-1", "kind": "customer", "companies": {"shop": ["admin"]}},
            {"id": "buyer-1", "kind": "customer", "companies": {"shop": ["buyer"]}},
        ],
    }


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client(documents=[graph()], api_keys=API_KEY, admin_keys=ADMIN_KEY)


def commit_body(order_id: str = "o-1", amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "order_id": order_id,
        "subject": "buyer-1",
        "company": "shop",
        "amount": amount,
        "currency": "EUR",
        **extra,
    }


async def post(client: Client, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, json=body, headers=AUTH)
    result: dict[str, Any] = await response.json(content_type=None)
    if response.status >= 400:
        assert response.content_type == "application/problem+json"
    return response.status, result


async def test_commit_release_round_trip(client: Client) -> None:
    status, body = await post(client, "/v1/purchases/commit", commit_body(cost_center="CC-1"))
    assert status == 200, body
    assert body["status"] == "committed" and body["order_id"] == "o-1"
    assert (body["amount"], body["currency"], body["cost_center"]) == ("10.00", "EUR", "CC-1")
    assert body["approved"] is False and body["replayed"] is False
    assert isinstance(body["ledger_revision"], int) and isinstance(body["revision"], int)
    totals = {(t["scope"], t.get("period") or t.get("budget")): t for t in body["totals"]}
    assert totals[("company", "year")]["spent"] == {"amount": "10.00", "currency": "EUR"}
    assert totals[("company", "year")]["limit"] == {"amount": "100.00", "currency": "EUR"}
    assert totals[("budget", "cc1")]["spent"]["amount"] == "10.00"
    again = await post(client, "/v1/purchases/commit", commit_body(cost_center="CC-1"))
    assert again[0] == 200 and again[1] == {**body, "replayed": True}

    status, released = await post(client, "/v1/purchases/release", {"order_id": "o-1"})
    assert status == 200, released
    assert released["status"] == "released" and released["amount"] == "10.00"
    assert released["ledger_revision"] == body["ledger_revision"] + 1
    assert await post(client, "/v1/purchases/release", {"order_id": "o-1"}) == (200, released)
    status, problem = await post(client, "/v1/purchases/commit", commit_body(cost_center="CC-1"))
    assert (status, problem["rule"]) == (409, "order_released")


async def test_commit_past_a_limit_is_a_409_with_the_rule(client: Client) -> None:
    assert (await post(client, "/v1/purchases/commit", commit_body("o-1", "95")))[0] == 200
    status, problem = await post(client, "/v1/purchases/commit", commit_body("o-2", "5.01"))
    assert status == 409
    assert problem["type"] == "urn:groupgate:problem:purchase-refused"
    assert problem["rule"] == "period_limit_exceeded"
    assert problem["limits"][0]["spent"] == {"amount": "95.00", "currency": "EUR"}
    status, body = await post(
        client, "/v1/purchases/commit", commit_body("o-3", "5", cost_center="CC-1")
    )
    assert status == 200, body  # exactly at the limit
    status, problem = await post(client, "/v1/purchases/commit", commit_body("o-1", "96"))
    assert (status, problem["rule"]) == (409, "order_id_reused")
    status, problem = await post(
        client, "/v1/purchases/commit", commit_body("o-4", "1", approval_id="nope")
    )
    assert (status, problem["rule"]) == (409, "approval_not_usable")


async def test_evaluate_asks_the_admins_past_a_limit(client: Client) -> None:
    purchase = {"tenant": "acme", "subject": "buyer-1", "company": "shop", "currency": "EUR"}
    status, body = await post(client, "/v1/purchases/evaluate", {**purchase, "amount": "60"})
    assert (status, body["decision"]) == (200, "allow")
    assert (await post(client, "/v1/purchases/commit", commit_body("o-1", "60")))[0] == 200
    status, body = await post(client, "/v1/purchases/evaluate", {**purchase, "amount": "60"})
    assert (status, body["decision"], body["rule"]) == (
        200,
        "approval_required",
        "period_limit_exceeded",
    )
    assert body["approvers"] == {"groups": ["shop/admin"], "subjects": ["admin-1"]}
    status, body = await post(
        client, "/v1/purchases/evaluate", {**purchase, "amount": "40.00", "cost_center": "CC-1"}
    )
    assert (body["decision"], body["rule"]) == ("allow", "buyer_no_limit")
    status, body = await post(
        client, "/v1/purchases/evaluate", {**purchase, "amount": "50.01", "cost_center": "CC-1"}
    )
    assert (body["decision"], body["rule"]) == ("approval_required", "period_limit_exceeded")
    status, body = await post(
        client, "/v1/purchases/evaluate", {**purchase, "amount": "1", "cost_center": "CC 1"}
    )
    assert status == 422 and body["detail"].startswith("cost_center: invalid id")


BAD_COMMITS = [
    ({"order_id": None}, 422, "order_id: expected a non-empty string"),
    ({"order_id": "o 1"}, 422, "order_id: invalid id"),
    ({"order_id": "x" * 129}, 422, "order_id: longer than 128"),
    ({"order_id": 7}, 422, "order_id: expected a non-empty string"),
    ({"subject": None}, 422, "subject"),
    ({"subject": {"id": "a b"}}, 422, "subject: invalid id"),
    ({"subject": {"id": "buyer-1", "x": 1}}, 422, "subject.x: unknown field"),
    ({"subject": "nobody"}, 404, "unknown subject 'nobody'"),
    ({"company": None}, 422, "company: expected a non-empty string"),
    ({"company": "nope"}, 404, "unknown company 'nope'"),
    ({"amount": 10}, 422, "amount: expected a decimal string"),
    ({"amount": "-1"}, 422, "amount: not a decimal number"),
    ({"amount": "1e3"}, 422, "amount: not a decimal number"),
    ({"amount": "0.00001"}, 422, "amount: 0.00001 has more than 4 decimals"),
    ({"amount": "999999999999.0"}, 422, "amount: 999999999999.0 is too large"),
    ({"currency": "eur"}, 422, "currency: expected an ISO 4217 code"),
    ({"currency": None}, 422, "currency: expected a non-empty string"),
    ({"cost_center": ""}, 422, "cost_center: expected a non-empty string"),
    ({"cost_center": ["CC-1"]}, 422, "cost_center: expected a non-empty string"),
    ({"approval_id": "f/1"}, 422, "approval_id: invalid id"),
    ({"approval_id": 1}, 422, "approval_id: expected a non-empty string"),
    ({"tenant": "other"}, 404, "unknown tenant"),
    ({"tenant": "a b"}, 422, "tenant: invalid id"),
    ({"extra": 1}, 422, "extra: unknown field"),
]


@pytest.mark.parametrize(("change", "status", "detail"), BAD_COMMITS)
async def test_bad_commits_write_nothing(
    client: Client, change: dict[str, Any], status: int, detail: str
) -> None:
    got, problem = await post(client, "/v1/purchases/commit", {**commit_body("o-bad"), **change})
    assert (got, problem["detail"][: len(detail)]) == (status, detail), problem
    # Nothing was written: the order id is free and the totals are untouched.
    got, body = await post(client, "/v1/purchases/commit", commit_body("o-bad", "100"))
    assert got == 200 and not body["replayed"], body
    year = next(t for t in body["totals"] if t.get("period") == "year")
    assert year["spent"]["amount"] == "100.00"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({}, 422, "order_id: expected a non-empty string"),
        ({"order_id": "o:1/2"}, 422, "order_id: invalid id"),
        ({"order_id": "o-1", "amount": "1"}, 422, "amount: unknown field"),
        ({"order_id": "never"}, 404, "unknown order 'never'"),
    ],
)
async def test_bad_releases(client: Client, body: dict[str, Any], status: int, detail: str) -> None:
    got, problem = await post(client, "/v1/purchases/release", body)
    assert (got, problem["detail"][: len(detail)]) == (status, detail), problem


async def test_not_json_and_no_credential(client: Client) -> None:
    response = await client.post("/v1/purchases/commit", data=b"[1]", headers=AUTH)
    assert response.status == 400
    response = await client.post("/v1/purchases/commit", json=commit_body())
    assert response.status == 401
    response = await client.post("/v1/purchases/release", data=b"{", headers=AUTH)
    assert response.status == 400


async def test_commits_are_counted_in_the_metrics(client: Client) -> None:
    await post(client, "/v1/purchases/commit", commit_body("o-1", "60"))
    await post(client, "/v1/purchases/commit", commit_body("o-2", "60"))
    await post(client, "/v1/purchases/release", {"order_id": "o-1"})
    text = await (await client.get("/metrics", headers=AUTH)).text()
    counts = {
        line.split("{", 1)[1].rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1]
        for line in text.splitlines()
        if line.startswith("groupgate_decisions_total{") and "purchase." in line
    }
    assert counts == {
        'result="allow",surface="purchase.commit"}': "1.0",
        'result="deny",surface="purchase.commit"}': "1.0",
        'result="allow",surface="purchase.release"}': "1.0",
        'result="deny",surface="purchase.release"}': "0.0",
    }, counts


async def test_admin_writes_validate_limits_and_budgets(client: Client) -> None:
    company = graph()["companies"][0]
    bad = {**company, "budgets": [{**company["budgets"][0], "until": "1999-12-31"}]}
    response = await client.put("/v1/admin/tenants/acme/companies/shop", json=bad, headers=ADMIN)
    assert response.status == 422
    detail = (await response.json())["detail"]
    assert detail.startswith("company.budgets[0].until: 1999-12-31 is before from")
    changed = {**company, "spending_limits": [{"period": "year", "amount": "5", "currency": "EUR"}]}
    response = await client.put(
        "/v1/admin/tenants/acme/companies/shop", json=changed, headers=ADMIN
    )
    assert response.status == 200, await response.text()
    got = await (await client.get("/v1/admin/tenants/acme/companies/shop", headers=ADMIN)).json()
    assert got["spending_limits"] == changed["spending_limits"]
    assert got["budgets"] == company["budgets"]
    status, problem = await post(client, "/v1/purchases/commit", commit_body("o-1", "5.01"))
    assert (status, problem["rule"]) == (409, "period_limit_exceeded")
    response = await client.put(
        "/v1/admin/tenants/acme/settings", json={"time_zone": "Europe/Nowhere"}, headers=ADMIN
    )
    assert response.status == 422
    assert (await response.json())["detail"].startswith("settings.time_zone: unknown time zone")
