"""Purchase approvals over HTTP beyond the table (the seed's table, as YAML cases of
`tests/data/purchases/`, runs in `test_purchase_cases.py`)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]
LIMIT = {"amount": "5000.00", "currency": "EUR"}


async def purchase(client: Client, subject: str, amount: str, **extra: Any) -> dict[str, Any]:
    body = {
        "subject": {"id": subject},
        "company": "c-parent",
        "amount": amount,
        "currency": "EUR",
        **extra,
    }
    response = await client.post("/v1/purchases/evaluate", json=body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    assert isinstance(result.pop("revision"), int)
    return result


async def test_approval_group_replaces_standard_approvers(make_client: Any) -> None:
    from tests.store.data import acme

    client = await make_client(documents=[acme("acme")])
    result = await purchase(client, "cust-1", "6200.00")
    assert result["decision"] == "approval_required"
    # cust-1 is the only member of c-parent-approvers and may not approve their own purchase.
    # SPEC section 5: the approval group still replaces the Admins (who may not approve
    # c-parent's approvals), so no customer approver is left: the merchant decides.
    assert result["approvers"] == {"groups": ["c-parent-approvers"], "subjects": []}


async def test_currency_mismatch_is_an_error_never_an_allow(demo: Client) -> None:
    body = {"subject": {"id": "cust-admin"}, "company": "c-parent", "amount": "1.00"}
    response = await demo.post("/v1/purchases/evaluate", json={**body, "currency": "USD"})
    assert response.status == 422
    problem = await response.json(content_type=None)
    assert "EUR" in problem["detail"] and "USD" in problem["detail"]
    assert "decision" not in problem


async def test_unknown_subject_is_a_deny(demo: Client) -> None:
    result = await purchase(demo, "nobody", "1.00")
    assert result["decision"] == "deny"
