"""Export (`store/export.py`): export then import into an empty store gives the same
decisions, on fakeredis, a real Redis and the Cluster; a write during an export is
detected; a large tenant comes out in pieces of one batch each.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupgate.model import Catalog, Money, Resource
from groupgate.store.export import Moved
from groupgate.store.service import GraphService
from tests.engine.test_properties import COMPANIES, checks, documents

from .conftest import Opener, forget_tenant

SUBJECTS = ("emp", "cust", "vu")
AMOUNTS = ("10.00", "600.00", "6000.00")

limits = st.one_of(
    st.none(),
    st.sampled_from(["500.00", "5000.00"]).map(lambda a: {"amount": a, "currency": "EUR"}),
)
held = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["orders", "products", "quotes"]),
            "id": st.just("r1"),
            "attributes": st.fixed_dictionaries(
                {},
                optional={
                    "company": st.sampled_from(COMPANIES),
                    "vendor": st.sampled_from(["v1", "v2"]),
                    "owner": st.sampled_from(["a@shop.test", "emp"]),
                    "restrictions": st.lists(st.sampled_from(["DE", "US"]), max_size=2),
                    "colour": st.sampled_from(["red", 3, None]),
                },
            ),
        }
    ),
    max_size=3,
    unique_by=lambda r: r["type"],
)


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, Any]:
    """The engine's random graph documents, with account limits and held resources."""
    doc = draw(documents())
    for company in doc["companies"]:
        limit = draw(limits)
        if limit is not None:
            company["account_limit"] = limit
    doc["resources"] = draw(held)
    return doc


async def export(service: GraphService, tenant: str, batch: int = 500) -> bytes:
    return b"".join([c async for c in service.admin.export(tenant, service.admin.exporter(batch))])


async def decisions(
    service: GraphService, tenant: str, questions: list[tuple[str, Resource]]
) -> list[Any]:
    out: list[Any] = []
    for subject in SUBJECTS:
        for action, resource in questions:
            d = (await service.decider.check(tenant, subject, action, resource)).decision
            out.append((subject, action, resource, d.allow, d.reason, d.group))
    for company in COMPANIES:
        for amount in AMOUNTS:
            r = (
                await service.decider.purchase(
                    tenant, "cust", company, Money(Decimal(amount), "EUR")
                )
            ).result
            out.append(
                (company, amount, r.decision, r.rule, r.approver_groups, r.approver_subjects)
            )
    return out


async def round_trip(
    catalog: Catalog,
    url: str | None,
    doc: dict[str, Any],
    questions: list[tuple[str, Resource]],
    rename_vendor: bool,
) -> None:
    source, target = "t-" + uuid.uuid4().hex[:12], "t-" + uuid.uuid4().hex[:12]
    first = await GraphService.open(catalog, url, poll_interval=60.0)
    # The empty store: a fresh fakeredis server, or an unused tenant of the real one.
    second = await GraphService.open(catalog, url, poll_interval=60.0)
    try:
        await first.admin.import_graph(source, {**doc, "tenant": source})
        if rename_vendor:  # admin writes after the import: the vendor's groups keep old names
            await first.admin.put_vendor(source, {"id": "v2", "name": "Renamed"})
        exported = orjson.loads(await export(first, source, batch=2))
        assert exported["tenant"] == source
        await second.admin.import_graph(target, {**exported, "tenant": target})
        assert await decisions(first, source, questions) == await decisions(
            second, target, questions
        )
        # The document is a fixed point: the copy exports the same document.
        again = orjson.loads(await export(second, target, batch=3))
        assert {**again, "tenant": source} == exported
    finally:
        await first.close()
        await second.close()
        if url is not None and not url.startswith("redis+cluster://"):
            forget_tenant(url, source)
            forget_tenant(url, target)


def test_export_then_import_gives_the_same_decisions(catalog: Catalog, backend: str | None) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(doc=graphs(), questions=checks, rename_vendor=st.booleans())
    def prop(
        doc: dict[str, Any], questions: list[tuple[str, Resource]], rename_vendor: bool
    ) -> None:
        asyncio.run(round_trip(catalog, backend, doc, questions, rename_vendor))

    prop()


