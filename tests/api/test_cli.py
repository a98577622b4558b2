"""The `groupgate` command: check, token, lint, load, serve, health, --help/--version, and
precise error exits."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jwt
import pytest

import groupgate
from groupgate.cli import main, parser
from groupgate.config import HELP, PARSERS, describe
from tests.api.conftest import TODO
from tests.support.servers import demo_check, free_port, wait_for_port

POLICIES = TODO.parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_check_allow_deny_and_explain(capsys: pytest.CaptureFixture[str]) -> None:
    base = ("check", "--subject", "emp-de", "--action", "update", "--type", "orders")
    status, out, _ = run(capsys, *base, "--restriction", "DE")
    assert status == 0 and json.loads(out)["allow"] is True
    status, out, _ = run(capsys, *base, "--restriction", "US", "--explain")
    body = json.loads(out)
    assert status == 1 and body["allow"] is False and body["explain"]


def test_check_with_data_and_policies(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "check",
        "--policies",
        str(TODO),
        "--data",
        str(TODO / "data.json"),
        "--subject",
        "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "--action",
        "can_read_todos",
        "--type",
        "todo",
    )
    assert status == 0 and json.loads(out)["tenant"] == "todo"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["check", "--subject", "a", "--action", "fly", "--type", "orders"], "no action 'fly'"),
        (["check", "--subject", "a", "--action", "read", "--type", "nope"], "unknown resource"),
        (
            ["check", "--subject", "a", "--action", "read", "--type", "orders", "--data", "/no"],
            "no such file",
        ),
        (
            [
                "check",
                "--subject",
                "a",
                "--action",
                "read",
                "--type",
                "orders",
                "--policies",
                "/tmp",
            ],
            "not a policy directory",
        ),
        (
            ["check", "--subject", "a", "--action", "read", "--type", "orders", "--tenant", "zz"],
            "unknown tenant",
        ),
        (["token", "--secret", "short", "--sub", "a"], "32 bytes"),
        (["token", "--secret", "s" * 40, "--sub", "a", "--ttl", "0"], "--ttl"),
    ],
)
def test_errors_exit_2_without_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert needle in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_graph_document_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"tenant": "x", "subjects": [{"id": "e", "kind": "robot"}]}')
    argv = ["check", "--subject", "e", "--action", "read", "--type", "orders", "--data", str(bad)]
    status, _, err = run(capsys, *argv)
    assert status == 2 and "subjects[0].kind" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    status, _, err = run(capsys, *argv[:-1], str(broken))
    assert status == 2 and "not a valid graph document" in err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "--subject", "x"])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


def test_token(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s" * 40
    argv = ["token", "--secret", secret, "--sub", "emp-1", "--tenant", "demo"]
    status, out, _ = run(capsys, *argv, "--aud", "shop", "--iss", "idp", "--ttl", "60")
    assert status == 0
    claims = jwt.decode(out.strip(), secret, algorithms=["HS256"], audience="shop", issuer="idp")
    assert claims["sub"] == "emp-1" and claims["tenant"] == "demo"
    assert 0 < claims["exp"] - time.time() <= 60


def test_lint_labels_warnings_and_passes_the_projects_own_policies(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "lint", str(POLICIES))
    lines = out.splitlines()
    assert status == 0, out
    findings = lines[:-1]
    assert findings and all(line.startswith("warning: ") for line in findings)
    assert lines[-1] == f"{POLICIES}: 0 error(s), {len(findings)} warning(s)"
    assert len(set(findings)) == len(findings)
    status, strict, _ = run(capsys, "lint", str(POLICIES), "--strict")
    assert status == 1 and strict == out
    # No DIR: the configured policy directory, the same one.
    status, default, _ = run(capsys, "lint")
    assert status == 0 and default.splitlines()[:-1] == findings


def test_lint_with_data_prints_each_finding_once(capsys: pytest.CaptureFixture[str]) -> None:
    demo = POLICIES / "demo.json"
    status, out, _ = run(capsys, "lint", str(POLICIES), "--data", str(demo))
    findings = out.splitlines()[:-1]
    assert status == 0 and len(set(findings)) == len(findings)
    de = [line for line in findings if "group de-fulfillment:" in line]
    assert de == [
        f"warning: {demo}: group de-fulfillment: manages returns without read on products "
        "(seed 004 Role/Permission Matrix)"
    ]


def test_lint_reports_an_invalid_policy_as_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for path in POLICIES.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "companions.yaml").write_text("manage: {spaceships: {read: [orders]}}")
    status, out, _ = run(capsys, "lint", str(tmp_path))
    assert status == 1
    assert out.startswith("error: companions.yaml") and "1 error(s), 0 warning(s)" in out


def test_lint_of_a_directory_without_a_catalog_names_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(capsys, "lint", str(tmp_path))
    assert status == 2 and out == ""
    assert "not a policy directory" in err and "GROUPGATE_POLICIES" in err


def test_a_missing_policy_directory_names_the_flag_and_the_variable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["check", "--subject", "a", "--action", "read", "--type", "orders"]
    status, _, err = run(capsys, *argv, "--policies", str(tmp_path))
    assert status == 2
    assert "--policies" in err and "GROUPGATE_POLICIES" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"groupgate {groupgate.__version__}"


def test_every_setting_has_help_text() -> None:
    assert set(HELP) == set(PARSERS)
    assert all(text.strip() for text in HELP.values())
    for name in PARSERS:
        text = describe(name)
        assert f"env GROUPGATE_{name.upper()})" in text and "(default: " in text


def subcommands() -> dict[str, argparse.ArgumentParser]:
    root = parser()
    action = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_says_what_it_does_and_settings_name_their_variable() -> None:
    #: A flag's destination -> the setting it sets, where they differ.
    settings = {"redis": "redis_url"}
    for command, sub in subcommands().items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = "/".join(action.option_strings) or action.dest
            assert action.help and len(action.help) > 10, f"{command} {flag}: no help"
            name = settings.get(action.dest, action.dest)
            if name in PARSERS and command != "lint":
                assert f"env GROUPGATE_{name.upper()}" in action.help, f"{command} {flag}"
                assert "(default: " in action.help, f"{command} {flag}"


def test_serve_help_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for name in PARSERS:
        assert f"GROUPGATE_{name.upper()}" in out


def test_load_into_redis(capsys: pytest.CaptureFixture[str], redis_process: Any) -> None:
    status, out, _ = run(
        capsys,
        "load",
        "--redis",
        redis_process.url,
        "--data",
        str(TODO / "data.json"),
        "--policies",
        str(TODO),
    )
    assert status == 0 and json.loads(out)["tenant"] == "todo"
    status, out, _ = run(
        capsys,
        "check",
        "--redis",
        redis_process.url,
        "--policies",
        str(TODO),
        "--subject",
        "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "--action",
        "can_create_todo",
        "--type",
        "todo",
    )
    assert status == 1 and json.loads(out)["revision"] >= 1


def test_serve_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, decision_port = free_port(), free_port()
    env = {**os.environ, "GROUPGATE_LOG_LEVEL": "warning"}
    command = ["serve", "--demo", "--port", str(port), "--decision-port", str(decision_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "groupgate.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for_port(port, timeout=20)
        for listening in (port, decision_port):
            assert demo_check(listening)["allow"] is True
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert b"curl -s" in out and b"DEMO MODE" in out
    assert f"decision listener: http://127.0.0.1:{decision_port}/v1/check".encode() in out


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:`port` or 0.0.0.0:`port` (Linux /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            count += 1
    return count


def workers_of(pid: int) -> list[int]:
    """The worker processes `serve` started (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        if parent == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or b"zombie" in status.read_bytes()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_serve_with_workers_shares_one_port_and_stops_together() -> None:
    port, decision_port = free_port(), free_port()
    env = {**os.environ, "GROUPGATE_LOG_LEVEL": "warning"}
    command = ["serve", "--demo", "--port", str(port), "--decision-port", str(decision_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "groupgate.cli", *command, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 30
        while listening_sockets(decision_port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # Two workers, each with its own listening socket on the one port (SO_REUSEPORT), and
        # likewise on the decision port.
        assert listening_sockets(port) == 2
        assert listening_sockets(decision_port) == 2
        workers = workers_of(process.pid)
        assert len(workers) == 2
        url = f"http://127.0.0.1:{port}/readyz"
        for _ in range(20):  # a new connection each: the kernel spreads them over both
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.count(b"DEMO MODE") == 1  # the banner is printed once, by the first worker
    for worker in workers:
        assert (
            not Path(f"/proc/{worker}").exists()
            or b"zombie" in Path(f"/proc/{worker}/status").read_bytes()
        )


def test_serve_refuses_bad_settings() -> None:
    env = {**os.environ, "GROUPGATE_MAX_BATCH": "lots"}
    result = subprocess.run(
        [sys.executable, "-m", "groupgate.cli", "serve", "--port", "0"],
        capture_output=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"max_batch" in result.stderr and b"Traceback" not in result.stderr


def production_env(**settings: str) -> dict[str, str]:
    """The environment without GROUPGATE_* settings, plus `settings` (`api_keys=...`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPGATE_")}
    env["GROUPGATE_LOG_LEVEL"] = "warning"
    env.update({f"GROUPGATE_{name.upper()}": value for name, value in settings.items()})
    return env


def test_serve_without_demo_refuses_to_start_open() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "groupgate.cli", "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=production_env(),
        timeout=30,
    )
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr
    assert err.count("\n") == 1 and "Traceback" not in err
    for needle in ("GROUPGATE_API_KEYS=", "GROUPGATE_JWT_", "--demo"):
        assert needle in err


def request(url: str, body: Any = None, **headers: str) -> int:
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        asked = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
        with urllib.request.urlopen(asked, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def test_serve_in_production_loads_no_demo_and_closes_the_admin_api() -> None:
    key = "caller-key-0123456789"
    port = free_port()
    env = production_env(api_keys=key, port=str(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "groupgate.cli", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for_port(port, process, timeout=20)
        base = f"http://127.0.0.1:{port}"
        assert request(f"{base}/healthz") == 200
        question = {
            "subject": {"id": "emp-de"},
            "action": "update",
            "resource": {"type": "orders", "restrictions": ["DE"]},
        }
        assert request(f"{base}/v1/check", question) == 401
        assert request(f"{base}/v1/admin/tenants") in (401, 403)
        auth = {"Authorization": f"Bearer {key}"}
        assert request(f"{base}/v1/admin/tenants", **auth) in (401, 403)
        # No demo graph: the embedded store starts empty, so the demo's tenant is unknown.
        assert request(f"{base}/v1/check", question, **auth) != 200
        health = subprocess.run(
            [sys.executable, "-m", "groupgate.cli", "health"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert health.returncode == 0, health.stderr
        assert health.stdout.strip() == f"http://127.0.0.1:{port}/healthz: 200"
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert b"DEMO MODE" not in out and b"data:" not in out
    assert f"listening on http://127.0.0.1:{port}".encode() in out


def test_health_fails_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "health", "--port", str(free_port()), "--timeout", "2")
    assert status == 1 and out == "" and "/healthz" in err


def test_a_failed_bind_prints_only_the_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "groupgate.cli", "serve", "--demo", "--port", str(port)],
            capture_output=True,
            text=True,
            env=production_env(),
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # no banner: it comes after the bind
    assert "address already in use" in result.stderr and "GROUPGATE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_a_reload_asked_of_one_worker_reaches_every_worker(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GROUPGATE_LOG_LEVEL": "warning"}
    command = ["serve", "--demo", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "groupgate.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )

    def reloads() -> list[int]:
        seen = []
        for _ in range(12):  # a new connection each: the kernel spreads them over both
            url = f"http://127.0.0.1:{port}/readyz"
            with urllib.request.urlopen(url, timeout=5) as response:
                seen.append(json.loads(response.read())["policies"]["reloads"])
        return seen

    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 30
        while len(workers_of(process.pid)) < 2 or listening_sockets(port) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert set(reloads()) == {0}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/admin/policies/reload", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["policies"]["ok"] is True
        deadline = time.monotonic() + 20
        while min(reloads()) < 1:  # the other worker heard it through the supervisor
            assert time.monotonic() < deadline, "a worker did not reload"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0
