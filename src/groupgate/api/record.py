"""The one place where a decision is recorded: the metrics and the decision log.

Every decision surface (`/v1/check`, `/v1/checks`, `/v1/filter`, purchases, AuthZEN
evaluations and searches, gateway forward-auth, on every listener) calls `record` (or
`record_many` for a batch) once per answer, denials included, with the same field set:

    surface, tenant, caller, subject, action, type, id, allow, reason, revision, latency_ms

plus `extra` for what only one surface has (a purchase's amount as sent, the gateway's method
and path). A field the surface does not know is null, never left out, so that the log can be
queried by field across surfaces. The decision log costs one boolean test when it is off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from time import perf_counter
from typing import Any, NamedTuple, Protocol

from groupgate import log


class Metrics(Protocol):
    """What `record` needs of `groupgate.api.ops.Metrics`."""

    def observe(self, surface: str, allowed: bool, seconds: float) -> None: ...

    def observe_many(self, surface: str, allowed: int, denied: int, started: float) -> None: ...


class Recorder(Protocol):
    """What `record` needs of the application state (`groupgate.api.app.State`)."""

    metrics: Any
    decision_log: bool


class Decided(NamedTuple):
    """One decision of a batch, for `record_many`."""

    subject: str | None
    action: str | None
    type: str | None
    id: str | None
    allow: bool
    reason: str | None
    revision: int | None


def record(
    state: Recorder,
    surface: str,
    started: float,
    *,
    tenant: str | None,
    caller: str | None,
    subject: str | None,
    action: str | None,
    type: str | None,
    id: str | None,
    allow: bool,
    reason: str | None,
    revision: int | None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Count one decision answered since `started` (`perf_counter`) and log it when asked."""
    elapsed = perf_counter() - started
    state.metrics.observe(surface, allow, elapsed)
    if state.decision_log:
        log.decision(
            surface,
            tenant=tenant,
            caller=caller,
            subject=subject,
            action=action,
            type=type,
            id=id,
            allow=allow,
            reason=reason,
            revision=revision,
            latency_ms=round(elapsed * 1000, 3),
            **(extra or {}),
        )


def record_many(
    state: Recorder,
    surface: str,
    started: float,
    *,
    tenant: str | None,
    caller: str | None,
    allowed: int,
    count: int,
    decided: Iterable[Decided],
) -> None:
    """Count a batch of `count` decisions (`allowed` of them allows) answered since `started`
    and, when the decision log is on, log each of `decided` (a lazy iterable: with the log
    off it is never walked, so a batch builds no record per item)."""
    state.metrics.observe_many(surface, allowed, count - allowed, started)
    if state.decision_log:
        latency = round((perf_counter() - started) * 1000, 3)
        for item in decided:
            log.decision(
                surface,
                tenant=tenant,
                caller=caller,
                subject=item.subject,
                action=item.action,
                type=item.type,
                id=item.id,
                allow=item.allow,
                reason=item.reason,
                revision=item.revision,
                latency_ms=latency,
            )
