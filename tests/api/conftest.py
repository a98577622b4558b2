"""Fixtures of the API suite: the real app on the real `GraphService` over embedded fakeredis.

`make_client(...)` builds a configured app (settings as `load_config` overrides, so the same
validation as production applies), loads graph documents and returns a test client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.api.app import create_app
from groupgate.config import load_config
from groupgate.policy import load_policy
from groupgate.store.service import GraphService

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
DEMO = POLICIES / "demo.json"
TODO = POLICIES / "examples" / "authzen-todo"
INTEROP = REPO / "tests" / "data" / "authzen"
API_KEY = "pep-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def document(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
async def make_client(aiohttp_client: Any) -> AsyncIterator[MakeClient]:
    """Return a factory: `await make_client(policies=..., documents=[...], **settings)`."""
    services: list[GraphService] = []

    async def make(
        policies: Path = POLICIES,
        documents: list[Any] | None = None,
        **settings: Any,
    ) -> TestClient[Any, Any]:
        config = load_config(env={}, overrides={"policies": str(policies), **settings})
        service = await GraphService.open(load_policy(policies), None, poll_interval=0.2)
        services.append(service)
        for doc in documents if documents is not None else [document(DEMO)]:
            await service.admin.import_graph(None, doc)
        client: TestClient[Any, Any] = await aiohttp_client(create_app(config, service))
        return client

    yield make
    for service in services:
        await service.close()


@pytest.fixture
async def demo(make_client: MakeClient) -> TestClient[Any, Any]:
    """The demo graph, open decision endpoints, admin open."""
    return await make_client(admin_open=True)


@pytest.fixture
async def todo(make_client: MakeClient) -> TestClient[Any, Any]:
    """The AuthZEN Todo scenario, with a PEP key (sent bare, as interop PEPs do)."""
    return await make_client(
        policies=TODO, documents=[document(TODO / "data.json")], api_keys=API_KEY
    )


@pytest.fixture(scope="session")
def interop() -> Path:
    if not INTEROP.is_dir():
        pytest.fail(f"the AuthZEN interop cases are missing: {INTEROP}")
    return INTEROP


async def flush_audit(client: TestClient[Any, Any]) -> None:
    """Write what waits in the app's audit trail now (records are written in batches)."""
    from groupgate.api.app import STATE

    trail = client.app[STATE].audit
    assert trail is not None, "the app has no audit trail"
    await trail.flush()
