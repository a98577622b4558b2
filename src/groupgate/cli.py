"""The `groupgate` command: serve, check, load, lint, test, export, token, health.

    groupgate serve [--demo] [--host H] [--port P] [--decision-port P] [--workers N]
                    [--redis URL] [--policies DIR] [--data FILE ...] [--config FILE]
    groupgate check --subject ID --action A --type T [--id ID] [--company C]
                    [--restriction R ...] [--vendor V] [--owner O] [--customer C]
                    [--tenant T] [--data FILE ...] [--policies DIR] [--redis URL] [--explain]
    groupgate load --redis URL --data FILE [--data FILE ...] [--policies DIR]
    groupgate lint [DIR] [--data FILE] [--strict]
    groupgate test [PATH ...] [--policies DIR] [--junit FILE] [--verbose]
    groupgate export --tenant T [--redis URL] [--out FILE] [--data FILE ...] [--policies DIR]
    groupgate token --secret S --sub ID [--tenant T] [--aud A] [--iss I] [--ttl SECONDS]
    groupgate health [--host H] [--port P] [--timeout SECONDS]
    groupgate --version

Exit codes: 0 success (`check`: allowed), 1 `check` denied / `lint` found errors (or warnings
with `--strict`) / `test` had a failing case / `health` got no 200, 2 bad input (an invalid
test suite: its file and the path in it) or an error; errors are one line on
stderr, never a traceback. Every flag's `--help` names its default and its `GROUPGATE_*`
variable, from `config.HELP`.

`serve` is production mode unless `--demo` (or `GROUPGATE_DEMO=1`): it loads only the graph
documents it is given, keeps the admin API closed unless admin keys are set, and refuses to
start (exit 2) when no caller credential is configured, since every decision endpoint would
then be open to anyone (`open_decisions_error` says how to fix it).

`serve --demo` loads the policy directory's `demo.json` (or `data.json`, as in
`policies/examples/authzen-todo`) when no `--data` is given, opens the admin API (unless admin
keys are configured) and, when no `jwt_*` setting is configured, verifies gateway subject
tokens with a demo-only HS256 secret generated at start. The banner says DEMO MODE, and
prints the `groupgate token` command and the curl line that try the gateway forward-auth with
that secret. Outside the demo no secret is ever invented.

The banner is printed once the port is bound (`api.server.run`'s `on_bound`): a failed bind
prints only the error. With `--workers N` a supervisor starts N worker processes on one port
(SO_REUSEPORT) and forwards SIGTERM/SIGINT to them; with the embedded store each worker has
its *own* copy of the graph, so admin writes reach one worker only: use `--redis` for more
than one worker. `--decision-port P` also serves a gateway's per-request questions
(`POST /v1/check`, `POST /access/v1/evaluation`, forward-auth) on port P through the
decision listener (`groupgate.api.decisions`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import multiprocessing
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import orjson

import groupgate
from groupgate import log
from groupgate.banner import banner
from groupgate.config import (
    DEFAULT_PORT,
    PARSERS,
    SUPERVISOR_ENV,
    Config,
    ConfigError,
    default_text,
    describe,
    env_name,
    load_config,
)
from groupgate.errors import GroupgateError
from groupgate.model import Resource


class CliError(GroupgateError):
    """Bad command-line input: printed on one line, exit status 2."""

    title = "Invalid command"


def fail(message: str) -> NoReturn:
    raise CliError(message)


# --------------------------------------------------------------------------- serve


def demo_data(config: Config) -> tuple[Path, ...]:
    for name in ("demo.json", "data.json"):
        path = config.policies / name
        if path.is_file():
            return (path,)
    return ()


class Serving(NamedTuple):
    """What `serve` runs: the settings, whether it is the demo, the demo's token secret."""

    config: Config
    demo: bool
    #: The HS256 secret generated for the demo (None when the settings name one, or not demo).
    demo_secret: str | None = None


SERVE_SETTINGS = {
    "host": "host",
    "port": "port",
    "decision_port": "decision_port",
    "workers": "workers",
    "redis": "redis_url",
    "policies": "policies",
    "policy_watch": "policy_watch",
    "data": "data",
}


