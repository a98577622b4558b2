"""Approval flows on a private redis-server: create-approve-commit cycles per second and Redis
memory per 100,000 flows (issue 13's Performance section).

    python -m benchmarks approvals [--cycles 2000] [--flows 20000] [--concurrency 16]

Each cycle is one `POST /v1/approvals`-equivalent (purchase evaluation and the CREATE script),
one approval (eligibility read at one revision and the TRANSITION script) and one commit
that uses the approved flow (the COMMIT script), through the store layer without HTTP.
Memory is `used_memory` after creating `--flows` pending flows less before, scaled to
100,000 (flow hash, its three index entries, its idempotency key and its event).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from groupgate.engine import spend
from groupgate.model import Money
from groupgate.policy import load_policy
from groupgate.store import keys
from groupgate.store.contract import Order
from groupgate.store.flows import Request
from groupgate.store.service import GraphService

POLICIES = Path(__file__).resolve().parents[1] / "policies"
TENANT = "bench-approvals"


def document() -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "companies": [
            {"id": "co", "name": "Co", "account_limit": {"amount": "1000.00", "currency": "EUR"}}
        ],
        "subjects": [
            {"id": "req", "kind": "customer", "companies": {"co": ["requester"]}},
            {"id": "adm", "kind": "customer", "companies": {"co": ["admin"]}},
        ],
    }


async def cycle(service: GraphService, n: int, approve: bool) -> None:
    asked = Request("req", "co", "100.00", Money(Decimal("100.00"), "EUR"), f"cart-{n}")

    async def evaluate(min_revision: int | None) -> Any:
        return await service.decider.purchase(
            TENANT, "req", "co", asked.money, min_revision=min_revision
        )

    _, view, _ = await service.flows.request(TENANT, asked, f"key-{n}", evaluate)
    if approve and view is not None:
        await service.flows.approve(TENANT, view.flow.id, "adm", None)
        units = spend.to_units(asked.money.amount)
        order = Order(f"o-{n}", "req", "co", asked.money, "100.00", units, None, view.flow.id)
        done = await service.decider.commit(TENANT, order)
        assert done.approved


async def run(url: str, cycles: int, flows: int, concurrency: int) -> dict[str, float]:
    service = await GraphService.open(load_policy(POLICIES), url, events_maxlen=10_000_000)
    try:
        await service.admin.import_graph(None, document())
        queue = iter(range(cycles))

        async def worker() -> None:
            for n in queue:
                await cycle(service, n, approve=True)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        await service.client.delete(keys.events(TENANT))
        before = int((await service.client.info("memory"))["used_memory"])
        pending = iter(range(cycles, cycles + flows))

        async def creator() -> None:
            for n in pending:
                await cycle(service, n, approve=False)

        await asyncio.gather(*(creator() for _ in range(concurrency)))
        after = int((await service.client.info("memory"))["used_memory"])
        await service.admin.delete_tenant(TENANT)
        leftovers = [
            k async for k in service.client.scan_iter(match=keys.tenant_prefix(TENANT) + "*")
        ]
        if leftovers:
            await service.client.delete(*leftovers)
    finally:
        await service.close()
    return {
        "cycles": cycles,
        "flows": flows,
        "concurrency": concurrency,
        "cycles_per_second": cycles / elapsed,
        "bytes_per_flow": (after - before) / flows,
        "mib_per_100k_flows": (after - before) / flows * 100_000 / 2**20,
    }


def markdown(results: dict[str, Any]) -> str:
    return (
        f"Approval flows on a private redis-server, {results['concurrency']} concurrent "
        "clients, through the store layer.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| create-approve-commit cycles per second ({results['cycles']:,} cycles) | "
        f"{results['cycles_per_second']:,.0f} |\n"
        f"| Redis memory per flow ({results['flows']:,} pending flows) | "
        f"{results['bytes_per_flow']:,.0f} bytes |\n"
        f"| Redis memory per 100,000 flows | {results['mib_per_100k_flows']:,.0f} MiB |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True, metavar="URL")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--flows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results = asyncio.run(run(args.redis, args.cycles, args.flows, args.concurrency))
    for name, value in results.items():
        print(f"{name}: {value:,.1f}")


if __name__ == "__main__":
    main()
