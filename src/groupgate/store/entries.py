"""What decisions are made from: the `Entries` protocol.

An entry is a subject's compiled profile (`cache.Entry`), answered with the revision it
holds and whether it is stale (the store was unreachable and it came from the cache). The
decider (`decider.StoreDecider`) is written against this protocol alone. The store reader
(`reader.StoreReader`) implements it without a cache; `cached.CachedEntries` implements it
too, around the reader: a decorator with the reader's interface that answers from the
`ProfileCache` when it may.

Why the cache decorates the source of entries and not the `Decider` itself: a decision is
computed from entries, and a `Decider` answers decisions, not entries. A cache around a
`Decider` would have only answers to keep, or it would make each decision again from the
entries it keeps: a second copy of the decision logic. Around the source of entries the
decision logic stays in one place, the same for a cached and an uncached source.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol, TypeAlias

from groupgate.store.cache import Entry
from groupgate.store.held import Table

#: An entry, the revision it holds, and whether it is stale.
Found: TypeAlias = tuple[Entry, int, bool]
#: `Found` with the tenant's held resource table (None: not loaded).
Kept: TypeAlias = tuple[Entry, int, bool, Table | None]


class Entries(Protocol):
    """Subjects' entries at a revision, the held resources, consistency tokens confirmed.

    `min_revision` is a consistency token: the answer holds that revision or a later one,
    else `Conflict`. An unknown tenant raises `NotFound`, an unknown subject is an entry
    without a subject. A store that fails raises `StoreUnavailable` (fail closed).
    """

    def lookup(self, tenant: str, subject: str, min_revision: int | None) -> Kept | None:
        """The entry of `subject` without awaiting anything, or None when it needs the store.

        Raises `StoreUnavailable` when what is kept may no longer be used (fail closed).
        """
        ...

    async def entry(self, tenant: str, subject: str, min_revision: int | None) -> Found:
        """The entry of `subject` at `min_revision` or later."""
        ...

    async def entries(
        self, tenant: str, subjects: Collection[str], min_revision: int | None
    ) -> dict[str, Found]:
        """The entries of many subjects, by subject."""
        ...

    async def held(self, tenant: str, min_revision: int | None) -> Table:
        """The tenant's held resource table."""
        ...

    async def held_ids(
        self, tenant: str, type_id: str, min_revision: int | None
    ) -> tuple[str, ...]:
        """Ids of the held entities of `type_id`, sorted (empty: none held)."""
        ...

    async def confirm(self, tenant: str, min_revision: int | None) -> None:
        """Before a check with the token `min_revision` is answered from what this source
        keeps: make sure the store still holds that revision (`Conflict` if not)."""
        ...
