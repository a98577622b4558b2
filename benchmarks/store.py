"""Store benchmarks: cold resolves, bulk import, and revocation-to-visibility lag.

Each runs against a private `redis-server` started on a free loopback port (so memory
figures are the graph's alone) and returns a dict of figures; `python -m benchmarks store`
runs them all and writes JSON plus a markdown table.

- cold resolve: a subject in 20 groups, not cached, decided through `GraphService.decider.check`
  (one Lua round trip, parse, compile). Reported with group fragments already compiled
  (the usual case: groups are shared by many subjects) and with nothing compiled.
- bulk import: N subjects, N/100 companies, N/20 groups, validated and imported; wall time
  and Redis `used_memory` after the import.
- revocation lag: process A revokes, process B (another OS process, its own cache) decides
  in a loop; lag is from A's write returning to B first denying. Also counts stale allows of
  checks that carry the write's revision as a consistency token (must be zero).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from benchmarks.dataset import ROLES, SITES
from groupgate.model import Resource
from groupgate.policy import load_policy
from groupgate.store.service import GraphService

POLICIES = Path(__file__).resolve().parents[1] / "policies"


@contextmanager
def private_redis() -> Iterator[str]:
    """Start a throw-away redis-server on a free port; yield its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="gg-bench-redis-")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def tenant_document(
    subjects: int, *, groups_per_subject: int = 20, seed: int = 7
) -> dict[str, Any]:
    """A tenant of employees in `groups_per_subject` user groups and customers in companies."""
    rng = random.Random(seed)
    n_companies = max(2, subjects // 100)
    n_groups = max(groups_per_subject, subjects // 20)
    companies = [
        {
            "id": f"c{i}",
            "name": f"Company {i}",
            "parent": f"c{(i - 1) // 4}" if i else None,
            "account_limit": {"amount": "5000.00", "currency": "EUR"},
        }
        for i in range(n_companies)
    ]
    groups = [
        {
            "id": f"g{i}",
            "name": f"Group {i}",
            "kind": "user",
            "role": ROLES[i % len(ROLES)],
            "restrictions": rng.sample(SITES, rng.randint(0, 2)),
        }
        for i in range(n_groups)
    ]
    people: list[dict[str, Any]] = []
    for i in range(subjects):
        if i % 2 == 0:
            chosen = rng.sample(range(n_groups), groups_per_subject)
            people.append(
                {
                    "id": f"e{i}",
                    "kind": "employee",
                    "attributes": {"email": f"e{i}@example.test"},
                    "groups": [f"g{g}" for g in chosen],
                }
            )
        else:
            company = f"c{rng.randrange(n_companies)}"
            people.append(
                {
                    "id": f"k{i}",
                    "kind": "customer",
                    "companies": {company: [rng.choice(["admin", "buyer", "requester"])]},
                }
            )
    return {
        "tenant": "bench",
        "settings": {"company_contact_propagation": "DISABLED"},
        "companies": companies,
        "groups": groups,
        "subjects": people,
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "median": statistics.median(ordered),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": ordered[-1],
        "n": len(ordered),
    }


async def cold_resolve(url: str, subjects: int = 2000) -> dict[str, Any]:
    catalog = load_policy(POLICIES)
    service = await GraphService.open(catalog, url, cache_size=10)
    try:
        await service.admin.import_graph(None, tenant_document(subjects))
        order = Resource(type="orders", restrictions=frozenset({"DE"}))
        employees = [f"e{i}" for i in range(0, subjects, 2)]
        figures: dict[str, Any] = {}
        for label in ("fragments_cold", "fragments_warm"):
            if label == "fragments_cold":
                service.reader.compiler = type(service.reader.compiler)(catalog)
            samples = []
            for sid in employees[:500]:
                service.cache.drop_tenant("bench")
                start = time.perf_counter()
                await service.decider.check("bench", sid, "update", order)
                samples.append((time.perf_counter() - start) * 1e6)
            figures[label] = _percentiles(samples)
        return {"unit": "microseconds", "groups_per_subject": 20, **figures}
    finally:
        await service.close()


async def bulk_import(url: str, subjects: int) -> dict[str, Any]:
    catalog = load_policy(POLICIES)
    start = time.perf_counter()
    document = tenant_document(subjects, groups_per_subject=3)
    generated = time.perf_counter() - start
    service = await GraphService.open(catalog, url)
    try:
        client = redis.Redis.from_url(url)
        before = int(client.info("memory")["used_memory"])
        start = time.perf_counter()
        await service.admin.import_graph(None, document)
        seconds = time.perf_counter() - start
        after = int(client.info("memory")["used_memory"])
        client.close()
        return {
            "subjects": subjects,
            "companies": len(document["companies"]),
            "groups": len(document["groups"]),
            "generate_seconds": round(generated, 2),
            "import_seconds": round(seconds, 2),
            "subjects_per_second": round(subjects / seconds),
            "redis_used_memory_mb": round((after - before) / 2**20, 1),
        }
    finally:
        await service.close()


def _observer(url: str, conn: Any) -> None:
    """Process B: decide in a loop and report when a revocation becomes visible."""

    async def main() -> None:
        catalog = load_policy(POLICIES)
        service = await GraphService.open(catalog, url, poll_interval=1.0)
        order = Resource(type="orders", restrictions=frozenset({"DE"}))
        conn.send("ready")
        while True:
            command = conn.recv()
            if command == "stop":
                break
            kind, rev = command
            if kind == "token":
                answer = await service.decider.check(
                    "lag", "e-1", "update", order, min_revision=rev
                )
                conn.send(answer.decision.allow)
                continue
            expect_allow = kind == "grant"
            # Busy-poll on purpose: the figure is how soon a decision changes.
            while True:
                answer = await service.decider.check("lag", "e-1", "update", order)
                if answer.decision.allow == expect_allow:
                    break
                await asyncio.sleep(0.0002)
            conn.send(time.monotonic())
        await service.close()

    asyncio.run(main())


async def revocation_lag(url: str, rounds: int = 300, observers: int = 3) -> dict[str, Any]:
    """Revoke `rounds` times; `observers` other processes each report when they first deny."""
    catalog = load_policy(POLICIES)
    writer = await GraphService.open(catalog, url)
    document = {
        "tenant": "lag",
        "groups": [
            {"id": "de", "name": "DE", "kind": "user", "role": "manager", "restrictions": ["DE"]}
        ],
        "subjects": [{"id": "e-1", "kind": "employee", "groups": ["de"]}],
    }
    await writer.admin.import_graph(None, document)
    ctx = mp.get_context("spawn")
    pipes = [ctx.Pipe() for _ in range(observers)]
    processes = [
        ctx.Process(target=_observer, args=(url, child), daemon=True) for _, child in pipes
    ]
    for process in processes:
        process.start()

    def ask(command: Any) -> list[Any]:
        for parent, _ in pipes:
            parent.send(command)
        return [parent.recv() for parent, _ in pipes]

    try:
        assert all(parent.recv() == "ready" for parent, _ in pipes)
        lags: list[float] = []
        stale_allows = 0
        for _ in range(rounds):
            rev = await writer.admin.add_membership("lag", "e-1", "de")
            ask(("grant", rev))
            rev = await writer.admin.remove_membership("lag", "e-1", "de")
            done = time.monotonic()
            lags += [max(0.0, seen - done) * 1e3 for seen in ask(("revoke", rev))]
            stale_allows += sum(bool(allowed) for allowed in ask(("token", rev)))
        return {
            "unit": "milliseconds",
            "rounds": rounds,
            "observer_processes": observers,
            "lag": _percentiles(lags),
            "stale_allows_with_token": stale_allows,
        }
    finally:
        for parent, _ in pipes:
            parent.send("stop")
        for process in processes:
            process.join(10)
        await writer.close()


async def run(*, import_subjects: int = 100_000, quick: bool = False) -> dict[str, Any]:
    """Run every store benchmark on private Redis servers; return the figures."""
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    with private_redis() as url:
        results["cold_resolve"] = await cold_resolve(url, 400 if quick else 2000)
    with private_redis() as url:
        results["bulk_import"] = await bulk_import(url, 10_000 if quick else import_subjects)
    with private_redis() as url:
        results["revocation_lag"] = await revocation_lag(url, 50 if quick else 300)
    return results


def markdown(results: dict[str, Any]) -> str:
    cold = results["cold_resolve"]
    bulk = results["bulk_import"]
    lag = results["revocation_lag"]
    warm, cold_all, lags = cold["fragments_warm"], cold["fragments_cold"], lag["lag"]
    size = (
        f"{bulk['subjects']:,} subjects, {bulk['companies']:,} companies, {bulk['groups']:,} groups"
    )
    rows = [
        "| figure | median | p99 | target |",
        "|---|---|---|---|",
        f"| cold resolve, 20 groups, fragments compiled (us) | {warm['median']:.0f} "
        f"| {warm['p99']:.0f} | p99 <= 2000 |",
        f"| cold resolve, 20 groups, nothing compiled (us) | {cold_all['median']:.0f} "
        f"| {cold_all['p99']:.0f} | |",
        f"| revocation lag, {lag['observer_processes']} observer processes (ms) "
        f"| {lags['median']:.2f} | {lags['p99']:.2f} "
        "| p99 <= 50 |",
        f"| stale allows with consistency tokens | {lag['stale_allows_with_token']} "
        f"of {lag['rounds'] * lag['observer_processes']} | | 0 |",
        f"| bulk import: {size} | {bulk['import_seconds']} s | | <= 120 s at 1,000,000 |",
        f"| Redis memory after the import | {bulk['redis_used_memory_mb']} MB | | |",
    ]
    return "\n".join(rows) + "\n"
