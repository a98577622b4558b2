"""Real servers for tests: private redis-server processes, a local Redis Cluster, nginx.

Each helper starts its processes on free loopback ports in a temporary folder and always
stops them. When the binary is missing, the test is skipped, or fails when the matching
GROUPGATE_REQUIRE_* variable is set (as `scripts/check` does), so CI can't skip silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require(binary: str, variable: str) -> str:
    """Return the path of `binary`; skip the test, or fail it when `variable` is set."""
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None
    )
    if path is None:
        message = f"{binary} is not installed"
        if os.environ.get(variable) == "1":
            pytest.fail(f"{message} and {variable}=1")
        pytest.skip(message)
    return path


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class RedisProcess:
    """A private redis-server on a free port; its folder keeps a dump across restarts."""

    def __init__(self, *extra: str) -> None:
        self.binary = require("redis-server", "GROUPGATE_REQUIRE_REDIS")
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="gg-redis-")
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.log = os.path.join(self.folder, "redis.log")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self.folder, "--logfile", self.log, *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                text = Path(self.log).read_text() if os.path.exists(self.log) else ""
                raise RuntimeError(
                    f"redis-server exited ({self.process.returncode}): {text[-2000:]}"
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {self.port} did not listen")
            time.sleep(0.02)
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisCluster:
    """Three redis-server nodes in cluster mode on free ports, slots spread over them."""

    def __init__(self) -> None:
        self.cli = require("redis-cli", "GROUPGATE_REQUIRE_REDIS")
        self.nodes = [
            RedisProcess("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
            for _ in range(3)
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.extra = (*node.extra, "--cluster-config-file", f"{node.folder}/nodes.conf")
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        for node in self.nodes:
            client = redis.Redis(port=node.port)
            try:
                while not _cluster_ok(client.execute_command("CLUSTER INFO")):
                    assert time.monotonic() < deadline, "the cluster did not become ready"
                    time.sleep(0.05)
            finally:
                client.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def _cluster_ok(info: object) -> bool:
    """redis-py parses CLUSTER INFO into a dict; older versions return the raw text."""
    if isinstance(info, dict):
        return info.get("cluster_state") in ("ok", b"ok")
    return isinstance(info, bytes | str) and "cluster_state:ok" in str(info)


class Nginx:
    """nginx in the foreground with a config written to a private folder."""

    def __init__(self, conf: str, port: int) -> None:
        self.binary = require("nginx", "GROUPGATE_REQUIRE_NGINX")
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="gg-nginx-"))
        for sub in ("logs", "tmp"):
            (self.folder / sub).mkdir()
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = self.folder / "tmp"
        head = (
            f"{user}worker_processes 1;\npid {self.folder}/nginx.pid;\n"
            f"error_log {self.folder}/logs/error.log warn;\nevents {{ worker_connections 256; }}\n"
        )
        paths = (
            f"access_log off; client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;"
            f" fastcgi_temp_path {temp}/fcgi; uwsgi_temp_path {temp}/uwsgi;"
            f" scgi_temp_path {temp}/scgi;\n"
        )
        (self.folder / "nginx.conf").write_text(head + conf.replace("@PATHS@", paths))
        self.process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.folder),
                "-c",
                str(self.folder / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port)
        except TimeoutError:
            self.stop()
            raise

    def error_log(self) -> str:
        path = self.folder / "logs" / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)
