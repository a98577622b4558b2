"""groupgate's `/v1/check` on aiohttp's low-level `web.Server`: the A/B of the decision listener.

The decision listener (`groupgate.api.decisions`) answers `POST /v1/check` over a hand-written
HTTP/1.1 server (`groupgate.api.http11`, on httptools). The question this process answers is
whether aiohttp without its application layer would do as well: `web.Server` +
`web.ServerRunner` + `web.TCPSite`, one handler, no router, no middleware, no `Application`
per request, on uvloop with groupgate's collector thresholds (`tune_gc`).

The state is groupgate's own: the options are `groupgate serve`'s (`cli.parser`,
`cli.serve_config`), the application is `build_app(config)` started by an `AppRunner` that
listens nowhere (so its store, data and cleanup are exactly `groupgate serve`'s), and the
handler does what `native.check` does (a key caller, else a token caller; the body read;
`native.answer`; a `web.Response`), with errors rendered by `problems.to_problem`. `/readyz`
answers 200 once the store does (for the harness).

    python -m benchmarks.http.lowlevel --port 8198 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import cast

from aiohttp import web

from groupgate import cli, log
from groupgate.api import front, native, parsing, problems
from groupgate.api.app import STATE, State, build_app, require_c_parser
from groupgate.api.problems import TooLarge
from groupgate.api.server import new_loop, tune_gc
from groupgate.config import Config

CHECK = "/v1/check"
READY = "/readyz"
JSON = "application/json"
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def handler(state: State) -> Handler:
    """The one handler of the low-level server: `POST /v1/check` as `native.check` answers it."""
    auth = state.auth
    limit = state.config.limits.max_body_bytes

    async def check(request: web.Request) -> web.StreamResponse:
        started = perf_counter()
        headers = request.headers
        length = request.content_length
        if length is not None and length > limit:
            raise TooLarge(f"body of {length} bytes exceeds the limit of {limit}")
        authorization, key = headers.get(native.AUTHORIZATION), headers.get(native.KEY_HEADER)
        caller = auth.key_caller(authorization, key)
        if caller is None:
            caller = await auth.token_caller(authorization, key)
        body, value = await parsing.read_unchecked_json(request, limit)
        found = native.answer(state, caller, body, value, headers.get(native.MIN_REVISION), started)
        if not isinstance(found, bytes):
            found = await found
        return web.Response(body=found, content_type=JSON)

    async def handle(raw: web.BaseRequest) -> web.StreamResponse:
        # groupgate's helpers are typed for `web.Request` but read only what every
        # `BaseRequest` has (headers, content length, body, method, path).
        request = cast(web.Request, raw)
        try:
            if request.path == CHECK and request.method == "POST":
                return await check(request)
            if request.path == READY:
                return await ready(state)
            raise web.HTTPNotFound()
        except Exception as exc:  # rendered as the main listener's `guarded` renders it
            return problems.to_problem(request, exc)

    return handle


async def ready(state: State) -> web.Response:
    if not await state.decider.ready():
        return problems.problem(503, "Not ready", "the graph store does not answer", "not-ready")
    return web.Response(body=b'{"status":"ready"}', content_type=JSON)


async def start(state: State, host: str, port: int) -> web.ServerRunner:
    """Serve `state`'s `/v1/check` on `host:port`; the caller cleans the runner up."""
    server = web.Server(handler(state), access_log=None, **front.handler_args(state.config.http))
    runner = web.ServerRunner(server, shutdown_timeout=state.config.http.shutdown_grace)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(config: Config) -> None:
    """Build groupgate's app as `groupgate serve` does, then serve it until SIGTERM/SIGINT."""
    app_runner = web.AppRunner(await build_app(config))
    await app_runner.setup()  # the app's startup (store, JWKS client) without a listener
    try:
        runner = await start(app_runner.app[STATE], config.host, config.port)
        try:
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stopped.set)
            log.api.info("low-level web.Server on %s:%d", config.host, config.port)
            await stopped.wait()
        finally:
            await runner.cleanup()
    finally:
        await app_runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """`groupgate serve`'s options; one worker and no decision listener (this is the A/B)."""
    args = cli.parser().parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    config = cli.serve_config(args).config
    if config.workers != 1 or config.decision_port is not None:
        cli.fail("the low-level server runs one worker and no decision listener")
    log.configure(config.log_level, config.log_format, decision_log=config.decision_log)
    require_c_parser(config)
    tune_gc()
    loop = new_loop()
    try:
        loop.run_until_complete(serve(config))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
