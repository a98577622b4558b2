"""The one place where a decision is recorded: the metrics and the audit trail.

Every decision surface (`/v1/check`, `/v1/checks`, `/v1/filter`, purchases, AuthZEN
evaluations and searches, gateway forward-auth, on every listener) calls `record` (or
`record_many` for a batch) once per answer, denials included, with the same field set
(`groupgate.audit.record`):

    decision_id, time, surface, tenant, caller, subject, action, type, id, allow, reason,
    revision, latency_ms, request_id

plus `extra` for what only one surface has (a purchase's amount as sent, the gateway's method
and path). A field the surface does not know is null, never left out, so that the trail can
be queried by field across surfaces. With no audit sink it costs one test; with one, a tuple
of the decision's number and fields (`groupgate.audit.record.Decision`: the writer gives it
its id and makes it a record) appended to the trail's bounded buffer
(`groupgate.audit.trail`), never a write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from time import perf_counter, time
from typing import Any, NamedTuple, Protocol

from groupgate import tracing


class Metrics(Protocol):
    """What `record` needs of `groupgate.api.ops.Metrics`."""

    def observe(self, surface: str, allowed: bool, seconds: float) -> None: ...

    def observe_many(self, surface: str, allowed: int, denied: int, started: float) -> None: ...


class Recorder(Protocol):
    """What `record` needs of the application state (`groupgate.api.app.State`)."""

    metrics: Any
    #: The audit trail (`groupgate.audit.trail.AuditTrail`), None when no sink is set.
    audit: Any


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
    request_id: str | None = None,
) -> None:
    """Count one decision answered since `started` (`perf_counter`) and hand it to the
    audit trail when there is one."""
    elapsed = perf_counter() - started
    state.metrics.observe(surface, allow, elapsed)
    if tracing.TRACER is not None:
        tracing.annotate(
            surface=surface,
            tenant=tenant,
            subject=subject,
            action=action,
            resource_type=type,
            allow=allow,
            reason=reason,
        )
    audit = state.audit
    if audit is not None:
        audit.add(
            (
                next(audit.numbers),
                time(),
                surface,
                tenant,
                caller,
                subject,
                action,
                type,
                id,
                allow,
                reason,
                revision,
                int(elapsed * 1e6 + 0.5) / 1000,  # round(ms, 3) at half the cost
                request_id,
                extra,
            )
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
    request_id: str | None = None,
) -> None:
    """Count a batch of `count` decisions (`allowed` of them allows) answered since `started`
    and, with an audit trail, record each of `decided` (a lazy iterable: without a trail it
    is never walked, so a batch builds no record per item)."""
    state.metrics.observe_many(surface, allowed, count - allowed, started)
    audit = state.audit
    if audit is not None:
        latency = int((perf_counter() - started) * 1e6 + 0.5) / 1000
        now = time()
        add, numbers = audit.add, audit.numbers
        for item in decided:
            add(
                (
                    next(numbers),
                    now,
                    surface,
                    tenant,
                    caller,
                    item.subject,
                    item.action,
                    item.type,
                    item.id,
                    item.allow,
                    item.reason,
                    item.revision,
                    latency,
                    request_id,
                    None,
                )
            )
