"""The proxy matrix: one set of requests sent through every real proxy of `deploy/gateways/`.

Each case is a request a client sends to the proxy and what must follow: `PASS` (200, and
the backend got it exactly once, with groupgate's identity headers and no other value of
them) or `BLOCKED` (one of the listed statuses, and the backend never got it). A case whose
outcome depends on the proxy says so per proxy (`Case.outcome`): a spoofed header that a
proxy passes through to groupgate is refused there (`families-disagree`); one that the proxy
never sends to groupgate (HAProxy's Lua sends only the headers it writes) cannot decide, so
the request is decided on what it really is.

Every request carries `X-Test-Case: <name>` so that the backend's record tells which case
reached it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from groupgate.auth import mint_token

SECRET = "gateway-recipes-secret-0123456789abcdef"
TENANT = "demo"
PASS = "pass"
BLOCKED = "blocked"
DENIED = frozenset({403})
UNAUTHORIZED = frozenset({401})
#: nginx refuses some repeated headers itself (400) before asking groupgate (403).
REFUSED = frozenset({400, 403})
ORIGINAL = ("X-Original-Method", "X-Original-URI")
FORWARDED = ("X-Forwarded-Method", "X-Forwarded-Uri")
PROXIES = ("nginx", "caddy", "haproxy")

Headers = tuple[tuple[str, str], ...]


def bearer(subject: str, secret: str = SECRET, ttl: int = 600) -> tuple[str, str]:
    return ("Authorization", f"Bearer {mint_token(secret, subject, ttl=ttl)}")


def family(names: tuple[str, str], method: str, uri: str) -> Headers:
    return ((names[0], method), (names[1], uri))


@dataclass(frozen=True)
class Case:
    """One request through the proxy and its expected outcome (per proxy when it differs)."""

    name: str
    method: str
    target: str
    headers: Headers
    expect: str
    subject: str | None = None
    statuses: frozenset[int] = DENIED
    per_proxy: dict[str, str] = field(default_factory=dict)

    def outcome(self, proxy: str) -> str:
        return self.per_proxy.get(proxy, self.expect)


ESCALATE = ("DELETE", "/api/orders/o-17")  # emp-viewer may not delete orders
LIST = ("GET", "/api/orders")  # emp-viewer may list them


def cases() -> list[Case]:
    """Every case of the matrix (tokens are minted now: they expire)."""
    viewer = bearer("emp-viewer")
    return [
        # Allowed requests reach the backend with groupgate's identity.
        Case("allowed", "GET", "/api/orders", (viewer,), PASS, "emp-viewer"),
        Case("allowed-query", "GET", "/api/orders/o-1?expand=lines", (viewer,), PASS, "emp-viewer"),
        Case("allowed-head", "HEAD", "/api/orders", (viewer,), PASS, "emp-viewer"),
        Case(
            "allowed-post",
            "POST",
            "/api/products/p-1/publish",
            (bearer("emp-catalog"),),
            PASS,
            "emp-catalog",
        ),
        Case(
            "client-identity-headers",
            "GET",
            "/api/orders",
            (viewer, ("X-Groupgate-Subject", "emp-admin"), ("X-Groupgate-Tenant", "other")),
            PASS,
            "emp-viewer",
        ),
        # Denied, unknown and non-normalised requests never do.
        Case("denied", *ESCALATE, (viewer,), BLOCKED),
        Case("unknown-route", "GET", "/api/nothing-here", (viewer,), BLOCKED),
        Case("encoded-slash", "GET", "/api/orders%2Fo-1", (viewer,), BLOCKED, statuses=REFUSED),
        Case("dot-segments", "GET", "/api/x/../orders", (viewer,), BLOCKED, statuses=REFUSED),
        Case(
            "client-identity-on-denied",
            *ESCALATE,
            (viewer, ("X-Groupgate-Subject", "emp-admin")),
            BLOCKED,
        ),
        # No token, or a bad one.
        Case("no-token", "GET", "/api/orders", (), BLOCKED, statuses=UNAUTHORIZED),
        Case(
            "garbage-token",
            "GET",
            "/api/orders",
            (("Authorization", "Bearer not.a.token"),),
            BLOCKED,
            statuses=UNAUTHORIZED,
        ),
        Case(
            "forged-token",
            "GET",
            "/api/orders",
            (bearer("emp-viewer", secret="x" * 40),),
            BLOCKED,
            statuses=UNAUTHORIZED,
        ),
        Case(
            "expired-token",
            "GET",
            "/api/orders",
            (bearer("emp-viewer", ttl=-120),),
            BLOCKED,
            statuses=UNAUTHORIZED,
        ),
        # The attack: a DELETE that claims, in either header family, to be a GET of the list.
        Case("escalate-via-x-original", *ESCALATE, (viewer, *family(ORIGINAL, *LIST)), BLOCKED),
        Case("escalate-via-x-forwarded", *ESCALATE, (viewer, *family(FORWARDED, *LIST)), BLOCKED),
        Case(
            "escalate-via-both-families",
            *ESCALATE,
            (viewer, *family(ORIGINAL, *LIST), *family(FORWARDED, *LIST)),
            BLOCKED,
        ),
        # An allowed request whose spoofed headers disagree with it: refused where the proxy
        # passes the spoofed family to groupgate, decided on the truth where it does not.
        Case(
            "other-family-disagrees",
            *LIST,
            (viewer, *family(FORWARDED, *ESCALATE)),
            BLOCKED,
            "emp-viewer",
            per_proxy={"caddy": PASS, "haproxy": PASS},
        ),
        Case(
            "x-original-disagrees",
            *LIST,
            (viewer, *family(ORIGINAL, *ESCALATE)),
            PASS,
            "emp-viewer",
            per_proxy={"caddy": BLOCKED},
        ),
        Case(
            "families-disagree",
            *LIST,
            (viewer, *family(ORIGINAL, "GET", "/api/orders/o-1"), *family(FORWARDED, *ESCALATE)),
            BLOCKED,
            "emp-viewer",
            per_proxy={"haproxy": PASS},
        ),
        # Repeated credentials and consistency tokens.
        Case(
            "duplicate-authorization",
            *LIST,
            (viewer, viewer),
            BLOCKED,
            statuses=REFUSED,
        ),
        Case(
            "two-authorizations",
            *LIST,
            (bearer("emp-catalog"), viewer),
            BLOCKED,
            statuses=REFUSED,
        ),
        Case(
            "duplicate-key",
            *LIST,
            (viewer, ("X-Groupgate-Key", "k" * 24), ("X-Groupgate-Key", "k" * 24)),
            BLOCKED,
        ),
        Case(
            "duplicate-min-revision",
            *LIST,
            (viewer, ("X-Groupgate-Min-Revision", "1"), ("X-Groupgate-Min-Revision", "1")),
            BLOCKED,
        ),
        Case("bad-min-revision", *LIST, (viewer, ("X-Groupgate-Min-Revision", "1x")), BLOCKED),
    ]


# --------------------------------------------------------------------------- backend and client


@dataclass
class Seen:
    """One request as the backend got it."""

    method: str
    target: str
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Backend:
    """The upstream: answers 200 to everything and records what reached it."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.port = port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _record(self, request: web.Request) -> web.Response:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        self.seen.append(Seen(request.method, request.raw_path, headers))
        return web.Response(text="backend\n")

    def of(self, case: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.values("X-Test-Case") == [case]]


