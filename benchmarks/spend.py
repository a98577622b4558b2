"""Spend ledger benchmarks: purchase evaluation with limits, and commit + evaluate round trips.

All against a private `redis-server` (see `benchmarks.store.private_redis`), through
`GraphService` in one process (no HTTP), so the figures are the store's and the engine's:

- evaluate: `GraphService.decider.purchase` of a buyer of a company without spending limits, of a
  company with a monthly limit (its period totals come with the graph read), and of the same
  with a cost centre that has a budget (one more read: budget totals), alternating in rounds
  so all see the same machine; p50, p99 and the ratio of throughputs to the first (target:
  >= 0.8x). The first already reads the period totals (ten keys, same round trip): today's
  evaluation without the ledger is a little faster than it.
- round trip: evaluate, then commit the order (one Lua script), sequentially: p50 and p99 of
  the pair, as a checkout service sees it.
- concurrent commits: `concurrency` tasks committing distinct orders against one company:
  commits per second, and the check that the totals are exact afterwards.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.store import private_redis
from groupgate.engine import spend
from groupgate.model import Money
from groupgate.policy import load_policy
from groupgate.store.contract import Order
from groupgate.store.service import GraphService

POLICIES = Path(__file__).resolve().parents[1] / "policies"
TENANT = "bench-spend"


def document() -> dict[str, Any]:
    limits = [{"period": "month", "amount": "900000000.00", "currency": "EUR"}]
    budget = {
        "id": "cc1",
        "cost_center": "CC-1",
        "from": "2000-01-01",
        "until": "2999-12-31",
        "amount": "900000000.00",
        "currency": "EUR",
    }
    return {
        "tenant": TENANT,
        "settings": {"time_zone": "Europe/Berlin"},
        "companies": [
            {"id": "plain", "name": "Plain AG"},
            {"id": "limited", "name": "Limited AG", "spending_limits": limits, "budgets": [budget]},
        ],
        "subjects": [
            {"id": "admin-1", "kind": "customer", "companies": {"limited": ["admin"]}},
            {
                "id": "buyer-1",
                "kind": "customer",
                "companies": {"plain": ["buyer"], "limited": ["buyer"]},
            },
        ],
    }


def _order(order_id: str, amount: str = "1.00") -> Order:
    money = Money(Decimal(amount), "EUR")
    units = spend.to_units(money.amount)
    return Order(order_id, "buyer-1", "limited", money, amount, units, "CC-1")


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1),
        "per_second": round(len(ordered) / sum(ordered), 1),
    }


#: The evaluations compared: (name, company, cost centre).
CASES = (
    ("without_limits", "plain", "CC-1"),
    ("with_period_limit", "limited", None),
    ("with_period_limit_and_budget", "limited", "CC-1"),
)


async def _evaluate(service: GraphService, iterations: int, rounds: int) -> dict[str, Any]:
    amount = Money(Decimal("10.00"), "EUR")
    samples: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    for _ in range(rounds):
        for name, company, center in CASES:
            for _ in range(iterations // rounds):
                started = time.perf_counter()
                answer = await service.decider.purchase(
                    TENANT, "buyer-1", company, amount, cost_center=center
                )
                samples[name].append(time.perf_counter() - started)
                assert answer.result.decision == "allow"
    out: dict[str, Any] = {name: _stats(found) for name, found in samples.items()}
    base = out["without_limits"]["per_second"]
    for name, _, _ in CASES[1:]:
        out[name]["ratio"] = round(out[name]["per_second"] / base, 2)
    return out


async def _round_trips(service: GraphService, iterations: int) -> dict[str, Any]:
    amount = Money(Decimal("1.00"), "EUR")
    samples: list[float] = []
    for i in range(iterations):
        started = time.perf_counter()
        await service.decider.purchase(TENANT, "buyer-1", "limited", amount, cost_center="CC-1")
        await service.decider.commit(TENANT, _order(f"rt-{i}"))
        samples.append(time.perf_counter() - started)
    return _stats(samples)


async def _concurrent(service: GraphService, commits: int, concurrency: int) -> dict[str, Any]:
    queue = iter(range(commits))

    async def worker() -> None:
        for i in queue:
            await service.decider.commit(TENANT, _order(f"cc-{i}", "0.01"))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "commits": commits,
        "concurrency": concurrency,
        "per_second": round(commits / elapsed, 1),
    }


async def run(*, iterations: int = 5_000, rounds: int = 5, concurrency: int = 32) -> dict[str, Any]:
    catalog = load_policy(POLICIES)
    with private_redis() as url:
        service = await GraphService.open(catalog, url)
        try:
            await service.admin.import_graph(None, document())
            await _evaluate(service, min(iterations, 200), 1)  # warm up: cache, scripts
            evaluate = await _evaluate(service, iterations, rounds)
            trips = await _round_trips(service, iterations)
            concurrent = await _concurrent(service, iterations, concurrency)
            year = datetime.fromtimestamp(service.cache.clock(), UTC).year
            line = spend.Line("company", "limited", f"year:{year}", "EUR", 0)
            total = (await service.ledger.totals(TENANT, [line]))[0]
            expected = iterations * 10_000 + iterations * 100
            if total != expected:
                raise AssertionError(f"the year's total is {total}, not {expected}")
        finally:
            await service.close()
    return {
        "iterations": iterations,
        "evaluate": evaluate,
        "commit_evaluate_round_trip": trips,
        "concurrent_commits": concurrent,
        "totals_exact": True,
    }


def markdown(results: dict[str, Any]) -> str:
    ev = results["evaluate"]
    rt = results["commit_evaluate_round_trip"]
    cc = results["concurrent_commits"]
    labels = {
        "without_limits": "evaluate, company without limits",
        "with_period_limit": "evaluate, company with a monthly limit",
        "with_period_limit_and_budget": "evaluate, monthly limit and a budget (cost centre)",
    }
    rows = ["| figure | p50 | p99 | per second | vs without |", "|---|---|---|---|---|"]
    for name, label in labels.items():
        found = ev[name]
        ratio = f"{found['ratio']}x" if "ratio" in found else ""
        rows.append(
            f"| {label} | {found['p50_us']} µs | {found['p99_us']} µs | "
            f"{found['per_second']} | {ratio} |"
        )
    rows.append(
        f"| evaluate + commit round trip | {rt['p50_us']} µs | {rt['p99_us']} µs | "
        f"{rt['per_second']} | |"
    )
    rows.append(f"| commits, {cc['concurrency']} concurrent | | | {cc['per_second']} | |")
    return (
        "\n".join(rows)
        + f"\n\n{results['iterations']} iterations per figure; totals exact after every "
        + f"commit: {results['totals_exact']}\n"
    )
