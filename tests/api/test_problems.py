"""Errors become problem+json through `problems.guarded`, on every route and on no route."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from groupgate.api import problems
from groupgate.api.app import STATE
from groupgate.errors import Conflict, NotReplicated

CHECK = {
    "subject": {"id": "emp-anna"},
    "action": "read",
    "resource": {"type": "orders", "id": "o1"},
}


def problem_of(response: web.StreamResponse) -> dict[str, Any]:
    assert isinstance(response, web.Response)
    assert response.content_type == problems.PROBLEM
    assert response.body is not None
    body: dict[str, Any] = orjson.loads(response.body)  # type: ignore[arg-type]
    assert body["status"] == response.status
    return body


async def test_guarded_maps_each_kind_of_error(caplog: pytest.LogCaptureFixture) -> None:
    request = make_mocked_request("GET", "/x")

    async def conflict(request: web.Request) -> web.Response:
        raise Conflict("revision 9 not reached")

    async def gone(request: web.Request) -> web.Response:
        raise web.HTTPGone()

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    body = problem_of(await problems.guarded(conflict)(request))
    assert (body["status"], body["detail"]) == (409, "revision 9 not reached")
    assert problem_of(await problems.guarded(gone)(request))["type"].endswith("http-410")
    with caplog.at_level(logging.ERROR, logger="groupgate.api"):
        body = problem_of(await problems.guarded(broken)(request))
    assert body["status"] == 500 and "secret" not in body["detail"]
    assert "secret detail" in caplog.text  # the traceback goes to the log
    with pytest.raises(web.HTTPFound):
        await problems.guarded(moved)(request)


def test_a_write_not_replicated_is_a_503_naming_its_revision() -> None:
    response = problems.from_error(NotReplicated(7, 0, 1, 250))
    body = problem_of(response)
    assert body["type"].endswith(":not-replicated") and body["status"] == 503
    assert (body["revision"], body["replicas"], body["wanted"]) == (7, 0, 1)
    assert "revision 7" in body["detail"] and "0 of 1 replicas within 250 ms" in body["detail"]
    assert response.headers["Retry-After"] == "1"


def test_guarded_keeps_the_handler_identity() -> None:
    async def handler(request: web.Request) -> web.Response:
        """Doc."""
        return web.Response()

    guard = problems.guarded(handler)
    assert problems.is_guarded(guard) and not problems.is_guarded(handler)
    assert guard.__name__ == "handler" and guard.__doc__ == "Doc."


async def test_every_route_of_the_app_is_guarded(demo: TestClient[Any, Any]) -> None:
    routes = list(demo.app.router.routes())
    assert len(routes) > 20
    assert all(problems.is_guarded(route.handler) for route in routes)
    assert routes[-1].name == problems.UNMATCHED  # last: it matches every path


async def test_an_unexpected_error_on_the_hot_path_is_a_500_problem(
    demo: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    decider = demo.app[STATE].decider

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cache exploded")

    monkeypatch.setattr(decider, "check_cached", broken)
    response = await demo.post("/v1/check", json=CHECK)
    assert response.status == 500
    assert response.content_type == problems.PROBLEM
    assert "allow" not in await response.json()


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nothing", 404, None),
        ("POST", "/", 404, None),
        ("HEAD", "/v1/nothing", 404, None),
        ("GET", "/v1/check", 405, "POST"),
        ("PATCH", "/v1/admin/tenants/t1/subjects/emp-anna", 405, "DELETE,GET,HEAD,PUT"),
        ("POST", "/metrics", 405, "GET,HEAD"),
    ],
)
async def test_no_route_is_a_problem(
    demo: TestClient[Any, Any], method: str, path: str, status: int, allow: str | None
) -> None:
    response = await demo.request(method, path)
    assert response.status == status
    assert response.headers.get("Allow") == allow
    if method != "HEAD":
        assert response.content_type == problems.PROBLEM
        assert (await response.json())["status"] == status
