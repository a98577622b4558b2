"""The `groupgate` command: serve, check, load, lint, token.

    groupgate serve [--host H] [--port P] [--decision-port P] [--workers N] [--redis URL]
                    [--policies DIR] [--data FILE ...] [--config FILE]
    groupgate check --subject ID --action A --type T [--id ID] [--company C]
                    [--restriction R ...] [--vendor V] [--owner O] [--customer C]
                    [--tenant T] [--data FILE ...] [--policies DIR] [--redis URL] [--explain]
    groupgate load --redis URL --data FILE [--data FILE ...] [--policies DIR]
    groupgate lint DIR [--data FILE]
    groupgate token --secret S --sub ID [--tenant T] [--aud A] [--iss I] [--ttl SECONDS]

Exit codes: 0 success (`check`: allowed), 1 `check` denied / `lint` found problems, 2 bad
input or an error; errors are one line on stderr, never a traceback.

`serve` with no `--redis` runs the embedded in-process store. With no `--data` it loads the
policy directory's `demo.json` (or `data.json`, as in `policies/examples/authzen-todo`); that
demo mode also opens the admin API (no admin keys are configured) and, when no `jwt_*` setting
is configured, verifies gateway subject tokens with a demo-only HS256 secret generated at
start. The banner says both, and prints the `groupgate token` command and the curl line that
try the gateway forward-auth with that secret. Outside demo mode no secret is ever invented.
With `--workers N` a supervisor starts N worker processes on one port (SO_REUSEPORT) and
forwards SIGTERM/SIGINT to them; with the embedded store each worker has its *own* copy of the
graph, so admin writes reach one worker only: use `--redis` for more than one worker.
`--decision-port P` also serves `POST /v1/check` on port P through the decision listener
(`groupgate.api.decisions`), for API gateways that ask it on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import orjson

from groupgate import log
from groupgate.config import Config, ConfigError, load_config
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


#: What the banner's gateway curl line sends, per gateway kind: target, method and URI headers.
GATEWAY_TRY = {
    "nginx": ("/v1/gateway/auth", "X-Original-Method", "X-Original-URI"),
    "haproxy": ("/v1/gateway/auth", "X-Original-Method", "X-Original-URI"),
    "caddy": ("/v1/gateway/auth", "X-Forwarded-Method", "X-Forwarded-Uri"),
    "traefik": ("/v1/gateway/auth", "X-Forwarded-Method", "X-Forwarded-Uri"),
}


def gateway_lines(config: Config, secret: str) -> list[str]:
    """How to try forward-auth on the demo: mint a subject token, then ask about a request."""
    base = f"http://{config.host}:{config.port}"
    kind = config.gateway_kind
    command = ["groupgate", "token", "--secret", secret, "--sub", "emp-viewer"]
    if config.jwt.audience:
        command += ["--aud", config.jwt.audience[0]]
    if config.jwt.issuer:
        command += ["--iss", config.jwt.issuer]
    if kind in GATEWAY_TRY:
        path, method, uri = GATEWAY_TRY[kind]
        asked = f"{base}{path} -H '{method}: GET' -H '{uri}: /api/orders'"
    else:
        asked = f"{base}/v1/gateway/envoy/api/orders"
    return [
        f"Gateway forward-auth (gateway kind {kind}; recipes in deploy/gateways/):",
        "  demo-only token secret, generated at start: subject tokens are verified with it "
        "until this process stops (set GROUPGATE_JWT_SECRET or another jwt_* setting to use "
        "yours)",
        f"  TOKEN=$({shlex.join(command)})",
        f'  curl -si {asked} -H "Authorization: Bearer $TOKEN"',
    ]


def banner(config: Config, demo: bool, demo_secret: str | None = None) -> str:
    base = f"http://{config.host}:{config.port}"
    lines = [f"groupgate listening on {base} ({config.workers} worker(s))"]
    if config.decision_port is not None:
        lines.append(
            f"  decision listener: http://{config.host}:{config.decision_port}/v1/check (POST only)"
        )
    lines.append(f"  store: {config.redis_url or 'embedded (in-process, not persisted)'}")
    lines.append(f"  policies: {config.policies}")
    for path in config.data:
        lines.append(f"  data: {path}")
    auth = " -H 'authorization: Bearer <api key>'" if config.keys_configured else ""
    if any(p.name == "demo.json" for p in config.data):
        lines.append("Try it (an employee of the DE order fulfillment group updating a DE order):")
        lines.append(
            f"  curl -s {base}/v1/check -H 'content-type: application/json'{auth} -d "
            '\'{"subject": {"id": "emp-de"}, "action": "update", '
            '"resource": {"type": "orders", "id": "o-17", "restrictions": ["DE"]}}\''
        )
        lines.append(
            f"  curl -s {base}/v1/purchases/evaluate -H 'content-type: application/json'{auth}"
            ' -d \'{"subject": {"id": "cust-buyer"}, "company": "c-parent", '
            '"amount": "6200.00", "currency": "EUR"}\''
        )
    lines.append(f"  AuthZEN: {base}/.well-known/authzen-configuration   API: {base}/openapi.json")
    if demo and config.admin_open:
        lines.append(
            "  DEMO MODE: the admin API is open to anyone who can reach this port "
            "(set GROUPGATE_ADMIN_KEYS to close it)"
        )
    if demo_secret is not None and any(p.name == "demo.json" for p in config.data):
        lines += gateway_lines(config, demo_secret)
    elif demo_secret is not None:
        lines.append(
            "  demo-only token secret, generated at start, for subject tokens: "
            f"groupgate token --secret {shlex.quote(demo_secret)} --sub <subject>"
        )
    if config.workers > 1 and config.redis_url is None:
        lines.append(
            "  WARNING: several workers on the embedded store each hold their own copy of the "
            "graph; admin writes reach one worker only. Use --redis for multi-worker setups."
        )
    return "\n".join(lines)


def serve_config(args: argparse.Namespace) -> Serving:
    overrides = {
        "host": args.host,
        "port": args.port,
        "decision_port": args.decision_port,
        "workers": args.workers,
        "redis_url": args.redis,
        "policies": args.policies,
        "data": args.data,
    }
    config = load_config(file=args.config, overrides=overrides)
    demo = not config.data and config.redis_url is None
    if not demo:
        return Serving(config, False)
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

    log.configure(config.log_level, config.log_format, decision_log=config.decision_log)

    def ready(app: Any) -> None:
        if show:
            print(show, flush=True)

    run(config, reuse_port=reuse_port, on_ready=ready)


def serve(args: argparse.Namespace) -> int:
    from groupgate.api.app import require_c_parser

    config, demo, demo_secret = serve_config(args)
    log.configure(config.log_level, config.log_format, decision_log=config.decision_log)
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
            target=_worker, args=(config, True, text if i == 0 else None), name=f"worker-{i}"
        )
        for i in range(config.workers)
    ]
    for process in workers:
        process.start()

    def forward(signum: int, frame: Any) -> None:
        for process in workers:
            if process.is_alive() and process.pid is not None:
                process.terminate() if signum == signal.SIGTERM else _interrupt(process.pid)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
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
    service = await GraphService.open(catalog, config.redis_url, poll_interval=60.0)
    try:
        for doc in documents:
            await service.import_graph(None, doc)
        tenant = args.tenant or config.default_tenant
        if tenant is None:
            tenants = await service.tenants()
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
        answer = await service.check(
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
    service = await GraphService.open(catalog, config.redis_url, poll_interval=60.0)
    try:
        results = []
        for doc in documents:
            revision = await service.import_graph(None, doc)
            results.append({"tenant": doc.get("tenant"), "revision": revision})
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


# --------------------------------------------------------------------------- lint / token


def lint(args: argparse.Namespace) -> int:
    import importlib

    try:
        # Imported lazily: linting is a separate concern, and its module is optional here.
        linter: Any = importlib.import_module("groupgate.policy.lint")
    except ImportError:
        fail("lint is not available in this build (groupgate.policy.lint is missing)")
    directory = Path(args.directory)
    findings = list(linter.lint_policy(directory))
    if args.data:
        from groupgate.policy import load_policy

        catalog = load_policy(directory)
        for doc in read_documents([Path(args.data)]):
            findings += list(linter.lint_groups(catalog, doc))
    for finding in findings:
        print(finding)
    if not findings:
        print(f"{directory}: no problems found")
    return 1 if findings else 0


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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="groupgate", description="Authorization sidecar (policy decision point)."
    )
    sub = root.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the sidecar")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--decision-port", type=int, metavar="P")
    p.add_argument("--workers", type=int)
    p.add_argument("--redis", metavar="URL")
    p.add_argument("--policies", metavar="DIR")
    p.add_argument("--data", metavar="FILE", nargs="+", action="extend")
    p.add_argument("--config", metavar="FILE", help="YAML or TOML settings file")
    p.set_defaults(run=serve)

    p = sub.add_parser("check", help="ask one question and print the answer")
    p.add_argument("--subject", required=True)
    p.add_argument("--action", required=True)
    p.add_argument("--type", required=True)
    p.add_argument("--id")
    p.add_argument("--company")
    p.add_argument("--restriction", nargs="+", action="extend")
    p.add_argument("--vendor")
    p.add_argument("--owner")
    p.add_argument("--customer")
    p.add_argument("--tenant")
    p.add_argument("--data", metavar="FILE", nargs="+", action="extend")
    p.add_argument("--policies", metavar="DIR")
    p.add_argument("--redis", metavar="URL")
    p.add_argument("--explain", action="store_true")
    p.set_defaults(run=check)

    p = sub.add_parser("load", help="import graph documents into a Redis")
    p.add_argument("--redis", metavar="URL", required=True)
    p.add_argument("--data", metavar="FILE", nargs="+", action="extend", required=True)
    p.add_argument("--policies", metavar="DIR")
    p.set_defaults(run=load)

    p = sub.add_parser("lint", help="check a policy directory (and a graph document)")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--data", metavar="FILE")
    p.set_defaults(run=lint)

    p = sub.add_parser("token", help="mint a development HS256 JWT")
    p.add_argument("--secret", required=True)
    p.add_argument("--sub", required=True)
    p.add_argument("--tenant")
    p.add_argument("--aud")
    p.add_argument("--iss")
    p.add_argument("--ttl", type=int, default=3600)
    p.set_defaults(run=token)
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
