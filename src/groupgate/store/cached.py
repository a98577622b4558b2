"""`CachedEntries`: the store reader's entries kept in the `ProfileCache`, behind the same
`entries.Entries` interface (a decorator: the decider cannot tell it from the reader).

It answers from the cache when it may, and otherwise asks the reader and keeps what it got:

- `lookup` (the decisions' hot path: dictionary look-ups, nothing awaited) serves a kept
  entry while the store answered within `stale_after` seconds, flagged stale up to
  `max_staleness`, and fails closed past that (`StoreUnavailable`);
- a subject it does not hold is resolved by the reader, counted as a miss and kept (at the
  revision read, unless a later change event may concern it: cache invariant 3). The reader
  tells it of each snapshot as soon as it is read (`StoreReader.seen`), so that the tenant's
  revision is tracked before anything else is read. When the store fails, the entries it
  holds are served flagged stale while the bound allows; anything else fails closed;
- the held resource table is kept like the entries;
- a check with a consistency token is answered from the cache only once `confirm` read, in
  a read made for it, that the store still holds that revision (cache invariant 5);
  concurrent checks share that read (`SharedReads`).

Why this decorates the source of entries and not the `Decider`: see `entries.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection

from groupgate.errors import NotFound, StoreUnavailable
from groupgate.store.cache import Mark, ProfileCache
from groupgate.store.entries import Found, Kept
from groupgate.store.guard import STORE_ERRORS, Guard
from groupgate.store.held import Table
from groupgate.store.ops import Snapshot
from groupgate.store.reader import RESOLVE_CHUNK, HeldIds, StoreReader, not_reached
from groupgate.store.shared import SharedReads

log = logging.getLogger("groupgate.store")

Meta = tuple[int, str, str]


class CachedEntries:
    """`Entries` from the `ProfileCache`, the store reader's where the cache has none."""

    def __init__(
        self,
        inner: StoreReader,
        cache: ProfileCache,
        guard: Guard,
        meta: Callable[[str], Awaitable[Meta | None]],
        *,
        max_staleness: float,
        poll_interval: float,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.guard = guard
        self.max_staleness = max_staleness
        self.poll_interval = poll_interval
        self.stale_after = 2 * poll_interval + 0.5
        self._meta = meta
        #: The tenants' (rev, gen, stamp) as checks with a token confirm them, each with
        #: what the cache knew as its read began.
        self._metas = SharedReads(self._marked_meta)
        inner.seen = self._seen

    async def close(self) -> None:
        """Stop the confirming reads under way."""
        await self._metas.close()

    # ------------------------------------------------------------------ entries

    def lookup(self, tenant: str, subject: str, min_revision: int | None) -> Kept | None:
        state = self.cache.tenants.get(tenant)
        if state is None or (min_revision is not None and state.known_rev < min_revision):
            return None
        entry = self.cache.get(tenant, subject)
        if entry is None:
            return None
        age = time.monotonic() - self.guard.last_ok
        if age <= self.stale_after:
            return entry, state.known_rev, False, state.held
        if age > self.max_staleness:
            raise StoreUnavailable(
                f"store unreachable for {age:.0f}s "
                f"(bound {self.max_staleness:.0f}s): failing closed"
            )
        return entry, state.known_rev, True, state.held

    async def entry(self, tenant: str, subject: str, min_revision: int | None) -> Found:
        kept = self.lookup(tenant, subject, min_revision)
        if kept is not None:
            entry, rev, stale, _ = kept
            return entry, rev, stale
        found = await self._resolve(tenant, [subject], min_revision)
        return found[subject]

    async def entries(
        self, tenant: str, subjects: Collection[str], min_revision: int | None
    ) -> dict[str, Found]:
        out: dict[str, Found] = {}
        state = self.cache.tenants.get(tenant)
        if (
            state is not None
            and (min_revision is None or state.known_rev >= min_revision)
            and time.monotonic() - self.guard.last_ok <= self.stale_after
        ):
            rev = state.known_rev
            for sid, entry in self.cache.get_many(tenant, subjects).items():
                out[sid] = (entry, rev, False)
            missing = [sid for sid in subjects if sid not in out]
        else:
            missing = list(subjects)
        for i in range(0, len(missing), RESOLVE_CHUNK):
            out.update(await self._resolve(tenant, missing[i : i + RESOLVE_CHUNK], min_revision))
        return out

    async def _resolve(
        self, tenant: str, subjects: list[str], min_revision: int | None
    ) -> dict[str, Found]:
        """Resolve `subjects` through the reader and keep them; when the store fails, the
        stale entries kept (`_from_stale_cache`)."""
        self.cache.misses += len(subjects)
        try:
            found = await self.inner.resolve(tenant, subjects, min_revision)
        except STORE_ERRORS as exc:
            return self._from_stale_cache(tenant, subjects, min_revision, exc)
        self.guard.answered()
        for sid, (entry, rev, _) in found.items():
            self.cache.put(tenant, sid, entry, rev)
        return found

    def _from_stale_cache(
        self, tenant: str, subjects: list[str], min_revision: int | None, exc: BaseException
    ) -> dict[str, Found]:
        """Serve cached entries flagged stale while the staleness bound allows; else fail closed."""
        failure = self.guard.failed(exc)
        age = time.monotonic() - self.guard.last_ok
        state = self.cache.tenants.get(tenant)
        if state is None or min_revision is not None or age > self.max_staleness:
            log.warning("store error for tenant %s: %s", tenant, exc)
            raise failure
        out: dict[str, Found] = {}
        for sid in subjects:
            entry = self.cache.entries.get((tenant, sid))
            if entry is None or (entry.expires is not None and self.cache.clock() >= entry.expires):
                raise failure
            out[sid] = (entry, state.known_rev, True)
        return out

    def _seen(self, tenant: str, snap: Snapshot | None) -> None:
        """A snapshot the reader read: track the tenant from its revision on (`observe`);
        None, an unknown tenant: forget it."""
        if snap is None:
            self.cache.tenants.pop(tenant, None)
        else:
            self.cache.observe(tenant, snap.rev, snap.gen, snap.stamp)

    # ------------------------------------------------------------------ held resources

    async def held(self, tenant: str, min_revision: int | None) -> Table:
        """The tenant's held resource table: the one kept, else the reader's (then kept)."""
        state = self.cache.tenants.get(tenant)
        if (
            state is not None
            and state.held is not None
            and (min_revision is None or state.known_rev >= min_revision)
        ):
            return state.held
        table, _ = await self._load_held(tenant, min_revision)
        return table

    async def held_ids(
        self, tenant: str, type_id: str, min_revision: int | None
    ) -> tuple[str, ...]:
        state = self.cache.tenants.get(tenant)
        if (
            state is not None
            and state.held is not None
            and (min_revision is None or state.known_rev >= min_revision)
        ):
            return state.held_ids.get(type_id, ())
        _, ids = await self._load_held(tenant, min_revision)
        return ids.get(type_id, ())

    async def _load_held(self, tenant: str, min_revision: int | None) -> tuple[Table, HeldIds]:
        table, ids, rev = await self.inner.load_held(tenant, min_revision)
        self.cache.put_resources(tenant, table, ids, rev)
        return table, ids

    # ------------------------------------------------------------------ tokens

    async def confirm(self, tenant: str, min_revision: int | None) -> None:
        """Before a check with a token (`min_revision`) may be answered from the cache, read
        the store's (rev, gen, stamp) and reconcile the cache with it: a store that went
        back below what the cache holds drops the cache (invariant 5), and one below the
        token refuses it (`Conflict`), never answered from the cache. A check the cache
        cannot answer anyway (behind the token) reads the store without this. Concurrent
        checks share a read begun after all of them arrived (`SharedReads`)."""
        state = self.cache.tenants.get(tenant)
        if min_revision is None or state is None or state.known_rev < min_revision:
            return
        meta, mark = await self.guard(self._metas.read(tenant))
        if meta is None:
            self.cache.tenants.pop(tenant, None)
            raise NotFound(f"unknown tenant {tenant!r}")
        rev, gen, stamp = meta
        self.cache.reconcile(tenant, rev, gen, stamp, time.monotonic(), self.poll_interval, mark)
        if rev < min_revision:
            raise not_reached(min_revision, rev)

    async def _marked_meta(self, tenant: str) -> tuple[Meta | None, Mark | None]:
        """The store's (rev, gen, stamp) of `tenant`, and what the cache knew of it as the
        read began (`ProfileCache.reconcile` judges the read against it)."""
        mark = self.cache.mark(tenant)
        return await self._meta(tenant), mark
