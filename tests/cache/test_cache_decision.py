"""The read path's decision, without I/O: one row of the decision table per case."""

import pytest

from storybench_prompts import CachePolicy, Provenance
from storybench_prompts.cache.decision import Action, decide
from storybench_prompts.cache.entries import EntryTable
from tests.factories import flat_set
from tests.fakes import FakeClock

POLICY = CachePolicy(pinned_ttl=10, max_stale=20, stale_if_error=100)


def entry(*, from_mirror: bool = False, invalidated: bool = False):
    table = EntryTable(POLICY, FakeClock(0.0))
    content = flat_set(1)
    if from_mirror:
        content = content.with_provenance(
            Provenance(source="mirror", origin="directus", fetched_at_epoch=1.0)
        )
    table.store(1, content, fresh_for=10, now=0.0)
    stored = table.get(1)
    if invalidated:
        stored.invalidate()
    return stored


@pytest.mark.parametrize(
    ("case", "now", "flags", "expected"),
    [
        (
            "remembered not found wins over everything",
            5,
            dict(not_found=True, pushed=True, failing=True),
            Action.NOT_FOUND,
        ),
        (
            "a refused answer stands over a current entry and an outage",
            5,
            dict(not_found=False, refused=True, pushed=True, failing=True),
            Action.REFUSED,
        ),
        (
            "not found wins over a refusal",
            5,
            dict(not_found=True, refused=True, pushed=False, failing=False),
            Action.NOT_FOUND,
        ),
        (
            "realtime says current",
            50,
            dict(not_found=False, pushed=True, failing=False),
            Action.CURRENT,
        ),
        (
            "past the TTL, within max_stale",
            15,
            dict(not_found=False, pushed=False, failing=False),
            Action.STALE,
        ),
        ("past max_stale", 31, dict(not_found=False, pushed=False, failing=False), Action.FETCH),
        (
            "past max_stale while Directus fails",
            31,
            dict(not_found=False, pushed=False, failing=True),
            Action.OUTAGE,
        ),
        (
            "stale beats the outage path",
            15,
            dict(not_found=False, pushed=False, failing=True),
            Action.STALE,
        ),
    ],
)
def test_decide(case, now, flags, expected):
    assert decide(entry(), now, **flags) is expected, case


def test_no_entry():
    assert decide(None, 0, not_found=False, pushed=True, failing=False) is Action.FETCH
    assert decide(None, 0, not_found=False, pushed=True, failing=True) is Action.OUTAGE
    assert decide(None, 0, not_found=False, refused=True, pushed=False, failing=False) is (
        Action.REFUSED
    )


def test_an_invalidated_entry_is_neither_current_nor_stale():
    stored = entry(invalidated=True)
    assert decide(stored, 1, not_found=False, pushed=True, failing=False) is Action.FETCH
    assert decide(stored, 1, not_found=False, pushed=True, failing=True) is Action.OUTAGE


def test_a_mirror_copy_is_not_current_by_realtime():
    stored = entry(from_mirror=True)
    assert decide(stored, 50, not_found=False, pushed=True, failing=False) is Action.FETCH
