"""Settings, read once from `GROUPGATE_*` variables and an optional YAML or TOML file.

Precedence, lowest first: defaults, the file (`GROUPGATE_CONFIG` or `--config`), the
environment, command-line flags. Everything is validated here, at start-up: a bad value stops
the process with a message naming the setting and what is wrong (`ConfigError`).

The file uses the environment names without the prefix, lower-cased (`max_batch: 500`); the
sections `jwt:`, `limits:` and `http:` may group their keys (`jwt: {secret: ...}` is
`jwt_secret`, `http: {max_connections: ...}` is `http_max_connections`).

Credentials:
- `api_keys` / `GROUPGATE_API_KEYS`: comma-separated caller keys; `key:tenant` binds a key to
  one tenant. `admin_keys` / `GROUPGATE_ADMIN_KEYS`: the same for admin keys (which may also
  ask decisions). With no key configured, decision endpoints are open, which only the demo
  (`demo` / `GROUPGATE_DEMO=1`, `serve --demo`) accepts: `serve` refuses to start without an
  API key or a JWT verifier otherwise. The admin API is open only with `admin_open` /
  `GROUPGATE_ADMIN_OPEN=1` (the demo sets it when no admin key is configured), else refused.
- `jwt_*`: how subject tokens (gateway) are verified; see `JwtSettings`.

`HELP` says what each setting does; `describe(name)` adds its default and variable, for
`--help` (every entry of `PARSERS` has one: tests/api/test_cli.py checks it).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import groupgate
from groupgate.errors import GroupgateError

MIB = 1024 * 1024
DEFAULT_PORT = 8181
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+cluster://",
    "rediss+cluster://",
    "redis+sentinel://",
)


class ConfigError(GroupgateError):
    """A setting is missing or invalid; the message names it. The process must not start."""

    title = "Invalid configuration"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A caller credential: the key, the tenant it is bound to (None: any), admin or not."""

    key: str = field(repr=False)
    tenant: str | None = None
    admin: bool = False


@dataclass(frozen=True, slots=True)
class JwtSettings:
    """How JWTs are verified: pinned algorithms, keys, claims, clock leeway, JWKS refresh."""

    algorithms: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)
    public_keys: tuple[str, ...] = field(default=(), repr=False)
    jwks_file: Path | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    leeway: float = 5.0
    subject_claim: str = "sub"
    tenant_claim: str = "tenant"
    #: At most one JWKS fetch per this many seconds, however many unknown `kid`s arrive.
    jwks_refresh_interval: float = 30.0
    #: A fetched JWKS is re-read after this many seconds (key rotation without unknown kids).
    jwks_ttl: float = 300.0
    #: Accept service JWTs as caller credentials (tenant from the tenant claim).
    caller_tokens: bool = False
    #: The scope (claim `scope` or `scp`) that makes a caller JWT an admin credential.
    admin_scope: str = "groupgate:admin"
    #: Verified subject tokens remembered (by digest, until `exp`) so that a token seen again
    #: is not re-verified; 0 turns the cache off.
    cache_size: int = 10_000

    @property
    def configured(self) -> bool:
        return bool(self.algorithms)


