"""Purchase benchmark: the decider's `purchase` with and without approval rules, same run.

On a private `redis-server` (see `store.private_redis`), two tenants of the same shape: a
company tree (root with an account limit, a subsidiary, a grandchild) with admins, buyers,
requesters and a finance group. `builtin` has no approval rules (the seed's table alone);
`rules` has two rules on the root, inherited by the grandchild, one of which matches every
purchase asked (two tiers, one naming the finance group, resolved against the graph). The
purchases are asked of the grandchild, so the ancestor walk runs in both. Subjects are warm in
the cache (as a checkout service's steady state); every purchase is one script call.

    python -m benchmarks.purchases [--iterations N] [--builtin-only]

`--builtin-only` runs the first tenant alone: with `PYTHONPATH` set to another checkout's
`src`, it measures that code (today's `purchases/evaluate`) on the same machine (code from
before `GraphService.decider` and `.admin` existed too: the service was both then).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from decimal import Decimal
from typing import Any

from benchmarks.store import POLICIES, _percentiles, private_redis
from groupgate.model import Money
from groupgate.policy import load_policy
from groupgate.store.service import GraphService

RULES = [
    {
        "id": "big",
        "when": {"amount_over": "100.00", "currency": "EUR", "cost_center": ["CC-1", "CC-2"]},
        "tiers": [[["admin"]], [["finance"], ["admin", "buyer"]]],
    },
    {"id": "usd", "when": {"currency": "USD"}, "tiers": [[["admin"]]]},
]


def document(tenant: str, *, rules: bool, limits: bool = False, people: int = 20) -> dict[str, Any]:
    """The tree, `people` admins, buyers and requesters in the grandchild, 5 in finance;
    with `limits`, the grandchild has monthly and yearly spending limits and a budget of
    the cost centre asked (the totals are read with every purchase)."""
    root: dict[str, Any] = {
        "id": "root",
        "name": "Root",
        "account_limit": {"amount": "5000.00", "currency": "EUR"},
    }
    if rules:
        root["approval_rules"] = RULES
    subjects: list[dict[str, Any]] = []
    for role in ("admin", "buyer", "requester"):
        subjects += [
            {"id": f"{role}-{i}", "kind": "customer", "companies": {"leaf": [role]}}
            for i in range(people)
        ]
    subjects += [
        {
            "id": f"fin-{i}",
            "kind": "customer",
            "companies": {"root": ["contact"]},
            "groups": ["finance"],
        }
        for i in range(5)
    ]
    leaf: dict[str, Any] = {"id": "leaf", "name": "Leaf", "parent": "mid"}
    if limits:
        leaf["spending_limits"] = [
            {"period": "month", "amount": "50000.00", "currency": "EUR"},
            {"period": "year", "amount": "500000.00", "currency": "EUR"},
        ]
        leaf["budgets"] = [
            {
                "id": "cc1",
                "cost_center": "CC-1",
                "from": "2020-01-01",
                "until": "2099-12-31",
                "amount": "900000.00",
                "currency": "EUR",
            }
        ]
    return {
        "tenant": tenant,
        "companies": [root, {"id": "mid", "name": "Mid", "parent": "root"}, leaf],
        "groups": [{"id": "finance", "name": "Finance", "kind": "customer", "company": "root"}],
        "subjects": subjects,
    }


async def measure(
    service: GraphService, tenants: list[str], iterations: int
) -> dict[str, dict[str, Any]]:
    """Latency of purchases by buyers and requesters (within the limit), in microseconds.

    The tenants take turns, one purchase each, so that a busy machine slows them alike."""
    amount = Money(Decimal("200.00"), "EUR")
    names = [f"buyer-{i}" for i in range(20)] + [f"requester-{i}" for i in range(20)]
    decider = getattr(service, "decider", service)  # another checkout's service: itself

    def extra(tenant: str) -> dict[str, Any]:
        return {"cost_center": "CC-1"} if tenant != "builtin" else {}

    for tenant in tenants:  # warm: every subject and approver in the cache
        for name in names:
            await decider.purchase(tenant, name, "leaf", amount, **extra(tenant))
    samples: dict[str, list[float]] = {t: [] for t in tenants}
    decisions: dict[str, dict[str, int]] = {t: {} for t in tenants}
    for i in range(iterations):
        for tenant in tenants:
            start = time.perf_counter()
            answer = await decider.purchase(
                tenant, names[i % len(names)], "leaf", amount, **extra(tenant)
            )
            samples[tenant].append((time.perf_counter() - start) * 1e6)
            rule = answer.result.rule
            decisions[tenant][rule] = decisions[tenant].get(rule, 0) + 1
    out = {}
    for tenant in tenants:
        figures = _percentiles(samples[tenant])
        figures["per_second"] = 1e6 / (sum(samples[tenant]) / len(samples[tenant]))
        figures["rules"] = decisions[tenant]
        out[tenant] = figures
    return out


async def run(iterations: int = 5000, *, builtin_only: bool = False) -> dict[str, Any]:
    catalog = load_policy(POLICIES)
    results: dict[str, Any] = {"unit": "microseconds", "iterations": iterations}
    tenants = ["builtin"] if builtin_only else ["builtin", "rules", "rules_limits"]
    with private_redis() as url:
        service = await GraphService.open(catalog, url)
        admin = getattr(service, "admin", service)  # another checkout's service: itself
        try:
            for tenant in tenants:
                doc = document(tenant, rules=tenant != "builtin", limits=tenant == "rules_limits")
                await admin.import_graph(None, doc)
            results.update(await measure(service, tenants, iterations))
            if not builtin_only:
                for tenant in ("rules", "rules_limits"):
                    results[f"{tenant}_vs_builtin"] = (
                        results[tenant]["per_second"] / results["builtin"]["per_second"]
                    )
        finally:
            await service.close()
    return results


def markdown(results: dict[str, Any]) -> str:
    rows = [
        ("built-in table only", "builtin"),
        ("two approval rules (one matching, two tiers)", "rules"),
        ("rules, spending limits and a budget", "rules_limits"),
    ]
    lines = [
        f"`purchases/evaluate` in-process on a private redis-server, {results['iterations']:,} "
        "purchases per tenant, tenants taking turns (µs).",
        "",
        "| tenant | median | p99 | purchases/s | vs built-in |",
        "|---|---|---|---|---|",
    ]
    for label, tenant in rows:
        if tenant not in results:
            continue
        r = results[tenant]
        ratio = results.get(f"{tenant}_vs_builtin")
        shown = f"{ratio:.2f}x" if ratio is not None else "1.00x"
        lines.append(
            f"| {label} | {r['median']:,.0f} | {r['p99']:,.0f} | {r['per_second']:,.0f} | {shown} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--builtin-only", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.iterations, builtin_only=args.builtin_only)), indent=2))


if __name__ == "__main__":
    main()
