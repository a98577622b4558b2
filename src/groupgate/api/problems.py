"""The one place where errors become `application/problem+json` responses (RFC 9457).

Every `GroupgateError` carries its status and title (see `groupgate.errors`); aiohttp's own
HTTP errors (unknown route, wrong method, body too large) are turned into the same shape, and
anything unexpected becomes a 500 whose detail stays in the log. No error path ever produces an
allow: handlers build decision bodies only after every step succeeded.

This module adds the transport-level members of the tree, all `InvalidInput`:

    InvalidInput
     +-- InvalidJson        400  the body is not one acceptable JSON document
     +-- Unprocessable      422  well-formed JSON with a wrong field, type or unknown name
     +-- BadRequest         400  the same on the AuthZEN endpoints, whose spec answers 400
     +-- TooLarge           413  body or batch over its configured limit
     +-- UnsupportedMedia   415  a content type that is not JSON (nor YAML for imports)
     +-- DuplicateHeader    400  a header that must appear once (credentials, consistency token)
     +-- UnreadableBody     400  the body's framing or coding is broken, or the client half-closed
     +-- RequestTimeout     408  the request did not arrive in time
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from groupgate import log
from groupgate.errors import (
    AuthError,
    Conflict,
    Forbidden,
    GraphError,
    GroupgateError,
    InvalidInput,
    NotFound,
    NotReplicated,
    PolicyError,
    Refused,
    StoreUnavailable,
)

PROBLEM = "application/problem+json"
TYPE_PREFIX = "urn:groupgate:problem:"


class InvalidJson(InvalidInput):
    """The body is not a single well-formed JSON document within the limits."""

    title = "Invalid JSON"


class Unprocessable(InvalidInput):
    """The JSON is well-formed but a field is missing, mistyped, unknown or names nothing."""

    status = 422
    title = "Unprocessable request"


class BadRequest(InvalidInput):
    """A missing or mistyped field on an AuthZEN endpoint: AuthZEN 1.0 answers "Bad Request"
    where the native API answers 422 (`authzen.spec_error`)."""

    title = "Bad Request"


class TooLarge(InvalidInput):
    """The body or a batch exceeds its configured limit."""

    status = 413
    title = "Request too large"


class UnsupportedMedia(InvalidInput):
    """The request's content type is not one this endpoint reads."""

    status = 415
    title = "Unsupported media type"


class DuplicateHeader(InvalidInput):
    """A header that decides who asks or how fresh the answer must be came more than once:
    a proxy that appends instead of replacing would otherwise let a client's copy win."""

    title = "Duplicate header"


class UnreadableBody(InvalidInput):
    """The body could not be read: broken chunks, a bad coding, a half-close before its end."""

    title = "Bad Request"


class RequestTimeout(InvalidInput):
    """The request (its body, here) was not complete within `http_request_timeout`."""

    status = 408
    title = "Request Timeout"


def unreadable(exc: BaseException) -> InvalidInput:
    """The problem for a body aiohttp could not read (`HttpProcessingError`, or the
    `RequestPayloadError` that wraps one).

    The body stream keeps the exception: without its traceback, the handler's frames (and
    the request they hold) are freed at once rather than by a full collection.
    """
    cause = exc.__cause__ if isinstance(exc, web.RequestPayloadError) else exc
    for link in (exc, cause):
        if link is not None:
            link.__traceback__ = link.__context__ = None
    if isinstance(cause, HttpProcessingError) and cause.code == 408:
        return RequestTimeout(str(cause.message))
    lines = str(cause if cause is not None else exc).strip().splitlines()
    shown = lines[-1].strip()[:200] if lines else ""
    return UnreadableBody(f"the body could not be read: {shown}")


_SLUGS: tuple[tuple[type[GroupgateError], str], ...] = (
    (InvalidJson, "invalid-json"),
    (Unprocessable, "unprocessable"),
    (BadRequest, "bad-request"),
    (TooLarge, "too-large"),
    (UnsupportedMedia, "unsupported-media-type"),
    (DuplicateHeader, "duplicate-header"),
    (UnreadableBody, "invalid-http"),
    (RequestTimeout, "timeout"),
    (GraphError, "graph-rule"),
    (NotFound, "not-found"),
    (Refused, "purchase-refused"),
    (Conflict, "conflict"),
    (InvalidInput, "invalid-request"),
    (Forbidden, "forbidden"),
    (AuthError, "unauthorized"),
    (NotReplicated, "not-replicated"),
    (StoreUnavailable, "store-unavailable"),
    (PolicyError, "invalid-policy"),
)


