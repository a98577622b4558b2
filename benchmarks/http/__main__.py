"""`python -m benchmarks.http [--quick]`: run the HTTP comparison, print and write its tables.

Results go to `benchmarks/results/http-<timestamp>.json`, `http-latest.json` and
`http-latest.md` (through `benchmarks.report`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.http.run import markdown, run_http


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="2,000 subjects, c=32 only, 3 s runs, 1 round"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run (10)")
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=None,
        help="connection levels (32; 1 32 128 when not quick)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (3)")
    parser.add_argument("--subjects", type=int, default=None, help="tenant size (10,000)")
    parser.add_argument("--seed", type=int, default=42, help="dataset seed (42)")
    parser.add_argument(
        "--profile", type=float, default=0.0, metavar="SECONDS", help="py-spy /v1/check under load"
    )
    parser.add_argument("--profile-out", type=Path, default=None, help="speedscope output file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument(
        "--jwt-cache-size",
        type=int,
        default=None,
        help="GROUPGATE_JWT_CACHE_SIZE of the servers (0: verify every token; default: theirs)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the HTTP comparison with parsed options (shared with `python -m benchmarks http`)."""
    return run_http(
        quick=args.quick,
        duration=args.duration or (3.0 if args.quick else 10.0),
        connections=args.connections or ([32] if args.quick else [1, 32, 128]),
        rounds=args.rounds or (1 if args.quick else 3),
        subjects=args.subjects,
        seed=args.seed,
        profile_seconds=args.profile,
        profile_out=args.profile_out,
        keep=args.keep,
        jwt_cache_size=args.jwt_cache_size,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http", description=__doc__)
    add_options(parser)
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args(argv)
    results = run(args)
    results["setup"]["command"] = "python -m benchmarks.http " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    table = markdown(results)
    paths = report.write("http", results, table, args.out)
    print(table)
    print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
