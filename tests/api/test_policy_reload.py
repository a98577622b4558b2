"""Hot reload of the policy set (issue 14 item 2): the admin endpoint, SIGHUP, the file
watch; an invalid set keeps the last good one and says why (log, metrics, /readyz)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from groupgate.api.app import STATE
from tests.api.conftest import ADMIN_KEY, API_KEY, POLICIES, MakeClient

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PEP = {"Authorization": f"Bearer {API_KEY}"}
#: emp-viewer of the demo graph reads everything (the viewer role).
EXPORT = {
    "subject": {"id": "emp-viewer"},
    "action": "export",
    "resource": {"type": "orders", "id": "o-1", "restrictions": ["DE"]},
}


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("examples", "*.json"))
    return target


def add_level_action(policies: Path, action: str) -> None:
    """Make `action` a level action needing read (catalog.yaml `levels`)."""
    catalog = policies / "catalog.yaml"
    text = catalog.read_text()
    catalog.write_text(text.replace("levels:\n", f"levels:\n  {action}: read\n", 1))


async def client_for(make_client: MakeClient, policies: Path, **extra: Any) -> TestClient[Any, Any]:
    settings = {"api_keys": API_KEY, "admin_keys": ADMIN_KEY, **extra}
    return await make_client(policies=policies, **settings)


async def export_status(client: TestClient[Any, Any]) -> tuple[int, Any]:
    response = await client.post("/v1/check", json=EXPORT, headers=PEP)
    return response.status, await response.json()


async def exports_eventually(client: TestClient[Any, Any]) -> None:
    """Wait (up to 4 s) for the reload that makes `export` an action, then check with it."""
    for _ in range(200):
        if (await export_status(client))[0] == 200:
            break
        await asyncio.sleep(0.02)
    status, answer = await export_status(client)
    assert status == 200 and answer["allow"] is True


async def test_the_admin_endpoint_reloads(make_client: MakeClient, policies: Path) -> None:
    client = await client_for(make_client, policies)
    assert (await export_status(client))[0] == 422  # no such action yet
    add_level_action(policies, "export")
    response = await client.post("/v1/admin/policies/reload", headers=ADMIN)
    assert response.status == 200
    body = await response.json()
    assert body["policies"]["ok"] is True and body["policies"]["reloads"] == 1
    status, answer = await export_status(client)
    assert status == 200 and answer["allow"] is True
    ready = await (await client.get("/readyz")).json()
    assert ready["policies"]["ok"] is True and ready["policies"]["error"] is None


async def test_an_invalid_set_keeps_the_last_good_one(
    make_client: MakeClient, policies: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await client_for(make_client, policies)
    add_level_action(policies, "export")
    assert (await client.post("/v1/admin/policies/reload", headers=ADMIN)).status == 200
    (policies / "roles.yaml").write_text("roles: [unclosed\n")
    response = await client.post("/v1/admin/policies/reload", headers=ADMIN)
    assert response.status == 200
    body = (await response.json())["policies"]
    assert body["ok"] is False and "roles.yaml" in body["error"] and body["failures"] == 1
    assert "keeping the last good set" in caplog.text
    # Decisions still come from the last good set (with `export`).
    status, answer = await export_status(client)
    assert status == 200 and answer["allow"] is True
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert "roles.yaml" in (await ready.json())["policies"]["error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'groupgate_policy_reloads_total{result="refused"} 1.0' in metrics
    assert "groupgate_policy_ok 0.0" in metrics


async def test_only_a_global_admin_reloads(make_client: MakeClient, policies: Path) -> None:
    client = await client_for(
        make_client, policies, admin_keys=f"{ADMIN_KEY},bound-admin-0123456789:demo"
    )
    assert (await client.post("/v1/admin/policies/reload")).status == 401
    response = await client.post("/v1/admin/policies/reload", headers=PEP)
    assert response.status in (401, 403)
    bound = {"Authorization": "Bearer bound-admin-0123456789"}
    response = await client.post("/v1/admin/policies/reload", headers=bound)
    assert response.status == 403
    assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_sighup_reloads(make_client: MakeClient, policies: Path) -> None:
    client = await client_for(make_client, policies)
    add_level_action(policies, "export")
    os.kill(os.getpid(), signal.SIGHUP)
    await exports_eventually(client)


async def test_the_watch_reloads_changed_files(make_client: MakeClient, policies: Path) -> None:
    client = await client_for(make_client, policies, policy_watch="0.05")
    await asyncio.sleep(0.2)  # the watch took its first look
    add_level_action(policies, "export")
    await exports_eventually(client)


async def test_a_reload_drops_compiled_profiles(make_client: MakeClient, policies: Path) -> None:
    client = await client_for(make_client, policies)
    check = {**EXPORT, "action": "read"}
    assert (await client.post("/v1/check", json=check, headers=PEP)).status == 200
    state = client.app[STATE]
    assert state.service.stats()["cache_entries"] >= 1
    assert (await client.post("/v1/admin/policies/reload", headers=ADMIN)).status == 200
    assert state.service.stats()["cache_entries"] == 0
    assert (await client.post("/v1/check", json=check, headers=PEP)).status == 200
