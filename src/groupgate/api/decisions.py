"""The decision listener: the per-request endpoints of a gateway on a port of their own.

Why it exists: on the main listener a `/v1/check` spends more time in aiohttp's per-request
machinery (request and response objects, routing, header formatting, the write) than in
groupgate's own work (`python -m benchmarks http`: about 0.56x a bare aiohttp handler). This
listener serves what a gateway asks on every request over `groupgate.api.http11` (a small
HTTP/1.1 server on httptools, the llhttp parser aiohttp and uvicorn are built on), with the
same use cases as the main listener:

| endpoint | use case |
|---|---|
| `POST /v1/check` | `native.answer` |
| `POST /access/v1/evaluation` | `authzen.evaluation_answer` |
| forward-auth, any method: `/v1/gateway/auth`, `/auth`, `/v1/gateway/envoy/...` | `forward_auth` |

Each use case answers at once when what it needs is cached, else returns an awaitable: only
then does the listener start a task for the answer.

Why a hand-written HTTP server rather than aiohttp's low-level `web.Server` (which skips
routing and middleware but keeps aiohttp's request and response objects): answering the same
`/v1/check` with the same `native.answer`, one core, wrk at 32 connections, five interleaved
rounds on 2026-11-30, the medians were 19,500 req/s here against 12,933 for `web.Server`
(1.5x) and 10,446 for the main listener; `python -m benchmarks http` times the low-level
server beside the others in every run (1.87x and 1.69x in the two full runs of that day;
benchmarks/README.md, "Why the decision listener is hand-written").

Everything else stays on the main listener: any other path is a 404, another method on a
served path a 405 with `Allow`. Authentication, tenant rules, body limits and JSON safety,
validation, answers, problem+json errors (status, type, title, detail, `WWW-Authenticate` on
a 401), metrics and the decision log are the main listener's, and the HTTP limits are the
same `HttpLimits` (`tests/http` holds both listeners to the same answers).

The body limit is enforced while the request is read, before authentication: an oversized
body is a 413 even without a credential, and the listener never buffers more than
`max_body_bytes` of one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from groupgate import log, tracing
from groupgate.api import authzen, forward_auth, front, http11, native, parsing
from groupgate.api.app import STATE, State
from groupgate.api.headers import duplicate
from groupgate.api.problems import CHALLENGE, PROBLEM, problem_json, slug_of
from groupgate.errors import GroupgateError
from groupgate.model import new_tuple

CHECK = b"/v1/check"
EVALUATION = b"/access/v1/evaluation"
NOT_HERE = (
    "no such endpoint on the decision listener: it serves POST /v1/check, "
    "POST /access/v1/evaluation and gateway forward-auth"
)
GATEWAY = (b"/v1/gateway/auth", b"/auth")
ENVOY = forward_auth.ENVOY_PREFIX.encode() + b"/"
EMPTY = ""  # no Content-Type: forward-auth answers have no body
JSON = "application/json"
#: What an answer given at once is (a tuple: `bytes | Response` would build a union per test).
ANSWERED = (bytes, http11.Response)


def limits_of(state: State) -> http11.Limits:
    """The listener's limits: the shared `HttpLimits` and the body limit."""
    return front.listener_limits(state.config.http, state.config.limits.max_body_bytes)


def setup(app: web.Application) -> None:
    """Run a decision listener with `app` when `decision_port` is set (else do nothing)."""
    state = app[STATE]
    config = state.config
    port = config.decision_port
    if port is None:
        return
    listener = http11.Listener(Decisions(state), limits_of(state))
    app[LISTENER] = listener

    async def start(app: web.Application) -> None:
        await listener.start(config.host, port, reuse_port=config.workers > 1)
        log.api.info("decision listener on %s:%d", config.host, port)

    async def stop(app: web.Application) -> None:
        await listener.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)


def _text(raw: bytes | None) -> str | None:
    # As aiohttp decodes header values, so that keys compare the same on both listeners.
    return None if raw is None else raw.decode("utf-8", "surrogateescape")


#: The fields the listener's endpoints read, in `Request.fields` from slot 2 (see
#: `http11.App.fields`): a check's, then AuthZEN's (`_asked`) and forward-auth's (`_sent`).
FIELDS = (
    b"authorization",
    b"x-groupgate-key",
    b"x-groupgate-min-revision",
    b"content-type",
    b"x-groupgate-tenant",
    b"x-request-id",
    b"x-original-method",
    b"x-original-uri",
    b"x-forwarded-method",
    b"x-forwarded-uri",
)
(
    AUTHORIZATION,
    KEY,
    MIN_REVISION,
    CONTENT_TYPE,
    TENANT,
    REQUEST,
    ORIGINAL_METHOD,
    ORIGINAL_URI,
    FORWARDED_METHOD,
    FORWARDED_URI,
) = range(2, 2 + len(FIELDS))
#: Of those, the ones a second copy of is a 400 on a check (a proxy that appends instead of
#: replacing must not let a client's copy win), with the names the problem gives, in the
#: order the main listener reads them.
SINGLE = {
    b"authorization": "Authorization",
    b"x-groupgate-key": "X-Groupgate-Key",
    b"x-groupgate-min-revision": "X-Groupgate-Min-Revision",
}


