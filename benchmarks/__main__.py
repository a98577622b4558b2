"""`python -m benchmarks <suite> [options]`: run a suite, print its table, write its results.

Each suite is one entry in `SUITES`: a function adding its options to a sub-parser and a
function running it from the parsed options, returning (results, markdown). Suites:
`engine`, `store`, `spend` (limits in evaluations, commit round trips), `http` (groupgate vs
Cerbos vs bare aiohttp), `slowbody` (slow request bodies: connections held and memory, per
listener), `instructions` (instructions per request, counted by callgrind: what this noisy
machine cannot move), and `run` for all of them
(`python -m benchmarks run --quick` for a fast pass). Results land in
`benchmarks/results/<suite>-<timestamp>.json`, `<suite>-latest.json` and
`<suite>-latest.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import report

Runner = Callable[[argparse.Namespace], tuple[dict[str, Any], str]]


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 subjects, 2,000 questions, 3 runs: a smoke run in seconds",
    )
    parser.add_argument("--subjects", type=int, default=10_000, help="tenant size (10,000)")
    parser.add_argument(
        "--questions",
        type=int,
        default=None,
        help="questions asked of every engine (default: as many as subjects)",
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs per engine (7)")
    parser.add_argument("--batch", type=int, default=100, help="checks per timed batch (100)")
    parser.add_argument("--seed", type=int, default=42, help="dataset seed (42)")


def _engine(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import engine

    if args.quick:
        results = engine.run(
            subjects=1_000,
            questions=2_000,
            runs=3,
            batch=args.batch,
            seed=args.seed,
            plain_sample=100,
            compile_repeat=50,
        )
    else:
        results = engine.run(
            subjects=args.subjects,
            questions=args.questions,
            runs=args.runs,
            batch=args.batch,
            seed=args.seed,
        )
    return results, engine.markdown(results)


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller import, fewer rounds")
    parser.add_argument(
        "--import-subjects", type=int, default=100_000, help="subjects in the bulk import (100,000)"
    )


def _store(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import store

    results = asyncio.run(store.run(import_subjects=args.import_subjects, quick=args.quick))
    results["machine"] = report.machine()
    return results, store.markdown(results)


def _spend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="500 iterations: a smoke run")
    parser.add_argument("--iterations", type=int, default=5_000, help="per figure (5,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent commits (32)")


def _spend(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import spend

    iterations = 500 if args.quick else args.iterations
    results = asyncio.run(spend.run(iterations=iterations, concurrency=args.concurrency))
    results["machine"] = report.machine()
    return results, spend.markdown(results)


def _http_options(parser: argparse.ArgumentParser) -> None:
    from benchmarks.http.__main__ import add_options

    add_options(parser)


def _http(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks.http.__main__ import run
    from benchmarks.http.run import markdown

    results = run(args)
    return results, markdown(results)


def _slowbody_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="200 connections, 4 s hold: a smoke run in seconds"
    )
    parser.add_argument("--connections", type=int, default=None, help="per listener (2,000)")
    parser.add_argument(
        "--content-length", type=int, default=100_000, help="announced body bytes (100,000)"
    )
    parser.add_argument("--sent", type=int, default=1_000, help="body bytes actually sent (1,000)")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=2.0,
        help="GROUPGATE_HTTP_REQUEST_TIMEOUT for the server, seconds (2)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="GROUPGATE_HTTP_MAX_CONNECTIONS for the server (default: its own)",
    )
    parser.add_argument("--hold", type=float, default=None, help="longest hold, seconds (8)")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds between closing and the last RSS (2)"
    )
    parser.add_argument(
        "--listeners",
        nargs="+",
        choices=("main", "decisions"),
        default=["main", "decisions"],
        help="which listeners (both)",
    )


def _slowbody(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import slowbody

    settings = slowbody.Settings(
        connections=args.connections or (200 if args.quick else 2_000),
        content_length=args.content_length,
        sent=args.sent,
        request_timeout=args.request_timeout,
        hold=args.hold or (4.0 if args.quick else 8.0),
        settle=args.settle,
        listeners=tuple(args.listeners),
        max_connections=args.max_connections,
    )
    results = slowbody.run(settings)
    return results, slowbody.markdown(results)


def _instructions_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="500 subjects, 500 requests per list (~1 min)"
    )
    parser.add_argument("--subjects", type=int, default=2_000, help="tenant size (2,000)")
    parser.add_argument(
        "--requests", type=int, default=2_000, help="requests per workload list (2,000)"
    )


def _instructions(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import instructions

    size = (500, 500) if args.quick else (args.subjects, args.requests)
    results = instructions.run(subjects=size[0], requests=size[1])
    return results, instructions.markdown(results)


def _all_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the quick form of every suite")


def _operations_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (5)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per round (6)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--reload-every", type=float, default=1.0, help="seconds between reloads (1)"
    )


def _operations(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import operations

    results = operations.measure(
        rounds=2 if args.quick else args.rounds,
        duration=3.0 if args.quick else args.duration,
        connections=args.connections,
        reload_every=args.reload_every,
    )
    return results, operations.markdown(results)


def _purchases_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="300 purchases per tenant")
    parser.add_argument("--iterations", type=int, default=3_000, help="per tenant (3,000)")


def _purchases(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import purchases

    iterations = 300 if args.quick else args.iterations
    results = asyncio.run(purchases.run(iterations))
    results["machine"] = report.machine()
    return results, purchases.markdown(results)


def _approvals_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="100 cycles, 1,000 flows")
    parser.add_argument("--cycles", type=int, default=2_000, help="cycles timed (2,000)")
    parser.add_argument("--flows", type=int, default=20_000, help="flows for memory (20,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (16)")


def _approvals(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from benchmarks import approvals
    from benchmarks.store import private_redis

    cycles, flows = (100, 1_000) if args.quick else (args.cycles, args.flows)
    with private_redis() as url:
        results: dict[str, Any] = asyncio.run(approvals.run(url, cycles, flows, args.concurrency))
    results["machine"] = report.machine()
    return results, approvals.markdown(results)


def _all(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Run every suite in turn with its defaults (or its quick form)."""
    results: dict[str, Any] = {}
    tables: list[str] = []
    for name in (
        "engine",
        "store",
        "spend",
        "purchases",
        "approvals",
        "http",
        "slowbody",
        "operations",
        "instructions",
    ):
        _, add_options, runner = SUITES[name]
        sub = argparse.ArgumentParser()
        add_options(sub)
        suite_args = sub.parse_args(["--quick"] if args.quick else [])
        suite_args.out = args.out
        results[name], table = runner(suite_args)
        report.write(name, results[name], table, args.out)
        tables.append(f"## {name}\n\n{table}")
    return results, "\n".join(tables)