@dataclass(frozen=True, slots=True)
class Limits:
    """Every request limit, with its default."""

    max_body_bytes: int = MIB
    max_import_bytes: int = 64 * MIB
    max_batch: int = 1000
    max_json_depth: int = 32
    search_page_size: int = 100
    max_search_page: int = 1000
    #: Entities an export reads per store round trip (`store/export.py`).
    export_batch: int = 500
    #: Bytes of an export the admin endpoint holds back before it starts sending: an export
    #: that a write interrupts within them restarts unseen (`api/admin.py`).
    export_buffer_bytes: int = MIB
    #: Times an export restarts when a write moves the revision under it (then 409).
    export_attempts: int = 5


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The HTTP front's limits, shared by every listener (main port and decision port).

    Each is `http_<name>` in a file's flat form and `GROUPGATE_HTTP_<NAME>` in the
    environment. A request past a size limit gets a 4xx problem (414, 431, 413) and the
    connection is closed; a connection past `max_connections` (per worker process) gets a 503
    with `Retry-After` and is closed.
    """

    #: The request target (path and query), bytes.
    max_url_bytes: int = 8192
    #: One header line (name and value), bytes.
    max_field_bytes: int = 8190
    #: The whole header section (names and values), bytes.
    max_header_bytes: int = 65536
    #: Header fields in one request.
    max_headers: int = 100
    #: Seconds an idle keep-alive connection stays open.
    keepalive_timeout: float = 75.0
    #: Seconds a client has to send one whole request (headers and body) once it began: past
    #: it the answer is a 408 and the connection is closed.
    request_timeout: float = 60.0
    #: Open connections per worker process and listener; more are refused with a 503.
    max_connections: int = 1024
    #: Requests read ahead of their answers on one connection (pipelining).
    max_pipelined: int = 32
    #: Seconds in-flight requests get to finish on shutdown.
    shutdown_grace: float = 10.0
    #: After a burst of at least `memory_trim_peak` open connections has fallen to a quarter,
    #: hand the freed heap back to the system (`api/memory.py`), at most once per this many
    #: seconds; 0 never does.
    memory_trim_interval: float = 1.0
    memory_trim_peak: int = 64


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """The audit trail (`groupgate.audit`): where decision records go and how much may wait.

    Each is `audit_<name>` in a file's flat form and `GROUPGATE_AUDIT_<NAME>` in the
    environment. Records wait in a bounded buffer and are written in batches off the
    request path; past `buffer` waiting records, new ones are dropped, counted and logged.
    """

    #: Sinks: `stdout`, `file`, `redis` (a capped stream). `decision_log` adds `stdout`.
    sinks: tuple[str, ...] = ()
    #: The file sink's path, rotated past `file_max_bytes` keeping `file_backups` old files.
    file: str | None = None
    file_max_bytes: int = 100 * MIB
    file_backups: int = 5
    #: The Redis stream sink keeps about this many records (XADD MAXLEN ~).
    stream_max_len: int = 1_000_000
    #: Records waiting to be written, at most; past it the oldest are dropped (counted and
    #: logged).
    buffer: int = 100_000
    #: Records written in one batch (a Redis stream entry), and how often what waits is
    #: written (ms). A write's fixed cost is large beside a record's, so a round's records
    #: go in one batch: under load on the decision listener, batches of 500 cost 2.7 points
    #: of throughput more than batches of 2,500 (`benchmarks/operations.py`'s pairs).
    batch: int = 5000
    flush_ms: int = 200
    #: Record fields written as a digest instead of their value (e.g. subject, caller).
    mask: tuple[str, ...] = ()


AUDIT_SINKS = ("stdout", "file", "redis")

GATEWAY_KINDS = ("nginx", "caddy", "traefik", "haproxy", "envoy")

#: Set by `serve --workers N` for its workers to the supervisor's pid: a policy reload asked
#: of one worker reaches the others through it (api/policies.py).
SUPERVISOR_ENV = "GROUPGATE_SUPERVISOR_PID"


@dataclass(frozen=True, slots=True)
class Config:
    """The validated settings of one process."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    decision_port: int | None = None
    workers: int = 1
    redis_url: str | None = None
    policies: Path = field(default_factory=lambda: default_policies())
    data: tuple[Path, ...] = ()
    default_tenant: str | None = None
    api_keys: tuple[ApiKey, ...] = ()
    admin_open: bool = False
    jwt: JwtSettings = field(default_factory=JwtSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    limits: Limits = field(default_factory=Limits)
    http: HttpLimits = field(default_factory=HttpLimits)
    #: Which gateway calls forward-auth: it decides which headers carry the original
    #: request (see `groupgate.api.gateway`).
    gateway_kind: str = "nginx"
    cache_size: int = 100_000
    max_staleness: float = 30.0
    #: Seconds between revision polls: the longest a cached answer can lag a store that lost
    #: or rolled back writes without a change event (a failover, a restore).
    poll_interval: float = 0.25
    #: Replicas a write waits for (`WAIT`) before it is acknowledged; None: as many as the
    #: primary has connected (0 when none).
    write_replicas: int | None = None
    #: Milliseconds a write waits for its replicas (then a 503 `not-replicated`).
    write_wait_ms: int = 1000
    #: Days a committed order's ledger record is kept (its release must find it).
    spend_retention_days: int = 400
    pool_size: int = 64
    pool_timeout: float = 2.0
    decision_log: bool = False
    log_level: str = "info"
    log_format: str = "json"
    #: Log lines waiting for `serve`'s writer thread to put them on stderr, at most; past
    #: it a line is dropped and counted (a stderr nobody reads must not stall decisions).
    log_buffer: int = 10_000
    allow_py_parser: bool = False
    public_url: str | None = None
    #: Seconds between looks at the policy files for a change (0: only SIGHUP and the admin
    #: endpoint reload them).
    policy_watch: float = 0.0
    #: OpenTelemetry traces (the `otel` extra), exported as the `OTEL_*` variables say.
    otel: bool = False
    #: Demo mode (`serve --demo`): the demo graph, open admin API, open decisions.
    demo: bool = False
    #: Seconds a pending approval flow lives before it expires (SPEC section 5: 7 days).
    approval_ttl: float = 7 * 24 * 3600.0
    #: Seconds between sweeps that expire pending flows past their expiry.
    approval_sweep_interval: float = 60.0
    #: Entries kept in each tenant's event stream (approximately: MAXLEN ~).
    events_maxlen: int = 100_000

    @property
    def keys_configured(self) -> bool:
        return bool(self.api_keys)


def default_policies() -> Path:
    """The repo's `policies/` next to the package when it exists (a checkout or an editable
    install), else the copy installed inside the package, else `./policies`."""
    package = Path(groupgate.__file__).resolve().parent
    for candidate in (package.parents[1] / "policies", package / "policies"):
        if (candidate / "catalog.yaml").is_file():
            return candidate
    return Path("policies")


# --------------------------------------------------------------------------- value parsers


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value) == "":
        raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    return str(value)