def _sent(request: http11.Request) -> forward_auth.Sent:
    """The headers forward-auth reads, from the picked fields when none came twice.

    Written out field by field, as `_asked` is: a loop over a tuple of slots costs each of
    them about 2,000 instructions more per request (`python -m benchmarks instructions`)."""
    if request.repeated is not None:
        return forward_auth.read(_headers(request))
    fields = request.fields
    return new_tuple(
        forward_auth.Sent,
        (
            _text(fields[ORIGINAL_METHOD]),
            _text(fields[ORIGINAL_URI]),
            _text(fields[FORWARDED_METHOD]),
            _text(fields[FORWARDED_URI]),
            _text(fields[AUTHORIZATION]),
            _text(fields[KEY]),
            _text(fields[MIN_REVISION]),
            None,
        ),
    )


def _asked(request: http11.Request) -> authzen.Asked:
    """The headers an evaluation reads, from the picked fields when none came twice."""
    if request.repeated is not None:
        return authzen.asked(_headers(request))
    fields = request.fields
    return new_tuple(
        authzen.Asked,
        (
            _text(fields[AUTHORIZATION]),
            _text(fields[KEY]),
            _text(fields[CONTENT_TYPE]),
            _text(fields[TENANT]),
            _text(fields[MIN_REVISION]),
            _text(fields[REQUEST]),
            authzen.NONE_REPEATED,
        ),
    )


