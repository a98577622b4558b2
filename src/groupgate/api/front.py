"""The main listener's HTTP front: aiohttp's server, held to the rules of `HttpLimits`.

aiohttp's `RequestHandler` (one per connection) does the HTTP; this module changes what it
does at the edges, so that the main port answers like the decision listener
(`groupgate.api.decisions`, on `groupgate.api.http11`) and no client can hurt the process:

- **Limits from configuration** (`Config.http`): request line, one header field, header
  count, pipelined requests, keep-alive; the header section's total size is checked before
  the handler runs (431).
- **Request timeout**: a client has `request_timeout` seconds from a request's first byte to
  send all of it. Past it, a request still in its head gets a 408 and the connection is
  closed; a handler still waiting for the body gets a 408 from the body read (its buffered
  part is freed). A handler that has the whole body is never interrupted: that is our work.
- **Connection cap**: past `max_connections` open connections (per process and listener),
  a new one is answered a 503 with `Retry-After` and closed (`http11.Busy`).
- **Memory after a burst**: once the open connections fall to a quarter of a peak of at
  least `memory_trim_peak`, the freed heap goes back to the system (`memory.Trimmer`).
- **Half-close**: a client that sends a request and then shuts down its sending side still
  gets its answer (aiohttp would close the connection unanswered); the connection closes
  after the answers to what was read.
- **Malformed HTTP** gets problem+json (aiohttp answers text/plain), the status the decision
  listener gives (414 for an over-long request line, 431 for a header field), and is logged
  at debug level: a scanner must not fill the log with tracebacks. An unexpected error still
  logs its traceback.

Everything here relies on aiohttp's `RequestHandler` internals of the 3.14 series (the
attributes named with one underscore below); `pyproject.toml` pins that series and
`tests/http` holds the behaviour to the decision listener's.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_log import AccessLogger
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from groupgate import log
from groupgate.api import http11, http_rules, memory
from groupgate.api.http11 import HALF_CLOSED, SWEEP_INTERVAL, TIMED_OUT
from groupgate.api.problems import PROBLEM, problem_json
from groupgate.config import HttpLimits

_Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class ReadTimedOut(HttpProcessingError):
    """Raised into a handler's body read when the request took too long to arrive."""

    code = 408

    def __init__(self) -> None:
        super().__init__(message=TIMED_OUT)


class BodyCut(HttpProcessingError):
    """Raised into a handler's body read when the client half-closed before the body ended."""

    code = 400

    def __init__(self) -> None:
        super().__init__(message=HALF_CLOSED)


def refusal_response(status: int, detail: str, slug: str) -> web.Response:
    """A problem+json answer that closes the connection (an HTTP-level refusal)."""
    title = http11.reason(status)
    body = problem_json(status, title, detail, slug)
    response = web.Response(status=status, body=body, content_type=PROBLEM)
    response.force_close()
    return response


def http_problem(status: int, detail: str, slug: str) -> http11.Response:
    """A problem as the HTTP front writes it (`http11.Response`)."""
    return http11.Response(
        status, PROBLEM, problem_json(status, http11.reason(status), detail, slug)
    )


def _refused(status: int, detail: str, slug: str) -> _Handler:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return refusal_response(status, detail, slug)

    return handler