async def send(port: int, method: str, target: str, headers: Headers) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request byte for byte (repeated headers, raw target); return the
    status and the raw head of the answer."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0]
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise AssertionError(f"{method} {target}: no HTTP answer ({answer[:200]!r})")
    return int(parts[1]), head


async def run_matrix(proxy: str, port: int, backend: Backend) -> list[str]:
    """Send every case through the proxy on `port`; return what went wrong (empty: nothing)."""
    problems: list[str] = []
    passed = 0
    for case in cases():
        headers = (("X-Test-Case", case.name), *case.headers)
        status, head = await send(port, case.method, case.target, headers)
        reached = backend.of(case.name)
        if case.outcome(proxy) == PASS:
            problems += _passed(case, status, reached)
            passed += 1
        elif reached or status not in case.statuses:
            problems.append(
                f"{case.name}: expected one of {sorted(case.statuses)} and no request at the "
                f"backend, got {status} and {len(reached)} request(s)"
            )
        elif status == 401 and b"\r\nwww-authenticate: bearer" not in head.lower():
            problems.append(f"{case.name}: a 401 without the Bearer challenge")
    if len(backend.seen) != passed:
        problems.append(f"{len(backend.seen)} requests reached the backend, {passed} cases passed")
    return problems


async def fails_closed(port: int, backend: Backend) -> list[str]:
    """With groupgate unreachable, an otherwise allowed request must not reach the backend."""
    status, _ = await send(port, "GET", "/api/orders", (bearer("emp-viewer"),))
    if status < 400 or backend.seen:
        return [f"groupgate down: got {status}, {len(backend.seen)} request(s) at the backend"]
    return []


async def client_identity_kept_out(port: int, backend: Backend) -> list[str]:
    """Behind an auth answer without identity headers, the client's copies never arrive."""
    spoofed: Headers = (
        bearer("emp-viewer"),
        ("X-Groupgate-Subject", "emp-admin"),
        ("X-Groupgate-Tenant", "other"),
    )
    await send(port, "GET", "/api/orders", spoofed)
    leaked = [
        value
        for seen in backend.seen
        for value in seen.values("X-Groupgate-Subject") + seen.values("X-Groupgate-Tenant")
        if value in ("emp-admin", "other")
    ]
    return [f"the client's identity headers reached the backend: {leaked}"] if leaked else []


def _passed(case: Case, status: int, reached: list[Seen]) -> list[str]:
    if status != 200 or len(reached) != 1:
        return [
            f"{case.name}: expected 200 and one request at the backend, got {status} and "
            f"{len(reached)}"
        ]
    seen = reached[0]
    identity = (seen.values("X-Groupgate-Subject"), seen.values("X-Groupgate-Tenant"))
    if identity != ([case.subject], [TENANT]):
        return [f"{case.name}: the backend got identity {identity}"]
    if (seen.method, seen.target) != (case.method, case.target):
        return [f"{case.name}: the backend got {seen.method} {seen.target}"]
    return []