class Decisions:
    """The `http11.App` of the decision listener."""

    fields = FIELDS

    def __init__(self, state: State) -> None:
        self.state = state
        if tracing.TRACER is not None:
            # Traces are on (`GROUPGATE_OTEL`): every answer in a span; chosen once here, so
            # with traces off the listener pays nothing for them.
            self.respond = self._traced  # type: ignore[method-assign]

    def refuse(self, status: int, detail: str, slug: str) -> http11.Response:
        return front.http_problem(status, detail, slug)

    def respond(
        self, request: http11.Request
    ) -> bytes | http11.Response | Awaitable[bytes | http11.Response]:
        started = perf_counter()
        found: bytes | http11.Response | Awaitable[bytes | http11.Response]
        try:
            url = request.url
            # A plain path (no query, no escape, origin-form) routes as itself.
            path = url if url == CHECK else request.path()
            if path == CHECK and request.method == b"POST":
                found = self._check(request, started)
            else:
                found = self._route(request, path)
        except Exception as exc:
            return self._problem(request, exc)
        if isinstance(found, ANSWERED):
            return found
        return self._later(request, found)

    async def _traced(self, request: http11.Request) -> bytes | http11.Response:
        """`respond` in a `SERVER` span continuing the caller's trace (`groupgate.tracing`)."""
        name = f"{request.method.decode('latin-1')} {request.path().decode('latin-1')}"
        with tracing.server_span(name, _headers(request)) as span:
            first = Decisions.respond(self, request)
            found = first if isinstance(first, bytes | http11.Response) else await first
            status = found.status if isinstance(found, http11.Response) else 200
            span.set_attribute("http.response.status_code", status)
        return found

    def _route(
        self, request: http11.Request, path: bytes
    ) -> bytes | http11.Response | Awaitable[bytes | http11.Response]:
        """Everything but a `POST /v1/check`."""
        if path in (CHECK, EVALUATION):
            if request.method != b"POST":
                raise http11.Refusal(405, "method not allowed on this endpoint", "http-405")
            return self._evaluation(request)
        if path in GATEWAY or path.startswith(ENVOY):
            found = forward_auth.answer(
                self.state,
                request.method.decode("latin-1"),
                request.url.decode("utf-8", "surrogateescape"),
                _sent(request),
                "headers" if path in GATEWAY else "envoy",
            )
            if isinstance(found, forward_auth.GatewayAnswer):
                return _gateway_response(found)
            return self._gateway_later(found)
        raise http11.Refusal(404, NOT_HERE, "http-404")

    def _check(self, request: http11.Request, started: float) -> bytes | Awaitable[bytes]:
        """`POST /v1/check`: for an API-key caller nothing awaits on a cached subject."""
        if request.repeated is not None:
            for name, shown in SINGLE.items():
                if len(request.values(name)) > 1:
                    raise duplicate(shown)
        fields = request.fields
        authorization, key = _text(fields[AUTHORIZATION]), _text(fields[KEY])
        state = self.state
        caller = state.auth.key_caller(authorization, key)
        if caller is None:
            return self._token_check(request, authorization, key, started)
        body, value = _read(request)
        return native.answer(state, caller, body, value, _text(fields[MIN_REVISION]), started)

    async def _token_check(
        self, request: http11.Request, authorization: str | None, key: str | None, started: float
    ) -> bytes:
        state = self.state
        caller = await state.auth.token_caller(authorization, key)
        body, value = _read(request)
        revision = _text(request.fields[MIN_REVISION])
        found = native.answer(state, caller, body, value, revision, started)
        return found if isinstance(found, bytes) else await found

    def _evaluation(
        self, request: http11.Request
    ) -> bytes | http11.Response | Awaitable[bytes | http11.Response]:
        # The PEP's X-Request-ID goes back on every answer, problems too (AuthZEN 1.0 §10.1.3):
        # an answer comes with the one the use case read, a problem reads it here.
        sent = _asked(request)
        try:
            found = authzen.evaluation_answer(self.state, sent, request.body)
        except Exception as exc:
            return self._echoed(self._problem(request, exc), authzen.echo_line(sent))
        if isinstance(found, tuple):
            return _evaluated(*found)
        return self._evaluation_later(request, found, sent)

    async def _evaluation_later(
        self,
        request: http11.Request,
        pending: Awaitable[tuple[bytes, str | None]],
        sent: authzen.Asked,
    ) -> bytes | http11.Response:
        try:
            found = await pending
        except Exception as exc:
            return self._echoed(self._problem(request, exc), authzen.echo_line(sent))
        return _evaluated(*found)

    @staticmethod
    def _echoed(response: http11.Response, echo: tuple[bytes, ...]) -> http11.Response:
        return response._replace(headers=response.headers + echo)

    @staticmethod
    async def _gateway_later(
        pending: Awaitable[forward_auth.GatewayAnswer],
    ) -> http11.Response:
        return _gateway_response(await pending)

    async def _later(
        self, request: http11.Request, pending: Awaitable[bytes | http11.Response]
    ) -> bytes | http11.Response:
        try:
            return await pending
        except Exception as exc:
            return self._problem(request, exc)

    def _problem(self, request: http11.Request, exc: Exception) -> http11.Response:
        if isinstance(exc, http11.Refusal):
            answer = front.http_problem(exc.status, exc.detail, exc.slug)
            return answer._replace(headers=(b"Allow: POST",)) if exc.status == 405 else answer
        if isinstance(exc, GroupgateError):
            status = exc.status
            if status >= 500:
                log.api.warning("%s (decision listener): %s", request.path().decode(), exc.detail)
            extra = (b"WWW-Authenticate: " + CHALLENGE.encode(),) if status == 401 else ()
            body = problem_json(status, exc.title, exc.detail, slug_of(exc))
            return http11.Response(status, PROBLEM, body, extra)
        log.api.exception("unhandled error on the decision listener")
        body = problem_json(
            500, "Internal error", "internal error; see the sidecar's log", "internal"
        )
        return http11.Response(500, PROBLEM, body)


def _evaluated(body: bytes, request_id: str | None) -> bytes | http11.Response:
    """An evaluation's 200: the body alone (`http11` writes it with its prepared head) unless
    an `X-Request-ID` goes back with it."""
    if request_id is None:
        return body
    return http11.Response(200, JSON, body, authzen.echo_of(request_id))


def _gateway_response(answer: forward_auth.GatewayAnswer) -> http11.Response:
    found = _GATEWAY_RESPONSES.get(answer)
    if found is None:
        extra = tuple(f"{name}: {value}".encode() for name, value in answer.headers)
        found = http11.Response(answer.status, EMPTY, b"", extra)
        if len(_GATEWAY_RESPONSES) >= GATEWAY_RESPONSES_MAX:
            _GATEWAY_RESPONSES.clear()
        _GATEWAY_RESPONSES[answer] = found
    return found


#: Forward-auth answers as responses, formatted once per answer (a 200 names the subject and
#: tenant, so there are about as many as live subjects); dropped whole when full.
_GATEWAY_RESPONSES: dict[forward_auth.GatewayAnswer, http11.Response] = {}
GATEWAY_RESPONSES_MAX = 4096


def _headers(request: http11.Request) -> CIMultiDict[str]:
    """The request's headers as the main listener's handlers see them."""
    return CIMultiDict(
        (name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))
        for name, value in request.headers
    )


def _read(request: http11.Request) -> tuple[bytes, Any]:
    """The body and its JSON value, after the media type check (`read_unchecked_json`)."""
    parsing.check_media_type(parsing.media_type(_text(request.fields[CONTENT_TYPE])))
    body = request.body
    return body, parsing.decode(body)


LISTENER = web.AppKey("decision_listener", http11.Listener)
