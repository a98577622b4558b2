"""The decision listener: `POST /v1/check` on a port of its own (`decision_port`), off by default.

Why it exists: on the main listener a `/v1/check` spends more time in aiohttp's per-request
machinery (request and response objects, routing, header formatting, the write) than in
groupgate's own work, so it cannot keep 80% of a bare aiohttp handler's requests per second
(`python -m benchmarks http`: about 0.56x). This listener answers the one question a gateway
asks on every request with the same code as the main listener, over a plain asyncio protocol
and httptools (llhttp, the parser aiohttp's C parser and uvicorn are built on). The API
gateway points its checks here; everything else stays on the main listener.

What is the same as `POST /v1/check` on the main listener (`native.answer` does the work):
caller authentication, tenant rules, body limits and JSON safety, validation, answers,
problem+json errors (status, type, title, detail, and `WWW-Authenticate` on a 401), metrics
and the decision log.

What differs:
- it serves only `POST /v1/check`: any other method on that path is a 405 with `Allow: POST`,
  any other path a 404 (the path must match exactly; a query string is ignored);
- the body limit is enforced while the request is read, before authentication: an oversized
  body is a 413 even without a credential, and the listener never buffers more than
  `max_body_bytes` of one.

HTTP/1.1 as clients use it: keep-alive (HTTP/1.0 keeps the connection only when asked),
`Connection: close`, chunked bodies, `Expect: 100-continue`, and pipelining: answers go out in
request order; a request that must wait for the store (uncached subject, consistency token,
`explain`, a service JWT) holds the ones behind it; reading pauses while `MAX_QUEUED`
requests, or more than `max_body_bytes` of their bodies, wait, and while the client does not
read its answers. Malformed HTTP (llhttp refuses conflicting Content-Length and
Transfer-Encoding, bare LF line ends and the like), an over-long URL (414) or header section
(431), an oversized body (413) and protocol upgrades (400) get a problem+json answer and the
connection is closed.
A connection idle for `KEEPALIVE_TIMEOUT`, or taking longer than `REQUEST_TIMEOUT` to send
one request, is closed (the latter with a 408). On shutdown the listener stops accepting,
closes idle connections, lets requests in progress finish for up to the shutdown timeout, then
closes the rest.
"""

from __future__ import annotations

import asyncio
import http
import math
from collections import deque
from collections.abc import Awaitable
from email.utils import formatdate
from time import perf_counter
from typing import Any, cast

import httptools
from aiohttp import web

from groupgate import log
from groupgate.api import native, parsing
from groupgate.api.app import SHUTDOWN_TIMEOUT, STATE, State
from groupgate.api.problems import CHALLENGE, PROBLEM, TooLarge, problem_json, slug_of
from groupgate.errors import GroupgateError

PATH = b"/v1/check"
MAX_URL_BYTES = 16384
MAX_HEADER_BYTES = 65536
MAX_HEADERS = 128
MAX_QUEUED = 32
KEEPALIVE_TIMEOUT = 75.0
REQUEST_TIMEOUT = 60.0
SWEEP_INTERVAL = 1.0
NOT_HERE = "no such endpoint: the decision listener serves only POST /v1/check"
UPGRADE = "protocol upgrades (and CONNECT) are not supported"
DEFAULT_MEDIA = "application/octet-stream"  # what aiohttp reports for a missing Content-Type

