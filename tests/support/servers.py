"""Real servers for tests: private redis-server processes, a local Redis Cluster, and the
proxies of the gateway recipes (nginx, Caddy, HAProxy).

Each helper starts its processes on free loopback ports in a temporary folder and always
stops them. When the binary is missing, the test is skipped, or fails when the matching
GROUPGATE_REQUIRE_* variable is set (as `scripts/check` does), so CI can't skip silently:
GROUPGATE_REQUIRE_REDIS (redis-server, redis-cli), GROUPGATE_REQUIRE_NGINX (nginx),
GROUPGATE_REQUIRE_PROXIES (caddy, haproxy).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_port() -> int:
    """Return a free port whose cluster bus port (port + 10000) is free too.

    Redis Cluster refuses ports above 55535, and ephemeral ports (usually from 32768) could be
    taken by outgoing connections meanwhile, so both ports are drawn below that range.
    """
    for _ in range(200):
        port = random.randint(10000, 22000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind((LOCALHOST, candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def require(binary: str, variable: str) -> str:
    """Return the path of `binary`; skip the test, or fail it when `variable` is set to 1."""
    path = shutil.which(binary)
    if path is None and os.access(f"/usr/sbin/{binary}", os.X_OK):
        path = f"/usr/sbin/{binary}"  # not on PATH for non-root users
    if path is None:
        message = f"{binary} is not installed (scripts/check installs it as root)"
        if os.environ.get(variable) == "1":
            pytest.fail(f"{message} and {variable}=1")
        pytest.skip(message)
    return path


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 10.0
) -> None:
    """Wait until 127.0.0.1:`port` accepts connections; stop early if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited ({process.returncode}) before listening")
        with socket.socket() as sock:
            if sock.connect_ex((LOCALHOST, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {LOCALHOST}:{port} after {timeout} s")
        time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within ten seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class RedisProcess:
    """A private redis-server on a free port without persistence; restart keeps the port.

    Tests use it to stop Redis in the middle of a run. Data does not survive a restart
    (`--save ""`, no AOF), as after a failover to an empty replica.
    """

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.binary = require("redis-server", "GROUPGATE_REQUIRE_REDIS")
        self.port = free_port() if port is None else port
        self.folder = Path(tempfile.mkdtemp(prefix="gg-redis-"))
        self.log = self.folder / "redis.log"
        self.extra: tuple[str, ...] = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", LOCALHOST, "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.log)]
        self.process = subprocess.Popen(
            [*args, *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(self.port, self.process, timeout=15)
        except (RuntimeError, TimeoutError) as error:
            self.stop()
            raise RuntimeError(f"redis-server did not start: {error}\n{_tail(self.log)}") from None
        client = redis.Redis(host=LOCALHOST, port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 15
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
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (no shutdown, no last write to replicas)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class RedisCluster:
    """Three redis-server nodes in cluster mode on free ports, no replicas, slots spread out."""

    def __init__(self, size: int = 3) -> None:
        self.cli = require("redis-cli", "GROUPGATE_REQUIRE_REDIS")
        self.nodes: list[RedisProcess] = []
        for _ in range(size):
            port = free_cluster_port()
            while any(port == other.port for other in self.nodes):
                port = free_cluster_port()
            node = RedisProcess(port=port)
            config = node.folder / f"nodes-{node.port}.conf"
            node.extra = ("--cluster-enabled", "yes", "--cluster-config-file", str(config))
            node.extra += ("--cluster-node-timeout", "2000")
            self.nodes.append(node)

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.nodes[0].port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(LOCALHOST, node.port) for node in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, assign the slots and wait until every node reports the cluster ok."""
        for node in self.nodes:
            node.start()
        addresses = [f"{host}:{port}" for host, port in self.startup_nodes]
        create = [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0"]
        result = subprocess.run(
            [*create, "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            output = result.stdout + result.stderr
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output}")
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            client = redis.Redis(host=LOCALHOST, port=node.port, socket_timeout=2)
            try:
                while not _cluster_ok(client):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"node {node.port}: cluster_state is not ok")
                    time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop every node and remove their folders."""
        for node in self.nodes:
            node.cleanup()

    cleanup = stop


class RedisSentinel:
    """A primary, one replica and three Sentinels watching them (quorum 2), on free ports.

    `url` is the `redis+sentinel://` address groupgate connects through; `primary` and
    `replica` are the two servers (which is which changes with a failover: `current_primary`
    asks the Sentinels). The Sentinels call the primary down after `down_after_ms`.
    """

    NAME = "gg"

    def __init__(self, down_after_ms: int = 500) -> None:
        self.binary = require("redis-sentinel", "GROUPGATE_REQUIRE_REDIS")
        # A replica's first sync starts at once, not after the default 5 s of waiting for
        # more replicas.
        self.primary = RedisProcess("--repl-diskless-sync-delay", "0")
        self.replica = RedisProcess("--repl-diskless-sync-delay", "0")
        self.replica.extra = ("--replicaof", LOCALHOST, str(self.primary.port))
        self.down_after_ms = down_after_ms
        self.folder = Path(tempfile.mkdtemp(prefix="gg-sentinel-"))
        self.ports = [free_port() for _ in range(3)]
        while len(set(self.ports)) < 3:
            self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"{LOCALHOST}:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{self.NAME}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the servers and the Sentinels; wait until the replica is in sync and every
        Sentinel knows the replica and the two other Sentinels."""
        self.primary.start()
        self.replica.start()
        for port in self.ports:
            conf = self.folder / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind {LOCALHOST}\ndir {self.folder}\n"
                f"logfile {self.folder / f'sentinel-{port}.log'}\n"
                f"sentinel monitor {self.NAME} {LOCALHOST} {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.NAME} 5000\n"
                f"sentinel parallel-syncs {self.NAME} 1\n"
            )
            process = subprocess.Popen(
                [self.binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.sentinels.append(process)
            wait_for_port(port, process)
        deadline = time.monotonic() + timeout
        primary = redis.Redis(host=LOCALHOST, port=self.primary.port, socket_timeout=5)
        try:
            acknowledging(primary, timeout)
        finally:
            primary.close()
        for port in self.ports:
            sentinel = redis.Redis(host=LOCALHOST, port=port, socket_timeout=2)
            try:
                while not (
                    sentinel.execute_command("SENTINEL", "REPLICAS", self.NAME)  # type: ignore[no-untyped-call]
                    and len(sentinel.execute_command("SENTINEL", "SENTINELS", self.NAME)) == 2  # type: ignore[no-untyped-call]
                ):
                    self._before(deadline, f"Sentinel {port} does not see the whole setup")
            finally:
                sentinel.close()

    def current_primary(self) -> int:
        """The port of the primary the Sentinels name now."""
        for port in self.ports:
            sentinel = redis.Redis(host=LOCALHOST, port=port, socket_timeout=2)
            try:
                found = sentinel.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.NAME
                )
                return int(found[1])
            except (redis.RedisError, OSError):
                continue
            finally:
                sentinel.close()
        raise RuntimeError("no Sentinel answers")

    def stop(self) -> None:
        """Stop the Sentinels and both servers, and remove their folders."""
        for process in self.sentinels:
            _stop(process)
        self.sentinels = []
        self.primary.cleanup()
        self.replica.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)

    cleanup = stop

    def _before(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            logs = "".join(_tail(path, 800) for path in self.folder.glob("*.log"))
            raise TimeoutError(f"{what}\n{logs}")
        time.sleep(0.05)


def acknowledging(primary: redis.Redis, timeout: float = 30.0) -> None:
    """Wait until the primary's replica is online and has acknowledged a write.

    A replica just synced may report "online" a while before it acknowledges anything (its
    first ACKs carry the offset of the sync): a write's `WAIT` could time out meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        primary.set("gg-test:acknowledged", "1")
        acked: int = primary.wait(1, 500)
        if acked >= 1:
            primary.delete("gg-test:acknowledged")
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no replica acknowledges writes: {primary.info('replication')}")


def _cluster_ok(client: redis.Redis) -> bool:
    """Whether the node reports `cluster_state:ok` (all slots served, nodes agree)."""
    info: object = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    # redis-py parses CLUSTER INFO into a dict; older versions return the raw text.
    if isinstance(info, dict):
        return info.get("cluster_state") in ("ok", b"ok")
    if isinstance(info, bytes):
        info = info.decode()
    return isinstance(info, str) and "cluster_state:ok" in info


class Nginx:
    """nginx in the foreground (`-g 'daemon off;'`) with its config in a private folder.

    `conf` holds the `http { ... }` block (and anything else at top level). The helper adds
    what nginx needs outside the config's concern: `user root;` when run as root (workers
    would switch to nobody), the pid file, the error log, `events`, and the temp paths, all
    inside the folder. The temp paths go where the config says `@PATHS@`, or else at the top
    of its first `http {` block.
    """

    def __init__(self, conf: str, port: int, *, timeout: float = 10.0) -> None:
        self.binary = require("nginx", "GROUPGATE_REQUIRE_NGINX")
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="gg-nginx-"))
        (self.folder / "logs").mkdir()
        temp = self.folder / "tmp"
        temp.mkdir()
        self.error_path = self.folder / "logs" / "error.log"
        head = "user root;\n" if os.geteuid() == 0 else ""
        head += f"worker_processes 1;\npid {self.folder}/nginx.pid;\n"
        head += f"error_log {self.error_path} warn;\nevents {{ worker_connections 256; }}\n"
        paths = (
            f"access_log off; client_body_temp_path {temp}/body; proxy_temp_path {temp}/proxy;"
            f" fastcgi_temp_path {temp}/fcgi; uwsgi_temp_path {temp}/uwsgi;"
            f" scgi_temp_path {temp}/scgi;\n"
        )
        if "@PATHS@" in conf:
            conf = conf.replace("@PATHS@", paths)
        else:
            conf = re.sub(r"\bhttp\s*\{", lambda m: m.group(0) + "\n" + paths, conf, count=1)
        self.conf_path = self.folder / "nginx.conf"
        self.conf_path.write_text(head + conf)
        # -e: nginx opens its compiled-in error log (/var/log/nginx) before reading the config.
        args = [self.binary, "-p", f"{self.folder}/", "-e", str(self.error_path)]
        self.process = subprocess.Popen(
            [*args, "-c", str(self.conf_path), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, self.process, timeout)
        except (RuntimeError, TimeoutError) as error:
            log = self.error_log()
            self.stop()
            raise RuntimeError(f"nginx did not start: {error}\n{log}") from None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def error_log(self) -> str:
        """The tail of nginx's error log (empty once stopped)."""
        return _tail(self.error_path)

    def stop(self) -> None:
        """Stop nginx (SIGTERM is its fast shutdown) and remove its folder."""
        _stop(self.process)
        shutil.rmtree(self.folder, ignore_errors=True)


class _Process:
    """A server process started in a private folder, its output in `folder/<name>.log`."""

    name = "server"

    def __init__(self, port: int) -> None:
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix=f"gg-{self.name}-"))
        self.log_path = self.folder / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self, args: list[str], env: Mapping[str, str] | None, timeout: float) -> None:
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                args,
                cwd=self.folder,
                env=None if env is None else dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_for_port(self.port, self.process, timeout)
        except (RuntimeError, TimeoutError) as error:
            log = self.log()
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {error}\n{log}") from None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def log(self) -> str:
        """The tail of the server's output (empty once stopped)."""
        return _tail(self.log_path)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its folder."""
        if self.process is not None:
            _stop(self.process)
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


class Caddy(_Process):
    """`caddy run` with a Caddyfile, HOME and the XDG folders inside a private folder.

    Caddy writes its autosaved config and its storage under those folders, never the user's.
    The Caddyfile must set its own admin address (`admin 127.0.0.1:<free port>` or `admin
    off`): Caddy 2.6 ignores CADDY_ADMIN, and its default (localhost:2019) is shared.
    """

    name = "caddy"

    def __init__(self, caddyfile: str, port: int, *, timeout: float = 15.0) -> None:
        binary = require("caddy", "GROUPGATE_REQUIRE_PROXIES")
        super().__init__(port)
        path = self.folder / "Caddyfile"
        path.write_text(caddyfile)
        home = str(self.folder)
        env = {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
        self._start([binary, "run", "--config", str(path), "--adapter", "caddyfile"], env, timeout)


class HAProxy(_Process):
    """haproxy in the foreground (`-db`), run in a private folder holding its config and `files`.

    Relative paths in the config (such as `lua-load groupgate.lua`) are read from that folder.
    """

    name = "haproxy"

    def __init__(
        self,
        config: str,
        port: int,
        files: Mapping[str, str] | None = None,
        *,
        timeout: float = 15.0,
    ) -> None:
        binary = require("haproxy", "GROUPGATE_REQUIRE_PROXIES")
        super().__init__(port)
        for name, text in (files or {}).items():
            (self.folder / name).write_text(text)
        path = self.folder / "haproxy.cfg"
        path.write_text(config)
        self._start([binary, "-f", str(path), "-db"], None, timeout)


def demo_check(port: int) -> Any:
    """The demo's first check (emp-de may update orders restricted to DE: allowed) asked of
    a `serve --demo` listening on `port`, over a connection of its own; its JSON answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/check",
        data=json.dumps(
            {
                "subject": {"id": "emp-de"},
                "action": "update",
                "resource": {"type": "orders", "restrictions": ["DE"]},
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - ours
        return json.loads(response.read())
