"""The in-process cache of compiled profiles and what it knows of each tenant's revision.

Invariants that keep it from ever serving a revoked permission:

1. Every change event evicts what it names at once (subjects; members of changed groups
   through a local reverse index; the entries that depend on a group whose membership
   changed; the tenant's held resource table for resource writes; the whole tenant for
   imports and settings), in whatever order events arrive. Evicting is
   always safe.
2. `known_rev` advances only through contiguous revisions: the cache reflects every write up
   to `known_rev`. A missing event leaves a gap; the poller then drops the tenant's entries.
3. An entry (or a resource table) read at revision r is stored only if no event above r has
   been seen (`r >= seen_rev`): otherwise an event that already passed might have been
   about it.
4. An entry whose subject (or an approval group it depends on) has a link that starts or
   ends at some instant is served only before that instant (`Entry.expires`): expiring
   grants never allow past `valid_until` nor before `valid_from`.
5. A revision or generation that goes backwards, or the same revision with another stamp
   (a failover lost acknowledged writes), drops the tenant's entries. Nothing announces
   it: the service's poll finds it within `poll_interval`, and a check with a consistency
   token compares first (`CachedEntries.confirm`), so that it never uses such entries.
   A read is compared with what the cache knew as it began (`mark`): the events applied
   while it was under way are newer than it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from groupgate.engine.profile import Profile
from groupgate.model import Group, Settings, Subject
from groupgate.store.held import Table

log = logging.getLogger("groupgate.store.cache")


@dataclass(slots=True)
class Entry:
    """A subject's compiled profile with what it was compiled from (explain needs it)."""

    profile: Profile
    subject: Subject | None
    groups: Mapping[str, Group]
    settings: Settings
    #: When the entry stops being right by itself (a link of the subject, or of an approval
    #: group it depends on, starts or ends): seconds since the epoch, None: only a write.
    expires: float | None = None
    #: Groups whose membership the profile depends on without being linked to them: the
    #: approval groups of the subject's companies (an Admin's `approve` depends on whether the
    #: company's approval group has an approver, SPEC section 5).
    depends: frozenset[str] = frozenset()
    #: The active approval groups the profile was compiled with (company -> group), for
    #: explain to evaluate alike.
    approval_groups: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class TenantState:
    known_rev: int
    gen: str
    stamp: str
    seen_rev: int = 0
    pending: dict[int, str] = field(default_factory=dict)
    behind_since: float | None = None
    #: The held resource entities (None: not loaded; load them before deciding).
    held: Table | None = None
    #: Held ids per type, sorted (resource search), loaded with `held`.
    held_ids: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.seen_rev = max(self.seen_rev, self.known_rev)


class Mark(NamedTuple):
    """What the cache knew of a tenant as a read of the store's revision began."""

    state: TenantState
    rev: int
    stamp: str


