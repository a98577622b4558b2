"""Held resource entities on every backend: import, admin writes, the change event that drops
the sidecar's table, and checks that take the held attributes over the sent ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from groupgate.errors import GraphError, NotFound
from groupgate.model import Resource
from groupgate.store import keys
from tests.store.conftest import Opener, import_settled
from tests.store.data import acme

DE_ORDER = {"type": "orders", "id": "o-de", "attributes": {"restrictions": ["DE"]}}
US = frozenset({"US"})
DE = frozenset({"DE"})


def with_resources(tenant: str, *resources: dict[str, Any]) -> dict[str, Any]:
    doc = acme(tenant)
    doc["resources"] = list(resources)
    return doc


async def test_held_attributes_win_sent_ones_fill_the_rest(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await import_settled(service, with_resources(tenant, DE_ORDER))
    sent_us = Resource("orders", "o-de", restrictions=US)
    assert (await service.decider.check(tenant, "emp-1", "update", sent_us)).decision.allow
    # The same through the cache, with no store call: the table is in-process now.
    cached = service.decider.check_cached(tenant, "emp-1", "update", sent_us)
    assert cached is not None and cached.decision.allow
    # A resource not held takes what the request sends.
    other = Resource("orders", "o-us", restrictions=US)
    assert not (await service.decider.check(tenant, "emp-1", "update", other)).decision.allow
    other_de = Resource("orders", "o-us", restrictions=DE)
    assert service.decider.check_cached(tenant, "emp-1", "update", other_de) is not None
    answers = await service.decider.check_many(
        tenant, [("emp-1", "update", sent_us), ("emp-1", "update", other)]
    )
    assert [a.decision.allow for a in answers] == [True, False]
    explained = await service.decider.check(tenant, "emp-1", "update", sent_us, explain=True)
    assert explained.decision.allow


async def test_writes_reach_another_instance(open_service: Opener, tenant: str) -> None:
    writer, reader = await open_service(), await open_service()
    await writer.admin.import_graph(None, acme(tenant))
    sent_us = Resource("orders", "o-de", restrictions=US)
    assert not (await reader.decider.check(tenant, "emp-1", "update", sent_us)).decision.allow
    rev = await writer.admin.put_resource(tenant, DE_ORDER)
    answer = await reader.decider.check(tenant, "emp-1", "update", sent_us, min_revision=rev)
    assert answer.decision.allow and answer.revision >= rev
    assert await writer.admin.get_resource(tenant, "orders", "o-de") == {
        "type": "orders",
        "id": "o-de",
        "attributes": {"restrictions": ["DE"]},
    }
    assert await reader.decider.held_ids(tenant, "orders") == ("o-de",)
    rev = await writer.admin.delete_resource(tenant, "orders", "o-de")
    for _ in range(250):  # without a token: the change event drops the reader's table
        if not (await reader.decider.check(tenant, "emp-1", "update", sent_us)).decision.allow:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the deleted resource was never dropped by the other instance")
    assert await reader.decider.held_ids(tenant, "orders", min_revision=rev) == ()
    with pytest.raises(NotFound):
        await writer.admin.delete_resource(tenant, "orders", "o-de")
    with pytest.raises(NotFound):
        await writer.admin.get_resource(tenant, "orders", "o-de")


async def test_a_resource_write_drops_the_table_not_the_profiles(
    open_service: Opener, tenant: str
) -> None:
    writer, reader = await open_service(), await open_service()
    await import_settled(writer, with_resources(tenant, DE_ORDER), reader)
    sent_us = Resource("orders", "o-de", restrictions=US)
    await reader.decider.check(tenant, "emp-1", "update", sent_us)
    assert reader.decider.check_cached(tenant, "emp-1", "update", sent_us) is not None
    await writer.admin.put_resource(tenant, {**DE_ORDER, "attributes": {"restrictions": ["US"]}})
    for _ in range(250):
        if reader.decider.check_cached(tenant, "emp-1", "update", sent_us) is None:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the change event never dropped the resource table")
    # The profile stays cached: a check without an entity id is still answered in-process.
    assert reader.decider.check_cached(tenant, "emp-1", "update", Resource("orders")) is not None
    assert not (await reader.decider.check(tenant, "emp-1", "update", sent_us)).decision.allow


async def test_import_is_validated_whole_and_replaces_resources(
    open_service: Opener, tenant: str
) -> None:
    service = await open_service()
    await service.admin.import_graph(None, with_resources(tenant, DE_ORDER))
    old_gen = (await service.graphs.meta(tenant) or (0, "", ""))[1]

    def order(**fields: Any) -> dict[str, Any]:
        return {"type": "orders", "id": "o-2", **fields}

    for bad, where in [
        ({"type": "spaceships", "id": "1"}, "resources[1].type"),
        ({**DE_ORDER}, "resources[1].id"),
        (order(attributes={"owner": 7}), "resources[1].attributes.owner"),
        (order(attributes={"restrictions": "DE"}), "resources[1].attributes.restrictions"),
        (order(colour="red"), "resources[1].colour"),
    ]:  # fmt: skip
        with pytest.raises(GraphError) as raised:
            await service.admin.import_graph(None, with_resources(tenant, DE_ORDER, bad))
        assert raised.value.path == where
    assert await service.decider.held_ids(tenant, "orders") == ("o-de",)
    replaced = await service.admin.import_graph(None, acme(tenant))
    # With the import's revision: its change event may reach the cache after the answer.
    assert await service.decider.held_ids(tenant, "orders", min_revision=replaced) == ()
    old = keys.Gen(tenant, int(old_gen))
    assert not await service.client.exists(old.resources("orders"), old.rtypes())
    with pytest.raises(GraphError):
        await service.admin.put_resource(tenant, {"type": "orders", "id": "bad id!"})
