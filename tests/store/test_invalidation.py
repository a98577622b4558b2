"""Revocations are never used after the revoking write returned (consistency tokens)."""

from __future__ import annotations

import asyncio

from groupgate.model import Resource
from tests.store.conftest import Opener
from tests.store.data import acme

ORDER = Resource(type="orders", id="o-1", company="c-parent", restrictions=frozenset({"DE"}))
REVOCATIONS = 1000


async def test_a_thousand_revocations_zero_stale_allows(open_service: Opener, tenant: str) -> None:
    writer, reader = await open_service(), await open_service()
    await writer.admin.import_graph(None, acme(tenant))
    stale_allows = granted_allows = 0
    for _ in range(REVOCATIONS):
        rev = await writer.admin.add_membership(tenant, "emp-2", "de-managers")
        answer = await reader.decider.check(tenant, "emp-2", "update", ORDER, min_revision=rev)
        granted_allows += answer.decision.allow
        rev = await writer.admin.remove_membership(tenant, "emp-2", "de-managers")
        answer = await reader.decider.check(tenant, "emp-2", "update", ORDER, min_revision=rev)
        stale_allows += answer.decision.allow
        assert answer.revision >= rev
    assert stale_allows == 0
    assert granted_allows == REVOCATIONS


async def test_revocation_reaches_another_instance_without_token(
    open_service: Opener, tenant: str
) -> None:
    writer, reader = await open_service(), await open_service()
    await writer.admin.import_graph(None, acme(tenant))
    assert (await reader.decider.check(tenant, "emp-1", "update", ORDER)).decision.allow
    await writer.admin.remove_membership(tenant, "emp-1", "de-managers")
    for _ in range(250):
        if not (await reader.decider.check(tenant, "emp-1", "update", ORDER)).decision.allow:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the revocation never reached the other instance")
