"""`GET /v1/admin/tenants/{t}/export` and `groupgate export`: the graph document an import
takes, at one revision; admin auth as every admin endpoint; a write during an export
restarts it (within the held-back bytes) or cuts the stream short (after them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from groupgate.api.app import STATE
from groupgate.cli import main
from groupgate.store.ops import Graphs, Snapshot
from tests.api.conftest import ADMIN_KEY, API_KEY, DEMO, POLICIES, MakeClient

Client = TestClient[Any, Any]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
URL = "/v1/admin/tenants/demo/export"
PROBLEM = "application/problem+json"


@pytest.fixture
async def admin(make_client: MakeClient) -> Client:
    return await make_client(api_keys=API_KEY, admin_keys=ADMIN_KEY)


async def current_revision(client: Client) -> int:
    value: int = await client.server.app[STATE].decider.revision("demo")
    return value


def write_during_reads(
    client: Client, monkeypatch: pytest.MonkeyPatch, at: Callable[[int], bool]
) -> list[int]:
    """Make every export read number n with `at(n)` first land an admin write."""
    service = client.server.app[STATE].service
    graphs: Graphs = service.graphs
    original = graphs.read
    calls: list[int] = []
    busy = False

    async def read(tenant: str, *reads: Any) -> Snapshot:
        nonlocal busy
        if not busy:
            calls.append(1)
            if at(len(calls)):
                busy = True  # the write's own reads are not counted
                try:
                    await service.admin.put_vendor(tenant, {"id": f"v{len(calls)}", "name": "V"})
                finally:
                    busy = False
        result: Snapshot = await original(tenant, *reads)
        return result

    monkeypatch.setattr(graphs, "read", read)
    return calls


async def test_the_export_is_the_document_an_import_takes(admin: Client) -> None:
    response = await admin.get(URL, headers=ADMIN)
    assert response.status == 200 and response.content_type == "application/json"
    assert response.headers["X-Groupgate-Revision"] == str(await current_revision(admin))
    doc = await response.json()
    assert doc["tenant"] == "demo"
    assert {s["id"] for s in doc["subjects"]} == {
        s["id"] for s in json.loads(DEMO.read_text())["subjects"]
    }
    # Predefined groups come with their companies; custom groups are all there.
    assert not [g for g in doc["groups"] if "/" in g["id"]]
    copy = {**doc, "tenant": "copy"}
    response = await admin.post("/v1/admin/tenants/copy/import", json=copy, headers=ADMIN)
    assert response.status == 200
    again = await (await admin.get("/v1/admin/tenants/copy/export", headers=ADMIN)).json()
    assert again == copy


async def test_admin_auth_and_unknown_tenants(make_client: MakeClient) -> None:
    client = await make_client(
        api_keys=API_KEY, admin_keys=f"{ADMIN_KEY},bound-admin-0123456789:other"
    )
    response = await client.get(URL)
    assert response.status == 401 and response.content_type == PROBLEM
    response = await client.get(URL, headers={"Authorization": API_KEY})
    assert response.status == 403 and response.content_type == PROBLEM
    response = await client.get(URL, headers={"Authorization": "Bearer bound-admin-0123456789"})
    assert (
        response.status == 403
        and "bound to tenant 'other'" in (await response.json(content_type=None))["detail"]
    )
    response = await client.get("/v1/admin/tenants/nope/export", headers=ADMIN)
    assert response.status == 404 and response.content_type == PROBLEM
    assert (await response.json(content_type=None))["detail"] == "unknown tenant 'nope'"
    response = await client.get("/v1/admin/tenants/bad%20name/export", headers=ADMIN)
    assert response.status in (400, 422) and response.content_type == PROBLEM


async def test_past_the_buffer_the_export_is_streamed(make_client: MakeClient) -> None:
    whole = await make_client(admin_keys=ADMIN_KEY, api_keys=API_KEY)
    streamed = await make_client(
        admin_keys=ADMIN_KEY, api_keys=API_KEY, export_buffer_bytes=0, export_batch=1
    )
    expected = await (await whole.get(URL, headers=ADMIN)).read()
    response = await streamed.get(URL, headers=ADMIN)
    assert response.status == 200 and response.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.headers
    assert await response.read() == expected


async def test_a_write_within_the_buffer_restarts_the_export_unseen(
    admin: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = write_during_reads(admin, monkeypatch, lambda n: n == 3)
    response = await admin.get(URL, headers=ADMIN)
    assert response.status == 200
    doc = await response.json()
    # The restarted export holds the write and says the revision after it.
    assert "v3" in {v["id"] for v in doc["vendors"]}
    assert response.headers["X-Groupgate-Revision"] == str(await current_revision(admin))
    assert len(calls) > 3


async def test_writes_that_never_stop_give_a_409(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(admin_keys=ADMIN_KEY, api_keys=API_KEY, export_attempts=3)
    write_during_reads(client, monkeypatch, lambda n: n % 2 == 0)
    response = await client.get(URL, headers=ADMIN)
    assert response.status == 409 and response.content_type == PROBLEM
    assert "3 exports were interrupted" in (await response.json(content_type=None))["detail"]


async def test_a_write_after_the_first_byte_cuts_the_stream_short(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(
        admin_keys=ADMIN_KEY, api_keys=API_KEY, export_buffer_bytes=0, export_batch=1
    )
    write_during_reads(client, monkeypatch, lambda n: n == 4)
    response = await client.get(URL, headers=ADMIN)
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    assert "export of tenant 'demo' aborted" in caplog.text


def test_cli_export_to_a_file_and_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo-export.json"
    assert main(["export", "--tenant", "demo", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"tenant": "demo", "revision": 1, "bytes": out.stat().st_size}
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no spool file left behind
    assert main(["export", "--tenant", "demo"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads(out.read_text())
    assert json.loads(captured.err)["tenant"] == "demo"
    # The export answers as the original: one check through `groupgate check --data`.
    check = ["check", "--subject", "emp-de", "--action", "update", "--type", "orders"]
    assert main([*check, "--restriction", "DE", "--data", str(out)]) == 0
    assert main([*check, "--restriction", "US", "--data", str(out)]) == 1
    capsys.readouterr()


def test_cli_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--tenant", "nope", "--out", str(tmp_path / "x.json")]) == 2
    assert "groupgate export: error: unknown tenant 'nope'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert (
        main(
            [
                "export",
                "--tenant",
                "todo",
                "--policies",
                str(POLICIES / "examples" / "authzen-todo"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["tenant"] == "todo"
