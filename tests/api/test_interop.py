"""The AuthZEN interop cases in `tests/data/authzen/`, over HTTP, exactly as published.

The app runs `policies/examples/authzen-todo` with its `data.json`; the PEP authenticates
with the bare API key as the whole `Authorization` value, as the interop PEPs do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.conftest import API_KEY

Client = TestClient[Any, Any]
PEP = {"Authorization": API_KEY}


def cases(folder: Path, name: str, key: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((folder / name).read_text())[key]
    assert data, f"{name} has no {key!r} cases"
    return data


async def test_todo_evaluation(todo: Client, interop: Path) -> None:
    failures = []
    for i, case in enumerate(cases(interop, "todo-decisions.json", "evaluation")):
        response = await todo.post("/access/v1/evaluation", json=case["request"], headers=PEP)
        assert response.status == 200, await response.text()
        body = await response.json()
        if body["decision"] is not case["expected"]:
            failures.append((i, case["request"], body))
    assert not failures


async def test_todo_evaluations(todo: Client, interop: Path) -> None:
    for case in cases(interop, "todo-decisions.json", "evaluations"):
        response = await todo.post("/access/v1/evaluations", json=case["request"], headers=PEP)
        assert response.status == 200, await response.text()
        body = await response.json()
        got = [{"decision": item["decision"]} for item in body["evaluations"]]
        assert got == case["expected"], case["request"]


async def test_gateway_evaluation(todo: Client, interop: Path) -> None:
    failures = []
    for i, case in enumerate(cases(interop, "gateway-decisions.json", "evaluation")):
        response = await todo.post("/access/v1/evaluation", json=case["request"], headers=PEP)
        assert response.status == 200, await response.text()
        body = await response.json()
        if body["decision"] is not case["expected"]:
            failures.append((i, case["request"], body))
    assert not failures


async def test_pep_key_is_required(todo: Client, interop: Path) -> None:
    case = cases(interop, "todo-decisions.json", "evaluation")[0]
    for headers in ({}, {"Authorization": "wrong-key-0123456789"}, {"Authorization": "Bearer x"}):
        response = await todo.post("/access/v1/evaluation", json=case["request"], headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json(content_type=None))["status"] == 401
    response = await todo.post(
        "/access/v1/evaluation",
        json=case["request"],
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status == 200