class ProfileCache:
    """A bounded LRU of `Entry`s keyed by (tenant, subject), with group -> subjects index."""

    def __init__(self, size: int, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        #: Wall-clock time (tests set a controllable one): expiring grants are instants.
        self.clock = clock
        self.entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._by_group: dict[tuple[str, str], set[str]] = {}
        #: (tenant, group) -> subjects whose entry `depends` on the group's membership.
        self._by_dependency: dict[tuple[str, str], set[str]] = {}
        self.tenants: dict[str, TenantState] = {}
        self.hits = 0
        #: Subjects resolved from the store: counted by `CachedEntries`.
        self.misses = 0
        self.evictions = 0
        self.flushes = 0

    # ----------------------------------------------------------------- entries

    def get(self, tenant: str, subject: str) -> Entry | None:
        """The entry, made the most recently used (a miss is counted where the subject is then
        resolved from the store, so that a probe followed by a look-up counts once)."""
        key = (tenant, subject)
        entry = self.entries.get(key)
        if entry is not None:
            if entry.expires is not None and self.clock() >= entry.expires:
                self.evict_subjects(tenant, (subject,))
                return None
            self.hits += 1
            self.entries.move_to_end(key)  # least recently used goes first
        return entry

    def get_many(self, tenant: str, subjects: Iterable[str]) -> dict[str, Entry]:
        """`get` for many subjects at once (a batch): the entries found, by subject."""
        entries = self.entries
        touch = entries.move_to_end
        found: dict[str, Entry] = {}
        for subject in subjects:
            key = (tenant, subject)
            entry = entries.get(key)
            if entry is not None:
                if entry.expires is not None and self.clock() >= entry.expires:
                    self.evict_subjects(tenant, (subject,))
                    continue
                touch(key)
                found[subject] = entry
        self.hits += len(found)
        return found

    def put(self, tenant: str, subject: str, entry: Entry, rev: int) -> bool:
        """Store `entry` resolved at `rev` unless a later event may concern it (invariant 3)."""
        state = self.tenants.get(tenant)
        if state is None or rev < state.seen_rev:
            return False
        key = (tenant, subject)
        old = self.entries.pop(key, None)
        if old is not None:
            self._index(tenant, subject, old, add=False)
        self.entries[key] = entry
        self._index(tenant, subject, entry, add=True)
        while len(self.entries) > self.size:
            (old_tenant, old_subject), popped = self.entries.popitem(last=False)
            self._index(old_tenant, old_subject, popped, add=False)
        return True

    def _index(self, tenant: str, subject: str, entry: Entry, *, add: bool) -> None:
        groups = set(entry.profile.groups)
        if entry.subject is not None:
            groups.update(link.group for link in entry.subject.memberships)
        _update(self._by_group, tenant, subject, groups, add)
        if entry.depends:
            _update(self._by_dependency, tenant, subject, entry.depends, add)

    def evict_subjects(self, tenant: str, subjects: Iterable[str]) -> None:
        for subject in subjects:
            entry = self.entries.pop((tenant, subject), None)
            if entry is not None:
                self._index(tenant, subject, entry, add=False)
                self.evictions += 1

    def evict_groups(self, tenant: str, groups: Iterable[str]) -> None:
        for group in groups:
            members = self._by_group.get((tenant, group))
            if members:
                self.evict_subjects(tenant, list(members))

    def evict_dependents(self, tenant: str, groups: Iterable[str]) -> None:
        """Evict the entries that depend on the membership of `groups` (not their members)."""
        for group in groups:
            dependents = self._by_dependency.get((tenant, group))
            if dependents:
                self.evict_subjects(tenant, list(dependents))

    def drop_profiles(self) -> None:
        """Forget every compiled profile of every tenant (the policy set changed); what the
        cache knows of each tenant's revision stays."""
        self.flushes += 1
        self.entries.clear()
        self._by_group.clear()
        self._by_dependency.clear()

    def drop_tenant(self, tenant: str) -> None:
        self.flushes += 1
        self.drop_resources(tenant)
        for key in [k for k in self.entries if k[0] == tenant]:
            del self.entries[key]
        for index in (self._by_group, self._by_dependency):
            for key in [k for k in index if k[0] == tenant]:
                del index[key]

    def drop_resources(self, tenant: str) -> None:
        state = self.tenants.get(tenant)
        if state is not None:
            state.held = None
            state.held_ids = {}

    def put_resources(
        self, tenant: str, table: Table, ids: dict[str, tuple[str, ...]], rev: int
    ) -> bool:
        """Keep a resource table loaded at `rev` unless a later event may concern it."""
        state = self.tenants.get(tenant)
        if state is None or rev < state.seen_rev:
            return False
        state.held = table
        state.held_ids = ids
        return True

    # ----------------------------------------------------------------- revisions

    def observe(self, tenant: str, rev: int, gen: str, stamp: str) -> TenantState:
        """Start tracking a tenant first seen at (rev, gen, stamp); return its state."""
        state = self.tenants.get(tenant)
        if state is None:
            state = TenantState(known_rev=rev, gen=gen, stamp=stamp)
            self.tenants[tenant] = state
        return state

    def apply_event(
        self,
        tenant: str,
        rev: int,
        stamp: str,
        subjects: Iterable[str],
        groups: Iterable[str],
        everything: bool,
        resources: bool = False,
        memberships: Iterable[str] = (),
    ) -> None:
        """Apply one change event (invariants 1 and 2)."""
        if everything:
            self.drop_tenant(tenant)
        else:
            self.evict_subjects(tenant, subjects)
            self.evict_groups(tenant, groups)
            self.evict_dependents(tenant, memberships)
            if resources:
                self.drop_resources(tenant)
        state = self.tenants.get(tenant)
        if state is None or rev <= state.known_rev:
            return
        state.seen_rev = max(state.seen_rev, rev)
        state.pending[rev] = stamp
        while state.known_rev + 1 in state.pending:
            state.known_rev += 1
            state.stamp = state.pending.pop(state.known_rev)
        if not state.pending:
            state.behind_since = None

    def mark(self, tenant: str) -> Mark | None:
        """What the cache knows of `tenant` now, taken as a read of the store's revision
        begins (None: the tenant is not tracked); `reconcile` judges the read against it."""
        state = self.tenants.get(tenant)
        return None if state is None else Mark(state, state.known_rev, state.stamp)

    def reconcile(
        self,
        tenant: str,
        rev: int,
        gen: str,
        stamp: str,
        now: float,
        grace: float,
        mark: Mark | None,
    ) -> None:
        """Compare the store's (rev, gen, stamp) with what the cache knows (the poll).

        Drops the tenant's entries when the store went backwards or diverged (invariant 5),
        or when it has been ahead for longer than `grace` (a change event was lost).

        `mark` is what the cache knew when the read began (`mark`; None: the tenant was not
        tracked then, and the read is not judged). Events applied while the read was under
        way are newer than the read: a
        revision below the cache's now but not below the mark's is a read older than those
        events, not a store that went back, and says nothing about lost events either (under
        a steady stream of writes, judging such a read against the cache of now dropped the
        cache for nothing, and then once more when the events before the reset never came
        again). A read that began before another one reset the tenant is not judged.
        """
        state = self.tenants.get(tenant)
        if state is None or mark is None or mark.state is not state:
            return
        _, since_rev, since_stamp = mark
        diverged = (
            gen != state.gen
            or rev < since_rev
            or (rev == since_rev and stamp != since_stamp and since_stamp != "")
            or (rev == state.known_rev and stamp != state.stamp and state.stamp != "")
        )
        if diverged:
            log.warning(
                "tenant %s: store at rev %s gen %s, cache at rev %s gen %s: dropping cache",
                tenant,
                rev,
                gen,
                since_rev,
                state.gen,
            )
            self.reset(tenant, rev, gen, stamp)
            return
        if rev < state.known_rev:  # older than the events applied since the read began
            return
        if rev == state.known_rev:
            state.behind_since = None
            return
        if state.behind_since is None:
            state.behind_since = now
        elif now - state.behind_since >= grace:
            log.warning(
                "tenant %s: change events up to rev %s were lost: dropping cache", tenant, rev
            )
            self.reset(tenant, rev, gen, stamp)

    def reset(self, tenant: str, rev: int, gen: str, stamp: str) -> None:
        self.drop_tenant(tenant)
        state = self.tenants.get(tenant)
        seen = max(rev, state.seen_rev) if state is not None else rev
        self.tenants[tenant] = TenantState(known_rev=rev, gen=gen, stamp=stamp, seen_rev=seen)


def _update(
    index: dict[tuple[str, str], set[str]],
    tenant: str,
    subject: str,
    groups: Iterable[str],
    add: bool,
) -> None:
    for group in groups:
        key = (tenant, group)
        if add:
            index.setdefault(key, set()).add(subject)
            continue
        members = index.get(key)
        if members is not None:
            members.discard(subject)
            if not members:
                del index[key]
