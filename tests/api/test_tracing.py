"""OpenTelemetry traces (issue 14 item 9): off by default; on, a request span continuing the
caller's trace with the decision's attributes, and store and compile spans inside it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from groupgate import tracing
from groupgate.api.app import STATE
from tests.api.conftest import API_KEY, MakeClient

PEP = {"Authorization": f"Bearer {API_KEY}"}
CHECK = {"subject": {"id": "emp-de"}, "action": "read", "resource": {"type": "orders"}}
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    yield exporter
    tracing.disable()


async def test_off_by_default(make_client: MakeClient) -> None:
    client = await make_client(api_keys=API_KEY)
    assert tracing.TRACER is None
    assert client.app[STATE].config.otel is False
    assert (await client.post("/v1/check", json=CHECK, headers=PEP)).status == 200
    assert tracing.span("x") is tracing.span("y")  # one shared no-op


async def test_a_check_is_traced(make_client: MakeClient, exporter: InMemorySpanExporter) -> None:
    client = await make_client(api_keys=API_KEY, otel=True)
    headers = {**PEP, "traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"}
    assert (await client.post("/v1/check", json=CHECK, headers=headers)).status == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    request = spans["POST /v1/check"]
    attributes: dict[str, Any] = dict(request.attributes or {})
    assert attributes["groupgate.surface"] == "check"
    assert attributes["groupgate.subject"] == "emp-de"
    assert attributes["groupgate.allow"] is False
    assert attributes["http.response.status_code"] == 200
    assert format(request.context.trace_id, "032x") == TRACE_ID  # the caller's trace
    resolve, compile_ = spans["store.resolve"], spans["compile"]
    assert resolve.parent is not None and resolve.parent.span_id == request.context.span_id
    assert compile_.parent is not None and compile_.parent.span_id == resolve.context.span_id
    exporter.clear()
    # A cached subject: no store span.
    assert (await client.post("/v1/check", json=CHECK, headers=PEP)).status == 200
    assert [s.name for s in exporter.get_finished_spans()] == ["POST /v1/check"]


async def test_the_decision_listener_is_traced(
    make_client: MakeClient, exporter: InMemorySpanExporter
) -> None:
    import aiohttp

    from tests.api.test_decisions import free_port

    port = free_port()
    await make_client(api_keys=API_KEY, otel=True, decision_port=port)
    headers = {**PEP, "traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"}
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/v1/check"
        async with session.post(url, json=CHECK, headers=headers) as response:
            assert response.status == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    request = spans["POST /v1/check"]
    attributes: dict[str, Any] = dict(request.attributes or {})
    assert attributes["groupgate.surface"] == "check"
    assert attributes["http.response.status_code"] == 200
    assert format(request.context.trace_id, "032x") == TRACE_ID
    assert spans["store.resolve"].parent.span_id == request.context.span_id  # type: ignore[union-attr]
