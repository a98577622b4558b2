"""What the HTTP benchmark sends: the tenant, the questions, the answers, the wrk request lists.

Everything comes from `benchmarks.dataset` (the generator every suite shares): the tenant
document, which the servers load, and its check questions. groupgate's engine answers each
question in-process first (`Workload.expected`); the servers' answers are compared with these
before anything is timed, so a benchmark of wrong answers cannot happen silently.

The request lists are written as Lua files that `wrk/rotate.lua` loads:

    return {
      headers = {["Content-Type"] = "application/json", ...},   -- sent with every request
      requests = {
        {"POST", "/v1/check", nil, "{...json...}"},              -- method, path, headers, body
        {"GET", "/v1/gateway/auth", {["X-Original-URI"] = "/api/orders/r1"}, nil},
      },
    }

A few thousand entries at most: enough to rotate subjects, resources and restriction values,
few enough that LuaJIT's per-function constant limit (65,536) is never near.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson

from benchmarks import dataset
from benchmarks.dataset import Question
from groupgate.engine.approvers import active_approval_groups
from groupgate.engine.check import check, some
from groupgate.engine.graph import parse_graph
from groupgate.engine.profile import Profile, ProfileCompiler
from groupgate.model import Catalog, Graph
from groupgate.policy import RouteTable, load_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
#: Caller API key (>= 16 characters), bound to the benchmark tenant as `key:tenant`.
API_KEY = "bench-http-caller-key-0123456789"
#: HS256 secret (>= 32 bytes), issuer and audience the server is configured with.
JWT_SECRET = "bench-http-jwt-secret-0123456789abcdef"  # noqa: S105 - a throw-away test secret
JWT_ISSUER = "https://idp.bench.test"
JWT_AUDIENCE = "groupgate-bench"
AMOUNTS = ("120.00", "999.99", "2400.00", "4999.00", "7500.00", "20000.00", "75000.00")
JSON = {"Content-Type": "application/json"}


class WrongAnswerError(AssertionError):
    """A server's answer differs from groupgate's in-process engine: timing it means nothing."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request of a wrk list; `headers` are the ones beyond the list's common headers."""

    method: str
    path: str
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Workload:
    """The tenant, its questions and groupgate's in-process answers to them."""

    catalog: Catalog
    document: dict[str, Any]
    graph: Graph
    questions: list[Question]
    profiles: dict[str, Profile]
    expected: list[bool]

    @property
    def tenant(self) -> str:
        return self.graph.tenant


def prepare(*, subjects: int = 10_000, questions: int = 4_000, seed: int = 42) -> Workload:
    """Generate the tenant and questions; answer every question with groupgate's engine."""
    catalog = load_policy(POLICIES)
    document = dataset.tenant_document(seed, subjects)
    graph = parse_graph(document, catalog)
    asked = dataset.questions(document, catalog, seed=seed, count=questions)
    compiler = ProfileCompiler(catalog)
    # As the store compiles (SPEC section 5): an active approval group replaces its company's
    # Admins and Buyers as approvers.
    active = active_approval_groups(graph)
    profiles: dict[str, Profile] = {}
    for q in asked:
        if q.subject not in profiles:
            profiles[q.subject] = compiler.compile(
                graph.subjects[q.subject],
                graph.groups,
                graph.settings,
                tenant=graph.tenant,
                approval_groups=active,
            )
    expected = [
        check(profiles[q.subject], q.action, q.resource(i)).allow for i, q in enumerate(asked)
    ]
    return Workload(catalog, document, graph, asked, profiles, expected)


# --------------------------------------------------------------------------- request lists


def _resource_json(q: Question, index: int) -> dict[str, Any]:
    body: dict[str, Any] = {"type": q.type, "id": f"r{index}"}
    if q.company is not None:
        body["company"] = q.company
    if q.restrictions:
        body["restrictions"] = list(q.restrictions)
    if q.vendor is not None:
        body["vendor"] = q.vendor
    return body


def check_body(q: Question, index: int) -> bytes:
    """The `/v1/check` body of a question (SPEC section 4, native check)."""
    return orjson.dumps(
        {"subject": {"id": q.subject}, "action": q.action, "resource": _resource_json(q, index)}
    )


def check_requests(work: Workload) -> list[HttpRequest]:
    """One `/v1/check` per question (also what the bare handler is sent, byte for byte)."""
    return [
        HttpRequest("POST", "/v1/check", check_body(q, i)) for i, q in enumerate(work.questions)
    ]


def evaluation_item(q: Question, index: int) -> dict[str, Any]:
    """One AuthZEN evaluation: resource attributes travel as `resource.properties`."""
    props: dict[str, Any] = {}
    if q.company is not None:
        props["company"] = q.company
    if q.restrictions:
        props["restrictions"] = list(q.restrictions)
    if q.vendor is not None:
        props["vendor"] = q.vendor
    resource: dict[str, Any] = {"type": q.type, "id": f"r{index}"}
    if props:
        resource["properties"] = props
    return {
        "subject": {"type": "user", "id": q.subject},
        "action": {"name": q.action},
        "resource": resource,
    }


def evaluation_requests(work: Workload, *, items: int = 100, count: int = 200) -> list[HttpRequest]:
    """`count` `/access/v1/evaluations` bodies of `items` questions each (rotating)."""
    out: list[HttpRequest] = []
    n = len(work.questions)
    for b in range(count):
        start = (b * items) % n
        chosen = [(start + k) % n for k in range(items)]
        body = {"evaluations": [evaluation_item(work.questions[i], i) for i in chosen]}
        out.append(HttpRequest("POST", "/access/v1/evaluations", orjson.dumps(body)))
    return out


