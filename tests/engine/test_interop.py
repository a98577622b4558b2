"""The AuthZEN interop cases (`tests/data/authzen/`) decided by the engine directly.

The Todo policy and users are `policies/examples/authzen-todo/` (policy + `data.json`). The
cases are a conformance suite written outside this project: they are read as they are, and a
missing file fails the test rather than skipping it. The same cases go through the HTTP
endpoints in `tests/api/test_interop.py`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from groupgate.engine import Profile, check, compile_profile, evaluate, parse_graph, some
from groupgate.model import Catalog, Graph, Resource, frozen_map
from groupgate.policy import RouteTable, load_policy

from .helpers import DATA, REPO

INTEROP = DATA / "authzen"
TODO = REPO / "policies" / "examples" / "authzen-todo"


def cases(name: str) -> dict[str, Any]:
    path = INTEROP / name
    if not path.is_file():
        pytest.fail(f"interop cases {path} are missing")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@functools.cache
def todo() -> tuple[Catalog, Graph]:
    catalog = load_policy(TODO)
    return catalog, parse_graph(json.loads((TODO / "data.json").read_text()), catalog)


def profile(subject_id: str) -> Profile:
    catalog, g = todo()
    subject = g.subjects[subject_id]
    return compile_profile(catalog, subject, g.groups, g.settings, tenant=g.tenant)


def to_resource(body: dict[str, Any]) -> Resource:
    return Resource(
        type=body["type"], id=body.get("id"), properties=frozen_map(body.get("properties"))
    )


def test_interop_files_hold_the_expected_number_of_cases() -> None:
    todo_cases = cases("todo-decisions.json")
    assert len(todo_cases["evaluation"]) == 40
    assert len(todo_cases["evaluations"]) == 3
    assert len(cases("gateway-decisions.json")["evaluation"]) == 25


def test_todo_users_are_loaded_as_the_scenario_lists_them() -> None:
    users = cases("todo-users.json")
    _, g = todo()
    assert set(g.subjects) == set(users)
    for pid, user in users.items():
        subject = g.subjects[pid]
        assert subject.attributes["email"] == user["email"]
        assert sorted(subject.group_ids()) == sorted(user["roles"])


def test_todo_evaluation_cases() -> None:
    failures = []
    for i, case in enumerate(cases("todo-decisions.json")["evaluation"]):
        request = case["request"]
        decision = check(
            profile(request["subject"]["id"]),
            request["action"]["name"],
            to_resource(request["resource"]),
        )
        catalog, g = todo()
        reference = evaluate(
            catalog,
            g.subjects[request["subject"]["id"]],
            g.groups,
            g.settings,
            request["action"]["name"],
            to_resource(request["resource"]),
        )
        if decision.allow is not case["expected"] or reference.allow is not case["expected"]:
            failures.append(f"evaluation[{i}] {request}: got {decision} / {reference}")
    assert not failures, "\n".join(failures)


def test_todo_evaluations_cases_with_top_level_defaults() -> None:
    failures = []
    for i, case in enumerate(cases("todo-decisions.json")["evaluations"]):
        request = case["request"]
        got = []
        for item in request["evaluations"]:
            merged = {
                key: item.get(key, request.get(key)) for key in ("subject", "action", "resource")
            }
            decision = check(
                profile(merged["subject"]["id"]),
                merged["action"]["name"],
                to_resource(merged["resource"]),
            )
            got.append({"decision": decision.allow})
        if got != case["expected"]:
            failures.append(f"evaluations[{i}]: expected {case['expected']}, got {got}")
    assert not failures, "\n".join(failures)


def test_gateway_cases_map_routes_and_ask_about_some_entity() -> None:
    catalog, _ = todo()
    routes = RouteTable(catalog.routes)
    failures = []
    for i, case in enumerate(cases("gateway-decisions.json")["evaluation"]):
        request = case["request"]
        assert request["resource"]["type"] == "route"
        route = routes.match(request["action"]["name"], request["resource"]["id"])
        assert route is not None, f"evaluation[{i}]: no route for {request}"
        decision = some(profile(request["subject"]["id"]), route.action, route.resource_type)
        if decision.allow is not case["expected"]:
            failures.append(f"evaluation[{i}] {request}: got {decision}")
    assert not failures, "\n".join(failures)


def test_gateway_route_table_refuses_unknown_routes() -> None:
    catalog, _ = todo()
    routes = RouteTable(catalog.routes)
    assert routes.match("PATCH", "/todos/{todoId}") is None
    assert routes.match("GET", "/secrets") is None
    found = routes.match("DELETE", "/todos/42")
    assert found is not None and (found.resource_type, found.action) == ("todo", "can_delete_todo")
