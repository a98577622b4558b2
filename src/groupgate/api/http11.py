"""A small HTTP/1.1 server on httptools (llhttp); of groupgate it imports only `http_rules`.

`Listener` accepts connections and runs a `Connection` (an `asyncio.Protocol`) per client; an
`App` answers each complete `Request` with a `Response`, at once or through an awaitable.
What it does for the app:

- HTTP/1.1 as clients use it: keep-alive (HTTP/1.0 keeps the connection only when asked),
  `Connection: close`, chunked bodies, `Expect: 100-continue`, pipelining (answers go out in
  request order; an answer that must await holds the ones behind it), half-close (a request
  followed by a shutdown of the client's sending side is answered, then the connection
  closes);
- limits (`Limits`): request target (414), one header field and the header section (431),
  header count (431), body (413, checked against `Content-Length` before the body is read and
  while it is read, so no more than the limit is ever buffered), pipelined requests (reading
  pauses, as it does while the client does not read its answers), a request timeout from the
  request's first byte to its last (408), keep-alive idle timeout, open connections (503
  with `Retry-After`: `Busy`), shutdown grace;
- malformed HTTP (llhttp refuses conflicting Content-Length and Transfer-Encoding, bare LF
  line ends and the like), protocol upgrades and CONNECT (400), and `Expect` other than
  100-continue (417) are answered through `App.refuse` and the connection is closed;
- on shutdown it stops accepting, closes idle connections, lets answers in progress finish
  for up to the grace period, then cancels their tasks and closes the rest. A closed
  connection drops its parser and queued requests at once.

The app decides everything else (routes, methods, media types, the problem format).
"""

from __future__ import annotations

import asyncio
import http
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate
from typing import NamedTuple, Protocol, cast

import httptools

from groupgate.api import http_rules

SWEEP_INTERVAL = 1.0
TIMED_OUT = "the request was not completed in time"
HALF_CLOSED = "the client closed its side before the request body was complete"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
WHITESPACE = frozenset(b" \t")
RETRY_AFTER = 1
#: Heads of keep-alive answers kept per second (`Listener.heads`): an app answers the same
#: status and headers again and again (a gateway's 403, a subject's 200).
HEADS_KEPT = 1024


#: Each status code's status line (with its reason phrase), formatted once.
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s" % (s.value, s.phrase.encode()) for s in http.HTTPStatus}


def reason(status: int) -> str:
    """The reason phrase of `status` ("Unknown" for a code HTTP does not name)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <reason>`."""
    line = STATUS_LINES.get(status)
    return b"HTTP/1.1 %d %s" % (status, reason(status).encode()) if line is None else line