def _int(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise ConfigError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
        return number

    return parse


def _seconds(name: str, value: Any) -> float:
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else -1.0
    except ValueError:
        number = -1.0
    if not 0 <= number <= 86_400:
        raise ConfigError(f"{name}: expected seconds between 0 and 86400, got {value!r}")
    return number


def _replicas(name: str, value: Any) -> int | None:
    """`auto` (None: the connected replicas) or a number of replicas."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return _int(0, 64)(name, value)


def _ttl(name: str, value: Any) -> float:
    """A lifetime in seconds: more than 0, at most a year (flows wait days, not seconds)."""
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else -1.0
    except ValueError:
        number = -1.0
    if not 0 < number <= 366 * 86_400:
        raise ConfigError(f"{name}: expected seconds in (0, {366 * 86_400}], got {value!r}")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}: expected true/false (1/0), got {value!r}")


def _list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        items = [_text(name, v).strip() for v in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    return tuple(item for item in items if item)


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(name: str, value: Any) -> str:
        text = _text(name, value).lower()
        if text not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "host": _text,
    "port": _int(0, 65535),
    "decision_port": _int(1, 65535),
    "workers": _int(1, 256),
    "redis_url": _text,
    "policies": _text,
    "data": _list,
    "default_tenant": _text,
    "api_keys": _list,
    "admin_keys": _list,
    "admin_open": _bool,
    "cache_size": _int(1, 100_000_000),
    "max_staleness": _seconds,
    "poll_interval": _seconds,
    "write_replicas": _replicas,
    "write_wait_ms": _int(1, 1500),
    "spend_retention_days": _int(1, 3660),
    "pool_size": _int(1, 10_000),
    "pool_timeout": _seconds,
    "decision_log": _bool,
    "log_level": _choice("debug", "info", "warning", "error", "critical"),
    "log_format": _choice("json", "text"),
    "log_buffer": _int(100, 10_000_000),
    "allow_py_parser": _bool,
    "public_url": _text,
    "policy_watch": _seconds,
    "otel": _bool,
    "demo": _bool,
    "approval_ttl": _ttl,
    "approval_sweep_interval": _seconds,
    "events_maxlen": _int(100, 100_000_000),
    "max_body_bytes": _int(1024, 1024 * MIB),
    "max_import_bytes": _int(1024, 16 * 1024 * MIB),
    "max_batch": _int(1, 1_000_000),
    "max_json_depth": _int(4, 512),
    "search_page_size": _int(1, 100_000),
    "max_search_page": _int(1, 100_000),
    "export_batch": _int(1, 100_000),
    "export_buffer_bytes": _int(0, 1024 * MIB),
    "export_attempts": _int(1, 1000),
    "http_max_url_bytes": _int(256, 1 * MIB),
    "http_max_field_bytes": _int(256, 1 * MIB),
    "http_max_header_bytes": _int(1024, 16 * MIB),
    "http_max_headers": _int(8, 10_000),
    "http_keepalive_timeout": _seconds,
    "http_request_timeout": _seconds,
    "http_max_connections": _int(1, 1_000_000),
    "http_max_pipelined": _int(1, 10_000),
    "http_shutdown_grace": _seconds,
    "http_memory_trim_interval": _seconds,
    "http_memory_trim_peak": _int(1, 1_000_000),
    "gateway_kind": _choice(*GATEWAY_KINDS),
    "jwt_algorithms": _list,
    "jwt_secret": _text,
    "jwt_public_keys": _list,
    "jwt_jwks_file": _text,
    "jwt_jwks_url": _text,
    "jwt_issuer": _text,
    "jwt_audience": _list,
    "jwt_leeway": _seconds,
    "jwt_subject_claim": _text,
    "jwt_tenant_claim": _text,
    "jwt_jwks_refresh_interval": _seconds,
    "jwt_jwks_ttl": _seconds,
    "jwt_caller_tokens": _bool,
    "jwt_admin_scope": _text,
    "audit_sinks": _list,
    "audit_file": _text,
    "audit_file_max_bytes": _int(1024, 1 << 40),
    "audit_file_backups": _int(0, 1000),
    "audit_stream_max_len": _int(1, 1 << 40),
    "audit_buffer": _int(1, 100_000_000),
    "audit_batch": _int(1, 1_000_000),
    "audit_flush_ms": _int(1, 60_000),
    "audit_mask": _list,
    "jwt_cache_size": _int(0, 10_000_000),
}
SECTIONS = {"jwt": "jwt_", "limits": "", "http": "http_", "audit": "audit_"}

#: What each setting does, for `--help` (`describe` adds the default and the variable).
HELP: dict[str, str] = {
    "host": "address to listen on",
    "port": "port of the API (0: any free port)",
    "decision_port": "also serve POST /v1/check, /access/v1/evaluation and forward-auth on "
    "this port through the lean decision listener",
    "workers": "worker processes sharing the port (SO_REUSEPORT); with the embedded store each "
    "holds its own graph, so use a Redis for more than one",
    "redis_url": "the graph store (redis://, rediss://, unix://, redis+cluster://, "
    "redis+sentinel://host:port,host:port/primary-name); unset: the embedded in-process "
    "store, not persisted",
    "policies": "policy directory (catalog.yaml, roles.yaml, ...); reloaded on SIGHUP and "
    "POST /v1/admin/policies/reload",
    "policy_watch": "seconds between looks at the policy files for a change, reloading them "
    "when one is seen (0: off)",
    "otel": "OpenTelemetry traces (pip install 'groupgate[otel]'), exported over OTLP/HTTP as "
    "the OTEL_* variables say",
    "data": "graph documents (JSON) imported at start (comma-separated in the environment)",
    "default_tenant": "tenant of requests that name none",
    "api_keys": "caller keys, comma-separated; key:tenant binds a key to one tenant",
    "admin_keys": "admin keys (admin API and decisions), comma-separated; key:tenant allowed",
    "admin_open": "open the admin API to anyone when no admin key is set (the demo does)",
    "cache_size": "compiled subject profiles kept in memory",
    "max_staleness": "seconds cached answers are served, flagged stale, while the store is "
    "unreachable; then everything fails closed",
    "poll_interval": "seconds between revision polls (the safety net under change events): "
    "the longest a cached answer can lag a store that lost or rolled back writes (failover)",
    "write_replicas": "replicas a write waits for (WAIT) before it is acknowledged: auto (the "
    "replicas connected to the primary, 0 when none) or a number; fewer in time: a 503",
    "write_wait_ms": "milliseconds a write waits for its replicas' acknowledgement (at most "
    "1500: below the 2 s Redis socket timeout)",
    "spend_retention_days": "days a committed order is kept in the spend ledger: its commit is "
    "idempotent and it can be released for that long",
    "pool_size": "Redis connections per worker",
    "pool_timeout": "seconds to wait for a free Redis connection",
    "decision_log": "log every decision",
    "log_level": "debug, info, warning, error or critical",
    "log_format": "json or text",
    "log_buffer": "log lines waiting to be written to stderr, at most; past it a line is "
    "dropped and counted, so a stderr nobody reads never stalls decisions",
    "allow_py_parser": "start even without aiohttp's C HTTP parser (slower)",
    "public_url": "the base URL clients use, for the AuthZEN metadata",
    "demo": "demo mode: the policy directory's demo graph, an open admin API, open decisions "
    "and a demo-only JWT secret; never in production",
    "approval_ttl": "seconds a pending approval flow lives before it is EXPIRED",
    "approval_sweep_interval": "seconds between sweeps that expire pending approval flows",
    "events_maxlen": "entries kept in each tenant's event stream (gg:{tenant}:events, approx.)",
    "max_body_bytes": "largest request body, bytes (413 past it)",
    "max_import_bytes": "largest bulk-import body, bytes",
    "max_batch": "most evaluations or checks in one batch request",
    "max_json_depth": "deepest nesting of a JSON request",
    "search_page_size": "AuthZEN search results per page when the request names no limit",
    "max_search_page": "most AuthZEN search results per page",
    "export_batch": "entities a graph export reads per store round trip",
    "export_buffer_bytes": "bytes of a graph export held back before sending, so that a "
    "write landing within them restarts it unseen",
    "export_attempts": "times a graph export restarts when a write moves the revision",
    "http_max_url_bytes": "longest request target, bytes (414 past it)",
    "http_max_field_bytes": "longest header line, bytes (431 past it)",
    "http_max_header_bytes": "largest header section, bytes (431 past it)",
    "http_max_headers": "most header fields in one request (431 past it)",
    "http_keepalive_timeout": "seconds an idle keep-alive connection stays open",
    "http_request_timeout": "seconds a client has to send one whole request (then 408)",
    "http_max_connections": "open connections per worker and listener (then 503)",
    "http_max_pipelined": "requests read ahead of their answers on one connection",
    "http_shutdown_grace": "seconds in-flight requests get to finish on shutdown",
    "http_memory_trim_interval": "least seconds between giving freed memory back (0: never)",
    "http_memory_trim_peak": "open connections a burst must reach before memory is given back",
    "gateway_kind": f"the gateway in front ({', '.join(GATEWAY_KINDS)}): which headers carry "
    "the original request",
    "jwt_algorithms": "pinned JWT algorithms, comma-separated; unset: HS256 with jwt_secret, "
    "RS256 with public keys or a JWKS",
    "jwt_secret": "HMAC secret for subject tokens (at least 32 bytes)",
    "jwt_public_keys": "PEM files of the token signers' public keys, comma-separated",
    "jwt_jwks_file": "a JWKS file of the token signers' keys",
    "jwt_jwks_url": "an http(s) URL of the token signers' JWKS",
    "jwt_issuer": "required iss claim",
    "jwt_audience": "accepted aud claims, comma-separated",
    "jwt_leeway": "seconds of clock skew allowed on exp/nbf/iat",
    "jwt_subject_claim": "claim that holds the subject id",
    "jwt_tenant_claim": "claim that holds the tenant",
    "jwt_jwks_refresh_interval": "at most one JWKS fetch per this many seconds",
    "jwt_jwks_ttl": "seconds before a fetched JWKS is read again",
    "jwt_caller_tokens": "accept service JWTs as caller credentials",
    "jwt_admin_scope": "scope (scope or scp claim) that makes a caller JWT an admin credential",
    "audit_sinks": "audit trail sinks, comma-separated: stdout, file, redis (a capped stream "
    "gg:audit); decision_log adds stdout",
    "audit_file": "the file sink's path",
    "audit_file_max_bytes": "size at which the audit file is rotated",
    "audit_file_backups": "rotated audit files kept",
    "audit_stream_max_len": "records the Redis audit stream keeps (about)",
    "audit_buffer": "audit records waiting to be written, at most; more are dropped, counted "
    "and logged",
    "audit_batch": "audit records written in one batch",
    "audit_flush_ms": "milliseconds a record waits for its batch, at most",
    "audit_mask": "record fields written as a digest, comma-separated (e.g. subject,caller)",
    "jwt_cache_size": "verified subject tokens remembered until they expire (0: off)",
}


def env_name(name: str) -> str:
    """The environment variable of a setting: `max_batch` -> `GROUPGATE_MAX_BATCH`."""
    return "GROUPGATE_" + name.upper()


def default_text(name: str) -> str:
    """A setting's default in words, read from the dataclasses that hold it."""
    if name == "policies":
        return "the policies/ of a checkout, else the copy installed with the package"
    if name == "admin_keys":
        return "none"
    if name == "write_replicas" and Config().write_replicas is None:
        return "auto"
    owner: Any = Config()
    field_name = name
    for prefix, holder in (("jwt_", owner.jwt), ("http_", owner.http), ("audit_", owner.audit)):
        if name.startswith(prefix):
            owner, field_name = holder, name.removeprefix(prefix)
    if field_name in Limits.__dataclass_fields__ and not hasattr(Config, field_name):
        owner = owner.limits
    value = getattr(owner, field_name)
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def describe(name: str) -> str:
    """`HELP[name]` with its default and environment variable, for `--help`."""
    return f"{HELP[name]} (default: {default_text(name)}; env {env_name(name)})"


# --------------------------------------------------------------------------- loading


def read_file(path: Path) -> dict[str, Any]:
    """Read a YAML or TOML settings file into flat setting names."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: not valid {path.suffix or 'YAML'}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            for sub, inner in value.items():
                flat[SECTIONS[key] + str(sub)] = inner
        else:
            flat[str(key)] = value
    unknown = sorted(set(flat) - set(PARSERS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting {unknown[0]!r}")
    return flat


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Return the settings given as `GROUPGATE_<NAME>` variables."""
    out: dict[str, Any] = {}
    for name in PARSERS:
        value = env.get(env_name(name))
        if value is not None:
            out[name] = value
    return out


def load_config(
    env: Mapping[str, str] | None = None,
    *,
    file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read, merge and validate every source; raise `ConfigError` naming the bad setting."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    path = file or env.get("GROUPGATE_CONFIG")
    if path:
        raw.update(read_file(Path(path)))
    raw.update(from_env(env))
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values = {name: PARSERS[name](name, value) for name, value in raw.items()}
    return build(values)


def build(values: Mapping[str, Any]) -> Config:
    """Turn parsed values into a `Config`, checking the rules between settings."""
    policies = Path(values["policies"]) if "policies" in values else default_policies()
    if not (policies / "catalog.yaml").is_file():
        raise ConfigError(
            f"policies: {policies} is not a policy directory (no catalog.yaml); pass "
            "--policies DIR or set GROUPGATE_POLICIES to the directory that holds catalog.yaml"
        )
    data = tuple(Path(p) for p in values.get("data", ()))
    for item in data:
        if not item.is_file():
            raise ConfigError(f"data: no such file {item}")
    redis_url = values.get("redis_url")
    if redis_url is not None and not redis_url.startswith(REDIS_SCHEMES):
        raise ConfigError(
            f"redis_url: expected a URL starting with one of {', '.join(REDIS_SCHEMES)}"
        )
    if redis_url is not None and redis_url.startswith("redis+sentinel://"):
        _check_sentinel_url(redis_url)
    keys = [*_keys(values.get("api_keys", ()), admin=False, name="api_keys")]
    keys += _keys(values.get("admin_keys", ()), admin=True, name="admin_keys")
    limits = Limits(**{f: values[f] for f in Limits.__dataclass_fields__ if f in values})
    http = HttpLimits(
        **{f: values["http_" + f] for f in HttpLimits.__dataclass_fields__ if "http_" + f in values}
    )
    if http.max_field_bytes > http.max_header_bytes:
        raise ConfigError("http_max_field_bytes: larger than http_max_header_bytes")
    if limits.search_page_size > limits.max_search_page:
        raise ConfigError("search_page_size: larger than max_search_page")
    if values.get("decision_port", -1) == values.get("port", DEFAULT_PORT):
        raise ConfigError("decision_port: must differ from port")
    plain = {
        f: values[f]
        for f in Config.__dataclass_fields__
        if f in values
        and f not in {"policies", "data", "api_keys", "jwt", "limits", "http", "audit"}
    }
    return Config(
        **plain,
        policies=policies,
        data=data,
        api_keys=tuple(keys),
        jwt=_jwt(values),
        audit=_audit(values),
        limits=limits,
        http=http,
    )


def _check_sentinel_url(url: str) -> None:
    """`redis+sentinel://[:password@]host:port,host:port/name`: Sentinels and a primary name."""
    hosts, _, name = url.removeprefix("redis+sentinel://").partition("/")
    for item in hosts.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"redis_url: expected Sentinels as host:port, got {item!r}")
    if not name.strip("/"):
        raise ConfigError("redis_url: a redis+sentinel:// URL names the primary: .../name")


def _audit(values: Mapping[str, Any]) -> AuditSettings:
    fields = {
        f: values["audit_" + f]
        for f in AuditSettings.__dataclass_fields__
        if "audit_" + f in values
    }
    sinks = list(fields.get("sinks", ()))
    if values.get("decision_log") and "stdout" not in sinks:
        sinks.append("stdout")
    unknown = [s for s in sinks if s not in AUDIT_SINKS]
    if unknown:
        raise ConfigError(
            f"audit_sinks: unknown sink {unknown[0]!r} (expected {', '.join(AUDIT_SINKS)})"
        )
    if "file" in sinks and not fields.get("file"):
        raise ConfigError("audit_file: the file sink needs a path (GROUPGATE_AUDIT_FILE)")
    if "redis" in sinks and values.get("redis_url") is None:
        raise ConfigError("audit_sinks: the redis sink needs a Redis (--redis)")
    unknown = [f for f in fields.get("mask", ()) if f not in AUDIT_FIELDS]
    if unknown:
        raise ConfigError(f"audit_mask: {unknown[0]!r} is not a record field")
    fields["sinks"] = tuple(dict.fromkeys(sinks))
    return AuditSettings(**fields)


#: The fields of an audit record (`groupgate.audit.record`), for `audit_mask`.
AUDIT_FIELDS = (
    "decision_id",
    "time",
    "surface",
    "tenant",
    "caller",
    "subject",
    "action",
    "type",
    "id",
    "allow",
    "reason",
    "revision",
    "latency_ms",
    "request_id",
)


def _keys(items: tuple[str, ...], *, admin: bool, name: str) -> list[ApiKey]:
    out: list[ApiKey] = []
    for item in items:
        key, _, tenant = item.partition(":")
        if len(key) < 16:
            raise ConfigError(f"{name}: a key must have at least 16 characters")
        out.append(ApiKey(key, tenant or None, admin))
    return out


def _jwt(values: Mapping[str, Any]) -> JwtSettings:
    algorithms = tuple(values.get("jwt_algorithms", ()))
    secret = values.get("jwt_secret")
    pem_files = values.get("jwt_public_keys", ())
    jwks_file = values.get("jwt_jwks_file")
    jwks_url = values.get("jwt_jwks_url")
    if not algorithms:
        if secret is not None:
            algorithms = ("HS256",)
        elif pem_files or jwks_file or jwks_url:
            algorithms = ("RS256",)
    unknown = [a for a in algorithms if a not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS]
    if unknown:
        raise ConfigError(f"jwt_algorithms: unsupported algorithm {unknown[0]!r}")
    hmac = set(algorithms) & HMAC_ALGORITHMS
    if hmac and set(algorithms) - HMAC_ALGORITHMS:
        # Mixing families is what key-confusion attacks need: refuse it outright.
        raise ConfigError("jwt_algorithms: do not mix HMAC (HS*) and public-key algorithms")
    if hmac:
        if secret is None:
            raise ConfigError("jwt_secret: required for HS* algorithms")
        if len(secret.encode()) < 32:
            raise ConfigError("jwt_secret: use at least 32 bytes for an HMAC secret")
        stripped = secret.strip()
        if stripped.startswith("-----BEGIN") or stripped.startswith("{"):
            raise ConfigError("jwt_secret: looks like a public key or a JWK, not an HMAC secret")
        if pem_files or jwks_file or jwks_url:
            raise ConfigError("jwt_public_keys/jwks: not used with HS* algorithms")
    elif algorithms:
        if secret is not None:
            raise ConfigError("jwt_secret: not used with public-key algorithms")
        if not (pem_files or jwks_file or jwks_url):
            raise ConfigError("jwt: public-key algorithms need jwt_public_keys or a JWKS")
    pems: list[str] = []
    for item in pem_files:
        try:
            pems.append(Path(item).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"jwt_public_keys: cannot read {item}: {exc}") from None
    if jwks_file is not None and not Path(jwks_file).is_file():
        raise ConfigError(f"jwt_jwks_file: no such file {jwks_file}")
    if jwks_url is not None and not jwks_url.startswith(("https://", "http://")):
        raise ConfigError("jwt_jwks_url: expected an http(s) URL")
    return JwtSettings(
        algorithms=algorithms,
        secret=secret,
        public_keys=tuple(pems),
        jwks_file=Path(jwks_file) if jwks_file else None,
        jwks_url=jwks_url,
        issuer=values.get("jwt_issuer"),
        audience=tuple(values.get("jwt_audience", ())),
        leeway=values.get("jwt_leeway", 5.0),
        subject_claim=values.get("jwt_subject_claim", "sub"),
        tenant_claim=values.get("jwt_tenant_claim", "tenant"),
        jwks_refresh_interval=values.get("jwt_jwks_refresh_interval", 30.0),
        jwks_ttl=values.get("jwt_jwks_ttl", 300.0),
        caller_tokens=values.get("jwt_caller_tokens", False),
        admin_scope=values.get("jwt_admin_scope", "groupgate:admin"),
        cache_size=values.get("jwt_cache_size", 10_000),
    )
