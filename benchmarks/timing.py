"""Timing helpers: one pinned core, no garbage collector, batches timed with perf_counter_ns.

A figure is the median over several runs of (run time / checks). Each run times its checks
in batches (`batch` checks per `perf_counter_ns` pair), so the p99 comes from per-batch
averages, not from single checks that the clock cannot resolve.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def pin_one_core() -> int | None:
    """Pin this process to one CPU (the last it may use); return it, or None if unsupported."""
    getter = getattr(os, "sched_getaffinity", None)
    setter = getattr(os, "sched_setaffinity", None)
    if getter is None or setter is None:
        return None
    cpu = max(getter(0))
    setter(0, {cpu})
    return int(cpu)


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect once, then keep the collector off while timing."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class Timing:
    """Per-check figures in microseconds."""

    median_us: float
    p99_us: float
    min_us: float
    runs_us: tuple[float, ...]
    checks: int
    batch: int

    def as_json(self) -> dict[str, Any]:
        return {
            "median_us": round(self.median_us, 4),
            "p99_us": round(self.p99_us, 4),
            "min_us": round(self.min_us, 4),
            "runs_us": [round(r, 4) for r in self.runs_us],
            "checks_per_run": self.checks,
            "batch": self.batch,
        }


def batches(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def time_batches(
    run_batch: Callable[[Sequence[T]], object], items: Sequence[T], *, runs: int, batch: int
) -> Timing:
    """Time `run_batch` over `items` in batches, `runs` times; return per-check figures."""
    chunks = batches(items, batch)
    per_run: list[float] = []
    per_batch: list[float] = []
    clock = time.perf_counter_ns
    with no_gc():
        for _ in range(runs):
            total = 0
            for chunk in chunks:
                start = clock()
                run_batch(chunk)
                elapsed = clock() - start
                total += elapsed
                per_batch.append(elapsed / len(chunk) / 1000)
            per_run.append(total / len(items) / 1000)
    per_batch.sort()
    p99 = per_batch[min(len(per_batch) - 1, int(0.99 * len(per_batch)))]
    return Timing(statistics.median(per_run), p99, min(per_run), tuple(per_run), len(items), batch)


def time_calls(call: Callable[[], object], *, repeat: int) -> dict[str, float]:
    """Time `call` `repeat` times one by one; return median, p99 and min in microseconds."""
    samples: list[float] = []
    clock = time.perf_counter_ns
    with no_gc():
        for _ in range(repeat):
            start = clock()
            call()
            samples.append((clock() - start) / 1000)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[min(len(samples) - 1, int(0.99 * len(samples)))], 2),
        "min_us": round(samples[0], 2),
        "n": repeat,
    }
