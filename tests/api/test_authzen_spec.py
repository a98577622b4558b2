"""AuthZEN Authorization API 1.0, one test per MUST the sidecar follows.

Section numbers are those of the 1.0 text (openid/authzen, `api/authorization-api-1_0.md`);
"certification" is the working group's `certification/authorization-api-1_0-scenario.md`.
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.api.conftest import API_KEY, TODO, MakeClient, document, flush_audit

Client = TestClient[Any, Any]
PEP = {"Authorization": API_KEY}
RID = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
BETH = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
USER = {"type": "user", "id": RICK}
READ = {"name": "can_read_todos"}
TODO_1 = {"type": "todo", "id": "todo-1"}
EVALUATION = {"subject": USER, "action": READ, "resource": TODO_1}
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    """`body` with the key at `path` removed (a copy)."""
    found: dict[str, Any] = orjson.loads(orjson.dumps(body))
    parent = found
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return found


def changed(body: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(orjson.dumps(body))
    parent = found
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return found


async def bad_request(client: Client, path: str, body: Any, where: str) -> None:
    response = await client.post(path, json=body, headers=PEP)
    text = await response.text()
    assert response.status == 400, (path, body, text)
    assert response.content_type == "application/problem+json"
    problem = orjson.loads(text)
    assert problem["status"] == 400 and problem["title"] == "Bad Request"
    assert problem["detail"].startswith(where), (where, problem["detail"])


# --------------------------------------------------------------------------- §10.1.1: 400


#: (body, the field the problem names first) for a single evaluation: certification 2.4.1,
#: 2.4.2, 2.4.6 (a missing or mistyped required attribute, §5.1, §5.2, §5.3, §6.1).
EVALUATION_ERRORS = [
    (without(EVALUATION, "subject"), "subject"),
    (without(EVALUATION, "action"), "action"),
    (without(EVALUATION, "resource"), "resource"),
    (without(EVALUATION, "subject", "type"), "subject.type"),
    (without(EVALUATION, "subject", "id"), "subject.id"),
    (without(EVALUATION, "action", "name"), "action.name"),
    (without(EVALUATION, "resource", "type"), "resource.type"),
    (without(EVALUATION, "resource", "id"), "resource.id"),
    (changed(EVALUATION, "alice", "subject"), "subject"),
    (changed(EVALUATION, 123, "action", "name"), "action.name"),
    (changed(EVALUATION, 7, "resource", "id"), "resource.id"),
    (changed(EVALUATION, [], "subject", "properties"), "subject.properties"),
    (changed(EVALUATION, "x", "action", "properties"), "action.properties"),
]


@pytest.mark.parametrize("path", ["/access/v1/evaluation", "/access/v1/evaluations"])
async def test_a_missing_or_mistyped_required_attribute_is_a_400(todo: Client, path: str) -> None:
    for body, where in EVALUATION_ERRORS:
        await bad_request(todo, path, body, where)


async def test_a_complete_evaluation_is_answered(todo: Client) -> None:
    for path in ("/access/v1/evaluation", "/access/v1/evaluations"):
        response = await todo.post(path, json=EVALUATION, headers=PEP)
        assert response.status == 200
        assert (await response.json())["decision"] is True


#: Search requests (certification 4.7.1, 4.7.2): each search's input entities are whole
#: (`type` and `id`), its searched-for entity needs its `type` (§8.4.1, §8.5.1, §8.6.1).
SEARCH_ERRORS = [
    ("subject", {"subject": {"type": "user"}, "resource": TODO_1}, "action"),
    ("subject", {"action": READ, "resource": TODO_1}, "subject"),
    ("subject", {"subject": {}, "action": READ, "resource": TODO_1}, "subject.type"),
    (
        "subject",
        {"subject": {"type": "user"}, "action": READ, "resource": {"type": "todo"}},
        "resource.id",
    ),
    ("resource", {"action": READ, "resource": {"type": "todo"}}, "subject"),
    (
        "resource",
        {"subject": {"type": "user"}, "action": READ, "resource": {"type": "todo"}},
        "subject.id",
    ),
    (
        "resource",
        {"subject": {"id": RICK}, "action": READ, "resource": {"type": "todo"}},
        "subject.type",
    ),
    ("resource", {"subject": USER, "action": READ, "resource": {}}, "resource.type"),
    ("resource", {"subject": USER, "resource": {"type": "todo"}}, "action"),
    ("action", {"subject": USER}, "resource"),
    ("action", {"subject": {"type": "user"}, "resource": TODO_1}, "subject.id"),
    ("action", {"subject": USER, "resource": {"type": "todo"}}, "resource.id"),
    ("action", {"subject": USER, "resource": {"id": "todo-1"}}, "resource.type"),
]


async def test_a_search_missing_a_required_attribute_is_a_400(todo: Client) -> None:
    for kind, body, where in SEARCH_ERRORS:
        await bad_request(todo, f"/access/v1/search/{kind}", body, where)


async def test_complete_searches_are_answered(todo: Client) -> None:
    for kind, body in (
        ("subject", {"subject": {"type": "user"}, "action": READ, "resource": TODO_1}),
        ("resource", {"subject": USER, "action": READ, "resource": {"type": "todo"}}),
        ("action", {"subject": USER, "resource": TODO_1}),
    ):
        response = await todo.post(f"/access/v1/search/{kind}", json=body, headers=PEP)
        assert response.status == 200, await response.text()
        answer = await response.json()
        if kind == "resource":
            # The todo scenario holds no todo entities (they live in the todo service): an
            # empty page that says so and points to the filter endpoint.
            assert answer["results"] == [] and answer["context"]["filter"] == "/v1/filter"
        else:
            assert answer["results"]


async def test_not_json_is_a_400(todo: Client) -> None:
    # Certification 2.4.3 to 2.4.5: a content type that is not JSON, bad JSON, no body.
    for headers, data in (
        ({"Content-Type": "text/plain"}, orjson.dumps(EVALUATION)),
        ({"Content-Type": "application/json"}, b"{not json"),
        ({"Content-Type": "application/json"}, b""),
    ):
        for path in ("/access/v1/evaluation", "/access/v1/evaluations"):
            response = await todo.post(path, data=data, headers={**PEP, **headers})
            assert response.status == 400, (path, data)
            assert response.content_type == "application/problem+json"


async def test_the_native_api_keeps_its_422(demo: Client) -> None:
    body = {"subject": {"id": 5}, "action": "read", "resource": {"type": "orders"}}
    response = await demo.post("/v1/check", json=body)
    assert response.status == 422


async def test_unknown_fields_are_ignored(todo: Client) -> None:
    # §10.1.1: receivers MUST ignore unknown fields.
    body = {**EVALUATION, "extra": {"a": 1}, "subject": {**USER, "nickname": "r"}}
    response = await todo.post("/access/v1/evaluation", json=body, headers=PEP)
    assert response.status == 200 and (await response.json())["decision"] is True


# --------------------------------------------------------------------------- §7.2.1: batches


async def test_a_batch_item_missing_a_part_is_a_false_decision(todo: Client) -> None:
    # Certification 3.4.1: the second evaluation lacks `resource` after the defaults.
    body = {
        "subject": USER,
        "action": READ,
        "options": {"evaluations_semantic": "execute_all"},
        "evaluations": [{"resource": TODO_1}, {}, {"resource": {"type": "todo"}}],
    }
    response = await todo.post("/access/v1/evaluations", json=body, headers=PEP)
    assert response.status == 200, await response.text()
    decisions = (await response.json())["evaluations"]
    assert [d["decision"] for d in decisions] == [True, False, False]
    assert decisions[1]["context"]["error"] == {
        "status": 400,
        "message": "evaluations[1].resource: expected an object, got null",
    }
    assert decisions[2]["context"]["error"]["message"].startswith("evaluations[2].resource.id")


async def test_items_inherit_the_defaults(todo: Client) -> None:
    # §7.1.1: a key omitted from an item comes from the top level.
    body = {"subject": USER, "resource": TODO_1, "evaluations": [{"action": READ}]}
    response = await todo.post("/access/v1/evaluations", json=body, headers=PEP)
    assert [d["decision"] for d in (await response.json())["evaluations"]] == [True]


async def test_a_malformed_top_level_is_a_400(todo: Client) -> None:
    item = {"resource": TODO_1}
    for body, where in (
        ({"subject": {"id": RICK}, "action": READ, "evaluations": [item]}, "subject.type"),
        ({"subject": USER, "action": "read", "evaluations": [item]}, "action"),
        ({"subject": USER, "action": READ, "evaluations": {"a": item}}, "evaluations"),
        (
            {**EVALUATION, "options": {"evaluations_semantic": "all"}, "evaluations": [item]},
            "options",
        ),
    ):
        await bad_request(todo, "/access/v1/evaluations", body, where)


# --------------------------------------------------------------------------- §10.1.3: X-Request-ID

#: (method, path, body): one answer and one error of every AuthZEN endpoint.
ENDPOINTS: list[tuple[str, str, Any, Any]] = [
    ("POST", "/access/v1/evaluation", EVALUATION, without(EVALUATION, "subject")),
    (
        "POST",
        "/access/v1/evaluations",
        {**without(EVALUATION, "resource"), "evaluations": [{"resource": TODO_1}]},
        {"evaluations": 1},
    ),
    (
        "POST",
        "/access/v1/search/subject",
        {"subject": {"type": "user"}, "action": READ, "resource": TODO_1},
        {"action": READ},
    ),
    (
        "POST",
        "/access/v1/search/resource",
        {"subject": USER, "action": READ, "resource": {"type": "todo"}},
        {"subject": USER},
    ),
    ("POST", "/access/v1/search/action", {"subject": USER, "resource": TODO_1}, {}),
    ("GET", "/.well-known/authzen-configuration", None, None),
    ("GET", "/.well-known/authzen-configuration/acme", None, None),
]


@pytest.mark.parametrize("method, path, good, bad", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_the_request_id_comes_back_on_every_answer(
    todo: Client, method: str, path: str, good: Any, bad: Any
) -> None:
    headers = {**PEP, "X-Request-ID": RID}
    response = await todo.request(method, path, json=good, headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["X-Request-ID"] == RID
    if bad is not None:
        response = await todo.request(method, path, json=bad, headers=headers)
        assert response.status == 400
        assert response.headers["X-Request-ID"] == RID
    # Errors outside the body: a missing credential, a broken body.
    if method == "POST":
        response = await todo.post(path, json=good, headers={"X-Request-ID": RID})
        assert response.status == 401 and response.headers["X-Request-ID"] == RID
        response = await todo.post(path, data=b"{", headers={**headers, **JSON})
        assert response.status == 400 and response.headers["X-Request-ID"] == RID
    # Certification 2.5.2: without one, nothing fails and nothing is made up.
    response = await todo.request(method, path, json=good, headers=PEP)
    assert response.status == 200 and "X-Request-ID" not in response.headers


async def test_a_request_id_that_could_split_a_response_is_not_echoed(todo: Client) -> None:
    for value in ("x" * 257, "caf\u00e9"):
        response = await todo.post(
            "/access/v1/evaluation",
            data=orjson.dumps(EVALUATION),
            headers={**PEP, **JSON, "X-Request-ID": value.encode("utf-8").decode("latin-1")},
        )
        assert response.status == 200 and "X-Request-ID" not in response.headers


# --------------------------------------------------------------------------- the decision listener


@pytest.fixture
async def lane(make_client: MakeClient) -> tuple[Client, int]:
    port = free_port()
    client = await make_client(
        policies=TODO,
        documents=[document(TODO / "data.json")],
        api_keys=API_KEY,
        decision_port=port,
    )
    return client, port


async def test_the_decision_listener_answers_as_the_main_one(lane: tuple[Client, int]) -> None:
    client, port = lane
    main = str(client.make_url("/access/v1/evaluation"))
    fast = f"http://127.0.0.1:{port}/access/v1/evaluation"
    cases: list[tuple[dict[str, str], bytes]] = [
        ({**PEP, "X-Request-ID": RID}, orjson.dumps(EVALUATION)),
        (PEP, orjson.dumps(EVALUATION)),
        ({"X-Request-ID": RID}, orjson.dumps(EVALUATION)),  # 401
        ({**PEP, "X-Request-ID": RID, "Content-Type": "text/plain"}, orjson.dumps(EVALUATION)),
        ({**PEP, "X-Request-ID": RID}, b"{"),
        *(({**PEP, "X-Request-ID": RID}, orjson.dumps(body)) for body, _ in EVALUATION_ERRORS),
        (
            {**PEP, "X-Request-ID": RID},
            orjson.dumps(changed(EVALUATION, {"department": "sales"}, "subject", "properties")),
        ),
    ]
    async with aiohttp.ClientSession() as session:
        for headers, body in cases:
            answers = []
            for url in (main, fast):
                async with session.post(url, data=body, headers={**JSON, **headers}) as response:
                    answers.append(
                        (
                            response.status,
                            response.content_type,
                            orjson.loads(await response.read()),
                            response.headers.get("X-Request-ID"),
                        )
                    )
            assert answers[0] == answers[1], (headers, body)
            assert answers[0][3] == headers.get("X-Request-ID")


# --------------------------------------------------------------------------- properties


@pytest.fixture
async def props(make_client: MakeClient, tmp_path: Path) -> Client:
    """The Todo policy where a viewer may also create todos when the request says its subject
    is in sales, delete them when the action is soft, update them when the todo is level 3."""
    policies = tmp_path / "policies"
    shutil.copytree(TODO, policies)
    (policies / "conditions.yaml").write_text(
        (TODO / "conditions.yaml").read_text()
        + "  sales:\n"
        + "    any: [{request: subject.properties.department, equals: sales}]\n"
        + "  soft:\n"
        + "    any: [{request: action.properties.mode, equals: [soft, gentle]}]\n"
        + "  level_three:\n"
        + "    any: [{resource: properties.level, equals: 3}]\n"
        + "  own_email:\n"
        + "    any: [{request: subject.properties.email, subject: attributes.email}]\n"
    )
    viewer = "      user: [can_read_user]\n      todo: [can_read_todos]\n"
    roles = (policies / "roles.yaml").read_text()
    assert roles.count(viewer) == 1
    roles = roles.replace(
        viewer,
        "      user: [{action: can_read_user, when: own_email}]\n"
        "      todo: [can_read_todos, {action: can_create_todo, when: sales},\n"
        "             {action: can_delete_todo, when: soft},\n"
        "             {action: can_update_todo, when: level_three}]\n",
    )
    (policies / "roles.yaml").write_text(roles)
    return await make_client(
        policies=policies, documents=[document(TODO / "data.json")], api_keys=API_KEY
    )


async def decide(client: Client, action: Any, resource: Any, subject: Any = None) -> bool:
    body = {
        "subject": subject or {"type": "user", "id": BETH},
        "action": action,
        "resource": resource,
    }
    response = await client.post("/access/v1/evaluation", json=body, headers=PEP)
    assert response.status == 200, await response.text()
    return bool((await response.json())["decision"])


async def test_subject_properties_reach_conditions(props: Client) -> None:
    create = {"name": "can_create_todo"}
    beth = {"type": "user", "id": BETH}
    assert await decide(props, create, TODO_1, {**beth, "properties": {"department": "sales"}})
    for department in ("legal", 7, None, ["sales"], {"sales": 1}):
        subject = {**beth, "properties": {"department": department}}
        assert not await decide(props, create, TODO_1, subject), department
    assert not await decide(props, create, TODO_1, beth)
    # A request path compared with the stored subject: Beth's email is hers.
    read_user = {"name": "can_read_user"}
    user = {"type": "user", "id": "x"}
    mail = {**beth, "properties": {"email": "beth@the-smiths.com"}}
    assert await decide(props, read_user, user, mail)
    assert not await decide(props, read_user, user, {**beth, "properties": {"email": "r@x"}})


async def test_action_properties_reach_conditions(props: Client) -> None:
    for mode, allowed in (("soft", True), ("gentle", True), ("hard", False), (1, False)):
        action = {"name": "can_delete_todo", "properties": {"mode": mode}}
        assert await decide(props, action, TODO_1) is allowed, mode
    assert not await decide(props, {"name": "can_delete_todo"}, TODO_1)


async def test_resource_properties_take_any_json_value(props: Client) -> None:
    update = {"name": "can_update_todo"}
    for level, allowed in ((3, True), (4, False), ("3", False), (3.5, False), (True, False)):
        resource = {**TODO_1, "properties": {"level": level}}
        assert await decide(props, update, resource) is allowed, level
    # Any value is accepted, and an attribute that is not a string is unknown: a deny.
    odd = {
        "level": 3,
        "owner": 7,
        "company": {"id": "c1"},
        "restrictions": "DE",
        "nested": [1, {"a": None}],
        "flag": False,
    }
    assert await decide(props, update, {**TODO_1, "properties": odd})
    response = await props.post(
        "/access/v1/evaluations",
        json={
            "subject": {"type": "user", "id": BETH},
            "action": update,
            "evaluations": [{"resource": {**TODO_1, "properties": odd}}],
        },
        headers=PEP,
    )
    assert [d["decision"] for d in (await response.json())["evaluations"]] == [True]


# --------------------------------------------------------------------------- §9.2: metadata


async def test_per_tenant_metadata(make_client: MakeClient) -> None:
    client = await make_client(public_url="https://pdp.example.com/")
    response = await client.get(
        "/.well-known/authzen-configuration/tenant1", headers={"Host": "evil.example"}
    )
    assert response.status == 200 and response.content_type == "application/json"
    meta = await response.json()
    # §9.2.3: the identifier the well-known string was inserted into.
    assert meta["policy_decision_point"] == "https://pdp.example.com/tenant1"
    assert meta["access_evaluation_endpoint"] == "https://pdp.example.com/access/v1/evaluation"
    for kind in ("subject", "resource", "action"):
        assert meta[f"search_{kind}_endpoint"].startswith("https://pdp.example.com/access/v1/")
    assert meta["groupgate_tenant"]["id"] == "tenant1"
    assert meta["groupgate_tenant"]["header"] == "X-Groupgate-Tenant"
    shared = await (await client.get("/.well-known/authzen-configuration")).json()
    assert shared["policy_decision_point"] == "https://pdp.example.com"
    assert "groupgate_tenant" not in shared
    response = await client.get("/.well-known/authzen-configuration/bad%20tenant")
    assert response.status == 404 and response.content_type == "application/problem+json"


async def test_per_tenant_metadata_uses_the_bind_address(make_client: MakeClient) -> None:
    client = await make_client(host="127.0.0.1", port=8181)
    meta = await (await client.get("/.well-known/authzen-configuration/acme")).json()
    assert meta["policy_decision_point"] == "http://127.0.0.1:8181/acme"


# --------------------------------------------------------------------------- the decision log


async def test_every_item_is_logged_with_subject_action_resource_and_tenant(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(
        policies=TODO, documents=[document(TODO / "data.json")], api_keys=API_KEY, decision_log=True
    )
    body = {
        "subject": USER,
        "action": READ,
        "evaluations": [
            {"resource": TODO_1},
            {"resource": {"type": "todo"}},  # no id: an error item
            {"resource": {"type": "spaceship", "id": "s"}},  # unknown type
            {"subject": {"type": "user", "id": MORTY}, "resource": TODO_1},
        ],
    }
    with caplog.at_level(logging.INFO, logger="groupgate.decisions"):
        response = await client.post("/access/v1/evaluations", json=body, headers=PEP)
        assert response.status == 200
        single = await client.post("/access/v1/evaluation", json=EVALUATION, headers=PEP)
        assert single.status == 200
        await flush_audit(client)
    logged = [
        (r.__dict__["subject"], r.__dict__["action"], r.__dict__["type"], r.__dict__["id"])
        for r in caplog.records
        if r.name == "groupgate.decisions"
    ]
    tenants = {r.__dict__["tenant"] for r in caplog.records if r.name == "groupgate.decisions"}
    assert logged == [
        (RICK, "can_read_todos", "todo", "todo-1"),
        (RICK, "can_read_todos", "todo", None),
        (RICK, "can_read_todos", "spaceship", "s"),
        (MORTY, "can_read_todos", "todo", "todo-1"),
        (RICK, "can_read_todos", "todo", "todo-1"),
    ]
    assert tenants == {document(TODO / "data.json")["tenant"]}


# --------------------------------------------------------------------------- the condition syntax


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{request: subject.name, equals: x}", "expected subject.properties.<name>"),
        ("{request: subject.properties., equals: x}", "expected subject.properties.<name>"),
        ("{resource: subject.properties.x, equals: x}", "cannot start with 'subject'"),
        ("{resource: owner, request: action.properties.x, equals: x}", "exactly one of"),
        ("{resource: owner, subject: id, equals: x}", "exactly one of"),
        ("{resource: owner}", "exactly one of"),
        ("{resource: owner, equals: [x, 1.5]}", "expected a string or an integer"),
        ("{resource: owner, equals: true}", "expected a string or an integer"),
        ("{resource: owner, equals: []}", "at least one value"),
    ],
)
def test_condition_syntax_is_checked(tmp_path: Path, entry: str, message: str) -> None:
    from groupgate.errors import PolicyError
    from groupgate.policy import load_policy

    policies = tmp_path / "policies"
    shutil.copytree(TODO, policies)
    (policies / "conditions.yaml").write_text(f"conditions:\n  odd:\n    any: [{entry}]\n")
    with pytest.raises(PolicyError, match=re.escape(message)):
        load_policy(policies)


def test_request_conditions_load(tmp_path: Path) -> None:
    from groupgate.policy import load_policy

    policies = tmp_path / "policies"
    shutil.copytree(TODO, policies)
    (policies / "conditions.yaml").write_text(
        (TODO / "conditions.yaml").read_text() + "  odd:\n    any:\n"
        "      - {request: subject.properties.team.name, equals: [a, 2]}\n"
        "      - {request: action.properties.mode, subject: attributes.email}\n"
    )
    condition = load_policy(policies).conditions["odd"]
    assert condition.pairs == (("action.properties.mode", "attributes.email"),)
    assert condition.equals == (("subject.properties.team.name", frozenset({"a", 2})),)


async def test_an_incomplete_default_is_a_400(todo: Client) -> None:
    # A top-level default is a whole entity too (§7.1.1), even when every item overrides it.
    for default, where in (
        ({"resource": {"type": "todo"}}, "resource.id"),
        ({"subject": {"type": "user"}}, "subject.id"),
        ({"action": {}}, "action.name"),
        ({"context": []}, "context"),
    ):
        body = {**default, "evaluations": [EVALUATION]}
        await bad_request(todo, "/access/v1/evaluations", body, where)
