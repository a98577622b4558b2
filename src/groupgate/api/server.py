"""Run the application in this process: `web.run_app` on uvloop when available.

`groupgate serve --workers N` starts N processes that each call `run(config, reuse_port=True)`;
the kernel spreads connections across them (SO_REUSEPORT). aiohttp's own signal handling
turns SIGTERM and SIGINT into a graceful shutdown (in-flight requests finish, cleanup runs).

The garbage collector runs its youngest generation every 50,000 allocations instead of 700
(`GC_THRESHOLDS`). With the default, a collection happens in the middle of nearly every
request, promotes that request's live objects to the oldest generation, and every few
hundred requests those promotions trigger a full collection that walks the whole cache of
compiled profiles (100-300 ms with 10,000 subjects). Measured with `python -m benchmarks http`
(AuthZEN batches of 100, c=32): p99 236-274 ms with the default, 52 ms with these thresholds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
from collections.abc import Callable

from aiohttp import web

from groupgate import log
from groupgate.api.app import build_app
from groupgate.config import Config

GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Collect young objects less often (see the module docstring)."""
    gc.set_threshold(*GC_THRESHOLDS)


#: Descriptors kept for what is not a client connection (Redis pool, logs, listeners).
RESERVED_FILES = 64


def raise_file_limit(config: Config) -> None:
    """Raise the soft limit of open files to the hard one, and warn when even that cannot
    hold `http_max_connections` on every listener: past it, accepting fails for both ports
    instead of the over-cap connections getting their 503."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    listeners = 1 if config.decision_port is None else 2
    needed = config.http.max_connections * listeners + config.pool_size + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and needed > soft:
        log.api.warning(
            "the open-file limit (%d) is below what %d connections per listener need (%d): "
            "lower GROUPGATE_HTTP_MAX_CONNECTIONS or raise the limit (ulimit -n)",
            soft,
            config.http.max_connections,
            needed,
        )


def new_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop when uvloop is installed, else the default one."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    config: Config,
    *,
    reuse_port: bool = False,
    on_bound: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; `on_bound` runs once every listener is bound (aiohttp
    reports it through `run_app`'s `print`, called after its sites started), so a failed
    bind never runs it."""
    tune_gc()
    raise_file_limit(config)

    def bound(*_: object, **__: object) -> None:
        if on_bound is not None:
            on_bound()

    web.run_app(
        build_app(config),
        host=config.host,
        port=config.port,
        reuse_port=reuse_port or None,
        print=bound,
        access_log=None,
        shutdown_timeout=config.http.shutdown_grace,
        loop=new_loop(),
    )
