"""OpenTelemetry traces, optional (`pip install 'groupgate[otel]'`, `GROUPGATE_OTEL=1`).

Spans: one per HTTP request on either listener (`SERVER`, the caller's `traceparent`
continued) carrying the decision's attributes (`groupgate.surface`, `.tenant`, `.subject`,
`.action`, `.resource_type`, `.allow`, `.reason`); `store.resolve` for a store round trip
that resolves subjects, with `compile` inside it; `store.purchase` for a purchase's read of
its company and approvers. The exporter is OTLP over HTTP, configured by the standard `OTEL_*`
variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, ...).

Off (the default) costs one test of a module global where a span would start: no
OpenTelemetry import, no context object, no middleware. Prometheus metrics are unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

#: The tracer when tracing is on, else None (tested on the paths that would make a span).
TRACER: Any = None


def enable(provider: Any = None) -> None:
    """Turn tracing on with `provider` (a `TracerProvider`), or one exporting OTLP over HTTP
    as the `OTEL_*` variables say. Raises ImportError without the `otel` extra."""
    global TRACER
    from opentelemetry import trace

    if provider is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "groupgate"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    TRACER = trace.get_tracer("groupgate", tracer_provider=provider)


def disable() -> None:
    global TRACER
    TRACER = None


@contextlib.contextmanager
def _span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    with TRACER.start_as_current_span(name, attributes=attributes) as span:
        yield span


_OFF = contextlib.nullcontext()


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one named `name`; a shared no-op when tracing is off."""
    if TRACER is None:
        return _OFF
    return _span(name, {f"groupgate.{k}": v for k, v in attributes.items() if v is not None})


def annotate(**attributes: Any) -> None:
    """Add attributes to the current span (the request's): the decision's fields."""
    from opentelemetry import trace

    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(f"groupgate.{key}", value)


def server_span(name: str, headers: Mapping[str, str]) -> contextlib.AbstractContextManager[Any]:
    """A `SERVER` span named `name` continuing the trace of a request with `headers` (the
    decision listener's form of `request_middleware`)."""
    from opentelemetry import propagate, trace

    context = propagate.extract(dict(headers))
    span: contextlib.AbstractContextManager[Any] = TRACER.start_as_current_span(
        name, context=context, kind=trace.SpanKind.SERVER
    )
    return span


def request_middleware() -> Any:
    """An aiohttp middleware that runs each request in a `SERVER` span continuing the
    caller's trace (added to the app only when tracing is on)."""
    from aiohttp import web
    from opentelemetry import propagate, trace

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> Any:
        context = propagate.extract(dict(request.headers))
        route = request.match_info.route.resource
        name = f"{request.method} {route.canonical if route is not None else request.path}"
        with TRACER.start_as_current_span(
            name, context=context, kind=trace.SpanKind.SERVER
        ) as current:
            response = await handler(request)
            current.set_attribute("http.response.status_code", response.status)
            return response

    return middleware