SUITES: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {
    "engine": (
        "in-process checks vs cedarpy and pycasbin; profile compilation",
        _engine_options,
        _engine,
    ),
    "store": (
        "cold resolves, bulk import, revocation lag on a private redis-server",
        _store_options,
        _store,
    ),
    "spend": (
        "purchase evaluation with limits, commit + evaluate round trips on a private redis",
        _spend_options,
        _spend,
    ),
    "http": (
        "wrk against groupgate, Cerbos and a bare aiohttp handler, alternating rounds",
        _http_options,
        _http,
    ),
    "slowbody": (
        "connections that send headers and part of a body, then nothing: held, RSS",
        _slowbody_options,
        _slowbody,
    ),
    "purchases": (
        "purchases/evaluate with the built-in table, approval rules, rules and limits",
        _purchases_options,
        _purchases,
    ),
    "approvals": (
        "approval flows: create-approve-commit cycles per second, Redis memory per flow",
        _approvals_options,
        _approvals,
    ),
    "operations": (
        "the audit trail's and a policy reload's cost under load (issue 14)",
        _operations_options,
        _operations,
    ),
    "instructions": (
        "instructions per request on the decision listener, counted by callgrind",
        _instructions_options,
        _instructions,
    ),
    "run": (
        "every suite in turn: engine, store, spend, purchases, approvals, http, slowbody, "
        "operations, instructions",
        _all_options,
        _all,
    ),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = top.add_subparsers(dest="suite", required=True, metavar="SUITE")
    for name, (summary, add_options, _) in SUITES.items():
        sub = subs.add_parser(name, help=summary, description=summary)
        add_options(sub)
        sub.add_argument(
            "--out", type=Path, default=None, help="results folder (default: benchmarks/results)"
        )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _, _, runner = SUITES[args.suite]
    results, table = runner(args)
    paths = report.write(args.suite, results, table, args.out)
    print(table)
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
