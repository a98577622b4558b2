"""The raw HTTP cases of the differential suite, and the app settings they are written for.

Each `Case` is a conversation (bytes and actions, see `tests.http.wire`) that is played to
both listeners of one running app. Both must answer alike (status, problem type or body, the
compared headers; a stall on one side is a difference too). Where HTTP (RFC 9110/9112) or the
project's rules leave one right answer, `expect` names it for each final answer:

- an `int`: that status; with `(status, slug)` also that problem type;
- `"4xx"`: a 4xx problem+json answer (hostile input: precise, never a 5xx, never a stall);
- a `frozenset` of statuses: one of them.

`closes=True` means the listener must close the connection after its answers (RFC 9112
requires it after a framing error and after `Connection: close`); the reader then waits for
the close, so a listener that keeps the connection is reported as a stall.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import orjson

from groupgate.auth import mint_token
from tests.http.wire import Await, HalfClose, Pause, Step, Trickle

KEY = "differential-key-0123456789"
SECRET = "differential-jwt-secret-0123456789abcdef"
TOKEN = mint_token(SECRET, "emp-de", tenant="demo", ttl=24 * 3600)

#: Settings of the app under test (`GROUPGATE_<NAME>`): small limits, so that a case shows
#: whether each listener applies the configured value rather than a built-in one.
MAX_BODY = 4096
MAX_URL = 2048
MAX_FIELD = 1024
MAX_HEADER_SECTION = 4096
MAX_HEADERS = 20
REQUEST_TIMEOUT = 1.0
KEEPALIVE_TIMEOUT = 2.0
MAX_PIPELINED = 4
SETTINGS = {
    "api_keys": KEY,
    "jwt_secret": SECRET,
    "max_body_bytes": str(MAX_BODY),
    "http_max_url_bytes": str(MAX_URL),
    "http_max_field_bytes": str(MAX_FIELD),
    "http_max_header_bytes": str(MAX_HEADER_SECTION),
    "http_max_headers": str(MAX_HEADERS),
    "http_request_timeout": str(REQUEST_TIMEOUT),
    "http_keepalive_timeout": str(KEEPALIVE_TIMEOUT),
    "http_max_pipelined": str(MAX_PIPELINED),
    "log_level": "critical",
}

CHECK = orjson.dumps(
    {
        "subject": {"id": "emp-de"},
        "action": "update",
        "resource": {"type": "orders", "id": "o-17", "restrictions": ["DE"]},
    }
)
EVALUATION = orjson.dumps(
    {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "update"},
        "resource": {"type": "orders", "id": "o-17", "properties": {"restrictions": ["DE"]}},
    }
)

Header = tuple[str, str | bytes]
Expect = int | tuple[int, str] | str | frozenset[int]


def raw_request(
    method: str = "POST",
    target: str | bytes = "/v1/check",
    *,
    version: str = "HTTP/1.1",
    headers: list[Header] | None = None,
    body: bytes | None = None,
    host: bool = True,
    auth: bool = True,
    media: bool = True,
    length: bool = True,
) -> bytes:
    """One request: request line, `Host`, the caller key, JSON type and length, `headers`."""
    if body is None:
        body = CHECK if method == "POST" else b""
    lines: list[bytes] = []
    target_bytes = target if isinstance(target, bytes) else target.encode()
    lines.append(b"%s %s %s" % (method.encode(), target_bytes, version.encode()))
    if host:
        lines.append(b"Host: pdp")
    if auth:
        lines.append(b"Authorization: Bearer " + KEY.encode())
    if media and method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Type: application/json")
    if length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % len(body))
    for name, value in headers or []:
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def check(**kw: object) -> bytes:
    return raw_request("POST", "/v1/check", **kw)  # type: ignore[arg-type]


def evaluation(target: str = "/access/v1/evaluation", **kw: object) -> bytes:
    kw.setdefault("body", EVALUATION)
    return raw_request("POST", target, **kw)  # type: ignore[arg-type]


def gateway(
    method: str = "GET",
    uri: str = "/api/orders",
    *,
    target: str = "/v1/gateway/auth",
    headers: list[Header] | None = None,
    token: bool = True,
    **kw: object,
) -> bytes:
    """A forward-auth request as nginx sends it: the subject's JWT, X-Original-*."""
    sent: list[Header] = [("X-Original-Method", "GET"), ("X-Original-URI", uri)]
    if token:
        sent.append(("Authorization", f"Bearer {TOKEN}"))
    return raw_request(method, target, auth=False, headers=sent + (headers or []), **kw)  # type: ignore[arg-type]


def head(method: str, target: str, *, tail: bytes = b"") -> bytes:
    """A bare request head (no credential, no body) ending after `tail`'s header lines."""
    return f"{method} {target} HTTP/1.1\r\nHost: pdp\r\n".encode() + tail + b"\r\n"