def open_decisions_error(config: Config) -> str | None:
    """Why production `serve` must not start with these settings, or None if it may.

    With no API key and no caller JWTs every decision endpoint answers anyone: only the demo
    may run like that. A JWT verifier alone authenticates gateway subjects, not callers, so
    it counts only with `jwt_caller_tokens`.
    """
    if config.keys_configured or (config.jwt.configured and config.jwt.caller_tokens):
        return None
    return (
        "no caller credential is configured, so the decision endpoints would answer anyone: "
        "set GROUPGATE_API_KEYS=<key of 16+ characters>[,...] (or --config with api_keys), "
        "or verify caller JWTs with GROUPGATE_JWT_CALLER_TOKENS=1 and a JWT verifier "
        "(GROUPGATE_JWT_SECRET, GROUPGATE_JWT_JWKS_URL or GROUPGATE_JWT_PUBLIC_KEYS); "
        "to try groupgate with demo data and no credentials, run groupgate serve --demo"
    )


def serve_config(args: argparse.Namespace) -> Serving:
    overrides = {name: getattr(args, flag) for flag, name in SERVE_SETTINGS.items()}
    if args.demo:
        overrides["demo"] = True
    config = load_config(file=args.config, overrides=overrides)
    if not config.demo:
        problem = open_decisions_error(config)
        if problem is not None:
            fail(problem)
        return Serving(config, False)
    if not config.data:
        config = replace(config, data=demo_data(config))
    if not any(k.admin for k in config.api_keys):
        config = replace(config, admin_open=True)
    if config.jwt.configured:
        return Serving(config, True)
    # Only the demo gets a secret nobody configured: without one its gateway answers 401 to
    # everyone. It is random per start, so nothing minted for one run works on another.
    secret = secrets.token_hex(32)
    jwt = replace(config.jwt, algorithms=("HS256",), secret=secret)
    return Serving(replace(config, jwt=jwt), True, secret)


def _worker(config: Config, reuse_port: bool, show: str | None) -> None:
    from groupgate.api.server import run

    log.configure(
        config.log_level,
        config.log_format,
        decision_log="stdout" in config.audit.sinks,
        buffer=config.log_buffer,
    )

    def bound() -> None:
        if show:
            print(show, flush=True)

    try:
        run(config, reuse_port=reuse_port, on_bound=bound)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        fail(
            f"{exc}; choose a free port with --port / GROUPGATE_PORT "
            "(and --decision-port / GROUPGATE_DECISION_PORT)"
        )


