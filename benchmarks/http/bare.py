"""The framework ceiling: aiohttp with one POST route that parses the body and answers a constant.

Same stack as `groupgate serve` (aiohttp's C parser, uvloop when installed, no access log,
orjson for the body) and the same request bytes as groupgate's `/v1/check` benchmark, but no
authentication, validation or decision. groupgate's requests/s divided by this one's is the
share of the framework's ceiling that groupgate keeps.

    python -m benchmarks.http.bare --port 8199
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import orjson
from aiohttp import web

ANSWER = orjson.dumps({"allow": True, "reason": "bare", "revision": 1})
PATH = "/v1/check"


async def handle(request: web.Request) -> web.Response:
    """Parse the JSON body (as groupgate does) and answer the same constant every time."""
    body = orjson.loads(await request.read())
    if type(body) is not dict:
        raise web.HTTPBadRequest()
    return web.Response(body=ANSWER, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ready"}', content_type="application/json")


def create_app() -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post(PATH, handle)
    app.router.add_get("/readyz", ready)
    return app


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed, as `groupgate.api.server.new_loop` does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a groupgate dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http.bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199)
    args = parser.parse_args(argv)
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=new_loop(),
    )


if __name__ == "__main__":
    main()