def chunked(*chunks: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailer + b"\r\n"


def check_head(extra: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    """`POST /v1/check` with host, key and JSON type; `extra` header lines and the blank line."""
    return (
        b"POST /v1/check "
        + version
        + b"\r\nHost: pdp\r\nAuthorization: Bearer "
        + KEY.encode()
        + b"\r\nContent-Type: application/json\r\n"
        + extra
        + b"\r\n"
    )


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    expect: tuple[Expect, ...] | None = None
    answers: int = 1
    closes: bool | None = None
    heads: frozenset[int] = frozenset()
    why: str = ""

    def __str__(self) -> str:
        return self.name


def is_pair(expect: tuple[object, ...]) -> bool:
    """`(status, slug)`, as opposed to a tuple of expectations such as `(200, "4xx")`."""
    return (
        len(expect) == 2
        and isinstance(expect[0], int)
        and isinstance(expect[1], str)
        and expect[1] != "4xx"
    )


def case(
    name: str,
    *steps: Step,
    expect: Expect | tuple[Expect, ...] | None = None,
    answers: int | None = None,
    closes: bool | None = None,
    heads: tuple[int, ...] = (),
    why: str = "",
) -> Case:
    expected: tuple[Expect, ...] | None
    if expect is None:
        expected = None
    elif isinstance(expect, tuple) and not is_pair(expect):
        expected = expect
    else:
        expected = (expect,)  # type: ignore[assignment]
    count = answers if answers is not None else (len(expected) if expected else 1)
    return Case(name, tuple(steps), expected, count, closes, frozenset(heads), why)


#: Cases where the listeners are known to differ, with why. Each runs as a strict xfail: the
#: day they agree, the suite says so and the entry goes.
#:
#: aiohttp's C parser parses a whole read at once and, when it meets a malformed (or, after
#: `Connection: close`, any further) request, reports only the error: the complete requests
#: parsed before it in the same read are dropped unanswered (`web_protocol.data_received`
#: replaces them with the error, and the parser keeps them where no API reaches). The
#: decision listener answers each complete request, then refuses the rest and closes, as RFC
#: 9112 section 9.3.2 lets a server; emulating aiohttp would make its answers depend on how
#: TCP splits the stream (`test_answers_do_not_depend_on_how_the_stream_is_split`).
AIOHTTP_DROPS = (
    "aiohttp drops the complete requests parsed in the same read as a malformed one "
    "(see KNOWN_DIVERGENCES)"
)
KNOWN_DIVERGENCES = {
    "check then garbage": AIOHTTP_DROPS,
    "check then a smuggled CL+TE": AIOHTTP_DROPS,
    "Connection: close first: nothing after it is answered": AIOHTTP_DROPS,
    "HTTP/1.0 then a pipelined request: only the first": AIOHTTP_DROPS,
    "Content-Length shorter than the body, rest is garbage": AIOHTTP_DROPS,
}

OK = 200
BAD = (400, "invalid-http")
FRAMING = "a framing error: 400 and close (RFC 9112 6.3)"
PAD = "x" * 64

CASES: list[Case] = [
    # ------------------------------------------------------------------ the three endpoints
    case("check: allowed", check(), expect=OK),
    case(
        "check: X-Groupgate-Key instead of Authorization",
        check(auth=False, headers=[("X-Groupgate-Key", KEY)]),
        expect=OK,
    ),
    case("check: no credential", check(auth=False), expect=(401, "unauthorized")),
    case(
        "check: a wrong key",
        check(auth=False, headers=[("Authorization", "Bearer wrong-key-0123456789")]),
        expect=(401, "unauthorized"),
    ),
    case("check: not JSON", check(body=b"{nope"), expect=(400, "invalid-json")),
    case(
        "check: an unknown action",
        check(body=CHECK.replace(b"update", b"fly")),
        expect=(422, "unprocessable"),
    ),
    case("check: empty body", check(body=b""), expect=(400, "invalid-json")),
    case(
        "check: POST without any length: an empty body",
        check_head(b""),
        expect=(400, "invalid-json"),
        why="no Content-Length nor Transfer-Encoding: the body is empty (RFC 9112 6.3)",
    ),
    case("evaluation: allowed", evaluation(), expect=OK),
    case(
        "evaluation: a sealed item with a duplicate key",
        evaluation(body=EVALUATION.replace(b'"type":"orders"', b'"type":"orders","type":"orders"')),
        expect=(400, "invalid-json"),
        why="a sealed single item skips the safety walk but not the raw key count",
    ),
    case(
        "evaluation: a duplicate key with whitespace before its colon",
        evaluation(body=EVALUATION.replace(b'"id":"o-17"', b'"id":"o-17","id" :"o-17"')),
        expect=(400, "invalid-json"),
    ),
    case(
        "evaluation: two X-Request-ID fields",
        evaluation(headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")]),
        expect=OK,
        why="the decision listener reads picked fields unless one came twice: then all headers",
    ),
    case(
        "evaluation: two X-Groupgate-Tenant fields",
        evaluation(headers=[("X-Groupgate-Tenant", "demo"), ("X-Groupgate-Tenant", "demo")]),
        expect=(400, "duplicate-header"),
    ),
    case(
        "evaluation: X-Groupgate-Tenant once, as a picked field",
        evaluation(headers=[("x-groupgate-tenant", "nowhere")]),
        why="both listeners answer alike (the tenant is refused or unknown)",
    ),
    case("evaluation: no credential", evaluation(auth=False), expect=(401, "unauthorized")),
    case("evaluation: not JSON", evaluation(body=b"[1,"), expect=(400, "invalid-json")),
    case(
        "evaluation: text/plain",
        evaluation(media=False, headers=[("Content-Type", "text/plain")]),
        expect=(400, "bad-request"),  # AuthZEN answers 400 where the native API says 415
    ),
    case("evaluation: GET", raw_request("GET", "/access/v1/evaluation"), expect=(405, "http-405")),
    case("gateway: allowed", gateway(), expect=OK),
    case(
        "gateway: POST to forward-auth (any method is asked)", gateway("POST", body=b""), expect=OK
    ),
    case("gateway: HEAD", gateway("HEAD"), expect=OK, heads=(0,)),
    case("gateway: no route", gateway(uri="/api/nothing-here"), expect=403),
    case("gateway: no token", gateway(token=False), expect=401),
    case(
        "gateway: a bad token",
        gateway(token=False, headers=[("Authorization", "Bearer a.b.c")]),
        expect=401,
    ),
    case("gateway: .. in X-Original-URI", gateway(uri="/api/x/../orders"), expect=403),
    case("gateway: %2e%2e in X-Original-URI", gateway(uri="/api/x/%2e%2e/orders"), expect=403),
    case(
        "gateway: without X-Original-*",
        raw_request(
            "GET", "/v1/gateway/auth", auth=False, headers=[("Authorization", f"Bearer {TOKEN}")]
        ),
        expect=403,
    ),
    case(
        "gateway: duplicate X-Original-URI",
        gateway(headers=[("X-Original-URI", "/api/nothing-here")]),
        expect=403,
        why="SPEC 5, gateway headers: a repeated original-request header is refused (403)",
    ),
    case(
        "gateway: duplicate Authorization",
        gateway(headers=[("Authorization", f"Bearer {TOKEN}")]),
        expect=403,
        why="SPEC 5, gateway headers: a repeated credential is refused (403)",
    ),
    case(
        "gateway: X-Forwarded-Uri disagrees with X-Original-URI",
        gateway(headers=[("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/api/nothing-here")]),
        expect=403,
        why="SPEC 5, gateway headers: two families that disagree are refused",
    ),
    case(
        "gateway: a body on GET is read and skipped",
        gateway(body=b"hello") + gateway(),
        expect=(OK, OK),
    ),
    case(
        "gateway: Unicode digit in X-Groupgate-Min-Revision",
        gateway(headers=[("X-Groupgate-Min-Revision", "\u0661".encode())]),
    ),
    # ------------------------------------------------------------------ methods
    case("HEAD /v1/check", raw_request("HEAD", "/v1/check"), expect=405, heads=(0,)),
    case("GET /v1/check", raw_request("GET", "/v1/check"), expect=(405, "http-405")),
    case("PUT /v1/check", raw_request("PUT", "/v1/check"), expect=(405, "http-405")),
    case("DELETE /v1/check", raw_request("DELETE", "/v1/check"), expect=(405, "http-405")),
    case("PATCH /v1/check", raw_request("PATCH", "/v1/check"), expect=(405, "http-405")),
    case("TRACE /v1/check", raw_request("TRACE", "/v1/check"), expect=(405, "http-405")),
    case("OPTIONS /v1/check", raw_request("OPTIONS", "/v1/check"), expect=(405, "http-405")),
    case("OPTIONS * (asterisk-form)", head("OPTIONS", "*")),
    case(
        "asterisk-form with POST",
        check_head(b"Content-Length: 0\r\n").replace(b"/v1/check", b"*"),
        expect="4xx",
        why="asterisk-form is only for OPTIONS (RFC 9112 3.2.4)",
    ),
    case("an unknown method", raw_request("FROB", "/v1/check"), expect="4xx"),
    case(
        "lower-case post",
        raw_request("post", "/v1/check"),
        expect="4xx",
        why="methods are case-sensitive (RFC 9110 9.1)",
    ),
    case("CONNECT", head("CONNECT", "pdp:443"), expect="4xx", closes=True),
    case(
        "HEAD /v1/check then POST, pipelined",
        raw_request("HEAD", "/v1/check") + check(),
        expect=(405, OK),
        heads=(0,),
    ),
    case(
        "HEAD /access/v1/evaluation",
        raw_request("HEAD", "/access/v1/evaluation"),
        expect=405,
        heads=(0,),
    ),
    # ------------------------------------------------------------------ request targets
    case(
        "absolute-form http://pdp/v1/check",
        raw_request("POST", "http://pdp/v1/check"),
        expect=OK,
        why="a server MUST accept absolute-form (RFC 9112 3.2.2)",
    ),
    case(
        "absolute-form, other host than Host",
        raw_request("POST", "http://other:81/v1/check"),
        expect=OK,
        why="the target's authority replaces Host (RFC 9112 3.2.2)",
    ),
    case("absolute-form evaluation", evaluation("http://pdp/access/v1/evaluation"), expect=OK),
    case("absolute-form gateway", gateway(target="http://pdp/v1/gateway/auth"), expect=OK),
    case("absolute-form with a query", raw_request("POST", "http://pdp/v1/check?x=1"), expect=OK),
    case("absolute-form https", raw_request("POST", "https://pdp/v1/check"), expect=OK),
    case("authority-form with POST", raw_request("POST", "pdp:80"), expect="4xx"),
    case(
        "/v1/%63heck",
        raw_request("POST", "/v1/%63heck"),
        expect=OK,
        why="%63 is an unreserved character: the same URI (RFC 3986 6.2.2.2)",
    ),
    case(
        "/v1/%63%68%65%63%6B (upper-case hex)",
        raw_request("POST", "/v1/%63%68%65%63%6B"),
        expect=OK,
    ),
    case("/%76%31/check", raw_request("POST", "/%76%31/check"), expect=OK),
    case("/access/v1/%65valuation", evaluation("/access/v1/%65valuation"), expect=OK),
    case("/v1/gateway/%61uth", gateway(target="/v1/gateway/%61uth"), expect=OK),
    case(
        "/v1%2Fcheck (an escaped slash is not a slash)",
        raw_request("POST", "/v1%2Fcheck"),
        expect=(404, "http-404"),
    ),
    case("/v1/check%00", raw_request("POST", "/v1/check%00"), expect="4xx"),
    case("/v1/check% (a bad escape)", raw_request("POST", "/v1/check%"), expect="4xx"),
    case("/v1/%zzcheck", raw_request("POST", "/v1/%zzcheck"), expect="4xx"),
    case("//v1/check", raw_request("POST", "//v1/check"), expect="4xx"),
    case("/v1//check", raw_request("POST", "/v1//check"), expect="4xx"),
    case("/v1/./check", raw_request("POST", "/v1/./check"), expect="4xx"),
    case("/v1/x/../check", raw_request("POST", "/v1/x/../check"), expect="4xx"),
    case("/../v1/check", raw_request("POST", "/../v1/check"), expect="4xx"),
    case(
        "/v1/check/ (trailing slash)", raw_request("POST", "/v1/check/"), expect=(404, "http-404")
    ),
    case(
        "/V1/CHECK (paths are case-sensitive)",
        raw_request("POST", "/V1/CHECK"),
        expect=(404, "http-404"),
    ),
    case("/v1/check;param", raw_request("POST", "/v1/check;x=1"), expect=(404, "http-404")),
    case("/v1/check?x=1 (a query is ignored)", raw_request("POST", "/v1/check?x=1&y"), expect=OK),
    case("/v1/check? (empty query)", raw_request("POST", "/v1/check?"), expect=OK),
    case("/v1/check?%zz (a bad escape in the query)", raw_request("POST", "/v1/check?%zz")),
    case(
        "/v1/check#frag (a fragment in a request target)",
        raw_request("POST", "/v1/check#frag"),
        expect=(400, "invalid-http"),
        why="origin-form has no fragment (RFC 9112 3.2.1)",
    ),
    case("/v1/check?x#frag", raw_request("POST", "/v1/check?x#frag"), expect=(400, "invalid-http")),
    case("an unknown path", raw_request("POST", "/v1/nothing"), expect=(404, "http-404")),
    case("/ (the root)", raw_request("GET", "/"), expect=(404, "http-404")),
    case("a target without a leading slash", raw_request("POST", "v1/check"), expect="4xx"),
    case(
        "a space inside the target",
        raw_request("POST", "/v1/ check"),
        expect=(400, "invalid-http"),
        closes=True,
    ),
    case("a raw 0xff byte in the target", raw_request("POST", b"/v1/check\xff"), expect="4xx"),
    case(
        "a target at the URL limit",
        raw_request("POST", "/v1/check?" + "q" * (MAX_URL - 10)),
        expect=OK,
    ),
    case(
        "a target over the URL limit",
        raw_request("POST", "/v1/check?" + "q" * (MAX_URL + 10)),
        expect=(414, "uri-too-long"),
        closes=True,
    ),
    case(
        "a target of 20 KB",
        raw_request("POST", "/v1/check?" + "q" * 20000),
        expect=(414, "uri-too-long"),
        closes=True,
    ),
    # ------------------------------------------------------------------ versions
    case(
        "HTTP/1.0 without keep-alive: answered, closed",
        check(version="HTTP/1.0"),
        expect=OK,
        closes=True,
    ),
    case(
        "HTTP/1.0 with keep-alive: two answers",
        check(version="HTTP/1.0", headers=[("Connection", "keep-alive")]) * 2,
        expect=(OK, OK),
    ),
    case("HTTP/1.0 without Host", check(version="HTTP/1.0", host=False), expect=OK, closes=True),
    case(
        "HTTP/1.0 then a pipelined request: only the first",
        check(version="HTTP/1.0") + check(),
        expect=OK,
        closes=True,
    ),
    case(
        "HTTP/1.2 (a higher minor version)",
        check(version="HTTP/1.2"),
        expect=frozenset({200, 400}),
        why="RFC 9110 2.5 says answer it as 1.1; llhttp refuses it on both ports: either will do",
    ),
    case(
        "HTTP/2.0 request line",
        check(version="HTTP/2.0"),
        expect=frozenset({400, 505}),
        closes=True,
        why="505 names it precisely (RFC 9110 15.6.6)",
    ),
    case(
        "HTTP/3.0 request line",
        check(version="HTTP/3.0"),
        expect=frozenset({400, 505}),
        closes=True,
    ),
    case("HTTP/0.9 simple request", b"GET /v1/check\r\n", expect="4xx", closes=True),
    case("http/1.1 in lower case", check(version="http/1.1"), expect=BAD, closes=True),
    case("HTTP/1.1x", check(version="HTTP/1.1x"), expect=BAD, closes=True),
    case("HTTP/1 (no minor)", check(version="HTTP/1"), expect=BAD, closes=True),
    case("garbage request line", b"GARBAGE\r\n\r\n", expect=BAD, closes=True),
    case(
        "a TLS ClientHello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        expect=BAD,
        closes=True,
    ),
    case(
        "an empty line before the request line",
        b"\r\n" + check(),
        expect=OK,
        why="a server SHOULD ignore at least one empty line first (RFC 9112 2.2)",
    ),
    case("bare LF line ends", check().replace(b"\r\n", b"\n"), expect=BAD, closes=True),
    case(
        "a bare CR in a header value",
        check(headers=[("X-A", b"a\rb")]),
        expect=BAD,
        closes=True,
        why="bare CR MUST be rejected or replaced (RFC 9112 2.2)",
    ),
    case(
        "two spaces after the method",
        check().replace(b"POST ", b"POST  ", 1),
        why="a recipient MAY split the request line on whitespace (RFC 9112 3)",
    ),
    # ------------------------------------------------------------------ Host
    case(
        "HTTP/1.1 without Host",
        check(host=False),
        expect=400,
        why="a server MUST answer 400 to an HTTP/1.1 request without Host (RFC 9112 3.2)",
    ),
    case(
        "two Host fields",
        check(headers=[("Host", "other")]),
        expect=400,
        why="MUST 400 (RFC 9112 3.2)",
    ),
    case("two equal Host fields", check(headers=[("Host", "pdp")]), expect=400),
    case(
        "Host with a bad port",
        check(host=False, headers=[("Host", "pdp:port")]),
        expect=400,
        why="an invalid Host value: MUST 400 (RFC 9112 3.2)",
    ),
    case("Host with a space", check(host=False, headers=[("Host", "p dp")]), expect=400),
    case(
        "Host with userinfo",
        check(host=False, headers=[("Host", "user@pdp")]),
        expect=400,
    ),
    case("Host with a path", check(host=False, headers=[("Host", "pdp/x")]), expect=400),
    case("Host with a port", check(host=False, headers=[("Host", "pdp:8182")]), expect=OK),
    case("Host IPv6 literal", check(host=False, headers=[("Host", "[::1]:8182")]), expect=OK),
    case(
        "an empty Host",
        check(host=False, headers=[("Host", "")]),
        expect=OK,
        why="an empty Host is valid (RFC 9112 3.2)",
    ),
    # ------------------------------------------------------------------ credentials, tokens
    case(
        "two Authorization fields",
        check(headers=[("Authorization", f"Bearer {KEY}")]),
        expect=(400, "duplicate-header"),
        why="DuplicateHeader: credentials must appear once",
    ),
    case(
        "two Authorization fields, the second wrong",
        check(headers=[("Authorization", "Bearer wrong-key-0123456789")]),
        expect=(400, "duplicate-header"),
    ),
    case(
        "two Authorization fields after two of a field a check does not read",
        check(
            headers=[
                ("X-Original-URI", "/a"),
                ("X-Original-URI", "/b"),
                ("Authorization", f"Bearer {KEY}"),
            ]
        ),
        expect=(400, "duplicate-header"),
        why="the decision listener notes only the first repeated field: it looks again",
    ),
    case(
        "two X-Groupgate-Key fields",
        check(auth=False, headers=[("X-Groupgate-Key", KEY), ("X-Groupgate-Key", KEY)]),
        expect=(400, "duplicate-header"),
    ),
    case(
        "two X-Groupgate-Min-Revision fields",
        check(headers=[("X-Groupgate-Min-Revision", "1"), ("X-Groupgate-Min-Revision", "999999")]),
        expect=(400, "duplicate-header"),
    ),
    case(
        "X-Groupgate-Min-Revision: 1", check(headers=[("X-Groupgate-Min-Revision", "1")]), expect=OK
    ),
    case(
        "X-Groupgate-Min-Revision: Arabic-Indic digit one",
        check(headers=[("X-Groupgate-Min-Revision", "\u0661".encode())]),
        expect=(422, "unprocessable"),
        why="a revision is ASCII digits; str.isdigit() takes any Unicode digit",
    ),
    case(
        "X-Groupgate-Min-Revision: fullwidth digit",
        check(headers=[("X-Groupgate-Min-Revision", "\uff11".encode())]),
        expect=(422, "unprocessable"),
    ),
    case(
        "X-Groupgate-Min-Revision: superscript two",
        check(headers=[("X-Groupgate-Min-Revision", "\u00b2".encode())]),
        expect=(422, "unprocessable"),
    ),
    case(
        "X-Groupgate-Min-Revision: latin-1 byte 0xb9",
        check(headers=[("X-Groupgate-Min-Revision", b"\xb9")]),
        expect=(422, "unprocessable"),
    ),
    case(
        "X-Groupgate-Min-Revision: -1",
        check(headers=[("X-Groupgate-Min-Revision", "-1")]),
        expect=(422, "unprocessable"),
    ),
    case(
        "X-Groupgate-Min-Revision: empty",
        check(headers=[("X-Groupgate-Min-Revision", "")]),
        expect=(422, "unprocessable"),
    ),
    case(
        "a non-ASCII Authorization",
        check(auth=False, headers=[("Authorization", "Bearer ключ".encode())]),
        expect=(401, "unauthorized"),
    ),
    case(
        "a non-ASCII X-Groupgate-Key",
        check(auth=False, headers=[("X-Groupgate-Key", "ключ".encode())]),
        expect=(401, "unauthorized"),
    ),
    case(
        "a latin-1 byte in an unrelated header",
        check(headers=[("X-Note", b"caf\xe9")]),
        expect=OK,
        why="obs-text is allowed in field values (RFC 9110 5.5)",
    ),
    case(
        "UTF-8 in an unrelated header", check(headers=[("X-Note", "caf\u00e9".encode())]), expect=OK
    ),
    case(
        "NUL in a header value",
        check(headers=[("X-Note", b"a\x00b")]),
        expect=BAD,
        closes=True,
        why="NUL MUST be rejected or replaced (RFC 9110 5.5)",
    ),
    case(
        "a control character in a header value",
        check(headers=[("X-Note", b"a\x01b")]),
        expect=BAD,
        closes=True,
    ),
    case(
        "space before the colon",
        check(headers=[("X-Note ", "a")]),
        expect=BAD,
        closes=True,
        why="MUST 400 (RFC 9112 5.1)",
    ),
    case(
        "a header line without a colon",
        check_head(b"Content-Length: 2\r\nNoColon\r\n") + b"{}",
        expect=BAD,
        closes=True,
    ),
    case("an empty header name", check(headers=[("", "x")]), expect=BAD, closes=True),
    case(
        "a bad character in a header name",
        check(headers=[("X(Note)", "a")]),
        expect=BAD,
        closes=True,
    ),
    case(
        "obs-fold in an unrelated header",
        check_head(b"Content-Length: %d\r\nX-Note: a\r\n b\r\n" % len(CHECK)) + CHECK,
        expect=BAD,
        closes=True,
        why="reject obs-fold (RFC 9112 5.2): no header may be read two ways",
    ),
    case(
        "obs-fold in Authorization",
        check_head(b"Content-Length: %d\r\n" % len(CHECK)).replace(
            b"Authorization: Bearer ", b"Authorization: Bearer\r\n "
        )
        + CHECK,
        expect=BAD,
        closes=True,
    ),
    # ------------------------------------------------------------------ media types
    case("Content-Type missing", check(media=False), expect=OK),
    case(
        "Content-Type with charset",
        check(media=False, headers=[("Content-Type", "application/json; charset=utf-8")]),
        expect=OK,
    ),
    case(
        "Content-Type quoted charset",
        check(media=False, headers=[("Content-Type", 'application/json; charset="UTF-8"')]),
        expect=OK,
    ),
    case(
        "Content-Type in upper case",
        check(media=False, headers=[("Content-Type", "APPLICATION/JSON")]),
        expect=OK,
        why="media types are case-insensitive (RFC 9110 8.3.1)",
    ),
    case(
        "Content-Type +json",
        check(media=False, headers=[("Content-Type", "application/vnd.api+json")]),
        expect=OK,
    ),
    case(
        "Content-Type with space before ;",
        check(media=False, headers=[("Content-Type", "application/json ; charset=utf-8")]),
        expect=OK,
    ),
    case(
        "Content-Type text/plain",
        check(media=False, headers=[("Content-Type", "text/plain")]),
        expect=(415, "unsupported-media-type"),
    ),
    case(
        "Content-Type form",
        check(media=False, headers=[("Content-Type", "application/x-www-form-urlencoded")]),
        expect=(415, "unsupported-media-type"),
    ),
    case(
        "Content-Type application/jsonx",
        check(media=False, headers=[("Content-Type", "application/jsonx")]),
        expect=(415, "unsupported-media-type"),
    ),
    case(
        "Content-Type application/",
        check(media=False, headers=[("Content-Type", "application/")]),
        expect="4xx",
    ),
    case("Content-Type empty", check(media=False, headers=[("Content-Type", "")])),
    case(
        "Content-Type twice, both JSON",
        check(headers=[("Content-Type", "application/json")]),
        expect=400,
        why="Content-Type is a singleton field: two are ambiguous",
    ),
    case(
        "Content-Type twice, text/plain then JSON",
        check(
            media=False,
            headers=[("Content-Type", "text/plain"), ("Content-Type", "application/json")],
        ),
        expect=400,
    ),
    case(
        "Content-Type twice, JSON then text/plain",
        check(headers=[("Content-Type", "text/plain")]),
        expect=400,
    ),
    case(
        "Content-Type list-valued",
        check(media=False, headers=[("Content-Type", "application/json, text/plain")]),
        expect="4xx",
        why="Content-Type holds one media type",
    ),
    case(
        "Content-Type list-valued, text first",
        check(media=False, headers=[("Content-Type", "text/plain, application/json")]),
        expect="4xx",
    ),
    case(
        "Content-Encoding: gzip",
        check(body=gzip.compress(CHECK, mtime=0), headers=[("Content-Encoding", "gzip")]),
    ),
    case(
        "Content-Encoding: an unknown coding",
        check(headers=[("Content-Encoding", "frob")]),
        expect=(415, "unsupported-media-type"),
        why="an unacceptable content coding: 415 (RFC 9110 15.5.16)",
    ),
    # ------------------------------------------------------------------ limits
    case(
        "a header field over the field limit",
        check(headers=[("X-Big", "v" * (MAX_FIELD + 100))]),
        expect=(431, "headers-too-large"),
        closes=True,
    ),
    case(
        "a 20 KB header field",
        check(headers=[("X-Big", "v" * 20000)]),
        expect=(431, "headers-too-large"),
        closes=True,
    ),
    case(
        "a header field under the field limit",
        check(headers=[("X-Big", "v" * (MAX_FIELD - 100))]),
        expect=OK,
    ),
    case(
        "a header section over its limit",
        check(headers=[(f"X-Fill-{i}", "v" * 700) for i in range(7)]),
        expect=(431, "headers-too-large"),
        closes=True,
    ),
    case(
        "more header fields than allowed",
        check(headers=[(f"X-Fill-{i}", "v") for i in range(MAX_HEADERS)]),
        expect=(431, "headers-too-large"),
        closes=True,
    ),
    case(
        "header fields just under the count",
        check(headers=[(f"X-Fill-{i}", "v") for i in range(MAX_HEADERS - 6)]),
        expect=OK,
    ),
    case(
        "a body over the limit (Content-Length)",
        check(body=b" " * (MAX_BODY + 1)),
        expect=(413, "too-large"),
        closes=True,
    ),
    case(
        "a body over the limit without a credential",
        check(auth=False, body=b" " * (MAX_BODY + 1)),
        expect=(413, "too-large"),
        closes=True,
        why="the size is known before the body is read: refuse it before reading or authenticating",
    ),
    case("a body at the limit", check(body=CHECK + b" " * (MAX_BODY - len(CHECK))), expect=OK),
    case(
        "a chunked body over the limit",
        check_head(b"Transfer-Encoding: chunked\r\n") + chunked(b" " * 3000, b" " * 3000),
        expect=(413, "too-large"),
        closes=True,
    ),
    case(
        "an evaluation over the limit",
        evaluation(body=b" " * (MAX_BODY + 1)),
        expect=(413, "too-large"),
        closes=True,
    ),
    case(
        "Content-Length: 99999999999999999999",
        check_head(b"Content-Length: 99999999999999999999\r\n"),
        expect="4xx",
        closes=True,
    ),
    # ------------------------------------------------------------------ framing, smuggling
    case(
        "Content-Length and Transfer-Encoding",
        check_head(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
        why=FRAMING,
    ),
    case(
        "Transfer-Encoding and Content-Length",
        check_head(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
        why=FRAMING,
    ),
    case(
        "two different Content-Lengths",
        check_head(b"Content-Length: %d\r\nContent-Length: 2\r\n" % len(CHECK)) + CHECK,
        expect=BAD,
        closes=True,
        why=FRAMING,
    ),
    case(
        "two equal Content-Lengths",
        check_head(b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(CHECK), len(CHECK)))
        + CHECK,
        expect=frozenset({200, 400}),
    ),
    case(
        "Content-Length as a list",
        check_head(b"Content-Length: %d, %d\r\n" % (len(CHECK), len(CHECK))) + CHECK,
        expect=frozenset({200, 400}),
    ),
    case(
        "Content-Length: +5",
        check_head(b"Content-Length: +%d\r\n" % len(CHECK)) + CHECK,
        expect=BAD,
        closes=True,
    ),
    case("Content-Length: -1", check_head(b"Content-Length: -1\r\n"), expect=BAD, closes=True),
    case(
        "Content-Length: 0x10",
        check_head(b"Content-Length: 0x10\r\n") + b"x" * 16,
        expect=BAD,
        closes=True,
    ),
    case(
        "Content-Length: 1 0",
        check_head(b"Content-Length: 1 0\r\n") + b"x" * 10,
        expect=BAD,
        closes=True,
    ),
    case(
        "Content-Length with an Arabic-Indic digit",
        check_head("Content-Length: \u0662\r\n".encode()) + b"{}",
        expect=BAD,
        closes=True,
    ),
    case(
        "Content-Length shorter than the body, rest is garbage",
        check_head(b"Content-Length: 10\r\n") + CHECK,
        expect=((400, "invalid-json"), BAD),
        closes=True,
    ),
    case(
        "Transfer-Encoding: chunked, identity",
        check_head(b"Transfer-Encoding: chunked, identity\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
        why="chunked not last: MUST 400 and close (RFC 9112 6.3)",
    ),
    case(
        "Transfer-Encoding: gzip",
        check_head(b"Transfer-Encoding: gzip\r\n") + CHECK,
        expect=BAD,
        closes=True,
    ),
    case(
        "Transfer-Encoding: identity",
        check_head(b"Transfer-Encoding: identity\r\n") + CHECK,
        expect=BAD,
        closes=True,
    ),
    case(
        "Transfer-Encoding: xchunked",
        check_head(b"Transfer-Encoding: xchunked\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
    ),
    case(
        "Transfer-Encoding: Chunked (case)",
        check_head(b"Transfer-Encoding: Chunked\r\n") + chunked(CHECK),
        expect=OK,
        why="transfer-coding names are case-insensitive (RFC 9112 7)",
    ),
    case(
        "Transfer-Encoding: chunked twice",
        check_head(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")
        + chunked(CHECK),
        expect=BAD,
        closes=True,
        why="chunked applied twice (RFC 9112 6.1)",
    ),
    case(
        "Transfer-Encoding with a vertical tab",
        check_head(b"Transfer-Encoding:\x0bchunked\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
    ),
    case(
        "Transfer-Encoding in HTTP/1.0",
        check_head(b"Transfer-Encoding: chunked\r\n", b"HTTP/1.0") + chunked(CHECK),
        expect=BAD,
        closes=True,
        why="faulty framing in HTTP/1.0 (RFC 9112 6.1)",
    ),
    case(
        "Transfer-Encoding folded (obs-fold)",
        check_head(b"Transfer-Encoding:\r\n chunked\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
    ),
    case(
        "Transfer-Encoding : chunked (space before colon)",
        check_head(b"Transfer-Encoding : chunked\r\n") + chunked(CHECK),
        expect=BAD,
        closes=True,
    ),
    case(
        "a chunked body",
        check_head(b"Transfer-Encoding: chunked\r\n") + chunked(CHECK[:9], CHECK[9:]),
        expect=OK,
    ),
    case(
        "a chunk extension",
        check_head(b"Transfer-Encoding: chunked\r\n")
        + b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(CHECK), CHECK),
        expect=OK,
    ),
    case(
        "a trailer field",
        check_head(b"Transfer-Encoding: chunked\r\n") + chunked(CHECK, trailer=b"X-T: 1\r\n"),
        expect=OK,
    ),
    case(
        "chunk-size garbage",
        check_head(b"Transfer-Encoding: chunked\r\n") + b"zz\r\n" + CHECK + b"\r\n0\r\n\r\n",
        expect=BAD,
        closes=True,
    ),
    case(
        "chunk-size 0x prefix",
        check_head(b"Transfer-Encoding: chunked\r\n")
        + b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(CHECK), CHECK),
        expect=BAD,
        closes=True,
    ),
    case(
        "chunk-size negative",
        check_head(b"Transfer-Encoding: chunked\r\n") + b"-1\r\nx\r\n0\r\n\r\n",
        expect=BAD,
        closes=True,
    ),
    case(
        "chunk-size overflow",
        check_head(b"Transfer-Encoding: chunked\r\n") + b"fffffffffffffffff1\r\nx\r\n0\r\n\r\n",
        expect="4xx",
        closes=True,
    ),
    case(
        "chunk data longer than its size",
        check_head(b"Transfer-Encoding: chunked\r\n") + b"5\r\n" + CHECK + b"\r\n0\r\n\r\n",
        expect=BAD,
        closes=True,
    ),
    case(
        "chunks with bare LF",
        check_head(b"Transfer-Encoding: chunked\r\n") + b"%x\n%s\n0\n\n" % (len(CHECK), CHECK),
        expect=BAD,
        closes=True,
    ),
    case(
        "Upgrade: h2c",
        check(
            headers=[
                ("Connection", "Upgrade, HTTP2-Settings"),
                ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
            ]
        ),
        expect=frozenset({200, 400}),
    ),
    case(
        "Upgrade: websocket on the gateway",
        gateway(headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")]),
        expect=frozenset({200, 400}),
    ),
    # ------------------------------------------------------------------ pipelining
    case("two checks in one write", check() * 2, expect=(OK, OK)),
    case(
        "check, unknown path, check",
        check() + raw_request("POST", "/v1/nothing") + check(),
        expect=(OK, (404, "http-404"), OK),
    ),
    case(
        "check, bad JSON, check",
        check() + check(body=b"{") + check(),
        expect=(OK, (400, "invalid-json"), OK),
    ),
    case("check then garbage", check() + b"GARBAGE\r\n\r\n", expect=(OK, BAD), closes=True),
    case(
        "check then a smuggled CL+TE",
        check()
        + check_head(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n")
        + chunked(CHECK),
        expect=(OK, BAD),
        closes=True,
    ),
    case("ten checks in one write (over max_pipelined)", check() * 10, expect=(OK,) * 10),
    case(
        "Connection: close first: nothing after it is answered",
        check(headers=[("Connection", "close")]) + check(),
        expect=OK,
        closes=True,
        why="MUST NOT process further requests after close (RFC 9112 9.6)",
    ),
    case("check, evaluation, gateway", check() + evaluation() + gateway(), expect=(OK, OK, OK)),
    case(
        "pipelined with a body over the limit in the middle",
        check() + check(body=b" " * (MAX_BODY + 1)) + check(),
        expect=(OK, (413, "too-large")),
        closes=True,
    ),
    case(
        "two chunked checks in one write",
        (check_head(b"Transfer-Encoding: chunked\r\n") + chunked(CHECK)) * 2,
        expect=(OK, OK),
    ),
    case("requests split byte by byte", Trickle(check() * 2, 40, 0.005), expect=(OK, OK)),
    # ------------------------------------------------------------------ half-close
    case("a request, then half-close: answered", check(), HalfClose(), expect=OK, closes=True),
    case(
        "two requests, then half-close: both answered",
        check() * 2,
        HalfClose(),
        expect=(OK, OK),
        closes=True,
    ),
    case("an evaluation, then half-close", evaluation(), HalfClose(), expect=OK, closes=True),
    case("a gateway ask, then half-close", gateway(), HalfClose(), expect=OK, closes=True),
    case("half-close with nothing sent", HalfClose(), expect=(), answers=0, closes=True),
    case(
        "a request without its body, then half-close",
        check()[:-10],
        HalfClose(),
        closes=True,
        answers=0,
    ),
    # ------------------------------------------------------------------ slow clients
    case(
        "headers, then no body: 408", check()[: -len(CHECK)], expect=(408, "timeout"), closes=True
    ),
    case("half the headers, then nothing: 408", check()[:40], expect=(408, "timeout"), closes=True),
    case(
        "the request line only: 408",
        b"POST /v1/check HTTP/1.1\r\n",
        expect=(408, "timeout"),
        closes=True,
    ),
    case(
        "one chunk, then nothing: 408",
        check_head(b"Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n",
        expect=(408, "timeout"),
        closes=True,
    ),
    case(
        "a body trickled past the request timeout: 408",
        check()[: -len(CHECK)],
        Trickle(CHECK, 8, REQUEST_TIMEOUT / 3),
        expect=(408, "timeout"),
        closes=True,
    ),
    case(
        "a short pause before the body: answered",
        check()[: -len(CHECK)],
        Pause(0.2),
        CHECK,
        expect=OK,
    ),
    case(
        "an idle keep-alive connection is closed",
        check(),
        expect=OK,
        closes=True,
        why="idle past http_keepalive_timeout: closed without an answer",
    ),
    case("a connection that sends nothing is closed", expect=(), answers=0, closes=True),
    # ------------------------------------------------------------------ Expect
    case(
        "Expect: 100-continue, wait, then the body",
        check(headers=[("Expect", "100-continue")])[: -len(CHECK)],
        Await(1),
        CHECK,
        expect=(OK,),
    ),
    case(
        "Expect: 100-continue with the body at once",
        check(headers=[("Expect", "100-continue")]),
        expect=OK,
    ),
    case(
        "Expect: 100-Continue (case)",
        check(headers=[("Expect", "100-Continue")])[: -len(CHECK)],
        Await(1),
        CHECK,
        expect=OK,
        why="the expectation is case-insensitive (RFC 9110 10.1.1)",
    ),
    case(
        "Expect: something else",
        check(headers=[("Expect", "magic")]),
        expect=(417, "expectation-failed"),
    ),
    case("Expect: empty", check(headers=[("Expect", "")])),
    case(
        "Expect: 100-continue in HTTP/1.0 is ignored",
        check(version="HTTP/1.0", headers=[("Expect", "100-continue")]),
        expect=OK,
        closes=True,
        why="MUST ignore it in HTTP/1.0 (RFC 9110 10.1.1)",
    ),
    case(
        "Expect: 100-continue with a body over the limit",
        check(body=b" " * (MAX_BODY + 1), headers=[("Expect", "100-continue")])[: -(MAX_BODY + 1)],
        expect=(413, "too-large"),
        closes=True,
        why="refuse before asking for the body",
    ),
    case(
        "Expect: 100-continue without a credential",
        check(auth=False, headers=[("Expect", "100-continue")])[: -len(CHECK)],
        Await(1),
        CHECK,
    ),
    case(
        "Expect: 100-continue on an evaluation",
        evaluation(headers=[("Expect", "100-continue")])[: -len(EVALUATION)],
        Await(1),
        EVALUATION,
        expect=OK,
    ),
    case(
        "Connection: close on a single request",
        check(headers=[("Connection", "close")]),
        expect=OK,
        closes=True,
    ),
    # ------------------------------------------------------------------ more edges
    case("PUT /access/v1/evaluation", raw_request("PUT", "/access/v1/evaluation"), expect=405),
    case("DELETE /v1/gateway/auth (any method is asked)", gateway("DELETE"), expect=OK),
    case(
        "absolute-form with userinfo",
        raw_request("POST", "http://user@pdp/v1/check"),
        expect="4xx",
        why="userinfo in a target SHOULD be treated as an error (RFC 9110 4.2.4)",
    ),
    case("absolute-form without a path", raw_request("POST", "http://pdp"), expect="4xx"),
    case("Content-Length: 0", check(body=b"", length=True), expect=(400, "invalid-json")),
    case(
        "Content-Length with leading zeros",
        check_head(b"Content-Length: 000%d\r\n" % len(CHECK)) + CHECK,
        expect=OK,
        why="Content-Length = 1*DIGIT (RFC 9110 8.6)",
    ),
    case(
        "Connection: close, keep-alive (close wins)",
        check(headers=[("Connection", "keep-alive, close")]),
        expect=OK,
        closes=True,
    ),
    case(
        "Connection: CLOSE (case)", check(headers=[("Connection", "CLOSE")]), expect=OK, closes=True
    ),
    case(
        "Expect: 100-continue, foo (a list)",
        check(headers=[("Expect", "100-continue, foo")]),
        expect=(417, "expectation-failed"),
    ),
    case("a UTF-8 header name", check(headers=[("X-Nöte", "a")]), expect=BAD, closes=True),
    case("HOST in upper case", check(host=False, headers=[("HOST", "pdp")]), expect=OK),
    case(
        "X-Groupgate-Min-Revision with surrounding spaces",
        check(headers=[("X-Groupgate-Min-Revision", "  1  ")]),
        expect=OK,
        why="leading and trailing whitespace is not part of a field value (RFC 9110 5.5)",
    ),
    case(
        "X-Groupgate-Min-Revision: 99999999999999999999",
        check(headers=[("X-Groupgate-Min-Revision", "99999999999999999999")]),
        expect=(422, "unprocessable"),
    ),
    case(
        "Authorization: bearer (lower-case scheme)",
        check(auth=False, headers=[("Authorization", f"bearer {KEY}")]),
        expect=OK,
        why="auth schemes are case-insensitive (RFC 9110 11.1)",
    ),
    case(
        "Authorization: Bearer with no token",
        check(auth=False, headers=[("Authorization", "Bearer ")]),
        expect=(401, "unauthorized"),
    ),
    case("a CRLF after the body", check() + b"\r\n", expect=OK),
    case("a CRLF between two requests", check() + b"\r\n" + check(), expect=(OK, OK)),
    case(
        "an evaluation with X-Groupgate-Key",
        evaluation(auth=False, headers=[("X-Groupgate-Key", KEY)]),
        expect=OK,
    ),
    case(
        "an evaluation with two Authorization fields",
        evaluation(headers=[("Authorization", f"Bearer {KEY}")]),
        expect=(400, "duplicate-header"),
    ),
]