#: The request headers the listener reads, by lower-cased name, to their slot in `Asked.headers`.
AUTHORIZATION, KEY, MIN_REVISION, CONTENT_TYPE, CONTENT_LENGTH, EXPECT = range(6)
WANTED = {
    b"authorization": AUTHORIZATION,
    b"x-groupgate-key": KEY,
    b"x-groupgate-min-revision": MIN_REVISION,
    b"content-type": CONTENT_TYPE,
    b"content-length": CONTENT_LENGTH,
    b"expect": EXPECT,
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Refusal(GroupgateError):
    """An HTTP-level refusal (the main listener gets these from aiohttp): status and slug
    per instance, the status's reason phrase as the title."""

    def __init__(self, status: int, detail: str, slug: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = http.HTTPStatus(status).phrase
        self.slug = slug


class Asked:
    """One request as read: method, path, the wanted headers (raw), body chunks."""

    __slots__ = ("chunks", "headers", "http10", "keep_alive", "method", "refusal", "size", "url")

    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.headers: list[bytes | None] = [None] * len(WANTED)
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = False
        self.http10 = False
        self.refusal: GroupgateError | None = None

    def header(self, slot: int) -> str | None:
        raw = self.headers[slot]
        # As aiohttp decodes header values, so that keys compare the same on both listeners.
        return None if raw is None else raw.decode("utf-8", "surrogateescape")


def setup(app: web.Application) -> None:
    """Run a decision listener with `app` when `decision_port` is set (else do nothing)."""
    state = app[STATE]
    config = state.config
    port = config.decision_port
    if port is None:
        return
    listener = DecisionListener(state)
    app[LISTENER] = listener

    async def start(app: web.Application) -> None:
        await listener.start(config.host, port, reuse_port=config.workers > 1)

    async def stop(app: web.Application) -> None:
        await listener.stop(SHUTDOWN_TIMEOUT)

    app.on_startup.append(start)
    app.on_shutdown.append(stop)


class DecisionListener:
    """The listening socket, its connections, the shared response head, the sweeper."""

    def __init__(
        self,
        state: State,
        *,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.state = state
        self.limit = state.config.limits.max_body_bytes
        self.keepalive_timeout = keepalive_timeout
        self.request_timeout = request_timeout
        self.connections: set[DecisionProtocol] = set()
        self.server: asyncio.AbstractServer | None = None
        self.sweeper: asyncio.Task[None] | None = None
        self.emptied = asyncio.Event()
        self.date = b""
        self.head_ok = b""
        self._refresh_date()

    def _refresh_date(self) -> None:
        self.date = formatdate(usegmt=True).encode()
        self.head_ok = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: %s\r\nContent-Length: "
            % self.date
        )

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: DecisionProtocol(self), host, port, reuse_port=reuse_port or None
        )
        self.sweeper = loop.create_task(self._sweep())
        log.api.info("decision listener on %s:%d (POST /v1/check)", host, port)

    async def _sweep(self) -> None:
        """Every second: a fresh Date, and close connections past their deadline."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self._refresh_date()
            now = loop.time()
            for connection in [c for c in self.connections if c.deadline < now]:
                connection.expire()

    async def stop(self, grace: float) -> None:
        """Stop accepting, close idle connections, give the others up to `grace` seconds."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.wind_down()
        if self.connections:
            self.emptied.clear()
            try:
                async with asyncio.timeout(grace):
                    await self.emptied.wait()
            except TimeoutError:
                for connection in list(self.connections):
                    connection.abort()
        if self.sweeper is not None:
            self.sweeper.cancel()
        if self.server is not None:
            await self.server.wait_closed()

    def forget(self, connection: DecisionProtocol) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self.emptied.set()


class DecisionProtocol(asyncio.Protocol):
    """One client connection (see the module docstring for the HTTP it speaks)."""

    def __init__(self, listener: DecisionListener) -> None:
        self.listener = listener
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: Asked | None = None
        self.queue: deque[Asked] = deque()
        self.queued_bytes = 0  # the body bytes held in `queue`
        self.busy = False  # an answer that awaits the store is in flight (`task`)
        self.task: asyncio.Task[None] | None = None
        self.closing = False  # answer what was read, then close
        self.stopped = False  # read nothing more (after a refused request)
        self.reading = True
        self.writable = True
        self.header_bytes = 0
        self.header_count = 0
        self.deadline = math.inf

    # ----------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.listener.connections.add(self)
        self.deadline = asyncio.get_running_loop().time() + self.listener.keepalive_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.forget(self)
        self.closing = True
        self.queue.clear()
        self.queued_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self.closing or self.stopped:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if not isinstance(refusal, GroupgateError):
                raise
            self._refuse(refusal)
        except httptools.HttpParserUpgrade:
            self._refuse(Refusal(400, UPGRADE, "invalid-http"))
        except httptools.HttpParserError as exc:
            self._refuse(Refusal(400, f"malformed HTTP request: {exc}", "invalid-http"))

    def pause_writing(self) -> None:
        self.writable = False
        self._pause()

    def resume_writing(self) -> None:
        self.writable = True
        self._resume()

    # ----------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self.current = Asked()
        self.header_bytes = 0
        self.header_count = 0
        self.deadline = asyncio.get_running_loop().time() + self.listener.request_timeout

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current.url += url
        if len(self.current.url) > MAX_URL_BYTES:
            raise Refusal(414, f"request target over {MAX_URL_BYTES} bytes", "uri-too-long")

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        self.header_bytes += len(name) + len(value)
        self.header_count += 1
        if self.header_bytes > MAX_HEADER_BYTES or self.header_count > MAX_HEADERS:
            raise Refusal(
                431,
                f"header section over {MAX_HEADER_BYTES} bytes or {MAX_HEADERS} fields",
                "headers-too-large",
            )
        slot = WANTED.get(name.lower())
        if slot is not None:
            headers = self.current.headers
            if headers[slot] is None:  # the first one counts, as on the main listener
                headers[slot] = value

    def on_headers_complete(self) -> None:
        asked = self.current
        assert asked is not None
        asked.method = self.parser.get_method()
        asked.http10 = self.parser.get_http_version() == "1.0"
        if self.parser.should_upgrade():
            raise Refusal(400, UPGRADE, "invalid-http")
        limit = self.listener.limit
        length = asked.headers[CONTENT_LENGTH]
        if length is not None and int(length) > limit:  # llhttp has checked it is a number
            raise TooLarge(f"body of {int(length)} bytes exceeds the limit of {limit}")
        expect = asked.headers[EXPECT]
        if expect is not None:
            if expect.lower() != b"100-continue":
                raise Refusal(417, "only Expect: 100-continue is supported", "expectation-failed")
            if self.transport is not None and not self.queue and not self.busy:
                self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        asked = self.current
        assert asked is not None
        asked.size += len(body)
        if asked.size > self.listener.limit:
            raise TooLarge(f"body exceeds the limit of {self.listener.limit} bytes")
        asked.chunks.append(body)

    def on_message_complete(self) -> None:
        asked = self.current
        assert asked is not None
        self.current = None
        if self.closing:  # pipelined after a `Connection: close`: not answered, not decided
            return
        asked.keep_alive = self.parser.should_keep_alive()
        if self.busy or self.queue:
            self.queue.append(asked)
            self.queued_bytes += asked.size
            if len(self.queue) >= MAX_QUEUED or self.queued_bytes > self.listener.limit:
                self._pause()
        else:
            self._serve(asked)

    # ----------------------------------------------------------------- answering

    def _serve(self, asked: Asked) -> None:
        """Answer `asked` now, or start the task that answers it (`busy` until it has)."""
        started = perf_counter()
        try:
            found = self._answer(asked, started)
        except Exception as exc:
            self._write_problem(asked, exc)
            return
        if isinstance(found, bytes):
            self._write_ok(asked, found)
        else:
            self.busy = True
            self.deadline = math.inf
            self.task = asyncio.get_running_loop().create_task(self._answer_later(asked, found))

    def _answer(self, asked: Asked, started: float) -> bytes | Awaitable[bytes]:
        if asked.refusal is not None:
            raise asked.refusal
        path = asked.url.split(b"?", 1)[0]
        if path != PATH:
            raise Refusal(404, NOT_HERE, "http-404")
        if asked.method != b"POST":
            raise Refusal(405, "method not allowed on this endpoint", "http-405")
        state = self.listener.state
        authorization, key = asked.header(AUTHORIZATION), asked.header(KEY)
        caller = state.auth.key_caller(authorization, key)
        if caller is None:
            return self._as_token_caller(asked, authorization, key, started)
        body, value = self._read(asked)
        return native.answer(state, caller, body, value, asked.header(MIN_REVISION), started)

    async def _as_token_caller(
        self, asked: Asked, authorization: str | None, key: str | None, started: float
    ) -> bytes:
        state = self.listener.state
        caller = await state.auth.token_caller(authorization, key)
        body, value = self._read(asked)
        found = native.answer(state, caller, body, value, asked.header(MIN_REVISION), started)
        return found if isinstance(found, bytes) else await found

    def _read(self, asked: Asked) -> tuple[bytes, Any]:
        """The body and its JSON value, after the media type check (`read_unchecked_json`)."""
        raw = asked.headers[CONTENT_TYPE]
        media = (
            DEFAULT_MEDIA
            if raw is None
            else raw.split(b";", 1)[0].strip().lower().decode("latin-1")
        )
        parsing.check_media_type(media)
        chunks = asked.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return body, parsing.decode(body)

    async def _answer_later(self, asked: Asked, pending: Awaitable[bytes]) -> None:
        try:
            found = await pending
        except Exception as exc:
            self._write_problem(asked, exc)
        else:
            self._write_ok(asked, found)
        self.busy = False
        self.task = None
        self._drain()

    def _drain(self) -> None:
        """Answer the queued requests in order, until one must await or the queue is empty."""
        while self.queue and not self.busy:
            asked = self.queue.popleft()
            self.queued_bytes -= asked.size
            self._serve(asked)
        if not self.busy:
            self._resume()
            self._idle()

    # ----------------------------------------------------------------- writing

    def _write_ok(self, asked: Asked, body: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if asked.keep_alive and not self.closing and not asked.http10:
            transport.write(b"%s%d\r\n\r\n%s" % (self.listener.head_ok, len(body), body))
            self._idle()
            return
        self._write(asked, 200, "application/json", body, ())

    def _write_problem(self, asked: Asked, exc: Exception) -> None:
        extra: tuple[bytes, ...] = ()
        if isinstance(exc, GroupgateError):
            status, title, detail = exc.status, exc.title, exc.detail
            slug = exc.slug if isinstance(exc, Refusal) else slug_of(exc)
            if status == 405:
                extra = (b"Allow: POST",)
            if status >= 500:
                log.api.warning("POST /v1/check (decision listener): %s", exc.detail)
        else:
            log.api.exception("unhandled error on POST /v1/check (decision listener)")
            status, title = 500, "Internal error"
            detail, slug = "internal error; see the sidecar's log", "internal"
        if status == 401:
            extra = (b"WWW-Authenticate: " + CHALLENGE.encode(),)
        self._write(asked, status, PROBLEM, problem_json(status, title, detail, slug), extra)

    def _write(
        self,
        asked: Asked,
        status: int,
        media: str,
        body: bytes,
        extra: tuple[bytes, ...],
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep = asked.keep_alive and not self.closing
        lines = [
            b"HTTP/1.1 %d %s" % (status, http.HTTPStatus(status).phrase.encode()),
            b"Content-Type: " + media.encode(),
            b"Date: " + self.listener.date,
            b"Content-Length: %d" % len(body),
            *extra,
        ]
        if not keep:
            lines.append(b"Connection: close")
        elif asked.http10:
            lines.append(b"Connection: keep-alive")
        if asked.method == b"HEAD":  # the head a GET would get (a 405 here), no body
            body = b""
        transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        if keep:
            self._idle()
        else:
            self.closing = True
            self.queue.clear()
            self.queued_bytes = 0
            transport.close()

    # ----------------------------------------------------------------- flow and lifetime

    def _refuse(self, refusal: GroupgateError) -> None:
        """Answer a request the parser gave up on, after those before it, then close: the
        rest of the stream can't be framed (or read within the limits)."""
        asked = self.current or Asked()
        self.current = None
        asked.refusal = refusal
        asked.keep_alive = False
        self.stopped = True
        self._pause()
        if self.busy or self.queue:
            self.queue.append(asked)
        else:
            self._serve(asked)

    def _idle(self) -> None:
        if not self.busy and not self.queue and self.current is None:
            if self.closing and self.transport is not None:
                self.transport.close()
                return
            self.deadline = asyncio.get_running_loop().time() + self.listener.keepalive_timeout

    def _pause(self) -> None:
        if self.reading and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self.reading = False

    def _resume(self) -> None:
        if (
            not self.reading
            and self.writable
            and len(self.queue) < MAX_QUEUED
            and self.queued_bytes <= self.listener.limit
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.transport.resume_reading()
            self.reading = True

    def expire(self) -> None:
        """Past the deadline: an idle connection is closed, a half-sent request gets a 408."""
        if self.busy or self.queue:
            return
        asked = self.current
        if asked is None:
            self.abort()
            return
        self.current = None
        asked.refusal = Refusal(408, "the request was not completed in time", "timeout")
        asked.keep_alive = False
        self.closing = True
        self._serve(asked)

    def wind_down(self) -> None:
        """Shutdown: close now unless an answer is in progress (then after it; a request
        not yet read in full is dropped, and its client may retry it elsewhere)."""
        self.closing = True
        if not self.busy and not self.queue:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()


LISTENER = web.AppKey("decision_listener", DecisionListener)
