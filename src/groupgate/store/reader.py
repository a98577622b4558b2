"""`StoreReader`: subjects resolved from the store and compiled, with no cache.

A batch of subjects is resolved in one script call (`Graphs.resolve`: each subject, its links
and its groups, with the tenant's settings); the approval groups of their companies are read
in one more; then each subject is compiled into an `Entry` as of the clock's `now`, which
says when it stops being right by itself (`expires`: a link of the subject or of an approval
group it depends on starts or ends) and whose membership it depends on (`depends`: the
approval groups of its companies). The held resource table is read in one call too.

Every read is checked (`NotFound` for an unknown tenant, `Conflict` below a consistency
token) and its snapshot handed to `seen` before anything else is read: a cache above
(`cached.CachedEntries`) starts tracking the tenant's revision there, so that no change event
can pass unnoticed between a read and the entries it stores (cache invariant 3).

It implements `entries.Entries` as an uncached source: `lookup` finds nothing, `confirm` has
nothing to confirm (each read checks the token itself), and every read fails closed through
the guard. `resolve`, the round trip itself, lets store errors through: a cache above answers
from what it kept when it may.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from groupgate import tracing
from groupgate.engine.profile import Profile, ProfileCompiler
from groupgate.errors import Conflict, NotFound
from groupgate.model import Group, Settings, Subject
from groupgate.store import codec
from groupgate.store.cache import Entry
from groupgate.store.entries import Found
from groupgate.store.guard import Guard
from groupgate.store.held import Table
from groupgate.store.held import load as load_resource
from groupgate.store.ops import Graphs, Snapshot

RawT = TypeVar("RawT")

#: Subjects resolved per script call.
RESOLVE_CHUNK = 500
_NOT_REACHED = (
    "revision {token} not reached: the store is at {rev} "
    "(a token from another store, or writes lost in a failover)"
)

#: Held ids per type, sorted (resource search).
HeldIds = dict[str, tuple[str, ...]]


def not_reached(token: int, rev: int) -> Conflict:
    """The refusal of the consistency token `token` by a store at `rev`."""
    return Conflict(_NOT_REACHED.format(token=token, rev=rev))


def _unseen(tenant: str, snap: Snapshot | None) -> None:
    """Nobody watches the snapshots read."""


class StoreReader:
    """Resolves and compiles subjects, and loads held resources, straight from the store."""

    def __init__(
        self,
        graphs: Graphs,
        compiler: ProfileCompiler,
        guard: Guard,
        clock: Callable[[], float],
        groups: codec.GroupMemo,
    ) -> None:
        self.graphs = graphs
        self.compiler = compiler
        self.guard = guard
        #: Wall-clock time: subjects are compiled as of `clock()` (expiring grants).
        self.clock = clock
        #: Told of each snapshot read (None: the tenant is unknown), before anything else is
        #: read; a cache above sets it (`cached.CachedEntries`).
        self.seen: Callable[[str, Snapshot | None], None] = _unseen
        self._groups = groups
        self._settings: dict[bytes, Settings] = {}

    # ------------------------------------------------------------------ Entries

    def lookup(self, tenant: str, subject: str, min_revision: int | None) -> None:
        """Nothing is kept: every entry needs the store."""
        return None

    async def confirm(self, tenant: str, min_revision: int | None) -> None:
        """Nothing to confirm: every read checks the token itself."""

    async def entry(self, tenant: str, subject: str, min_revision: int | None) -> Found:
        found = await self.guard(self.resolve(tenant, [subject], min_revision))
        return found[subject]

    async def entries(
        self, tenant: str, subjects: Collection[str], min_revision: int | None
    ) -> dict[str, Found]:
        wanted = list(subjects)
        out: dict[str, Found] = {}
        for i in range(0, len(wanted), RESOLVE_CHUNK):
            chunk = wanted[i : i + RESOLVE_CHUNK]
            out.update(await self.guard(self.resolve(tenant, chunk, min_revision)))
        return out

    async def held(self, tenant: str, min_revision: int | None) -> Table:
        table, _, _ = await self.load_held(tenant, min_revision)
        return table

    async def held_ids(
        self, tenant: str, type_id: str, min_revision: int | None
    ) -> tuple[str, ...]:
        _, ids, _ = await self.load_held(tenant, min_revision)
        return ids.get(type_id, ())

    # ------------------------------------------------------------------ reads

    async def resolve(
        self, tenant: str, subjects: list[str], min_revision: int | None
    ) -> dict[str, Found]:
        """Resolve and compile `subjects` (at most `RESOLVE_CHUNK`) in one script call, and
        one more for the approval groups of their companies. Store errors propagate: the
        caller guards (and a cache may answer from what it kept)."""
        with tracing.span("store.resolve", tenant=tenant, subjects=len(subjects)):
            found = await self.graphs.resolve(tenant, subjects)
            snap, settings_raw = self._checked(tenant, found, min_revision)
            loaded = [
                self._load(sid, value) for sid, value in zip(subjects, snap.values, strict=True)
            ]
            # Read after the subjects: a write in between is evicted by its event, and the
            # entries are kept at the subjects' revision (cache invariant 3).
            companies = sorted(
                {g.company for _, groups in loaded for g in groups.values() if g.company}
            )
            now = self.clock()
            approval = (
                await self.graphs.approval_groups(tenant, companies, now) if companies else {}
            )
            settings = self._load_settings(settings_raw)
            active = {c: group for c, (group, on, _) in approval.items() if on}
            out: dict[str, Found] = {}
            with tracing.span("compile", subjects=len(subjects)):
                for sid, (subject, groups) in zip(subjects, loaded, strict=True):
                    entry = self._compiled(
                        tenant, sid, subject, groups, settings, snap.rev, active, now, approval
                    )
                    out[sid] = (entry, snap.rev, False)
            return out

    async def load_held(self, tenant: str, min_revision: int | None) -> tuple[Table, HeldIds, int]:
        """The tenant's held resource table, its ids per type, and the revision read."""
        snap, raw = self._checked(
            tenant, await self.guard(self.graphs.resources(tenant)), min_revision
        )
        table: Table = {}
        ids: HeldIds = {}
        for type_id, entities in raw.items():
            ids[type_id] = tuple(sorted(entities))
            for resource_id, value in entities.items():
                table[type_id, resource_id] = load_resource(value)
        return table, ids, snap.rev

    def _checked(
        self, tenant: str, found: tuple[Snapshot, RawT] | None, min_revision: int | None
    ) -> tuple[Snapshot, RawT]:
        """A read's snapshot once it is known to be usable: `NotFound` for an unknown tenant,
        `Conflict` below `min_revision`. `seen` is told of the snapshot, or of the unknown
        tenant, first."""
        if found is None:
            self.seen(tenant, None)
            raise NotFound(f"unknown tenant {tenant!r}")
        snap, raw = found
        if min_revision is not None and snap.rev < min_revision:
            raise not_reached(min_revision, snap.rev)
        self.seen(tenant, snap)
        return snap, raw

    # ------------------------------------------------------------------ compiling

    def _compiled(
        self,
        tenant: str,
        sid: str,
        subject: Subject | None,
        groups: dict[str, Group],
        settings: Settings,
        rev: int,
        active: Mapping[str, str],
        now: float,
        approval: Mapping[str, tuple[str, bool, float | None]],
    ) -> Entry:
        """Compile one resolved subject and note what its entry depends on."""
        entry = self._compile(tenant, sid, subject, groups, settings, rev, active, now)
        mine = {
            approval[company]
            for g in groups.values()
            if (company := g.company) is not None and company in approval
        }
        entry.depends = frozenset(group for group, _, _ in mine)
        entry.expires = min(
            (t for t in (entry.expires, *(t for _, _, t in mine)) if t is not None),
            default=None,
        )
        return entry

    def _load(self, subject_id: str, value: Any) -> tuple[Subject | None, dict[str, Group]]:
        """Decode one resolved subject and the groups it is linked to (None: unknown)."""
        if value is None:
            return None, {}
        raw, links, ids, raws = value
        groups: dict[str, Group] = {
            gid: self._groups.load(graw) for gid, graw in zip(ids, raws, strict=True) if graw
        }
        return codec.load_subject(subject_id, raw, links), groups

    def _compile(
        self,
        tenant: str,
        subject_id: str,
        subject: Subject | None,
        groups: dict[str, Group],
        settings: Settings,
        rev: int,
        approval_groups: Mapping[str, str],
        now: float,
    ) -> Entry:
        """Compile the subject as of `now` (only the links that hold then); the entry keeps
        the whole subject and expires when one of its links starts or ends."""
        if subject is None:
            empty = Profile(tenant, subject_id, rev, (), {})
            return Entry(empty, None, {}, settings)
        profile = self.compiler.compile(
            subject.at(now),
            groups,
            settings,
            tenant=tenant,
            revision=rev,
            approval_groups=approval_groups,
        )
        return Entry(
            profile,
            subject,
            groups,
            settings,
            expires=subject.next_boundary(now),
            approval_groups=approval_groups,
        )

    def _load_settings(self, raw: bytes) -> Settings:
        settings = self._settings.get(raw)
        if settings is None:
            settings = codec.load_settings(raw)
            if len(self._settings) > 1000:
                self._settings.clear()
            self._settings[raw] = settings
        return settings
