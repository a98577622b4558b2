"""Operations endpoints and the OpenAPI document, which must match the router."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from groupgate.api.openapi import ANY, document
from groupgate.api.problems import UNMATCHED

Client = TestClient[Any, Any]


async def test_health_and_ready(demo: Client) -> None:
    response = await demo.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"
    response = await demo.get("/readyz")
    assert response.status == 200 and (await response.json())["status"] == "ready"


async def test_not_ready_when_store_is_down(demo: Client) -> None:
    from groupgate.api.app import STATE

    decider = demo.app[STATE].decider

    async def down() -> bool:
        return False

    decider.ready = down
    response = await demo.get("/readyz")
    assert response.status == 503
    assert response.content_type == "application/problem+json"


async def test_metrics(demo: Client) -> None:
    for subject in ("emp-de", "emp-us"):
        await demo.post(
            "/v1/check",
            json={
                "subject": {"id": subject},
                "action": "update",
                "resource": {"type": "orders", "restrictions": ["DE"]},
            },
        )
    response = await demo.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'groupgate_decisions_total{result="allow",surface="check"} 1.0' in text
    assert 'groupgate_decisions_total{result="deny",surface="check"} 1.0' in text
    assert 'groupgate_decision_seconds_count{surface="check"} 2.0' in text
    for name in ("groupgate_cache_hits_total", "groupgate_cache_misses_total"):
        assert name in text
    assert "groupgate_store_errors_total 0.0" in text


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.name == UNMATCHED:
            continue  # answers every other request with a 404/405 problem
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert path is not None
        # aiohttp patterns carry regexes ({id:.+}): OpenAPI has plain parameters.
        path = "/".join(
            "{" + part[1:-1].split(":", 1)[0] + "}" if part.startswith("{") else part
            for part in path.split("/")
        )
        if route.method == "*":
            found.update((path, m) for m in ANY)
        elif route.method != "HEAD":
            found.add((path, route.method.lower()))
    return found


async def test_openapi_matches_router(demo: Client) -> None:
    response = await demo.get("/openapi.json")
    assert response.status == 200
    served = await response.json()
    assert served == document()
    assert served["openapi"].startswith("3.1")
    documented = {(p, m) for p, ops in served["paths"].items() for m in ops}
    assert documented == router_operations(demo.app)
    for ops in served["paths"].values():
        for op in ops.values():
            for ref in [
                op.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema"),
                next(r for c, r in op["responses"].items() if c.startswith("2"))
                .get("content", {})
                .get("application/json", {})
                .get("schema"),
            ]:
                if ref is not None:
                    assert ref["$ref"].split("/")[-1] in served["components"]["schemas"]