def _worker_process(config: Config, reuse_port: bool, show: str | None) -> None:
    """A supervised worker: errors are one line on stderr and exit status 2, as in `main`."""
    try:
        _worker(config, reuse_port, show)
    except (GroupgateError, ConfigError) as exc:
        print(f"groupgate serve: error: {exc.detail}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"groupgate serve: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def serve(args: argparse.Namespace) -> int:
    from groupgate.api.app import require_c_parser

    config, demo, demo_secret = serve_config(args)
    log.configure(config.log_level, config.log_format, decision_log="stdout" in config.audit.sinks)
    require_c_parser(config)
    text = banner(config, demo, demo_secret)
    if config.workers == 1:
        _worker(config, False, text)
        return 0
    return supervise(config, text)


def supervise(config: Config, text: str) -> int:
    """Run `config.workers` processes on one port; forward SIGTERM/SIGINT; wait for them."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_worker_process,
            args=(config, True, text if i == 0 else None),
            name=f"worker-{i}",
        )
        for i in range(config.workers)
    ]
    # A reload asked of one worker reaches the others through this process (api/policies.py).
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    for process in workers:
        process.start()

    def forward(signum: int, frame: Any) -> None:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                process.terminate() if signum == signal.SIGTERM else _interrupt(process.pid)

    def reload(signum: int, frame: Any) -> None:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, reload)
    status = 0
    for process in workers:
        process.join()
        status = status or (process.exitcode or 0)
    return 0 if status in (0, -signal.SIGTERM) else 1


def _interrupt(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGINT)


# --------------------------------------------------------------------------- check / load


def read_documents(paths: Sequence[Path]) -> list[Any]:
    from groupgate.api.app import read_document

    documents = []
    for path in paths:
        try:
            documents.append(read_document(path))
        except OSError as exc:
            fail(f"{path}: {exc.strerror or exc}")
        except (orjson.JSONDecodeError, ValueError) as exc:
            fail(f"{path}: not a valid graph document: {exc}")
    return documents


async def _check(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    from groupgate.policy import load_policy
    from groupgate.store.service import GraphService

    catalog = load_policy(config.policies)
    rtype = catalog.types.get(args.type)
    if rtype is None:
        fail(f"--type: unknown resource type {args.type!r}")
    governing = catalog.types[rtype.parent] if rtype.parent else rtype
    if args.action not in catalog.levels and args.action not in governing.actions:
        fail(f"--action: {args.type!r} has no action {args.action!r}")
    paths = config.data or (() if config.redis_url else demo_data(config))
    documents = read_documents(paths)
    service = await GraphService.open(
        catalog,
        config.redis_url,
        poll_interval=60.0,
        write_replicas=config.write_replicas,
        write_wait_ms=config.write_wait_ms,
    )
    try:
        for doc in documents:
            await service.admin.import_graph(None, doc)
        tenant = args.tenant or config.default_tenant
        if tenant is None:
            tenants = await service.decider.tenants()
            if len(tenants) != 1:
                fail(f"--tenant: name one of {', '.join(sorted(tenants)) or '(none loaded)'}")
            tenant = tenants[0]
        resource = Resource(
            args.type,
            args.id,
            args.company,
            frozenset(args.restriction or ()),
            args.vendor,
            args.owner,
            args.customer,
        )
        answer = await service.decider.check(
            tenant, args.subject, args.action, resource, explain=args.explain
        )
    finally:
        await service.close()
    out: dict[str, Any] = {
        "allow": answer.decision.allow,
        "reason": answer.decision.reason,
        "revision": answer.revision,
        "tenant": tenant,
    }
    if answer.decision.group is not None:
        out["group"] = answer.decision.group
    if args.explain:
        out["explain"] = list(answer.decision.explain or ())
    return out


def check(args: argparse.Namespace) -> int:
    config = load_config(
        overrides={"policies": args.policies, "data": args.data, "redis_url": args.redis}
    )
    result = asyncio.run(_check(args, config))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0 if result["allow"] else 1


async def _load(config: Config, documents: list[Any]) -> list[dict[str, Any]]:
    from groupgate.policy import load_policy
    from groupgate.store.service import GraphService

    catalog = load_policy(config.policies)
    service = await GraphService.open(
        catalog,
        config.redis_url,
        poll_interval=60.0,
        write_replicas=config.write_replicas,
        write_wait_ms=config.write_wait_ms,
    )
    try:
        results = []
        for doc in documents:
            revision = await service.admin.import_graph(None, doc)
            results.append(
                {"tenant": doc.get("tenant"), "revision": revision, "replicas": revision.replicas}
            )
        return results
    finally:
        await service.close()


def load(args: argparse.Namespace) -> int:
    config = load_config(
        overrides={"policies": args.policies, "data": args.data, "redis_url": args.redis}
    )
    documents = read_documents(config.data)
    for path, doc in zip(config.data, documents, strict=True):
        if not isinstance(doc, dict):
            fail(f"{path}: expected a graph document (an object)")
    for result in asyncio.run(_load(config, documents)):
        print(orjson.dumps(result).decode())
    return 0


async def _export(config: Config, tenant: str, folder: Path | None) -> tuple[str, int | None]:
    """Export into a temporary file (in `folder`); return its name and the revision.

    A temporary file first, so that a restart (a write moved the revision) never leaves half
    a document behind, and memory holds one batch at a time whatever the tenant's size.
    """
    import tempfile

    from groupgate.policy import load_policy
    from groupgate.store.export import Moved
    from groupgate.store.service import GraphService

    catalog = load_policy(config.policies)
    paths = config.data or (() if config.redis_url else demo_data(config))
    documents = read_documents(paths)
    service = await GraphService.open(catalog, config.redis_url, poll_interval=60.0)
    limits = config.limits
    try:
        for doc in documents:
            await service.admin.import_graph(None, doc)
        for _ in range(limits.export_attempts):
            spool = tempfile.NamedTemporaryFile("wb", dir=folder, delete=False)  # noqa: SIM115
            exporter = service.admin.exporter(limits.export_batch)
            try:
                with spool:
                    async for chunk in service.admin.export(tenant, exporter):
                        spool.write(chunk)
            except Moved:
                os.unlink(spool.name)
                continue
            except BaseException:
                os.unlink(spool.name)
                raise
            return spool.name, exporter.revision
    finally:
        await service.close()
    fail(f"tenant {tenant!r} kept changing: {limits.export_attempts} exports were interrupted")


def export(args: argparse.Namespace) -> int:
    import shutil

    config = load_config(
        overrides={"policies": args.policies, "data": args.data, "redis_url": args.redis}
    )
    out = Path(args.out) if args.out else None
    name, revision = asyncio.run(_export(config, args.tenant, out.parent if out else None))
    spool = Path(name)
    result = {"tenant": args.tenant, "revision": revision, "bytes": spool.stat().st_size}
    if out is not None:
        spool.replace(out)
        print(orjson.dumps(result).decode())
        return 0
    try:
        with spool.open("rb") as done:
            shutil.copyfileobj(done, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    finally:
        spool.unlink()
    # The document went to stdout: the summary goes to stderr.
    print(orjson.dumps(result).decode(), file=sys.stderr)
    return 0


def events(args: argparse.Namespace) -> int:
    """Tail a tenant's event stream: one JSON line per event, `{"stream_id", ...event}`."""
    from groupgate.store.events import tail

    config = load_config(overrides={"redis_url": args.redis})
    if config.redis_url is None:
        fail("events: give --redis URL (or GROUPGATE_REDIS_URL): the embedded store has none")

    def emit(entry_id: str, event: dict[str, Any]) -> None:
        print(orjson.dumps({"stream_id": entry_id, **event}).decode(), flush=True)

    try:
        asyncio.run(tail(config.redis_url, args.tenant, emit, after=args.after, follow=args.follow))
    except KeyboardInterrupt:
        return 0
    return 0


# --------------------------------------------------------------------------- lint / token


def lint(args: argparse.Namespace) -> int:
    import importlib

    try:
        # Imported lazily: linting is a separate concern, and its module is optional here.
        linter: Any = importlib.import_module("groupgate.policy.lint")
    except ImportError:
        fail("lint is not available in this build (groupgate.policy.lint is missing)")
    if args.directory is None:
        directory = load_config(overrides={"policies": None}).policies
    else:
        directory = Path(args.directory)
    if not (directory / "catalog.yaml").is_file():
        fail(
            f"DIR: {directory} is not a policy directory (no catalog.yaml); pass the directory "
            "that holds catalog.yaml as DIR (without DIR, lint reads GROUPGATE_POLICIES)"
        )
    data: tuple[str, Any] | None = None
    if args.data:
        data = (args.data, read_documents([Path(args.data)])[0])
    findings = linter.lint(directory, data)
    for finding in findings:
        print(finding)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    if not findings:
        print(f"{directory}: no problems found")
    else:
        print(f"{directory}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors or (warnings and args.strict) else 0


def run_tests(args: argparse.Namespace) -> int:
    """Run policy test suites (`groupgate.policytests`): 0 all passed, 1 a case failed."""
    from groupgate.policytests import Loader, discover, junit, run_suites, text_report

    paths = [Path(p) for p in args.paths] or [load_config(overrides={"policies": None}).policies]
    files = discover(paths)
    if not files:
        fail(f"no test suites (files named *_test.yaml) under {', '.join(map(str, paths))}")
    suites = Loader(Path(args.policy_dir) if args.policy_dir else None).load(files)
    results = asyncio.run(run_suites(suites))
    print(text_report(suites, results, verbose=args.verbose))
    if args.junit:
        Path(args.junit).write_bytes(junit(suites, results))
    return 0 if all(r.passed for r in results) else 1


def health(args: argparse.Namespace) -> int:
    """GET /healthz on this machine; the port and host come from the flags or the environment
    (`GROUPGATE_PORT`, `GROUPGATE_HOST`), as `serve` reads them. For container health checks."""
    import urllib.error
    import urllib.request

    port = args.port
    if port is None:
        port = PARSERS["port"]("port", os.environ.get(env_name("port"), DEFAULT_PORT))
    host = args.host or os.environ.get(env_name("host"), "127.0.0.1")
    # A wildcard address is not one to connect to: ask the loopback of its family.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    url = f"http://{netloc}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    print(f"{url}: {status}")
    return 0 if status == 200 else 1


def token(args: argparse.Namespace) -> int:
    from groupgate.auth import mint_token

    if len(args.secret.encode()) < 32:
        fail("--secret: use at least 32 bytes for an HS256 secret")
    if args.ttl <= 0:
        fail("--ttl: expected a positive number of seconds")
    print(
        mint_token(
            args.secret,
            args.sub,
            tenant=args.tenant,
            audience=args.aud,
            issuer=args.iss,
            ttl=args.ttl,
        )
    )
    return 0


# --------------------------------------------------------------------------- parser


def setting(name: str) -> str:
    """A flag's help for setting `name`: what it does, its default, its variable."""
    return describe(name)


def settings_epilog() -> str:
    """Every setting, as `serve --help` lists them after its flags."""
    lines = [
        "Every setting is a GROUPGATE_* variable (and a key of the --config file, lower-case,",
        "without the prefix); flags win over the environment, which wins over the file.",
        "",
    ]
    for name in PARSERS:
        lines.append(f"  {env_name(name)}")
        lines.append(f"      {describe(name)}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="groupgate", description="Authorization sidecar (policy decision point)."
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {groupgate.__version__}")
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "serve",
        help="run the sidecar (production; --demo for the demo)",
        description="Run the sidecar. Without --demo it is production mode: it refuses to\n"
        "start when no caller credential (GROUPGATE_API_KEYS, or caller JWTs) is configured.",
        epilog=settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--demo", action="store_true", default=None, help=setting("demo"))
    p.add_argument("--host", help=setting("host"))
    p.add_argument("--port", type=int, help=setting("port"))
    p.add_argument("--decision-port", type=int, metavar="P", help=setting("decision_port"))
    p.add_argument("--workers", type=int, metavar="N", help=setting("workers"))
    p.add_argument("--redis", metavar="URL", help=setting("redis_url"))
    p.add_argument("--policies", metavar="DIR", help=setting("policies"))
    p.add_argument("--policy-watch", type=float, metavar="SECONDS", help=setting("policy_watch"))
    p.add_argument("--data", metavar="FILE", nargs="+", action="extend", help=setting("data"))
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or TOML settings file (default: none; env GROUPGATE_CONFIG)",
    )
    p.set_defaults(run=serve)

    p = sub.add_parser(
        "check",
        help="ask one question and print the answer",
        description="Ask one question on the embedded store (the demo graph unless --data or "
        "--redis) and print the answer as JSON; exit 0 allowed, 1 denied.",
    )
    p.add_argument("--subject", required=True, help="the subject's id")
    p.add_argument("--action", required=True, help="a level (read, update, ...) or named action")
    p.add_argument("--type", required=True, help="the resource type, from the catalog")
    p.add_argument("--id", help="the resource's id (default: none)")
    p.add_argument("--company", help="the resource's company (default: none)")
    p.add_argument(
        "--restriction",
        nargs="+",
        action="extend",
        help="the resource's restriction values, e.g. DE (default: none)",
    )
    p.add_argument("--vendor", help="the resource's vendor (default: none)")
    p.add_argument("--owner", help="the resource's owner (default: none)")
    p.add_argument("--customer", help="the resource's customer (default: none)")
    p.add_argument(
        "--tenant",
        help="the tenant (default: GROUPGATE_DEFAULT_TENANT, else the only tenant loaded)",
    )
    p.add_argument("--data", metavar="FILE", nargs="+", action="extend", help=setting("data"))
    p.add_argument("--policies", metavar="DIR", help=setting("policies"))
    p.add_argument("--redis", metavar="URL", help=setting("redis_url"))
    p.add_argument("--explain", action="store_true", help="add the trace of every group asked")
    p.set_defaults(run=check)

    p = sub.add_parser("load", help="import graph documents into a Redis")
    p.add_argument("--redis", metavar="URL", required=True, help=setting("redis_url"))
    p.add_argument(
        "--data", metavar="FILE", nargs="+", action="extend", required=True, help=setting("data")
    )
    p.add_argument("--policies", metavar="DIR", help=setting("policies"))
    p.set_defaults(run=load)

    p = sub.add_parser(
        "export",
        help="write a tenant's graph document (JSON)",
        description="Export a tenant's graph as the graph document an import takes (SPEC "
        "section 4), read at one revision: restarted when a write lands meanwhile. Writes to "
        "--out (replaced only once complete) or stdout, and prints "
        '{"tenant", "revision", "bytes"} (to stderr when the document goes to stdout).',
    )
    p.add_argument("--tenant", required=True, help="the tenant to export")
    p.add_argument("--redis", metavar="URL", help=setting("redis_url"))
    p.add_argument("--out", metavar="FILE", help="write the document here (default: stdout)")
    p.add_argument("--data", metavar="FILE", nargs="+", action="extend", help=setting("data"))
    p.add_argument("--policies", metavar="DIR", help=setting("policies"))
    p.set_defaults(run=export)

    p = sub.add_parser(
        "lint",
        help="check a policy directory (and a graph document)",
        description="Lint a policy directory and its graph document (or --data's). Each "
        "finding is labelled error or warning; exit 1 on errors (and on warnings with "
        "--strict), else 0.",
    )
    p.add_argument(
        "directory",
        metavar="DIR",
        nargs="?",
        help=f"the policy directory (default: {default_text('policies')}; env "
        f"{env_name('policies')})",
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="lint this graph document instead of the directory's demo.json/data.json",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.set_defaults(run=lint)

    p = sub.add_parser(
        "test",
        help="run policy test suites (*_test.yaml)",
        description="Run the policy test suites named, or found (files named *_test.yaml) "
        "under the directories named, in-process on the embedded store. Each suite runs "
        "against the policy directory it lives in (the nearest above it holding "
        "catalog.yaml) unless --policies names one. Exit 0 when every case passed, 1 when "
        "one failed, 2 on an invalid suite (its file and the path in it are named).",
    )
    p.add_argument(
        "paths",
        metavar="PATH",
        nargs="*",
        help=f"suite files or directories (default: {default_text('policies')}; env "
        f"{env_name('policies')})",
    )
    p.add_argument(
        "--policies",
        dest="policy_dir",
        metavar="DIR",
        help="run every suite against this policy directory (default: each suite's own, the "
        "nearest directory above it holding catalog.yaml)",
    )
    p.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    p.add_argument("--verbose", "-v", action="store_true", help="list passing cases too")
    p.set_defaults(run=run_tests)

    p = sub.add_parser(
        "events",
        help="print a tenant's events (approvals, customers), one JSON line each",
        description="Read the tenant's event stream gg:{tenant}:events from the start (or "
        "after --after ID); with --follow keep printing new events until interrupted.",
    )
    p.add_argument("--tenant", required=True, help="the tenant whose events to print")
    p.add_argument("--redis", metavar="URL", help=setting("redis_url"))
    p.add_argument("--follow", "-f", action="store_true", help="wait for new events")
    p.add_argument(
        "--after", default="0", metavar="ID", help="start after this stream id (default: 0)"
    )
    p.set_defaults(run=events)

    p = sub.add_parser("token", help="mint a development HS256 JWT")
    p.add_argument("--secret", required=True, help="the HMAC secret (at least 32 bytes)")
    p.add_argument("--sub", required=True, help="the subject claim")
    p.add_argument("--tenant", help="the tenant claim (default: none)")
    p.add_argument("--aud", help="the audience claim (default: none)")
    p.add_argument("--iss", help="the issuer claim (default: none)")
    p.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default: 3600)")
    p.set_defaults(run=token)

    p = sub.add_parser(
        "health",
        help="ask a local sidecar's /healthz (for container health checks)",
        description="GET /healthz of the sidecar on this machine; exit 0 on a 200, else 1.",
    )
    p.add_argument("--host", help=setting("host") + "; a wildcard address asks the loopback")
    p.add_argument("--port", type=int, help=setting("port"))
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait (default: 3)")
    p.set_defaults(run=health)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `groupgate` console script; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (GroupgateError, ConfigError) as exc:
        print(f"groupgate {args.command}: error: {exc.detail}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"groupgate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