def closing_response(
    status: int, media: str, body: bytes, extra: Sequence[bytes] = (), date: bytes = b""
) -> bytes:
    """A whole response that ends the connection (`Connection: close`)."""
    lines = [
        status_line(status),
        *((b"Content-Type: " + media.encode(),) if media else ()),
        b"Date: " + (date or formatdate(usegmt=True).encode()),
        b"Content-Length: %d" % len(body),
        *extra,
        b"Connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Limits(NamedTuple):
    """What one listener allows (`groupgate.config.HttpLimits` plus the body limit)."""

    max_url_bytes: int
    max_field_bytes: int
    max_header_bytes: int
    max_headers: int
    max_body_bytes: int
    keepalive_timeout: float
    request_timeout: float
    max_connections: int
    max_pipelined: int
    shutdown_grace: float


class Request:
    """One request as read: method, target, headers (lower-cased names), body."""

    __slots__ = (
        "chunks",
        "fields",
        "headers",
        "http10",
        "keep_alive",
        "method",
        "refusal",
        "repeated",
        "size",
        "url",
    )

    def __init__(self, slots: int = 2) -> None:
        self.method = b""
        #: The first value of each field the listener picks out (`Listener.slots`): the
        #: listener's own (Content-Length, Expect), then the app's (`App.fields`).
        self.fields: list[bytes | None] = [None] * slots
        #: The name of the first picked-out field that came more than once, if any.
        self.repeated: bytes | None = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = False
        self.http10 = False
        self.refusal: Refusal | None = None

    @property
    def body(self) -> bytes:
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def length(self) -> int:
        """The Content-Length (llhttp has checked it is one number), -1 without one."""
        raw = self.fields[CONTENT_LENGTH]
        return -1 if raw is None else int(raw)

    def values(self, name: bytes) -> list[bytes]:
        """Every value of the header `name` (lower-case), in order."""
        return [value for key, value in self.headers if key == name]

    def path(self) -> bytes:
        """The path the target routes to (`http_rules.route_path`)."""
        return http_rules.route_path(self.url)


class Response(NamedTuple):
    """An answer: status, media type (empty: no Content-Type), body, extra header lines
    (`b"Name: value"`)."""

    status: int
    media: str
    body: bytes
    headers: tuple[bytes, ...] = ()


class Refusal(Exception):
    """An HTTP-level refusal: the app renders it (`App.refuse`) and the connection closes."""

    def __init__(self, status: int, detail: str, slug: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug


#: The slots of the fields the listener reads itself (`Request.fields`).
CONTENT_LENGTH, EXPECT = 0, 1


class App(Protocol):
    """What a listener serves."""

    @property
    def fields(self) -> Sequence[bytes]:
        """Lower-case names of the fields the app reads often: their first values land in
        `Request.fields` from slot 2 on, in this order, as the head is parsed (a repeat is
        noted in `Request.repeated`), so that the app needs no pass over the headers."""

    def respond(self, request: Request) -> bytes | Response | Awaitable[bytes | Response]:
        """The answer to a complete request, bytes meaning a 200 `application/json` body
        (raise nothing: errors are answers too)."""

    def refuse(self, status: int, detail: str, slug: str) -> Response:
        """The answer to a request refused at the HTTP level."""


class Busy(asyncio.Protocol):
    """A connection past the cap: a 503 with `Retry-After`, then close.

    The answer goes out at once; the sending side is then shut and what the client sends is
    read and dropped until it closes (or a second passes), so the client reads the answer
    instead of a reset.
    """

    DETAIL = "too many open connections; retry shortly"
    SLUG = "overloaded"

    def __init__(self, answer: Response) -> None:
        self.answer = answer  # the app's 503 (`busy_answer`)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        answer = self.answer
        self.transport.write(
            closing_response(answer.status, answer.media, answer.body, answer.headers)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(1.0, self.transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        if self.transport is not None:
            self.transport.close()
        return None


def busy_answer(refuse: Callable[[int, str, str], Response]) -> Response:
    """The 503 a connection past the cap gets, rendered by the app (`App.refuse`)."""
    answer = refuse(503, Busy.DETAIL, Busy.SLUG)
    return answer._replace(headers=(*answer.headers, b"Retry-After: %d" % RETRY_AFTER))


class Listener:
    """The listening socket, its connections, the shared response head, the sweeper."""

    def __init__(self, app: App, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        self.busy = busy_answer(app.refuse)
        self.slots = {b"content-length": CONTENT_LENGTH, b"expect": EXPECT}
        for name in app.fields:
            self.slots[name] = len(self.slots)
        self.connections: set[Connection] = set()
        self.server: asyncio.AbstractServer | None = None
        self.sweeper: asyncio.Task[None] | None = None
        self.emptied = asyncio.Event()
        self.date = b""
        self.head_ok = b""
        #: (status, media type, body length, header lines) -> the keep-alive head of such an
        #: answer (`Connection._keep_alive_head`), for this `date`.
        self.heads: dict[tuple[int, str, int, tuple[bytes, ...]], bytes] = {}
        self._refresh_date()

    def _refresh_date(self) -> None:
        self.date = formatdate(usegmt=True).encode()
        self.heads.clear()
        self.head_ok = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: %s\r\nContent-Length: "
            % self.date
        )

    def _connection(self) -> asyncio.Protocol:
        if len(self.connections) >= self.limits.max_connections:
            return Busy(self.busy)
        return Connection(self)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._connection, host, port, reuse_port=reuse_port or None
        )
        self.sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Every second: a fresh Date, and close connections past their deadline."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self._refresh_date()
            now = loop.time()
            for connection in [c for c in self.connections if c.deadline < now]:
                connection.expire()

    async def stop(self) -> None:
        """Stop accepting, close idle connections, give the others the shutdown grace."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.wind_down()
        if self.connections:
            self.emptied.clear()
            try:
                async with asyncio.timeout(self.limits.shutdown_grace):
                    await self.emptied.wait()
            except TimeoutError:
                for connection in list(self.connections):
                    connection.abort()
        if self.sweeper is not None:
            self.sweeper.cancel()
        if self.server is not None:
            await self.server.wait_closed()

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self.emptied.set()


class Connection(asyncio.Protocol):
    """One client connection (see the module docstring for the HTTP it speaks)."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.limits = listener.limits
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current: Request | None = None
        self.queue: deque[Request] = deque()
        self.queued_bytes = 0  # the body bytes held in `queue`
        self.busy = False  # an answer that awaits is in flight (`task`)
        self.task: asyncio.Task[None] | None = None
        self.closing = False  # answer what was read, then close
        self.stopped = False  # read nothing more (after a refused request, or EOF)
        self.reading = True
        self.writable = True
        self.header_bytes = 0
        self.slots = listener.slots
        self.max_field_bytes = listener.limits.max_field_bytes
        self.max_headers = listener.limits.max_headers
        self.max_header_bytes = listener.limits.max_header_bytes
        self.deadline = math.inf
        self.upgrade_left = 0  # body bytes still due of a request that asked to upgrade
        self.loop = asyncio.get_running_loop()

    # ----------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.listener.connections.add(self)
        self.deadline = self.loop.time() + self.limits.keepalive_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.forget(self)
        self.closing = True
        self.parser = None
        self.current = None
        self.queue.clear()
        self.queued_bytes = 0
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if self.closing or self.stopped or parser is None:
            return
        if self.upgrade_left:
            self._upgrade_body(data)
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if not isinstance(refusal, Refusal):
                raise
            self._refuse(refusal)
        except httptools.HttpParserUpgrade as exc:
            # An `Upgrade` (h2c, websocket) is ignored: the request is answered as HTTP/1.1
            # (its body, which llhttp leaves unread, is read here), and as the parser reads
            # nothing after it, the connection closes after the answer.
            if self.upgrading():  # set by `on_message_complete` during `feed_data`
                self._upgrade_body(data[int(exc.args[0]) :])
            else:
                self._stop_after_answers()
        except httptools.HttpParserError as exc:
            self._refuse(Refusal(400, f"malformed HTTP request: {exc}", "invalid-http"))

    def eof_received(self) -> bool | None:
        """The client will send nothing more: answer what was read, then close. A request
        whose head was read but not its body gets a 400 (it can never be completed)."""
        self.stopped = True
        current = self.current
        self.current = None
        if current is not None and current.method:
            current.refusal = Refusal(400, HALF_CLOSED, "invalid-http")
            current.keep_alive = False
            if self.busy or self.queue:
                self.queue.append(current)
            else:
                self._serve(current)
        if self.busy or self.queue:
            return True
        return None

    def pause_writing(self) -> None:
        self.writable = False
        self._pause()

    def resume_writing(self) -> None:
        self.writable = True
        self._resume()

    # ----------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        self.current = Request(len(self.slots))
        self.header_bytes = 0
        self.deadline = self.loop.time() + self.limits.request_timeout

    def on_url(self, url: bytes) -> None:
        current = self.current
        assert current is not None
        current.url += url
        if len(current.url) > self.limits.max_url_bytes:
            raise Refusal(414, "request target too long", "uri-too-long")

    def on_header(self, name: bytes, value: bytes) -> None:
        current: Request = self.current  # type: ignore[assignment]  # set by on_message_begin
        size = len(name) + len(value)
        total = self.header_bytes = self.header_bytes + size
        headers = current.headers
        if (
            size > self.max_field_bytes
            or len(headers) >= self.max_headers
            or total > self.max_header_bytes
        ):
            raise Refusal(431, "header section too large", "headers-too-large")
        if value and value[-1] in WHITESPACE:  # llhttp drops leading whitespace only
            value = value.rstrip(b" \t")
        name = name.lower()
        headers.append((name, value))
        slot = self.slots.get(name)
        if slot is not None:
            fields = current.fields
            if fields[slot] is None:
                fields[slot] = value
            elif current.repeated is None:
                current.repeated = name

    def on_headers_complete(self) -> None:
        current = self.current
        parser = self.parser
        assert current is not None and parser is not None
        current.method = parser.get_method()
        version = parser.get_http_version()
        current.http10 = version == "1.0"
        problem = http_rules.head_problem(
            current.method,
            current.url,
            (1, 1) if version == "1.1" else (int(version[0]), int(version[2:] or 0)),
            current.headers,
            self.limits.max_url_bytes,
            self.limits.max_header_bytes,
        )
        if problem is not None:
            raise Refusal(*problem)
        limit = self.limits.max_body_bytes
        length = current.length()
        if length > limit:
            raise Refusal(413, f"body of {length} bytes exceeds the limit of {limit}", "too-large")
        if current.fields[EXPECT] and not current.http10:  # checked: 100-continue (any case)
            if self.transport is not None and not self.queue and not self.busy:
                self.transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        current = self.current
        assert current is not None
        current.size += len(body)
        limit = self.limits.max_body_bytes
        if current.size > limit:
            raise Refusal(413, f"body exceeds the limit of {limit} bytes", "too-large")
        current.chunks.append(body)

    def on_message_complete(self) -> None:
        current = self.current
        parser = self.parser
        assert current is not None and parser is not None
        if parser.should_upgrade() and current.method != b"CONNECT":
            if current.values(b"transfer-encoding"):
                raise Refusal(400, "an upgrade request with a chunked body", "invalid-http")
            if current.length() > 0:
                self.upgrade_left = current.length()  # llhttp skips it: `_upgrade_body`
                return
        self.current = None
        if self.closing:  # pipelined after a `Connection: close`: not answered
            return
        current.keep_alive = parser.should_keep_alive()
        if self.busy or self.queue:
            self.queue.append(current)
            self.queued_bytes += current.size
            if (
                len(self.queue) >= self.limits.max_pipelined
                or self.queued_bytes > self.limits.max_body_bytes
            ):
                self._pause()
        else:
            self._serve(current)

    def upgrading(self) -> bool:
        return self.upgrade_left > 0

    def _upgrade_body(self, data: bytes) -> None:
        """Read the body of a request that asked to upgrade (see `data_received`)."""
        current = self.current
        assert current is not None
        taken = data[: self.upgrade_left]
        if taken:
            current.chunks.append(taken)
            current.size += len(taken)
            self.upgrade_left -= len(taken)
        if self.upgrade_left:
            return
        self.current = None
        current.keep_alive = False  # the parser reads nothing after an upgrade request
        self.stopped = True
        self._pause()
        if self.busy or self.queue:
            self.queue.append(current)
        else:
            self._serve(current)

    def _stop_after_answers(self) -> None:
        """Read nothing more; close once every request read has its answer."""
        self.stopped = True
        self._pause()
        if not self.busy and not self.queue and self.current is None:
            self._idle()

    # ----------------------------------------------------------------- answering

    def _serve(self, request: Request) -> None:
        """Answer `request` now, or start the task that answers it (`busy` until it has)."""
        refusal = request.refusal
        found = (
            self.listener.app.refuse(refusal.status, refusal.detail, refusal.slug)
            if refusal is not None
            else self.listener.app.respond(request)
        )
        if isinstance(found, bytes):
            self._write_json(request, found)
            return
        if isinstance(found, Response):
            self._write(request, found)
            return
        self.busy = True
        self.deadline = math.inf
        self.task = self.loop.create_task(self._answer_later(request, found))

    async def _answer_later(self, request: Request, pending: Awaitable[bytes | Response]) -> None:
        found = await pending
        self.busy = False
        self.task = None
        if isinstance(found, bytes):
            self._write_json(request, found)
        else:
            self._write(request, found)
        self._drain()

    def _drain(self) -> None:
        """Answer the queued requests in order, until one must await or the queue is empty."""
        while self.queue and not self.busy:
            request = self.queue.popleft()
            self.queued_bytes -= request.size
            self._serve(request)
        if not self.busy:
            self._resume()
            self._idle()

    # ----------------------------------------------------------------- writing

    def _write_json(self, request: Request, body: bytes) -> None:
        """A 200 `application/json` answer: one prepared head on a kept connection."""
        transport = self.transport
        if request.keep_alive and not self.closing and not request.http10 and transport:
            if not transport.is_closing():
                transport.write(b"%s%d\r\n\r\n%s" % (self.listener.head_ok, len(body), body))
                self._idle()
            return
        self._write(request, Response(200, "application/json", body))

    def _write(self, request: Request, response: Response) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep = request.keep_alive and not self.closing
        if (
            keep
            and response.status == 200
            and not request.http10
            and not response.headers
            and response.media == "application/json"
        ):
            transport.write(
                b"%s%d\r\n\r\n%s" % (self.listener.head_ok, len(response.body), response.body)
            )
            self._idle()
            return
        body = b"" if request.method == b"HEAD" else response.body
        if not keep:
            transport.write(
                closing_response(
                    response.status, response.media, body, response.headers, self.listener.date
                )
                if request.method != b"HEAD"
                else self._head(response, b"Connection: close")
            )
            self.closing = True
            self.queue.clear()
            self.queued_bytes = 0
            transport.close()
            return
        if request.http10:
            transport.write(self._head(response, b"Connection: keep-alive") + body)
        else:
            transport.write(self._keep_alive_head(response) + body)
        self._idle()

    def _keep_alive_head(self, response: Response) -> bytes:
        """`_head(response)`, formatted once per second per kind of answer (`Listener.heads`:
        the head depends on the body's length, not on the body)."""
        heads = self.listener.heads
        kind = (response.status, response.media, len(response.body), response.headers)
        head = heads.get(kind)
        if head is None:
            head = self._head(response)
            if len(heads) < HEADS_KEPT:
                heads[kind] = head
        return head

    def _head(self, response: Response, *extra: bytes) -> bytes:
        head = b"%s\r\n%sDate: %s\r\nContent-Length: %d\r\n" % (
            status_line(response.status),
            b"Content-Type: %s\r\n" % response.media.encode() if response.media else b"",
            self.listener.date,
            len(response.body),
        )
        if response.headers or extra:
            head += b"\r\n".join((*response.headers, *extra)) + b"\r\n"
        return head + b"\r\n"

    # ----------------------------------------------------------------- flow and lifetime

    def _refuse(self, refusal: Refusal) -> None:
        """Answer a request the parser gave up on, after those before it, then close: the
        rest of the stream can't be framed (or read within the limits)."""
        request = self.current or Request()
        self.current = None
        request.refusal = refusal
        request.keep_alive = False
        self.stopped = True
        self._pause()
        if self.busy or self.queue:
            self.queue.append(request)
        else:
            self._serve(request)

    def _idle(self) -> None:
        if not self.busy and not self.queue and self.current is None:
            if (self.closing or self.stopped) and self.transport is not None:
                self.transport.close()
                return
            self.deadline = self.loop.time() + self.limits.keepalive_timeout

    def _pause(self) -> None:
        if self.reading and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            self.reading = False

    def _resume(self) -> None:
        if (
            not self.reading
            and not self.stopped
            and self.writable
            and len(self.queue) < self.limits.max_pipelined
            and self.queued_bytes <= self.limits.max_body_bytes
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.transport.resume_reading()
            self.reading = True

    def expire(self) -> None:
        """Past the deadline: an idle connection is closed, a half-sent request gets a 408."""
        if self.busy or self.queue:
            return
        request = self.current
        if request is None:
            self.abort()
            return
        self.current = None
        request.refusal = Refusal(408, TIMED_OUT, "timeout")
        request.keep_alive = False
        self.closing = True
        self._serve(request)

    def wind_down(self) -> None:
        """Shutdown: close now unless an answer is in progress (then after it; a request
        not yet read in full is dropped, and its client may retry it elsewhere)."""
        self.closing = True
        if not self.busy and not self.queue:
            self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()
