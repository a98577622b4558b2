"""AuthZEN 1.0 surfaces beyond the interop cases: semantics, search, metadata, mapping."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import API_KEY

Client = TestClient[Any, Any]
PEP = {"Authorization": API_KEY}
RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
BETH = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


def todo_item(owner: str) -> dict[str, Any]:
    return {"resource": {"type": "todo", "id": "t", "properties": {"ownerID": owner}}}


async def evaluations(client: Client, body: dict[str, Any]) -> list[bool]:
    response = await client.post("/access/v1/evaluations", json=body, headers=PEP)
    assert response.status == 200, await response.text()
    return [d["decision"] for d in (await response.json())["evaluations"]]


async def test_evaluation_semantics(todo: Client) -> None:
    base = {
        "subject": {"type": "user", "id": MORTY},
        "action": {"name": "can_update_todo"},
        "evaluations": [
            todo_item("morty@the-citadel.com"),
            todo_item("rick@the-citadel.com"),
            todo_item("morty@the-citadel.com"),
        ],
    }
    assert await evaluations(todo, base) == [True, False, True]
    first_deny = {**base, "options": {"evaluations_semantic": "deny_on_first_deny"}}
    assert await evaluations(todo, first_deny) == [True, False]
    first_permit = {**base, "options": {"evaluations_semantic": "permit_on_first_permit"}}
    assert await evaluations(todo, first_permit) == [True]
    bad = {**base, "options": {"evaluations_semantic": "whatever"}}
    response = await todo.post("/access/v1/evaluations", json=bad, headers=PEP)
    assert response.status == 422


async def test_evaluations_without_array_is_a_single_evaluation(todo: Client) -> None:
    body = {
        "subject": {"type": "user", "id": BETH},
        "action": {"name": "can_read_todos"},
        "resource": {"type": "todo", "id": "x"},
    }
    response = await todo.post("/access/v1/evaluations", json=body, headers=PEP)
    assert response.status == 200
    assert (await response.json())["decision"] is True


async def test_item_errors_are_denies_with_context(todo: Client) -> None:
    body = {
        "subject": {"type": "user", "id": RICK},
        "evaluations": [
            {"action": {"name": "can_read_todos"}, "resource": {"type": "todo", "id": "1"}},
            {"action": {"name": "can_read_todos"}, "resource": {"type": "spaceship", "id": "1"}},
            {"action": {"name": "fly"}, "resource": {"type": "todo", "id": "1"}},
        ],
    }
    response = await todo.post("/access/v1/evaluations", json=body, headers=PEP)
    decisions = (await response.json())["evaluations"]
    assert [d["decision"] for d in decisions] == [True, False, False]
    assert decisions[1]["context"]["error"]["status"] == 422
    assert "spaceship" in decisions[1]["context"]["reason"]


async def test_structural_errors_are_problems(todo: Client) -> None:
    for body, where in (
        ({"action": {"name": "a"}, "resource": {"type": "todo"}}, "subject"),
        ({"subject": {"id": 5}, "action": {"name": "a"}, "resource": {"type": "todo"}}, "id"),
        ({"subject": {"id": "x"}, "action": "read", "resource": {"type": "todo"}}, "action"),
        ({"subject": {"id": "x"}, "action": {"name": "a"}, "resource": {}}, "resource.type"),
    ):
        response = await todo.post("/access/v1/evaluation", json=body, headers=PEP)
        assert response.status == 422
        problem = await response.json(content_type=None)
        assert where in problem["detail"]
        assert response.content_type == "application/problem+json"


async def test_request_id_is_echoed(todo: Client) -> None:
    body = {
        "subject": {"id": BETH},
        "action": {"name": "can_read_user"},
        "resource": {"type": "user", "id": "x"},
    }
    response = await todo.post(
        "/access/v1/evaluation", json=body, headers={**PEP, "X-Request-ID": "req-42"}
    )
    assert response.headers["X-Request-ID"] == "req-42"


async def test_well_known_configuration(todo: Client) -> None:
    response = await todo.get("/.well-known/authzen-configuration")
    assert response.status == 200
    meta = await response.json()
    base = meta["policy_decision_point"]
    assert meta["access_evaluation_endpoint"] == base + "/access/v1/evaluation"
    assert meta["access_evaluations_endpoint"] == base + "/access/v1/evaluations"
    for kind in ("subject", "resource", "action"):
        assert meta[f"search_{kind}_endpoint"] == f"{base}/access/v1/search/{kind}"


async def test_search_subject_paginates(todo: Client) -> None:
    body: dict[str, Any] = {
        "subject": {"type": "user"},
        "action": {"name": "can_create_todo"},
        "resource": {"type": "todo"},
        "page": {"limit": 1},
    }
    found: list[str] = []
    for _ in range(10):
        response = await todo.post("/access/v1/search/subject", json=body, headers=PEP)
        assert response.status == 200, await response.text()
        page = await response.json()
        found += [r["id"] for r in page["results"]]
        assert all(r["type"] == "user" for r in page["results"])
        if not page["page"]["next_token"]:
            break
        body["page"] = {"limit": 1, "token": page["page"]["next_token"]}
    # Rick, Morty and Summer may create todos; Beth and Jerry (viewers) may not.
    assert BETH not in found and RICK in found and MORTY in found
    assert len(found) == len(set(found)) == 3


async def test_search_subject_rejects_foreign_token(todo: Client) -> None:
    body = {
        "action": {"name": "can_create_todo"},
        "resource": {"type": "todo"},
        "page": {"token": "not-a-token"},
    }
    response = await todo.post("/access/v1/search/subject", json=body, headers=PEP)
    assert response.status == 422


async def test_search_action(todo: Client) -> None:
    body = {
        "subject": {"type": "user", "id": MORTY},
        "resource": {"type": "todo", "id": "t", "properties": {"ownerID": "morty@the-citadel.com"}},
    }
    response = await todo.post("/access/v1/search/action", json=body, headers=PEP)
    names = [r["name"] for r in (await response.json())["results"]]
    assert names == ["can_create_todo", "can_delete_todo", "can_read_todos", "can_update_todo"]
    body["resource"]["properties"] = {"ownerID": "rick@the-citadel.com"}  # type: ignore[index]
    response = await todo.post("/access/v1/search/action", json=body, headers=PEP)
    names = [r["name"] for r in (await response.json())["results"]]
    assert names == ["can_create_todo", "can_read_todos"]


async def test_search_resource_types_and_filters(demo: Client) -> None:
    body: dict[str, Any] = {"subject": {"id": "emp-de"}, "action": {"name": "update"}}
    response = await demo.post("/access/v1/search/resource", json=body)
    types = [r["type"] for r in (await response.json())["results"]]
    assert "orders" in types and "products" not in types
    body["resource"] = {"type": "orders"}
    response = await demo.post("/access/v1/search/resource", json=body)
    results = (await response.json())["results"]
    assert results == [{"type": "orders", "properties": {"restrictions": ["DE"]}}]
    body["subject"] = {"id": "emp-viewer"}
    body["action"] = {"name": "read"}
    response = await demo.post("/access/v1/search/resource", json=body)
    assert (await response.json())["results"] == [{"type": "orders"}]


async def test_resource_properties_map_to_attributes(demo: Client) -> None:
    async def decide(props: dict[str, Any]) -> bool:
        body = {
            "subject": {"id": "emp-de"},
            "action": {"name": "update"},
            "resource": {"type": "orders", "id": "o-1", "properties": props},
        }
        response = await demo.post("/access/v1/evaluation", json=body)
        assert response.status == 200
        return bool((await response.json())["decision"])

    assert await decide({"restrictions": ["DE"]}) is True
    assert await decide({"restrictions": ["US"]}) is False
    assert await decide({}) is False
    assert await decide({"restrictions": "DE"}) is False  # wrong type: a deny with an error


async def test_purchase_through_authzen(demo: Client) -> None:
    async def decide(subject: str, amount: str) -> dict[str, Any]:
        body = {
            "subject": {"id": subject},
            "action": {"name": "purchase"},
            "resource": {
                "type": "purchase",
                "properties": {"company": "c-parent", "amount": amount, "currency": "EUR"},
            },
        }
        response = await demo.post("/access/v1/evaluation", json=body)
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result

    assert (await decide("cust-buyer", "100.00"))["decision"] is True
    over = await decide("cust-buyer", "6200.00")
    assert over["decision"] is False
    assert over["context"]["approval_required"] is True
    assert over["context"]["approvers"] == {
        "groups": ["c-parent/admin"],
        "subjects": ["cust-admin"],
    }


async def test_route_resource_without_match_is_denied(todo: Client) -> None:
    body = {
        "subject": {"type": "identity", "id": RICK},
        "action": {"name": "PATCH"},
        "resource": {"type": "route", "id": "/todos/{todoId}"},
    }
    response = await todo.post("/access/v1/evaluation", json=body, headers=PEP)
    decision = await response.json()
    assert decision["decision"] is False and "no route" in decision["context"]["reason"]
