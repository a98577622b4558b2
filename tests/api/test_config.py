"""Settings: env and file sources, precedence, precise start-up errors, the parser guard."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from groupgate.api import app as app_module
from groupgate.config import ConfigError, default_policies, load_config
from tests.api.conftest import POLICIES, MakeClient, flush_audit


def test_defaults() -> None:
    config = load_config(env={})
    assert config.policies == default_policies() == POLICIES
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 8181, 1)
    assert config.limits.max_body_bytes == 1024 * 1024
    assert config.limits.max_batch == 1000 and config.limits.max_json_depth == 32
    assert config.redis_url is None and not config.api_keys and not config.admin_open


def test_replica_settings() -> None:
    config = load_config(env={})
    assert (config.write_replicas, config.write_wait_ms, config.poll_interval) == (
        None,
        1000,
        0.25,
    )
    config = load_config(
        env={
            "GROUPGATE_WRITE_REPLICAS": "2",
            "GROUPGATE_WRITE_WAIT_MS": "250",
            "GROUPGATE_REDIS_URL": "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/gg",
        }
    )
    assert (config.write_replicas, config.write_wait_ms) == (2, 250)
    assert load_config(env={"GROUPGATE_WRITE_REPLICAS": "AUTO"}).write_replicas is None


def test_env_keys_with_tenant_binding_and_admin_keys() -> None:
    config = load_config(
        env={
            "GROUPGATE_API_KEYS": "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb:acme",
            "GROUPGATE_ADMIN_KEYS": "cccccccccccccccc",
            "GROUPGATE_MAX_BATCH": "50",
            "GROUPGATE_DECISION_LOG": "yes",
        }
    )
    assert [(k.tenant, k.admin) for k in config.api_keys] == [
        (None, False),
        ("acme", False),
        (None, True),
    ]
    assert config.limits.max_batch == 50 and config.decision_log is True
    assert "aaaa" not in repr(config)  # keys never appear in logs of the settings


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_file_then_env_then_flags(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"groupgate{suffix}"
    if suffix == ".yaml":
        path.write_text("port: 9000\nworkers: 3\nlimits: {max_batch: 7}\njwt: {leeway: 1}\n")
    else:
        path.write_text("port = 9000\nworkers = 3\n[limits]\nmax_batch = 7\n[jwt]\nleeway = 1\n")
    config = load_config(env={"GROUPGATE_WORKERS": "2"}, file=path, overrides={"port": 9100})
    assert (config.port, config.workers, config.limits.max_batch) == (9100, 2, 7)
    assert config.jwt.leeway == 1


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GROUPGATE_PORT": "http"}, "port"),
        ({"GROUPGATE_PORT": "70000"}, "port"),
        ({"GROUPGATE_WORKERS": "0"}, "workers"),
        ({"GROUPGATE_MAX_BODY_BYTES": "-1"}, "max_body_bytes"),
        ({"GROUPGATE_DECISION_LOG": "maybe"}, "decision_log"),
        ({"GROUPGATE_LOG_LEVEL": "loud"}, "log_level"),
        ({"GROUPGATE_REDIS_URL": "http://x"}, "redis_url"),
        ({"GROUPGATE_REDIS_URL": "redis+sentinel://h:1,h/gg"}, "redis_url"),
        ({"GROUPGATE_REDIS_URL": "redis+sentinel://h:1"}, "redis_url"),
        ({"GROUPGATE_WRITE_REPLICAS": "some"}, "write_replicas"),
        ({"GROUPGATE_WRITE_REPLICAS": "-1"}, "write_replicas"),
        ({"GROUPGATE_WRITE_WAIT_MS": "0"}, "write_wait_ms"),
        ({"GROUPGATE_WRITE_WAIT_MS": "5000"}, "write_wait_ms"),
        ({"GROUPGATE_POLICIES": "/nonexistent"}, "policies"),
        ({"GROUPGATE_DATA": "/nonexistent.json"}, "data"),
        ({"GROUPGATE_API_KEYS": "short"}, "16 characters"),
        ({"GROUPGATE_JWT_ALGORITHMS": "RS256"}, "jwt_public_keys"),
        ({"GROUPGATE_JWT_JWKS_URL": "file:///etc/passwd"}, "jwt_jwks_url"),
        ({"GROUPGATE_CONFIG": "/nonexistent.yaml"}, "config file"),
    ],
)
def test_errors_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(env=env)


def test_unknown_file_setting(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("prot: 80\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_config(env={}, file=path)


def test_python_parser_is_refused_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert app_module.http_parser_is_c()  # the test environment has aiohttp's C extension
    import aiohttp.http_parser
    import aiohttp.web_protocol

    monkeypatch.setattr(
        aiohttp.web_protocol, "HttpRequestParser", aiohttp.http_parser.HttpRequestParserPy
    )
    assert not app_module.http_parser_is_c()
    with pytest.raises(ConfigError, match="GROUPGATE_ALLOW_PY_PARSER"):
        app_module.require_c_parser(load_config(env={}))
    app_module.require_c_parser(load_config(env={"GROUPGATE_ALLOW_PY_PARSER": "1"}))


async def test_service_jwt_as_caller_credential(make_client: MakeClient) -> None:
    from groupgate.auth import mint_token

    secret = "caller-secret-0123456789abcdefghij"
    client = await make_client(jwt_secret=secret, jwt_caller_tokens=True)
    check = {
        "subject": {"id": "emp-viewer"},
        "action": "read",
        "resource": {"type": "orders"},
    }
    response = await client.post("/v1/check", json=check)
    assert response.status == 401
    forged = mint_token("another-secret-0123456789abcdefghij", "svc-orders", tenant="demo")
    for bad in (forged, "a.b.c", "not-a-token"):
        response = await client.post("/v1/check", json=check, headers={"Authorization": bad})
        assert response.status == 401, bad
    service = mint_token(secret, "svc-orders", tenant="demo")
    headers = {"Authorization": f"Bearer {service}"}
    response = await client.post("/v1/check", json=check, headers=headers)
    assert response.status == 200
    response = await client.post("/v1/check", json={**check, "tenant": "x"}, headers=headers)
    assert response.status == 403
    response = await client.get("/v1/admin/tenants", headers=headers)
    assert response.status == 403
    admin = mint_token(secret, "ops", extra={"scope": "groupgate:admin"})
    response = await client.get("/v1/admin/tenants", headers={"Authorization": f"Bearer {admin}"})
    assert response.status == 200


async def test_decision_log(make_client: MakeClient, caplog: Any) -> None:
    client = await make_client(decision_log=True)
    with caplog.at_level(logging.INFO, logger="groupgate.decisions"):
        await client.post(
            "/v1/check",
            json={"subject": {"id": "emp-de"}, "action": "read", "resource": {"type": "orders"}},
        )
        await flush_audit(client)
    records = [r for r in caplog.records if r.name == "groupgate.decisions"]
    assert len(records) == 1
    assert records[0].__dict__["subject"] == "emp-de" and records[0].__dict__["allow"] is False


def test_json_log_formatter() -> None:
    import json

    from groupgate.log import JsonFormatter

    record = logging.LogRecord("groupgate.api", logging.INFO, "f.py", 1, "hello %s", ("x",), None)
    record.tenant = "acme"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello x" and line["level"] == "info"
    assert line["logger"] == "groupgate.api" and line["tenant"] == "acme"


def test_api_keys_match_exactly_and_only_matches_are_remembered() -> None:
    from groupgate.auth import KeyRing
    from groupgate.config import ApiKey

    ring = KeyRing([ApiKey("k-one", "t1", False), ApiKey("k-two", None, True)])
    for _ in range(3):  # the first match hashes and compares; the next ones are remembered
        one, two = ring.match("k-one"), ring.match("k-two")
        assert one is not None and (one.name, one.tenant, one.admin) == ("key#0", "t1", False)
        assert two is not None and (two.name, two.tenant, two.admin) == ("key#1", None, True)
    for wrong in ("k-on", "k-one ", "K-ONE", "", "k-one\x00", "k-\udcff"):
        assert ring.match(wrong) is None
    assert sorted(ring._matched) == ["k-one", "k-two"]  # never more than the keys
