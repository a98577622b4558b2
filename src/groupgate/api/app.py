"""The aiohttp application factory: state, limits, routes of every surface, resources.

`create_app(config, service)` wires a ready `GraphService` (its `Decider` and `Admin`) into an
application. State lives under one typed `web.AppKey` (`STATE`) so a handler reaches it with
one look-up; the JWKS HTTP client is opened and closed in `cleanup_ctx`. `build_app(config)`
is what `groupgate serve` runs: it opens the service, loads the data files and closes the
service on shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import aiohttp.http_parser
import aiohttp.web_protocol
import orjson
import yaml
from aiohttp import web

from groupgate import log, tracing
from groupgate.api import problems
from groupgate.audit import trail as audit_trail
from groupgate.audit.trail import AuditTrail
from groupgate.auth import Authenticator, Caller, JwtVerifier
from groupgate.config import Config, ConfigError
from groupgate.errors import Forbidden, NotFound, StoreUnavailable
from groupgate.model import Catalog
from groupgate.policy import RouteTable
from groupgate.store.contract import Admin, Decider
from groupgate.store.flows import Flows


class Service(Protocol):
    """What the API needs from the store (the `GraphService`): the `Decider` and the `Admin`
    it built, the approval flows, and the swap of the policy set (a reload)."""

    catalog: Catalog
    flows: Flows

    @property
    def decider(self) -> Decider: ...

    @property
    def admin(self) -> Admin: ...

    def use_catalog(self, catalog: Catalog) -> None: ...


class Tenants:
    """Resolve the tenant of a request: the credential's, the request's, the default, the only.

    A credential bound to a tenant never decides in another one (403). The list of loaded
    tenants, needed only when no default is configured, is cached for `ttl` seconds and
    dropped after admin writes that create or delete tenants; while the store is unreachable
    the last list read stays in use.
    """

    def __init__(self, service: Decider, default: str | None, ttl: float = 1.0) -> None:
        self.service = service
        self.default = default
        self.ttl = ttl
        self._known: list[str] = []
        self._at = float("-inf")

    async def resolve(self, requested: str | None, caller: Caller) -> str:
        found = self.known(requested, caller)
        if found is not None:
            return found
        now = time.monotonic()
        if now - self._at > self.ttl:
            try:
                self._known = await self.service.tenants()
                self._at = now
            except StoreUnavailable:
                # Redis is down: keep the list last read, if any. The decision that follows
                # enforces the staleness bound itself (flagged answers, then 503).
                if not self._known:
                    raise
        if len(self._known) == 1:
            return self._known[0]
        raise NotFound(
            "no tenant given, no default tenant configured, and "
            f"{len(self._known)} tenants are loaded: name one"
        )

    def known(self, requested: str | None, caller: Caller) -> str | None:
        """`resolve` without awaiting: None when the tenant list must be read (await `resolve`)."""
        bound = caller.tenant
        if bound is not None:
            if requested is not None and requested != bound:
                raise Forbidden(f"this credential is bound to tenant {bound!r}")
            return bound
        if requested is not None:
            return requested
        return self.default

    def forget(self) -> None:
        self._at = float("-inf")


@dataclass(slots=True)
class State:
    """Everything a handler needs, reached through `request.app[STATE]`."""

    config: Config
    service: Service
    #: The service's decider and admin writer, for the decision and the admin routes.
    decider: Decider
    admin: Admin
    catalog: Catalog
    routes: RouteTable
    auth: Authenticator
    tenants: Tenants
    metrics: Any
    #: Valid actions per resource type: the level actions plus the governing type's named ones.
    actions: dict[str, frozenset[str]]
    #: The audit trail (`groupgate.audit.trail`), None when no sink is configured.
    audit: AuditTrail | None
    extra: dict[str, Any] = field(default_factory=dict)


STATE = web.AppKey("groupgate_state", State)


def valid_actions(catalog: Catalog) -> dict[str, frozenset[str]]:
    """Return, per resource type, every action a check may name."""
    levels = frozenset(catalog.levels)
    out: dict[str, frozenset[str]] = {}
    for type_id, rtype in catalog.types.items():
        governing = catalog.types[rtype.parent] if rtype.parent else rtype
        out[type_id] = levels | governing.actions
    return out


def http_parser_is_c() -> bool:
    """True when aiohttp's server uses its C (llhttp) request parser.

    `web_protocol` binds the parser it will instantiate at import time; the pure-Python one
    is `http_parser.HttpRequestParserPy` (chosen when the extension is missing or
    `AIOHTTP_NO_EXTENSIONS` is set), so comparing identities is robust across versions.
    """
    used = getattr(aiohttp.web_protocol, "HttpRequestParser", None)
    python = getattr(aiohttp.http_parser, "HttpRequestParserPy", None)
    return used is not None and used is not python


def require_c_parser(config: Config) -> None:
    """Refuse to start on the pure-Python HTTP parser unless explicitly allowed."""
    if not http_parser_is_c() and not config.allow_py_parser:
        raise ConfigError(
            "aiohttp runs its pure-Python HTTP parser (C extension missing or "
            "AIOHTTP_NO_EXTENSIONS set): it is slow and less strict. Reinstall aiohttp with "
            "its extensions, or set GROUPGATE_ALLOW_PY_PARSER=1 to run anyway"
        )


def create_app(config: Config, service: Service) -> web.Application:
    """Return the application for `service` under `config` (the service stays the caller's)."""
    from groupgate.api import (
        admin,
        approvals,
        authzen,
        decisions,
        front,
        gateway,
        native,
        ops,
        policies,
        purchases,
        spend,
    )
    from groupgate.api.ops import Metrics

    log.quiet_malformed_http()  # aiohttp's own reports of a client's bad HTTP: no tracebacks
    app = front.application(config.http, config.limits.max_body_bytes)
    if config.otel:
        if tracing.TRACER is None:
            tracing.enable()
        app.middlewares.append(tracing.request_middleware())
    session_holder: dict[str, aiohttp.ClientSession] = {}

    async def fetch(url: str) -> bytes:
        session = session_holder.get("session")
        if session is None:
            raise OSError("the JWKS client is not running")
        timeout = aiohttp.ClientTimeout(total=5)
        async with session.get(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise OSError(f"JWKS answered {response.status}")
            return await response.content.read(1024 * 1024)

    verifier = JwtVerifier(config.jwt, fetch)
    state = State(
        config=config,
        service=service,
        decider=service.decider,
        admin=service.admin,
        catalog=service.catalog,
        routes=RouteTable(service.catalog.routes),
        auth=Authenticator(config, verifier),
        tenants=Tenants(service.decider, config.default_tenant, ttl=max(config.poll_interval, 0.2)),
        metrics=Metrics(service),
        actions=valid_actions(service.catalog),
        audit=audit_trail.build(config.audit, getattr(service, "client", None)),
    )
    app[STATE] = state
    if state.audit is not None:
        trail = state.audit
        state.metrics.registry.register(audit_trail.AuditCollector(trail))

        async def audit_writer(app: web.Application) -> AsyncIterator[None]:
            trail.start()
            yield
            await trail.close()

        app.cleanup_ctx.append(audit_writer)

    async def jwks_client(app: web.Application) -> AsyncIterator[None]:
        if config.jwt.jwks_url is not None:
            session_holder["session"] = aiohttp.ClientSession()
        yield
        session = session_holder.pop("session", None)
        if session is not None:
            await session.close()

    app.cleanup_ctx.append(jwks_client)
    native.setup(app)
    decisions.setup(app)
    purchases.setup(app)
    spend.setup(app)
    authzen.setup(app)
    gateway.setup(app)
    approvals.setup(app)  # before the admin API's generic routes
    admin.setup(app)
    policies.setup(app)
    ops.setup(app)
    problems.add_unmatched(app)
    limits = config.limits
    front.use_expect_handler(
        app, {"admin.import_graph": limits.max_import_bytes}, limits.max_body_bytes
    )
    for route in app.router.routes():
        if not problems.is_guarded(route.handler):
            raise RuntimeError(f"route {route.method} {route.resource} is not guarded")
    return app


def read_document(path: Path) -> Any:
    """Read a graph document file (JSON, or YAML by its suffix)."""
    raw = path.read_bytes()
    if path.suffix in {".yaml", ".yml"}:
        return yaml.safe_load(raw)
    return orjson.loads(raw)


async def build_app(config: Config) -> web.Application:
    """Open the store, load `config.data`, and return the app; closes the store on cleanup."""
    from groupgate.policy import load_policy
    from groupgate.store.service import GraphService

    catalog = await asyncio.to_thread(load_policy, config.policies)
    service = await GraphService.open(
        catalog,
        config.redis_url,
        cache_size=config.cache_size,
        max_staleness=config.max_staleness,
        poll_interval=config.poll_interval,
        pool_size=config.pool_size,
        pool_timeout=config.pool_timeout,
        spend_retention=config.spend_retention_days * 86_400,
        events_maxlen=config.events_maxlen,
        approval_ttl=config.approval_ttl,
        approval_sweep_interval=config.approval_sweep_interval,
        write_replicas=config.write_replicas,
        write_wait_ms=config.write_wait_ms,
    )
    try:
        for path in config.data:
            document = await asyncio.to_thread(read_document, path)
            revision = await service.admin.import_graph(None, document)
            log.api.info("loaded %s (revision %d)", path, revision)
    except BaseException:
        await service.close()
        raise
    app = create_app(config, service)

    async def close_service(app: web.Application) -> None:
        await service.close()

    app.on_cleanup.append(close_service)
    return app