def slug_of(error: GroupgateError) -> str:
    for cls, slug in _SLUGS:
        if isinstance(error, cls):
            return slug
    return "internal"


CHALLENGE = 'Bearer realm="groupgate"'


def problem_json(
    status: int, title: str, detail: str, slug: str, extra: Mapping[str, Any] | None = None
) -> bytes:
    """The problem+json body (a 401 also needs `WWW-Authenticate: CHALLENGE`); `extra` adds
    extension members (RFC 9457 section 3.2), never replacing the standard ones."""
    body: dict[str, Any] = {**(extra or {})}
    body.update(type=TYPE_PREFIX + slug, title=title, status=status, detail=detail)
    return orjson.dumps(body)


def problem(
    status: int, title: str, detail: str, slug: str, extra: Mapping[str, Any] | None = None
) -> web.Response:
    """Return a problem+json response."""
    body = problem_json(status, title, detail, slug, extra)
    response = web.Response(status=status, body=body, content_type=PROBLEM)
    if status == 401:
        response.headers["WWW-Authenticate"] = CHALLENGE
    return response


def from_error(error: GroupgateError) -> web.Response:
    """Map an exception of the tree to its response. After a 413, a 408 or a body that could
    not be read the connection closes, as on the decision listener: the rest of the stream
    cannot be trusted to frame the next request."""
    extra: dict[str, Any] | None = None
    if isinstance(error, Refused):
        extra = {"rule": error.rule, **error.extensions}
    elif isinstance(error, NotReplicated):
        # The write is applied on the primary: say at which revision, and how far it got.
        extra = {"revision": error.revision, "replicas": error.replicas, "wanted": error.wanted}
    response = problem(error.status, error.title, error.detail, slug_of(error), extra)
    if isinstance(error, NotReplicated):
        response.headers["Retry-After"] = "1"
    if isinstance(error, TooLarge | RequestTimeout | UnreadableBody):
        response.force_close()
    return response


_HTTP_DETAIL = {
    404: "no such endpoint",
    405: "method not allowed on this endpoint",
    413: "request body too large",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: Handler) -> Handler:
    """`handler` with every error it raises turned into problem+json.

    Every route is added with its handler guarded (`create_app` refuses a route that is not).
    HTTP-level rules (Host, targets, limits) are applied before routing, alike on every
    listener (`api/front.py`, `api/http_rules.head_problem`).
    This is a wrapper per route rather than an aiohttp middleware because a middleware costs
    every request two more coroutine frames and a cache look-up in aiohttp's dispatch: about
    3 µs of a 50 µs `/v1/check` under load (`python -m benchmarks http`).
    """

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception as exc:  # every kind is mapped in `to_problem`
            return to_problem(request, exc)

    _GUARDED.add(guard)
    return guard


def is_guarded(handler: Handler) -> bool:
    return handler in _GUARDED


_GUARDED: weakref.WeakSet[Handler] = weakref.WeakSet()


def to_problem(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The response for an exception raised by a handler (an HTTP redirect is re-raised)."""
    if isinstance(exc, GroupgateError):
        if exc.status >= 500:
            log.api.warning("%s %s: %s", request.method, request.path, exc.detail)
        return from_error(exc)
    if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
        # A body read outside `parsing` (a handler of ours always reads through it).
        response = from_error(unreadable(exc))
        response.force_close()
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        detail = _HTTP_DETAIL.get(exc.status, exc.reason)
        response = problem(exc.status, exc.reason, detail, f"http-{exc.status}")
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    # The client gets a short message; the detail goes to the log.
    log.api.exception("unhandled error on %s %s", request.method, request.path)
    return problem(500, "Internal error", "internal error; see the sidecar's log", "internal")


async def unmatched(request: web.Request) -> web.StreamResponse:
    """The last route: 405 (with `Allow`) when another route has the path, else 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name == UNMATCHED:
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
    raise web.HTTPNotFound()


UNMATCHED = "problems.unmatched"


def add_unmatched(app: web.Application) -> None:
    """Answer every request no other route takes with problem+json (add it last)."""
    app.router.add_route("*", "/{unmatched:.*}", guarded(unmatched), name=UNMATCHED)
