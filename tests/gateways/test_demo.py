"""A newcomer's gateway path: `groupgate serve --demo`, then exactly what its banner prints.

The demo has no JWT setting, so it generates a demo-only HS256 secret and prints the
`groupgate token` command and the curl line that use it. This test runs the printed token
command (as `python -m groupgate.cli`) and sends the printed curl request, and gets a 200
with groupgate's identity headers. Outside the demo no secret is invented.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from groupgate.cli import parser, serve_config
from tests.support.servers import free_port, wait_for_port


def clean_env() -> dict[str, str]:
    """The environment without any GROUPGATE_* setting (a newcomer has none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPGATE_")}
    env["GROUPGATE_LOG_LEVEL"] = "warning"
    return env


@pytest.fixture
def demo_banner() -> Iterator[list[str]]:
    """Start `groupgate serve --demo` on a free port; yield the lines it printed once ready."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "groupgate.cli", "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=clean_env(),
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.decode().rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for_port(port, process, timeout=30)
        deadline = time.monotonic() + 30
        while not any("curl -si" in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield lines
    finally:
        process.terminate()
        process.wait(30)
        reader.join(10)
        if process.stdout is not None:
            process.stdout.close()


def printed(lines: list[str], start: str) -> str:
    found = [line.strip() for line in lines if line.strip().startswith(start)]
    assert len(found) == 1, f"no single line starting with {start!r} in:\n" + "\n".join(lines)
    return found[0]


def test_the_printed_token_and_curl_lines_get_a_200(demo_banner: list[str]) -> None:
    assert any("demo-only token secret" in line for line in demo_banner)
    command = printed(demo_banner, "TOKEN=$(")[len("TOKEN=$(") : -1]
    argv = shlex.split(command)
    assert argv[:2] == ["groupgate", "token"]
    result = subprocess.run(
        [sys.executable, "-m", "groupgate.cli", *argv[1:]],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=True,
    )
    token = result.stdout.strip()
    curl = shlex.split(printed(demo_banner, "curl -si").replace("$TOKEN", token))
    url = curl[2]
    headers = dict(h.split(": ", 1) for flag, h in zip(curl[3::2], curl[4::2], strict=True))
    assert all(flag == "-H" for flag in curl[3::2])
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert response.headers.get_all("X-Groupgate-Subject") == ["emp-viewer"]
        assert response.headers.get_all("X-Groupgate-Tenant") == ["demo"]
    forged = dict(headers, Authorization="Bearer " + token[:-2] + "xx")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, headers=forged), timeout=10)  # noqa: S310
    refused.value.close()
    assert refused.value.code == 401


def test_a_secret_is_invented_for_the_demo_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GROUPGATE_"):
            monkeypatch.delenv(name)
    demo = serve_config(parser().parse_args(["serve", "--demo"]))
    assert demo.demo and demo.demo_secret is not None
    assert demo.config.jwt.secret == demo.demo_secret and demo.config.jwt.algorithms == ("HS256",)
    again = serve_config(parser().parse_args(["serve", "--demo"]))
    assert again.demo_secret != demo.demo_secret  # random per start
    data = str(demo.config.data[0])
    monkeypatch.setenv("GROUPGATE_API_KEYS", "k" * 20)
    served = serve_config(parser().parse_args(["serve", "--data", data]))
    assert not served.demo and served.demo_secret is None and not served.config.jwt.configured
    monkeypatch.setenv("GROUPGATE_JWT_SECRET", "mine-" + "0" * 40)
    monkeypatch.delenv("GROUPGATE_API_KEYS")
    monkeypatch.setenv("GROUPGATE_DEMO", "1")
    configured = serve_config(parser().parse_args(["serve"]))
    assert configured.demo and configured.demo_secret is None
    assert configured.config.jwt.secret == "mine-" + "0" * 40
