"""The entry table: deadlines under the fake clock, fallbacks that never replace newer entries,
and remembered "not found" answers."""

from storybench_prompts import CachePolicy, PromptSetNotFoundError
from storybench_prompts.cache.entries import LATEST, EntryTable
from tests.factories import flat_set
from tests.fakes import FakeClock

POLICY = CachePolicy(
    pinned_ttl=10, latest_ttl=5, max_stale=20, stale_if_error=100, not_found_ttl=3, fallback_ttl=2
)


def table() -> tuple[EntryTable, FakeClock]:
    clock = FakeClock()
    return EntryTable(POLICY, clock), clock


def test_an_entry_is_fresh_then_stale_then_kept_for_errors_then_gone():
    entries, clock = table()
    entries.store(1, flat_set(1), fresh_for=POLICY.pinned_ttl, now=clock())
    entry = entries.get(1)
    assert entry is not None
    assert entry.fresh_until == clock() + 10
    assert entry.stale_until == clock() + 30
    assert entry.keep_until == clock() + 110
    assert entry.served.provenance.source == "cache"
    clock.advance(109)
    assert entries.get(1) is entry
    clock.advance(2)
    assert entries.get(1) is None


def test_the_served_object_is_built_once():
    entries, clock = table()
    entries.store(1, flat_set(1), fresh_for=10, now=clock())
    assert entries.entries[1].served is entries.entries[1].served


def test_invalidated_entry_is_never_fresh_but_still_a_copy():
    entries, clock = table()
    entries.store(1, flat_set(1), fresh_for=10, now=clock())
    entry = entries.get(1)
    entry.invalidate()
    assert entry.invalidated
    assert not clock() < entry.fresh_until
    copy = entry.stale_copy(origin_error="DirectusServerError")
    assert copy.provenance.stale is True
    assert copy.provenance.origin_error == "DirectusServerError"


def test_a_fallback_never_replaces_a_newer_entry():
    entries, clock = table()
    newer = flat_set(3)
    entries.store(LATEST, newer, fresh_for=5, now=clock())
    entries.store_fallback(LATEST, flat_set(2), probe_in=float("inf"))
    assert entries.get(LATEST).served.version == 3
    entries.store_fallback(LATEST, flat_set(4), probe_in=float("inf"))
    assert entries.get(LATEST).served.version == 4
    assert entries.get(LATEST).fresh_until == clock() + POLICY.fallback_ttl


def test_a_fallback_is_fresh_only_until_the_next_probe_is_due():
    entries, clock = table()
    entries.store_fallback(1, flat_set(1), probe_in=0.5)
    assert entries.get(1).fresh_until == clock() + 0.5


def test_not_found_is_remembered_for_its_ttl_and_each_caller_gets_its_own_error():
    entries, clock = table()
    entries.remember_not_found(7, PromptSetNotFoundError("no version 7", version=7))
    first = entries.remembered_not_found(7)
    second = entries.remembered_not_found(7)
    assert isinstance(first, PromptSetNotFoundError)
    assert first is not second
    assert first.version == 7
    assert first.__traceback__ is None
    clock.advance(3.01)
    assert entries.remembered_not_found(7) is None


def test_forgetting_not_found_and_clearing():
    entries, clock = table()
    entries.remember_not_found(7, PromptSetNotFoundError("no", version=7))
    entries.remember_not_found(LATEST, PromptSetNotFoundError("none"))
    entries.forget_not_found(7)
    assert entries.remembered_not_found(7) is None
    assert entries.remembered_not_found(LATEST) is not None
    entries.store(1, flat_set(1), fresh_for=10, now=clock())
    entries.clear()
    assert len(entries) == 0
    assert entries.remembered_not_found(LATEST) is None
