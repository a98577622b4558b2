"""AuthZEN 1.0 surfaces beyond the interop cases: semantics, search, metadata, mapping."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from groupgate.api import authzen, parsing
from groupgate.api.app import valid_actions
from groupgate.api.problems import InvalidJson
from groupgate.errors import InvalidInput
from groupgate.policy import load_policy
from tests.api import mutations
from tests.api.conftest import API_KEY, POLICIES

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
    assert response.status == 400


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
    user = {"type": "user", "id": "x"}
    todo_ = {"type": "todo", "id": "t"}
    for body, where in (
        ({"action": {"name": "a"}, "resource": todo_}, "subject"),
        ({"subject": {"type": "user", "id": 5}, "action": {"name": "a"}, "resource": todo_}, "id"),
        ({"subject": user, "action": "read", "resource": todo_}, "action"),
        ({"subject": user, "action": {"name": "a"}, "resource": {"id": "t"}}, "resource.type"),
    ):
        response = await todo.post("/access/v1/evaluation", json=body, headers=PEP)
        assert response.status == 400
        problem = await response.json(content_type=None)
        assert where in problem["detail"]
        assert response.content_type == "application/problem+json"


async def test_request_id_is_echoed(todo: Client) -> None:
    body = {
        "subject": {"type": "user", "id": BETH},
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
        "resource": {"type": "todo", "id": "t"},
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
        "subject": {"type": "user"},
        "action": {"name": "can_create_todo"},
        "resource": {"type": "todo", "id": "t"},
        "page": {"token": "not-a-token"},
    }
    response = await todo.post("/access/v1/search/subject", json=body, headers=PEP)
    assert response.status == 400


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


async def test_search_resource_filters(demo: Client) -> None:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "update"},
    }
    response = await demo.post("/access/v1/search/resource", json=body)
    assert response.status == 400  # AuthZEN 1.0 §8.5.1: the resource MUST contain a type
    # Orders live in the service that owns them: no entities, a pointer to the filter.
    body["resource"] = {"type": "orders"}
    response = await demo.post("/access/v1/search/resource", json=body)
    answer = await response.json()
    assert answer["results"] == [] and answer["context"]["filter"] == "/v1/filter"


async def test_resource_properties_map_to_attributes(demo: Client) -> None:
    async def decide(props: dict[str, Any]) -> bool:
        body = {
            "subject": {"type": "user", "id": "emp-de"},
            "action": {"name": "update"},
            "resource": {"type": "orders", "id": "o-1", "properties": props},
        }
        response = await demo.post("/access/v1/evaluation", json=body)
        assert response.status == 200
        return bool((await response.json())["decision"])

    assert await decide({"restrictions": ["DE"]}) is True
    assert await decide({"restrictions": ["US"]}) is False
    assert await decide({}) is False
    assert await decide({"restrictions": "DE"}) is False  # not an array: no restriction value
    assert await decide({"restrictions": ["DE", 7, None]}) is True  # the strings count


async def test_purchase_through_authzen(demo: Client) -> None:
    async def decide(subject: str, amount: str) -> dict[str, Any]:
        body = {
            "subject": {"type": "user", "id": subject},
            "action": {"name": "purchase"},
            "resource": {
                "type": "purchase",
                "id": "cart-1",
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


# --------------------------------------------------------------------------- the fast path

ACTIONS = valid_actions(load_policy(POLICIES))
BASE: dict[str, Any] = {
    "subject": {"type": "user", "id": "emp1", "properties": {}},
    "action": {"name": "read"},
    "resource": {
        "type": "orders",
        "id": "o1",
        "properties": {
            "company": "c1",
            "vendor": "v1",
            "owner": "a@b",
            "customer": "cust1",
            "restrictions": ["DE"],
            "ownerID": "a@b",
        },
    },
    "context": {},
}
PLACES = [
    ("subject",),
    ("subject", "id"),
    ("subject", "type"),
    ("subject", "properties"),
    ("action",),
    ("action", "name"),
    ("resource",),
    ("resource", "type"),
    ("resource", "id"),
    ("resource", "properties"),
    *(("resource", "properties", a) for a in ("company", "vendor", "owner", "customer")),
    ("resource", "properties", "restrictions"),
    ("context",),
]
# Every value each place may meet at the edges of the rules, valid or not.
EDGES = [
    mutations.ABSENT,
    None,
    "",
    "x" * 256,
    "x" * 257,
    "z" * 1024,
    "z" * 1025,
    7,
    True,
    [],
    ["DE", "DE"],
    ["DE", 1],
    ["x"] * 256,
    ["x"] * 257,
    {},
    {"a": 1},
    "publish",
    "approve",
    "route",
    "purchase",
    "todo",
]


def mutated(
    changes: list[tuple[tuple[str, ...], Any]], base: dict[str, Any] = BASE
) -> dict[str, Any]:
    return mutations.mutated(changes, base)


def assert_same_item(raw: dict[str, Any]) -> None:
    plain = authzen._plain_check(ACTIONS, raw)
    fast = None if plain is None else plain[0]
    try:
        precise: authzen.Item | Exception = authzen._parse_item(ACTIONS, raw, "evaluations[0]")
    except InvalidInput as exc:
        precise = exc
    if fast is None:
        # Left to the precise path, which answers alone: an error, a route or purchase, or a
        # check that is not plain (properties for conditions, an attribute that is no string).
        pass
    else:
        assert fast == precise, raw
        assert plain is not None
        if plain[1] >= 0:
            # Sealed: the key count is exact, there are no numbers, and the item is at most
            # four levels deep (six from a batch's root, which holds it at level 2).
            assert parsing.inspect(raw, authzen.SEALED_DEPTH - 2) == plain[1], raw


@pytest.mark.parametrize("place", PLACES, ids="/".join)
def test_fast_path_agrees_at_every_edge(place: tuple[str, ...]) -> None:
    for value in EDGES:
        assert_same_item(mutated([(place, value)]))


@settings(max_examples=500, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(PLACES), st.sampled_from(EDGES)), max_size=4))
def test_fast_path_agrees_on_mixed_changes(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    assert_same_item(mutated(changes))


def test_fast_path_takes_the_common_shape() -> None:
    raw = {
        "subject": {"type": "user", "id": "emp1"},
        "action": {"name": "read"},
        "resource": {
            "type": "orders",
            "id": "o1",
            "properties": {"company": "c1", "restrictions": ["DE", "DE"]},
        },
    }
    plain = authzen._plain_check(ACTIONS, raw)
    assert plain is not None and plain[1] == 11  # sealed: 4 + subject 2 + resource 3 + 2
    item = plain[0]
    assert item == authzen._parse_item(ACTIONS, raw, "")
    assert item is not None and item.resource is not None
    assert item.resource.restrictions == frozenset({"DE"})


# --------------------------------------------------------------------------- sealed batches

NUMBERS = [2**63, -(2**63), 2**63 - 1, 1e300, 0.5, 1]
BATCH_EDGES = [*EDGES, *NUMBERS, [[["deep"]]], {"a": {"b": {"c": {"d": 1}}}}]
EXTRA = [(), ("ownerID",), ("extra",)]  # places for keys the fast path does not read
STATE = type("State", (), {"actions": ACTIONS})()


def outcome(read: Any) -> Any:
    """The items a batch body yields, or the class and message of the error it raises."""
    try:
        return read()
    except InvalidInput as exc:
        return type(exc), str(exc)


def reference(body: bytes, depth: int) -> Any:
    """The plain way: the full safety pass, then every item parsed."""
    value = parsing.expect_object(parsing.loads(body, depth))
    return authzen.parse_items(STATE, value, [])


def fused(body: bytes, depth: int) -> Any:
    value, sealed = authzen.read_batch(ACTIONS, body, parsing.decode(body), depth, 1000)
    return authzen.parse_items(STATE, value, sealed)


def batch_item(changes: list[tuple[tuple[str, ...], Any]], extra: tuple[str, ...]) -> Any:
    """`BASE` without what keeps an item from being sealed, then `changes`; `extra` adds a
    property the fast path does not read."""
    raw = copy.deepcopy(BASE)
    del raw["context"], raw["subject"]["properties"], raw["resource"]["properties"]["ownerID"]
    raw = mutated(changes, raw)
    resource = raw.get("resource")
    if extra and type(resource) is dict and type(resource.get("properties")) is dict:
        resource["properties"][extra[0]] = 7
    return raw


changes_ = st.lists(st.tuples(st.sampled_from(PLACES), st.sampled_from(BATCH_EDGES)), max_size=2)


@settings(max_examples=400, deadline=None)
@given(
    items=st.lists(st.tuples(changes_, st.sampled_from(EXTRA)), min_size=1, max_size=6),
    depth=st.sampled_from([4, 5, 6, 7, 32]),
    top=st.sampled_from(
        [
            {},
            {"options": {"evaluations_semantic": "execute_all"}},
            {"options": [[[[[1]]]]]},
            {"action": {"name": "read"}},
        ]
    ),
    duplicate=st.booleans(),
)
def test_sealed_items_skip_the_safety_pass_with_the_same_verdicts(
    items: list[tuple[list[tuple[tuple[str, ...], Any]], tuple[str, ...]]],
    depth: int,
    top: dict[str, Any],
    duplicate: bool,
) -> None:
    body = orjson.dumps({**top, "evaluations": [batch_item(c, e) for c, e in items]})
    if duplicate:  # repeat the first subject id inside the first subject object
        body = body.replace(b'"id":', b'"id":"dup","id":', 1)
    assert outcome(lambda: fused(body, depth)) == outcome(lambda: reference(body, depth))


def test_generated_batches_hold_sealed_and_unsealed_items() -> None:
    # The property test above is only worth something if both kinds occur.
    kinds = set()
    for changes, extra in [([], ()), ([], ("ownerID",)), ([(("resource", "id"), 7)], ())]:
        plain = authzen._plain_check(ACTIONS, batch_item(changes, extra))
        kinds.add("precise" if plain is None else "sealed" if plain[1] >= 0 else "unsealed")
    assert kinds == {"sealed", "unsealed", "precise"}


def test_a_batch_of_plain_checks_is_sealed_whole() -> None:
    raw = copy.deepcopy(BASE)
    del raw["context"], raw["subject"]["properties"], raw["resource"]["properties"]["ownerID"]
    body = orjson.dumps({"evaluations": [raw] * 3})
    value, sealed = authzen.read_batch(ACTIONS, body, parsing.decode(body), 32, 1000)
    assert all(item is not None for item in sealed) and len(sealed) == 3
    assert value == orjson.loads(body)
    # A duplicate key inside a sealed item is still found in the raw text.
    doubled = body.replace(b'"type":"orders"', b'"type":"orders","type":"orders"', 1)
    with pytest.raises(InvalidJson, match="duplicate key 'type'"):
        authzen.read_batch(ACTIONS, doubled, parsing.decode(doubled), 32, 1000)
