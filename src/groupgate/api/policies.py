"""Hot reload of the policy set (issue 14): SIGHUP, `POST /v1/admin/policies/reload`, and
(with `policy_watch`) a look at the policy files every few seconds.

A reload reads and validates the whole directory off the event loop; only a valid set is
applied, in one synchronous step on the loop (`PolicyReloader.apply`): the service's catalog,
compiler and writer, the route table and the valid actions are swapped and every compiled
profile is dropped, so a decision is made from one set or the other, never a mix (a profile
is compiled and used within one step of the loop). An invalid set leaves the last good one
in place and says why in the log (error), the metrics (`groupgate_policy_reloads_total
{result}`, `groupgate_policy_ok`) and `/readyz` (`policies.error`); the process stays ready.

Role templates are copied into a group when the group is written (SPEC section 4: a group's
matrix is filled from its role), so a reload changes the catalog, conditions, routes and the
templates of groups written afterwards, as a restart would.

With `--workers N`, a reload asked of one worker reaches the others through the supervisor:
the worker signals it (SIGHUP), and it forwards SIGHUP to every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from groupgate import log
from groupgate.api.app import STATE, State, valid_actions
from groupgate.api.headers import credentials
from groupgate.api.native import json_response
from groupgate.api.problems import guarded
from groupgate.config import SUPERVISOR_ENV
from groupgate.errors import Forbidden, PolicyError
from groupgate.model import Catalog
from groupgate.policy import load_policy
from groupgate.policy.routes import RouteTable


@dataclass(slots=True)
class ReloadStatus:
    """What the last reload did: whether the set in use is the newest on disk."""

    ok: bool = True
    #: Digest of the policy files in use (sha256 of names and contents).
    digest: str = ""
    loaded_at: float = 0.0
    #: Why the newest set on disk was refused (None: it is the one in use).
    error: str | None = None
    reloads: int = 0
    failures: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "digest": self.digest,
            "loaded_at": self.loaded_at,
            "error": self.error,
            "reloads": self.reloads,
            "failures": self.failures,
        }


def policy_files(directory: Path) -> list[Path]:
    """The files of a policy directory that make up the set (YAML, top level)."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in {".yaml", ".yml"})


def digest(directory: Path) -> str:
    """sha256 over the names and contents of the policy files."""
    h = hashlib.sha256()
    for path in policy_files(directory):
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times: what the watch compares between looks."""
    out = []
    for path in policy_files(directory):
        info = path.stat()
        out.append((path.name, info.st_size, info.st_mtime_ns))
    return tuple(out)


def _load(directory: Path) -> tuple[Catalog, str]:
    return load_policy(directory), digest(directory)


class PolicyReloader:
    """Loads the policy directory again and swaps it in; one reload at a time."""

    def __init__(self, state: State, directory: Path) -> None:
        self.state = state
        self.directory = directory
        self.status = ReloadStatus(loaded_at=time.time())
        self._lock = asyncio.Lock()
        with contextlib.suppress(OSError):
            self.status.digest = digest(directory)

    async def reload(self, reason: str) -> ReloadStatus:
        """Load, validate and apply the directory; keep the last good set when it is invalid."""
        async with self._lock:
            try:
                catalog, found = await asyncio.to_thread(_load, self.directory)
            except (PolicyError, OSError, ValueError) as exc:
                self.status.ok = False
                self.status.error = str(exc)
                self.status.failures += 1
                log.api.error(
                    "policy reload (%s) refused, keeping the last good set: %s", reason, exc
                )
                return self.status
            self.apply(catalog)
            self.status.ok = True
            self.status.error = None
            self.status.reloads += 1
            self.status.loaded_at = time.time()
            changed = found != self.status.digest
            self.status.digest = found
            log.api.info(
                "policies reloaded (%s)%s", reason, "" if changed else ": no file had changed"
            )
            return self.status

    def apply(self, catalog: Catalog) -> None:
        """Swap the policy set everywhere it is read, in one step of the event loop."""
        state = self.state
        state.service.use_catalog(catalog)
        state.catalog = catalog
        state.routes = RouteTable(catalog.routes)
        state.actions = valid_actions(catalog)

    async def watch(self, interval: float) -> None:
        """Reload when the policy files change (compared every `interval` seconds)."""
        last = await asyncio.to_thread(_stamp_or_none, self.directory)
        while True:
            await asyncio.sleep(interval)
            now = await asyncio.to_thread(_stamp_or_none, self.directory)
            if now != last:
                last = now
                await self.reload("the policy files changed")


def _stamp_or_none(directory: Path) -> tuple[tuple[str, int, int], ...] | None:
    try:
        return stamp(directory)
    except OSError:
        return None


RELOADER = web.AppKey("groupgate_policy_reloader", PolicyReloader)


class _Collector:
    """`groupgate_policy_reloads_total{result}` and `groupgate_policy_ok` at scrape time."""

    def __init__(self, status: ReloadStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Any]:
        reloads = CounterMetricFamily(
            "groupgate_policy_reloads", "policy reloads", labels=["result"]
        )
        reloads.add_metric(["applied"], self.status.reloads)
        reloads.add_metric(["refused"], self.status.failures)
        yield reloads
        ok = GaugeMetricFamily(
            "groupgate_policy_ok", "1 when the newest policy set on disk is the one in use"
        )
        ok.add_metric([], 1 if self.status.ok else 0)
        yield ok


def tell_siblings() -> None:
    """Pass a reload asked of this worker to the others (through the supervisor)."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and supervisor.isdigit():
        with contextlib.suppress(OSError):
            os.kill(int(supervisor), signal.SIGHUP)


async def reload_endpoint(request: web.Request) -> web.Response:
    """POST /v1/admin/policies/reload: reload now; 200 with the status either way (`ok`
    says whether the new set was applied), so a deploy script can read why."""
    state = request.app[STATE]
    caller = await state.auth.admin(*credentials(request.headers))
    if caller.tenant is not None:
        raise Forbidden(
            f"this credential is bound to tenant {caller.tenant!r}; policies serve every tenant"
        )
    status = await request.app[RELOADER].reload("admin request")
    tell_siblings()
    return json_response({"policies": status.as_json()})


def setup(app: web.Application) -> None:
    state = app[STATE]
    reloader = PolicyReloader(state, state.config.policies)
    app[RELOADER] = reloader
    state.extra["policies"] = reloader.status
    state.metrics.registry.register(_Collector(reloader.status))
    app.router.add_post(
        "/v1/admin/policies/reload", guarded(reload_endpoint), name="admin.reload_policies"
    )

    async def triggers(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[ReloadStatus]] = set()

        def on_sighup() -> None:
            task = loop.create_task(reloader.reload("SIGHUP"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        hooked = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
            hooked = True
        watcher = None
        if state.config.policy_watch > 0:
            watcher = loop.create_task(reloader.watch(state.config.policy_watch))
        yield
        if hooked:
            loop.remove_signal_handler(signal.SIGHUP)
        for task in [*tasks, *([watcher] if watcher else [])]:
            task.cancel()
        for task in [*tasks, *([watcher] if watcher else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(triggers)