async def test_a_write_during_an_export_is_detected(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    subjects = [{"id": f"e{i:03}", "kind": "employee"} for i in range(10)]
    await service.admin.import_graph(tenant, {"tenant": tenant, "subjects": subjects})
    exporter = service.admin.exporter(batch=2)
    chunks = service.admin.export(tenant, exporter)
    first = [await anext(chunks), await anext(chunks)]
    assert b'"tenant"' in first[0] and exporter.revision == await service.decider.revision(tenant)
    await service.admin.put_vendor(tenant, {"id": "late", "name": "Late"})
    with pytest.raises(Moved, match="changed during the export"):
        async for _ in chunks:
            pass


async def test_a_large_tenant_comes_out_one_batch_at_a_time(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    subjects = [
        {"id": f"e{i:05}", "kind": "employee", "attributes": {"n": i}, "groups": ["g"]}
        for i in range(3000)
    ]
    doc = {
        "tenant": tenant,
        "groups": [{"id": "g", "name": "G", "kind": "user"}],
        "subjects": subjects,
    }
    await service.admin.import_graph(tenant, doc)
    pieces = [c async for c in service.admin.export(tenant, service.admin.exporter(batch=100))]
    body = orjson.loads(b"".join(pieces))
    assert [s["id"] for s in body["subjects"]] == [s["id"] for s in subjects]
    # 30 pieces of 100 subjects, none of them holding more than one batch.
    subject_pieces = [p for p in pieces if p.count(b'"kind":"employee"') > 0]
    assert len(subject_pieces) == 30
    assert max(p.count(b'"kind":"employee"') for p in subject_pieces) == 100


async def test_an_unknown_tenant_is_not_found(open_service: Opener) -> None:
    from groupgate.errors import NotFound

    service = await open_service()
    with pytest.raises(NotFound, match="unknown tenant"):
        await export(service, "t-" + uuid.uuid4().hex)


async def test_approval_data_round_trips(open_service: Opener, tenant: str) -> None:
    """What issues 13 and 14 added to the document (spending limits, budgets, time zone,
    approval rules, delegations, membership windows) comes out of an export as it went in."""
    service = await open_service()
    document: dict[str, Any] = {
        "tenant": tenant,
        "settings": {"time_zone": "Europe/Berlin"},
        "companies": [
            {
                "id": "co",
                "name": "Co",
                "spending_limits": [{"period": "month", "amount": "1000.00", "currency": "EUR"}],
                "budgets": [
                    {
                        "id": "b1",
                        "cost_center": "CC-1",
                        "from": "2027-01-01",
                        "until": "2027-12-31",
                        "amount": "5000.00",
                        "currency": "EUR",
                    }
                ],
                "approval_rules": [
                    {
                        "id": "big",
                        "when": {"amount_over": "2000.00", "currency": "EUR"},
                        "tiers": [[["admin"]]],
                    }
                ],
            }
        ],
        "subjects": [
            {"id": "adm", "kind": "customer", "companies": {"co": ["admin"]}},
            {
                "id": "sub",
                "kind": "customer",
                "groups": [
                    "co/contact",
                    {"group": "co/buyer", "valid_until": "2027-03-31T22:00:00.000Z"},
                ],
            },
        ],
        "delegations": [
            {
                "id": "d1",
                "from": "adm",
                "to": "sub",
                "company": "co",
                "from_time": "2027-01-15T00:00:00Z",
                "until_time": "2027-01-16T00:00:00Z",
            }
        ],
    }
    await service.admin.import_graph(None, document)
    exported = orjson.loads(await export(service, tenant))
    [company] = exported["companies"]
    assert company["spending_limits"] == document["companies"][0]["spending_limits"]
    assert company["budgets"][0]["id"] == "b1" and company["approval_rules"][0]["id"] == "big"
    assert exported["settings"]["time_zone"] == "Europe/Berlin"
    assert [d["id"] for d in exported["delegations"]] == ["d1"]
    sub = next(s for s in exported["subjects"] if s["id"] == "sub")
    assert {"group": "co/buyer", "valid_until": "2027-03-31T22:00:00.000Z"} in sub["groups"]
    copy = f"{tenant}-copy"
    try:
        await service.admin.import_graph(None, {**exported, "tenant": copy})
        again = orjson.loads(await export(service, copy))
        assert {**again, "tenant": tenant} == exported
    finally:
        await service.admin.delete_tenant(copy)
