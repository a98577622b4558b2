"""Smoke test of the spend benchmark: a few iterations on a private redis-server, nothing
timed; the figures have their shape and the totals come out exact."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import spend

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


async def test_spend_benchmark_runs() -> None:
    results = await spend.run(iterations=20, rounds=2, concurrency=4)
    assert results["totals_exact"] is True
    evaluate = results["evaluate"]
    assert set(evaluate) == {name for name, _, _ in spend.CASES}
    assert all(evaluate[name]["per_second"] > 0 for name in evaluate)
    assert "ratio" in evaluate["with_period_limit"]
    assert results["concurrent_commits"]["commits"] == 20
    table = spend.markdown(results)
    assert "evaluate + commit round trip" in table
    assert "commits, 4 concurrent" in table