def purchase_requests(work: Workload, *, count: int = 2_000, seed: int = 42) -> list[HttpRequest]:
    """`/v1/purchases/evaluate` by customers, mostly for their own companies."""
    rng = random.Random(seed)
    customers = [s for s in work.document["subjects"] if s["kind"] == "customer"]
    companies = [c["id"] for c in work.document["companies"]]
    out: list[HttpRequest] = []
    for _ in range(count):
        subject = rng.choice(customers)
        own = list(subject["companies"])
        company = rng.choice(own) if rng.random() < 0.85 else rng.choice(companies)
        body = {
            "subject": {"id": subject["id"]},
            "company": company,
            "amount": rng.choice(AMOUNTS),
            "currency": "EUR",
        }
        out.append(HttpRequest("POST", "/v1/purchases/evaluate", orjson.dumps(body)))
    return out


def rsa_key() -> Any:
    """A fresh RSA key pair (2048 bits) for the RS256 workloads; the server gets `public_pem`."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    data: bytes = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def mint(
    subject: str,
    tenant: str,
    *,
    ttl: int = 4 * 3600,
    algorithm: str = "HS256",
    key: Any = JWT_SECRET,
) -> str:
    """A subject token as an identity provider would issue it (HS256 with `JWT_SECRET` unless
    told otherwise; RS256 with a private key from `rsa_key`)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "tenant": tenant,
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, key, algorithm=algorithm)


def _fill(template: str, index: int) -> str:
    return re.sub(r"\{[^}/]*\}", f"r{index}", template)


def gateway_requests(
    work: Workload,
    *,
    count: int = 2_000,
    seed: int = 42,
    tokens: int | None = None,
    algorithm: str = "HS256",
    key: Any = JWT_SECRET,
) -> tuple[list[HttpRequest], list[bool]]:
    """nginx `auth_request`-style GETs with a Bearer JWT; returns them and whether each is allowed.

    Routes rotate over the catalog's route table; subjects over the questions' subjects, or
    over the first `tokens` distinct ones (one token each), so that a list of thousands of
    requests presents a gateway's handful of live sessions again and again, as the cache of
    verified tokens sees them. The expected answer is the engine's `some` (the gateway knows
    the route, not the entity).
    """
    rng = random.Random(seed)
    routes = list(work.catalog.routes)
    table = RouteTable(routes)
    subjects = [q.subject for q in work.questions]
    if tokens is not None:
        subjects = list(dict.fromkeys(subjects))[:tokens]
    minted: dict[str, str] = {}
    out: list[HttpRequest] = []
    allowed: list[bool] = []
    for i in range(count):
        subject = subjects[i % len(subjects)]
        route = rng.choice(routes)
        uri = _fill(route.path, i)
        matched = table.match(route.method, uri)
        assert matched is not None, uri
        token = minted.get(subject)
        if token is None:
            token = minted[subject] = mint(subject, work.tenant, algorithm=algorithm, key=key)
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Original-URI": uri,
            "X-Original-Method": route.method,
        }
        out.append(HttpRequest("GET", "/v1/gateway/auth", None, headers))
        profile = work.profiles[subject]
        allowed.append(some(profile, matched.action, matched.resource_type).allow)
    return out, allowed


def single_evaluation_requests(work: Workload) -> list[HttpRequest]:
    """One AuthZEN `/access/v1/evaluation` per question (answers: `work.expected`)."""
    return [
        HttpRequest("POST", "/access/v1/evaluation", orjson.dumps(evaluation_item(q, i)))
        for i, q in enumerate(work.questions)
    ]


# --------------------------------------------------------------------------- Lua files


def lua_string(value: str | bytes) -> str:
    """A Lua string literal for `value`: printable ASCII as is, every other byte as `\\ddd`."""
    raw = value.encode() if isinstance(value, str) else value
    parts = ['"']
    for byte in raw:
        char = chr(byte)
        if char in '"\\':
            parts.append("\\" + char)
        elif 32 <= byte < 127:
            parts.append(char)
        else:
            parts.append(f"\\{byte:03d}")
    parts.append('"')
    return "".join(parts)


def _lua_headers(headers: Mapping[str, str]) -> str:
    items = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in sorted(headers.items()))
    return "{" + items + "}"


def lua_document(requests: Iterable[HttpRequest], headers: Mapping[str, str]) -> str:
    """The Lua source of a request list (see the module docstring for its shape)."""
    lines = ["-- generated by benchmarks/http/workload.py; do not edit", "return {"]
    lines.append(f"  headers = {_lua_headers(headers)},")
    lines.append("  requests = {")
    for r in requests:
        extra = _lua_headers(r.headers) if r.headers else "nil"
        body = lua_string(r.body) if r.body is not None else "nil"
        lines.append(f"    {{{lua_string(r.method)}, {lua_string(r.path)}, {extra}, {body}}},")
    lines.append("  },")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_lua(path: Path, requests: Sequence[HttpRequest], headers: Mapping[str, str]) -> Path:
    """Write a request list for `wrk/rotate.lua`; return the path."""
    path.write_text(lua_document(requests, headers), encoding="ascii")
    return path


def caller_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """JSON content type plus groupgate's caller credential."""
    return {**JSON, "Authorization": f"Bearer {API_KEY}", **(extra or {})}
