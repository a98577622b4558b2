"""AuthZEN search: the interop "records" scenario over HTTP, held resource entities, subject
types, unknown types, `page.limit: 0` and page tokens bound to their request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.errors import PolicyError
from groupgate.model import SubjectKind
from groupgate.policy import load_policy
from tests.api.conftest import ADMIN_KEY, API_KEY, POLICIES, MakeClient, document

Client = TestClient[Any, Any]
PEP = {"Authorization": API_KEY}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SEARCH = POLICIES / "examples" / "authzen-search"
CASES = Path(__file__).resolve().parents[1] / "data" / "authzen" / "search"


@pytest.fixture
async def records(make_client: MakeClient) -> Client:
    """The records scenario, with a PEP key and an admin key."""
    return await make_client(
        policies=SEARCH,
        documents=[document(SEARCH / "data.json")],
        api_keys=API_KEY,
        admin_keys=ADMIN_KEY,
    )


def cases(kind: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((CASES / kind / "results.json").read_text())[
        "evaluation"
    ]
    assert data
    return data


async def every_page(client: Client, kind: str, body: dict[str, Any], limit: int) -> list[Any]:
    """Every result of a search, page by page."""
    found: list[Any] = []
    request = {**body, "page": {"limit": limit}}
    for _ in range(100):
        response = await client.post(f"/access/v1/search/{kind}", json=request, headers=PEP)
        assert response.status == 200, await response.text()
        page = await response.json()
        assert len(page["results"]) <= limit
        found += page["results"]
        token = page["page"]["next_token"]
        if not token:
            return found
        request = {**body, "page": {"limit": limit, "token": token}}
    raise AssertionError("no last page")


def as_set(results: list[dict[str, Any]]) -> set[str]:
    return {json.dumps(r, sort_keys=True) for r in results}


@pytest.mark.parametrize("kind", ["subject", "resource", "action"])
async def test_interop_records_search(records: Client, kind: str) -> None:
    failures = []
    for limit in (1000, 3):
        for case in cases(kind):
            found = await every_page(records, kind, case["request"], limit)
            assert len(found) == len(as_set(found)), (case["request"], found)
            if as_set(found) != as_set(case["expected"]["results"]):
                failures.append((limit, case["request"], found))
    assert not failures


async def test_subject_search_filters_by_type(records: Client, demo: Client) -> None:
    body = {
        "subject": {"type": "spaceship"},
        "action": {"name": "view"},
        "resource": {"type": "record", "id": "101"},
    }
    response = await records.post("/access/v1/search/subject", json=body, headers=PEP)
    assert response.status == 200
    assert (await response.json())["results"] == []
    read = {"action": {"name": "read"}, "resource": {"type": "companies", "id": "c-parent"}}
    kinds: dict[str, set[str]] = {}
    for subject_type in ("user", "identity", "employee", "customer", "vendor_user"):
        found = await every_page(demo, "subject", {**read, "subject": {"type": subject_type}}, 50)
        assert all(r["type"] == subject_type for r in found)
        kinds[subject_type] = {r["id"] for r in found}
    assert kinds["user"] == kinds["identity"]
    assert kinds["user"] == kinds["employee"] | kinds["customer"] | kinds["vendor_user"]
    assert kinds["employee"] and not kinds["employee"] & kinds["customer"]


async def test_unknown_type_or_action_is_an_empty_page(records: Client) -> None:
    asks = [
        ("subject", {"subject": {"type": "user"}, "action": {"name": "view"},
                     "resource": {"type": "spaceship", "id": "1"}}),
        ("subject", {"subject": {"type": "user"}, "action": {"name": "fly"},
                     "resource": {"type": "record", "id": "101"}}),
        ("resource", {"subject": {"type": "user", "id": "alice"}, "action": {"name": "view"},
                      "resource": {"type": "spaceship"}}),
        ("resource", {"subject": {"type": "user", "id": "alice"}, "action": {"name": "fly"},
                      "resource": {"type": "record"}}),
        ("resource", {"subject": {"type": "user", "id": "nobody"}, "action": {"name": "view"},
                      "resource": {"type": "record"}}),
        ("action", {"subject": {"type": "user", "id": "alice"},
                    "resource": {"type": "spaceship", "id": "1"}}),
    ]  # fmt: skip
    for kind, body in asks:
        response = await records.post(f"/access/v1/search/{kind}", json=body, headers=PEP)
        assert response.status == 200, (kind, body, await response.text())
        assert (await response.json())["results"] == [], (kind, body)


async def test_limit_zero_and_token_bound_to_request(records: Client) -> None:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "view"},
        "resource": {"type": "record"},
    }
    response = await records.post(
        "/access/v1/search/resource", json={**body, "page": {"limit": 0}}, headers=PEP
    )
    assert response.status == 200
    page = await response.json()
    assert page["results"] == [] and page["page"]["next_token"]
    # The token of a limit-0 page continues from the start.
    first = await records.post(
        "/access/v1/search/resource",
        json={**body, "page": {"limit": 2, "token": page["page"]["next_token"]}},
        headers=PEP,
    )
    got = await first.json()
    assert [r["id"] for r in got["results"]] == ["101", "102"]
    token = got["page"]["next_token"]
    changed = {**body, "action": {"name": "edit"}, "page": {"limit": 2, "token": token}}
    response = await records.post("/access/v1/search/resource", json=changed, headers=PEP)
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    for limit in (-1, 1.5, "2"):
        response = await records.post(
            "/access/v1/search/resource", json={**body, "page": {"limit": limit}}, headers=PEP
        )
        assert response.status == 400  # a mistyped attribute: AuthZEN 1.0 §10.1.1


async def test_entities_that_live_elsewhere_point_to_the_filter(demo: Client) -> None:
    body = {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "update"},
        "resource": {"type": "orders"},
    }
    response = await demo.post("/access/v1/search/resource", json=body)
    assert response.status == 200
    answer = await response.json()
    assert answer["results"] == [] and answer["page"]["next_token"] == ""
    assert answer["context"]["filter"] == "/v1/filter"
    assert "orders" in answer["context"]["reason"]


@pytest.mark.parametrize("type_id", ["companies", "customers"])
async def test_companies_and_customers_are_entities(demo: Client, type_id: str) -> None:
    body = {"subject": {"type": "user", "id": "emp-viewer"}, "action": {"name": "read"},
            "resource": {"type": type_id}}  # fmt: skip
    found = await every_page(demo, "resource", body, 1)
    ids = [r["id"] for r in found]
    assert ids and ids == sorted(ids) and all(r["type"] == type_id for r in found)
    for rid in ids:
        evaluation = {**body, "resource": {"type": type_id, "id": rid}}
        response = await demo.post("/access/v1/evaluation", json=evaluation)
        assert (await response.json())["decision"] is True
    if type_id == "customers":  # a viewer reads every customer of the demo graph
        assert ids == ["cust-admin", "cust-buyer", "cust-buyer-2", "cust-contact",
                       "cust-requester", "cust-sub-admin"]  # fmt: skip


async def test_held_attributes_win_over_sent_ones(records: Client) -> None:
    async def decide(subject: str, action: str, props: dict[str, Any]) -> bool:
        body = {
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "record", "id": "102", "properties": props},
        }
        response = await records.post("/access/v1/evaluation", json=body, headers=PEP)
        assert response.status == 200, await response.text()
        return bool((await response.json())["decision"])

    # Record 102 is bob's, in Legal: a sent owner does not make erin its owner.
    assert await decide("bob", "edit", {}) is True
    assert await decide("erin", "edit", {"owner": "erin"}) is False
    assert await decide("erin", "view", {"department": "Finance"}) is False
    # A record groupgate does not hold takes the sent attributes.
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "edit"},
        "resource": {"type": "record", "id": "999", "properties": {"owner": "erin"}},
    }
    response = await records.post("/access/v1/evaluation", json=body, headers=PEP)
    assert (await response.json())["decision"] is True


async def test_admin_resource_entities(records: Client) -> None:
    base = "/v1/admin/tenants/search/resources/record"

    async def can_edit(subject: str, rid: str) -> bool:
        body = {
            "subject": {"type": "user", "id": subject},
            "action": "edit",
            "resource": {"type": "record", "id": rid},
        }
        response = await records.post("/v1/check", json=body, headers=PEP)
        assert response.status == 200, await response.text()
        return bool((await response.json())["allow"])

    assert await can_edit("erin", "102") is False
    response = await records.put(
        f"{base}/102", json={"attributes": {"owner": "erin"}}, headers=ADMIN
    )
    assert response.status == 200, await response.text()
    revision = (await response.json())["revision"]
    assert await can_edit("erin", "102") is True
    assert await can_edit("bob", "102") is False
    response = await records.get(f"{base}/102", headers=ADMIN)
    assert await response.json() == {
        "type": "record", "id": "102", "attributes": {"owner": "erin"}
    }  # fmt: skip
    response = await records.put(f"{base}/200", json={"id": "201", "attributes": {}}, headers=ADMIN)
    assert response.status == 422
    response = await records.put(f"{base}/200", json={"attributes": {"owner": 7}}, headers=ADMIN)
    assert response.status == 422
    response = await records.put(
        "/v1/admin/tenants/search/resources/spaceship/1", json={}, headers=ADMIN
    )
    assert response.status == 422
    response = await records.delete(f"{base}/102", headers=ADMIN)
    assert (await response.json())["revision"] == revision + 1
    assert await can_edit("erin", "102") is False
    response = await records.delete(f"{base}/102", headers=ADMIN)
    assert response.status == 404
    response = await records.get(f"{base}/102", headers=ADMIN)
    assert response.status == 404


async def test_import_validates_resources(records: Client) -> None:
    doc = document(SEARCH / "data.json")
    doc["resources"].append({"type": "record", "id": "101", "attributes": {}})
    response = await records.post("/v1/admin/tenants/search/import", json=doc, headers=ADMIN)
    assert response.status == 422
    assert "resources[20]" in (await response.json())["detail"]


def test_a_policy_declares_subject_types(tmp_path: Path) -> None:
    for name in ("catalog.yaml", "conditions.yaml", "roles.yaml"):
        (tmp_path / name).write_text((SEARCH / name).read_text())
    catalog = tmp_path / "catalog.yaml"
    base = catalog.read_text()
    catalog.write_text(base + "subject_types: {person: [employee, customer]}\n")
    types = load_policy(tmp_path).subject_types
    assert types["person"] == {SubjectKind.EMPLOYEE, SubjectKind.CUSTOMER}
    assert types["user"] == set(SubjectKind) and types["vendor_user"] == {SubjectKind.VENDOR_USER}
    catalog.write_text(base + "subject_types: {person: [robot]}\n")
    with pytest.raises(PolicyError, match=r"subject_types\.person"):
        load_policy(tmp_path)
