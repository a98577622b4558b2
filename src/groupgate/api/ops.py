"""Operations: `/healthz`, `/readyz`, Prometheus `/metrics`, `/openapi.json`.

- `/healthz` is 200 whenever the process answers (liveness);
- `/readyz` is 200 when the store answers and the policy is loaded, else a 503 problem;
- `/metrics`: `groupgate_decisions_total{surface,result}`, the latency histogram
  `groupgate_decision_seconds{surface}`, and, read from the service's `stats()` at scrape time,
  cache hits/misses/entries/evictions, store errors and change events. Each app has its own
  registry (several apps may live in one test process).

Decisions are counted in plain per-surface lists and exported by a collector at scrape time:
prometheus_client's Counter and Histogram take a lock per update, which cost about 3% of a
`/v1/check` under load (py-spy). One event loop thread updates them, so no lock is needed.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from groupgate import log
from groupgate.api.app import STATE
from groupgate.api.native import json_response
from groupgate.api.problems import guarded, problem

SURFACES = (
    "check",
    "checks",
    "filter",
    "purchase",
    "purchase.commit",
    "purchase.release",
    "approval",
    "authzen",
    "gateway",
)
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
_COUNTERS = {
    "cache_hits": "groupgate_cache_hits",
    "cache_misses": "groupgate_cache_misses",
    "cache_evictions": "groupgate_cache_evictions",
    "cache_flushes": "groupgate_cache_flushes",
    "store_errors": "groupgate_store_errors",
    "change_events": "groupgate_change_events",
}


class _DecisionCollector:
    """Export the decision counters and latency histograms kept by `Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        decisions = CounterMetricFamily(
            "groupgate_decisions", "decisions by surface and result", labels=["surface", "result"]
        )
        latency = HistogramMetricFamily(
            "groupgate_decision_seconds",
            "time to decide, from request parsing to answer",
            labels=["surface"],
        )
        for surface in SURFACES:
            allow, deny = self.metrics.results[surface]
            decisions.add_metric([surface, "allow"], allow)
            decisions.add_metric([surface, "deny"], deny)
            running = 0
            buckets = []
            for bound, count in zip(
                (*BUCKETS, float("inf")), self.metrics.buckets[surface], strict=True
            ):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric([surface], buckets, self.metrics.sums[surface])
        yield decisions
        yield latency


class _ServiceCollector:
    """Expose the service's own counters at scrape time (nothing is counted twice)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        stats = getattr(self.service, "stats", None)
        if stats is None:
            return
        values: dict[str, int] = stats()
        for key, name in _COUNTERS.items():
            if key in values:
                metric = CounterMetricFamily(name, f"groupgate store: {key.replace('_', ' ')}")
                metric.add_metric([], values[key])
                yield metric
        if "cache_entries" in values:
            gauge = GaugeMetricFamily("groupgate_cache_entries", "compiled profiles cached")
            gauge.add_metric([], values["cache_entries"])
            yield gauge


class _LogCollector:
    """`groupgate_log_lines_dropped_total`: application log lines dropped because stderr was
    not read as fast as they came (`log.Lines`)."""

    def collect(self) -> Iterator[Any]:
        metric = CounterMetricFamily(
            "groupgate_log_lines_dropped", "log lines dropped: stderr was not read fast enough"
        )
        metric.add_metric([], log.dropped())
        yield metric


class Metrics:
    """Decision counters and latency histograms of one application."""

    def __init__(self, service: Any) -> None:
        self.registry = CollectorRegistry()
        # Per surface: [allow count, deny count]; bucket counts (last: +Inf) and a sum.
        self.results = {s: [0, 0] for s in SURFACES}
        self.buckets = {s: [0] * (len(BUCKETS) + 1) for s in SURFACES}
        self.sums = dict.fromkeys(SURFACES, 0.0)
        self.registry.register(_DecisionCollector(self))
        self.registry.register(_ServiceCollector(service))
        self.registry.register(_LogCollector())

    def observe(self, surface: str, allowed: bool, seconds: float) -> None:
        self.results[surface][0 if allowed else 1] += 1
        self.buckets[surface][bisect_left(BUCKETS, seconds)] += 1
        self.sums[surface] += seconds

    def observe_many(self, surface: str, allowed: int, denied: int, started: float) -> None:
        """Count a batch answered since `started` (`perf_counter`): each decision is observed
        at the batch's time divided evenly among them."""
        count = allowed + denied
        if not count:
            return
        elapsed = time.perf_counter() - started
        results = self.results[surface]
        results[0] += allowed
        results[1] += denied
        self.buckets[surface][bisect_left(BUCKETS, elapsed / count)] += count
        self.sums[surface] += elapsed

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.catalog.types:
        return problem(503, "Not ready", "no policy loaded", "not-ready")
    if not await state.decider.ready():
        return problem(503, "Not ready", "the graph store does not answer", "not-ready")
    body: dict[str, Any] = {"status": "ready"}
    policies = state.extra.get("policies")
    if policies is not None:
        # A refused reload keeps the last good set: still ready, and says why.
        body["policies"] = policies.as_json()
    return json_response(body)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.Response(
        body=state.metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def openapi(request: web.Request) -> web.Response:
    from groupgate.api.openapi import document

    state = request.app[STATE]
    cached = state.extra.get("openapi")
    if cached is None:
        cached = state.extra["openapi"] = orjson.dumps(document())
    return web.Response(body=cached, content_type="application/json")


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", guarded(healthz), name="ops.healthz")
    app.router.add_get("/readyz", guarded(readyz), name="ops.readyz")
    app.router.add_get("/metrics", guarded(metrics), name="ops.metrics")
    app.router.add_get("/openapi.json", guarded(openapi), name="ops.openapi")
