"""The cache's invariants, without Redis."""

from __future__ import annotations

from groupgate.engine.profile import Profile
from groupgate.model import Membership, Settings, Subject, SubjectKind
from groupgate.store.cache import Entry, ProfileCache


def entry(subject: str, *groups: str) -> Entry:
    person = Subject(
        subject, SubjectKind.EMPLOYEE, memberships=tuple(Membership(g) for g in groups)
    )
    return Entry(Profile("t", subject, 0, tuple(groups), {}), person, {}, Settings())


def test_events_evict_subjects_and_group_members() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 1, "1", "s1")
    assert cache.put("t", "a", entry("a", "g1"), 1)
    assert cache.put("t", "b", entry("b", "g2"), 1)
    cache.apply_event("t", 2, "s2", [], ["g1"], False)
    assert cache.get("t", "a") is None and cache.get("t", "b") is not None
    cache.apply_event("t", 3, "s3", ["b"], [], False)
    assert cache.get("t", "b") is None
    assert cache.tenants["t"].known_rev == 3


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = ProfileCache(2)
    cache.observe("t", 1, "1", "s1")
    cache.put("t", "a", entry("a", "g1"), 1)
    cache.put("t", "b", entry("b", "g1"), 1)
    assert cache.get("t", "a") is not None  # a is now the most recently used
    cache.put("t", "c", entry("c", "g2"), 1)
    assert cache.get("t", "b") is None
    assert cache.get("t", "a") is not None and cache.get("t", "c") is not None
    # The group index forgets the evicted subject: a change of g1 evicts a only.
    cache.apply_event("t", 2, "s2", [], ["g1"], False)
    assert cache.get("t", "a") is None and cache.get("t", "c") is not None


def test_revision_advances_only_through_contiguous_events() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 1, "1", "s1")
    cache.apply_event("t", 3, "s3", [], [], False)
    assert cache.tenants["t"].known_rev == 1
    cache.apply_event("t", 2, "s2", [], [], False)
    assert cache.tenants["t"].known_rev == 3 and cache.tenants["t"].stamp == "s3"


def test_entry_older_than_a_seen_event_is_not_stored() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 1, "1", "s1")
    cache.apply_event("t", 3, "s3", ["a"], [], False)  # out of order: 2 is still missing
    assert not cache.put("t", "a", entry("a"), 2)  # resolved before write 3 was applied
    assert cache.put("t", "a", entry("a"), 3)


def test_lost_event_drops_the_tenant_after_grace() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 1, "1", "s1")
    cache.put("t", "a", entry("a"), 1)
    cache.reconcile("t", 2, "1", "s2", now=10.0, grace=1.0, mark=cache.mark("t"))
    assert cache.get("t", "a") is not None  # maybe only in flight
    cache.reconcile("t", 2, "1", "s2", now=11.5, grace=1.0, mark=cache.mark("t"))
    assert cache.get("t", "a") is None and cache.tenants["t"].known_rev == 2


def test_divergent_store_drops_the_tenant() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 5, "1", "s5")
    cache.put("t", "a", entry("a"), 5)
    # the same revision, another write
    cache.reconcile("t", 5, "1", "other", now=0.0, grace=1.0, mark=cache.mark("t"))
    assert cache.get("t", "a") is None
    cache.put("t", "a", entry("a"), 5)
    # the revision went backwards
    cache.reconcile("t", 3, "1", "s3", now=0.0, grace=1.0, mark=cache.mark("t"))
    assert cache.get("t", "a") is None and cache.tenants["t"].known_rev == 3


def test_a_read_older_than_the_events_applied_during_it_drops_nothing() -> None:
    # Under a steady stream of writes the poll's read is often answered before an event the
    # listener applies before the answer is handled: the store is not behind the cache.
    cache = ProfileCache(10)
    cache.observe("t", 5, "1", "s5")
    mark = cache.mark("t")
    cache.apply_event("t", 6, "s6", ["b"], [], False)  # while the read is under way
    cache.put("t", "a", entry("a"), 6)
    cache.reconcile("t", 5, "1", "s5", now=0.0, grace=1.0, mark=mark)
    cache.reconcile("t", 5, "1", "s5", now=5.0, grace=1.0, mark=mark)  # not "events lost"
    assert cache.get("t", "a") is not None and cache.tenants["t"].known_rev == 6
    assert cache.tenants["t"].behind_since is None
    cache.reconcile("t", 6, "1", "s6", now=5.0, grace=1.0, mark=mark)  # caught up meanwhile
    assert cache.get("t", "a") is not None


def test_a_read_below_what_the_cache_knew_as_it_began_is_a_store_gone_back() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 5, "1", "s5")
    mark = cache.mark("t")
    cache.apply_event("t", 6, "s6", [], [], False)
    cache.put("t", "a", entry("a"), 6)
    cache.reconcile("t", 4, "1", "s4", now=0.0, grace=1.0, mark=mark)  # below 5: lost writes
    assert cache.get("t", "a") is None and cache.tenants["t"].known_rev == 4

    for seen, stamp in ((5, "other"), (6, "other")):  # the same revision, another write
        cache = ProfileCache(10)
        cache.observe("t", 5, "1", "s5")
        mark = cache.mark("t")
        cache.apply_event("t", 6, "s6", [], [], False)
        cache.put("t", "a", entry("a"), 6)
        cache.reconcile("t", seen, "1", stamp, now=0.0, grace=1.0, mark=mark)
        assert cache.get("t", "a") is None, seen


def test_a_read_begun_before_another_reset_the_tenant_is_not_judged() -> None:
    cache = ProfileCache(10)
    cache.observe("t", 5, "1", "s5")
    mark = cache.mark("t")
    for _ in range(2):  # other reads: events were lost, the tenant is reset at 7
        cache.reconcile("t", 7, "1", "s7", now=0.0, grace=0.0, mark=cache.mark("t"))
    assert cache.tenants["t"].known_rev == 7
    cache.put("t", "a", entry("a"), 7)
    cache.reconcile("t", 6, "1", "s6", now=0.0, grace=0.0, mark=mark)  # the older read
    assert cache.get("t", "a") is not None and cache.tenants["t"].known_rev == 7


def test_lru_bound_and_index_cleanup() -> None:
    cache = ProfileCache(2)
    cache.observe("t", 1, "1", "s")
    for name in "abc":
        cache.put("t", name, entry(name, "g"), 1)
    assert len(cache.entries) == 2 and cache.get("t", "a") is None
    cache.apply_event("t", 2, "s2", [], ["g"], False)
    assert not cache.entries
