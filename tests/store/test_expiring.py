"""Expiring grants (issue 14): links with `valid_from` / `valid_until`.

A compiled profile is served only until the earliest instant one of its links (or a link of
an approval group it depends on) starts or ends; then it is compiled again. With a
controllable clock, no allow is ever answered past `valid_until` nor before `valid_from`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupgate.errors import GraphError
from groupgate.model import Catalog, Money, Resource
from groupgate.store.codec import moment_text
from groupgate.store.service import GraphService
from tests.store.conftest import Opener

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
ORDER = Resource(type="orders", id="o-1", company="c-1")
APPROVALS = Resource(type="approvals", id="a-1", company="c-1")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def link(group: str, start: float | None, end: float | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"group": group, **extra}
    if start is not None:
        out["valid_from"] = moment_text(start)
    if end is not None:
        out["valid_until"] = moment_text(end)
    return out


def document(
    tenant: str,
    viewer: tuple[float | None, float | None],
    admin: tuple[float | None, float | None],
    approver: tuple[float | None, float | None],
) -> dict[str, Any]:
    """emp-1 reads orders through `viewers`; cust-1 is c-1's Admin; cust-2 is in c-1's
    approval group (then cust-1 does not approve): each link within its window."""
    return {
        "tenant": tenant,
        "companies": [{"id": "c-1", "name": "C1", "approval_group": "c-1-approvers"}],
        "groups": [
            {"id": "viewers", "name": "Viewers", "kind": "user", "role": "viewer"},
            {
                "id": "c-1-approvers",
                "name": "Approvers",
                "kind": "customer",
                "company": "c-1",
                "access": {"orders": "read"},
            },
        ],
        "subjects": [
            {"id": "emp-1", "kind": "employee", "groups": [link("viewers", *viewer)]},
            {
                "id": "cust-1",
                "kind": "customer",
                "groups": [link("c-1/admin", *admin), "c-1/contact"],
            },
            {
                "id": "cust-2",
                "kind": "customer",
                "groups": ["c-1/contact", link("c-1-approvers", *approver)],
            },
        ],
    }


def holds(window: tuple[float | None, float | None], now: float) -> bool:
    start, end = window
    return (start is None or now >= start) and (end is None or now < end)


async def answers(service: GraphService, tenant: str) -> tuple[bool, bool, bool]:
    viewer = (await service.decider.check(tenant, "emp-1", "read", ORDER)).decision.allow
    admin = (await service.decider.check(tenant, "cust-1", "approve", APPROVALS)).decision.allow
    approver = (await service.decider.check(tenant, "cust-2", "approve", APPROVALS)).decision.allow
    return viewer, admin, approver


def expected(
    viewer: tuple[float | None, float | None],
    admin: tuple[float | None, float | None],
    approver: tuple[float | None, float | None],
    now: float,
) -> tuple[bool, bool, bool]:
    group_active = holds(approver, now)
    return holds(viewer, now), holds(admin, now) and not group_active, group_active


offsets = st.one_of(st.none(), st.integers(min_value=-5, max_value=30))


def window(pair: tuple[int | None, int | None]) -> tuple[float | None, float | None]:
    start, end = pair
    if start is not None and end is not None and end <= start:
        end = start + 1
    return (
        None if start is None else T0 + start,
        None if end is None else T0 + end,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    viewer=st.tuples(offsets, offsets),
    admin=st.tuples(offsets, offsets),
    approver=st.tuples(offsets, offsets),
    steps=st.lists(st.integers(min_value=-6, max_value=32), min_size=1, max_size=12),
)
def test_no_allow_outside_a_window(
    catalog: Catalog,
    viewer: tuple[int | None, int | None],
    admin: tuple[int | None, int | None],
    approver: tuple[int | None, int | None],
    steps: list[int],
) -> None:
    windows = window(viewer), window(admin), window(approver)
    # Every boundary itself, and the millisecond before it, are among the instants asked.
    instants = sorted(
        {T0 + s for s in steps}
        | {t for w in windows for t in w if t is not None}
        | {t - 0.001 for w in windows for t in w if t is not None}
    )

    async def run() -> None:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        service = GraphService(catalog, client)
        clock = Clock(instants[0])
        service.cache.clock = clock
        await service.start()
        try:
            await service.admin.import_graph(None, document("t", *windows))
            for now in instants:  # time only moves forward, the cache is warm throughout
                clock.now = now
                assert await answers(service, "t") == expected(*windows, now), now
        finally:
            await service.close()

    asyncio.run(run())


async def test_expiring_grants_on_every_backend(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    clock = Clock(T0)
    service.cache.clock = clock
    await service.admin.import_graph(
        None, document(tenant, (T0 + 10, T0 + 20), (None, None), (T0 + 5, T0 + 15))
    )
    assert await answers(service, tenant) == (False, True, False)
    clock.now = T0 + 5  # the approval group's member starts: it replaces the Admin
    assert await answers(service, tenant) == (False, False, True)
    over = await service.decider.purchase(tenant, "cust-1", "c-1", Money(Decimal("1"), "EUR"))
    assert over.result.decision == "allow"  # Admin, no limit
    clock.now = T0 + 10
    assert await answers(service, tenant) == (True, False, True)
    clock.now = T0 + 15 - 0.001
    assert await answers(service, tenant) == (True, False, True)
    clock.now = T0 + 15
    assert await answers(service, tenant) == (True, True, False)
    clock.now = T0 + 20
    assert await answers(service, tenant) == (False, True, False)
    entity = await service.admin.get_entity(tenant, "subject", "emp-1")
    assert entity["groups"] == [
        {
            "group": "viewers",
            "valid_from": "2027-01-15T08:00:10.000Z",
            "valid_until": "2027-01-15T08:00:20.000Z",
        }
    ]


async def test_purchase_approvers_follow_the_windows(open_service: Opener, tenant: str) -> None:
    service = await open_service()
    clock = Clock(T0)
    service.cache.clock = clock
    doc = document(tenant, (None, None), (None, None), (T0 + 5, T0 + 15))
    doc["companies"][0]["account_limit"] = {"amount": "100.00", "currency": "EUR"}
    doc["subjects"].append({"id": "cust-3", "kind": "customer", "companies": {"c-1": ["buyer"]}})
    await service.admin.import_graph(None, doc)
    big = Money(Decimal("500.00"), "EUR")
    answer = await service.decider.purchase(tenant, "cust-3", "c-1", big)
    assert answer.result.approver_subjects == ("cust-1",)
    clock.now = T0 + 5
    answer = await service.decider.purchase(tenant, "cust-3", "c-1", big)
    assert answer.result.approver_subjects == ("cust-2",)
    clock.now = T0 + 15
    answer = await service.decider.purchase(tenant, "cust-3", "c-1", big)
    assert answer.result.approver_subjects == ("cust-1",)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"group": "viewers", "valid_from": "2027-01-01"}, "RFC 3339"),
        ({"group": "viewers", "valid_until": "2027-01-01T00:00:00"}, "RFC 3339"),
        ({"group": "viewers", "valid_until": 1800000000}, "RFC 3339"),
        ({"group": "viewers", "valid_from": "2027-02-30T00:00:00Z"}, "not a valid"),
        (
            {
                "group": "viewers",
                "valid_from": "2027-01-02T00:00:00Z",
                "valid_until": "2027-01-01T00:00:00+01:00",
            },
            "later than valid_from",
        ),
        ({"group": "viewers", "valid_since": "2027-01-01T00:00:00Z"}, "valid_since"),
    ],
)
async def test_bad_windows_are_refused(
    open_service: Opener, tenant: str, entry: dict[str, Any], message: str
) -> None:
    service = await open_service()
    doc = document(tenant, (None, None), (None, None), (None, None))
    rev = await service.admin.import_graph(None, doc)
    with pytest.raises(GraphError, match=message):
        await service.admin.add_membership(tenant, "emp-1", entry)
    assert await service.decider.revision(tenant) == rev
