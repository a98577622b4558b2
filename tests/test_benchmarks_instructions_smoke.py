"""Smoke test of `python -m benchmarks instructions` at a tiny size: the counting child runs
under callgrind, answers every request of every list in its counted pass with the statuses it
saw while warming, and the figures and table come out. No figure is compared with a bound."""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks import instructions

MISSING = [t for t in ("valgrind", "callgrind_control", "redis-server") if not shutil.which(t)]


def test_instructions_counts_every_workload() -> None:
    if MISSING:
        # scripts/check installs them and sets GROUPGATE_REQUIRE_REDIS: there, a miss fails.
        message = f"needs {', '.join(MISSING)} (Debian: valgrind, redis-server)"
        if os.environ.get("GROUPGATE_REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    results = instructions.run(subjects=60, requests=40)
    per = results["instructions_per_request"]
    assert set(per) == {*instructions.WORKLOADS, "check_audit"}
    assert all(count > 0 for count in per.values())
    for name, statuses in results["statuses"].items():
        assert sum(statuses.values()) == 40, (name, statuses)
    assert set(results["statuses"]["check"]) == {"200"}
    assert set(results["statuses"]["forward_auth_hs256"]) <= {"200", "403"}
    table = instructions.markdown(results)
    assert "| `POST /v1/check` |" in table
    assert "The audit trail (Redis stream sink) adds" in table