class FrontHandler(RequestHandler):
    """aiohttp's connection handler with the rules of the module docstring."""

    front: FrontServer
    _reading_since: float | None
    _current_began: float
    _unanswered: int
    _eof: bool
    _last_payload: StreamReader | None

    def __init__(self, front: FrontServer, **kwargs: Any) -> None:
        super().__init__(front, **kwargs)
        self.front = front
        self._reading_since = None
        self._current_began = 0.0
        self._unanswered = 0  # requests read whose answer has not been written
        self._eof = False  # the client shut its sending side
        self._last_payload = None  # the body stream of the request read last
        self._max_msg_queue_size = front.limits.max_pipelined
        self._msg_queue_resume_size = max(1, front.limits.max_pipelined // 2)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        front = self.front
        front.open_connections += 1
        front.trimmer.opened(front.open_connections)
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        front = self.front
        front.open_connections -= 1
        super().connection_lost(exc)
        # Drop what would keep this handler in a reference cycle (body stream, keep-alive
        # timer): freed now by reference counting, not at the next full collection.
        self._last_payload = None
        self._keepalive_handle = None
        front.trimmer.closed(front.open_connections)

    def data_received(self, data: bytes) -> None:
        if self._reading_since is None and data:
            self._reading_since = self._loop.time()
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            self._unanswered += len(self._messages) - queued
            self._last_payload = self._messages[-1][1]

    def eof_received(self) -> bool | None:  # type: ignore[override]
        """Keep the sending side open while requests that were read await their answers;
        a request whose body was not complete gets a 400 (it never will be)."""
        if not self._unanswered:
            return None  # nothing to answer: asyncio closes the connection
        self._eof = True
        self._lingering_time = 0.0  # no more body can come
        payload = self._last_payload
        if payload is not None and not payload.is_eof():
            payload.set_exception(BodyCut())
        return True

    async def _handle_request(
        self,
        request: web.BaseRequest,
        start_time: float | None,
        request_handler: _Handler,
    ) -> tuple[web.StreamResponse, bool]:
        self._current_began = self._reading_since or self._loop.time()
        self._reading_since = None
        if request_handler is not self._request_handler:  # aiohttp's answer to a parse error
            return await self._answer(request, start_time, request_handler)
        target = request.raw_path.encode("utf-8", "surrogateescape")
        limits = self.front.limits
        problem = http_rules.head_problem(
            request.method.encode("latin-1"),
            target,
            (request.version.major, request.version.minor),
            [(name.lower(), value) for name, value in request.raw_headers],
            limits.max_url_bytes,
            limits.max_header_bytes,
        )
        if problem is None and (
            target == b"*"
            or (not target.startswith(b"/") and http_rules.origin_form(target) == b"/")
        ):
            problem = 404, "no such endpoint", "http-404"  # aiohttp's router would say text
        if problem is not None:
            request_handler = _refused(*problem)
        return await self._answer(request, start_time, request_handler)

    async def _answer(
        self,
        request: web.BaseRequest,
        start_time: float | None,
        request_handler: _Handler,
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            self._unanswered -= 1
            if self._eof and not self._unanswered:
                self._close = True  # the last answer to a half-closed client: then close

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Malformed HTTP as problem+json (logged at debug); anything else is a 500."""
        if isinstance(exc, HttpProcessingError):
            status, slug = _status_of(exc, self.front.limits)
            log.api.debug("malformed HTTP request from %s: %s", request.remote, exc.message)
            return refusal_response(status, _detail_of(exc, status), slug)
        if status >= 500:
            log.api.error("error handling a request from %s", request.remote, exc_info=exc)
            return refusal_response(500, "internal error; see the sidecar's log", "internal")
        return refusal_response(status, message or http11.reason(status), f"http-{status}")

    def expire(self, now: float, timeout: float) -> None:
        """Enforce the request timeout on this connection (called by the sweeper)."""
        request = self._current_request
        if request is not None:
            if now - self._current_began > timeout and not request.content.is_eof():
                self._close = True
                self._lingering_time = 0.0  # the rest of the body is not waited for
                request._cancel(ReadTimedOut())
            return
        since = self._reading_since
        if since is None or now - since <= timeout or self._messages:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            body = problem_json(408, http11.reason(408), TIMED_OUT, "timeout")
            transport.write(http11.closing_response(408, PROBLEM, body))
        self.force_close()


TOO_MANY_HEADERS = "Too many headers received"


def _status_of(exc: HttpProcessingError, limits: HttpLimits) -> tuple[int, str]:
    if isinstance(exc, LineTooLong):
        # aiohttp says which limit was passed only by number: the request line's is set to
        # the URL limit plus room for the method and version (see `handler_args`).
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == limits.max_url_bytes + REQUEST_LINE_ROOM:
            return 414, "uri-too-long"
        return 431, "headers-too-large"
    if exc.code == 408:
        return 408, "timeout"
    if exc.message == TOO_MANY_HEADERS:  # aiohttp's words for `max_headers` passed
        return 431, "headers-too-large"
    return 400, "invalid-http"


def _detail_of(exc: HttpProcessingError, status: int) -> str:
    if status == 414:
        return "request target too long"
    if status == 431:
        return "header section too large"
    if status == 408:
        return TIMED_OUT
    return f"malformed HTTP request: {exc.message}"


ExpectHandler = Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse | None]]


def expect_handler(limit: int) -> ExpectHandler:
    """A route's `Expect` handler under its body `limit`: the decision listener's rules.

    `100-continue` is honoured only in HTTP/1.1, and not for a body over the limit, which
    gets its 413 at once; an empty `Expect` is ignored; any other value was refused before
    routing (`http_rules.head_problem`).
    """

    async def expect(request: web.Request) -> web.StreamResponse | None:
        if request.version < HttpVersion11 or not request.headers.get("Expect", "").strip():
            return None
        length = request.content_length
        if length is not None and length > limit:
            if isinstance(request.protocol, FrontHandler):
                request.protocol._lingering_time = 0.0  # the client awaits a 100: no body
            return refusal_response(
                413, f"body of {length} bytes exceeds the limit of {limit}", "too-large"
            )
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    return expect


def use_expect_handler(app: web.Application, limits: Mapping[str, int], default: int) -> None:
    """Install `expect_handler` on every route of `app` (aiohttp takes it per route), under
    the body limit of the route's name in `limits`, else `default`."""
    for route in app.router.routes():
        route._expect_handler = expect_handler(limits.get(route.name or "", default))


def listener_limits(http: HttpLimits, max_body_bytes: int) -> http11.Limits:
    """A listener's limits: the shared `HttpLimits` and the body limit of its endpoints."""
    return http11.Limits(
        max_url_bytes=http.max_url_bytes,
        max_field_bytes=http.max_field_bytes,
        max_header_bytes=http.max_header_bytes,
        max_headers=http.max_headers,
        max_body_bytes=max_body_bytes,
        keepalive_timeout=http.keepalive_timeout,
        request_timeout=http.request_timeout,
        max_connections=http.max_connections,
        max_pipelined=http.max_pipelined,
        shutdown_grace=http.shutdown_grace,
    )


#: Bytes of the request line that are not the target: method, spaces, version, CRLF.
REQUEST_LINE_ROOM = 32


def handler_args(limits: HttpLimits) -> dict[str, Any]:
    """The `RequestHandler` keyword arguments that carry `limits`."""
    return {
        "max_line_size": limits.max_url_bytes + REQUEST_LINE_ROOM,
        "max_field_size": limits.max_field_bytes,
        "max_headers": limits.max_headers,
        "keepalive_timeout": limits.keepalive_timeout,
    }


class FrontServer(Server):
    """aiohttp's connection factory with the connection cap and the request-timeout sweeper."""

    def __init__(self, handler: Any, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.open_connections = 0
        self.trimmer = memory.Trimmer(
            limits.memory_trim_interval, limits.memory_trim_peak, self._loop.call_later
        )
        self.busy = http11.busy_answer(http_problem)
        self._sweeper = self._loop.create_task(self._sweep())

    def __call__(self) -> RequestHandler:
        # Counted as they open and close: aiohttp forgets a closed connection only once its
        # task has finished, which would refuse clients for connections already gone.
        if self.open_connections >= self.limits.max_connections:
            return cast(RequestHandler, http11.Busy(self.busy))  # asyncio needs a Protocol
        return FrontHandler(self, loop=self._loop, **self._kwargs)

    async def _sweep(self) -> None:
        timeout = self.limits.request_timeout
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = self._loop.time()
            for connection in list(self._connections):
                if isinstance(connection, FrontHandler):
                    connection.expire(now, timeout)

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._sweeper.cancel()
        await super().shutdown(timeout)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp discourages subclasses

    class FrontApplication(web.Application):
        """`web.Application` whose connections are served by `FrontServer`."""

        front_limits: HttpLimits = HttpLimits()

        def _make_handler(
            self,
            *,
            loop: asyncio.AbstractEventLoop | None = None,
            access_log_class: type[AbstractAccessLogger] = AccessLogger,
            **kwargs: Any,
        ) -> Server:
            self._set_loop(loop)
            self.freeze()
            kwargs["debug"] = self._debug
            kwargs["access_log_class"] = access_log_class
            kwargs.update(self._handler_args or {})
            kwargs.update(handler_args(self.front_limits))
            return FrontServer(
                self._handle,
                limits=self.front_limits,
                request_factory=self._make_request,
                loop=self._loop,
                **kwargs,
            )


def application(limits: HttpLimits, client_max_size: int) -> web.Application:
    """A new application served by the front under `limits`."""
    app = FrontApplication(client_max_size=client_max_size)
    app.front_limits = limits
    return app
