"""The withdrawal ledger: which mirror copies may be served, and latest never going back."""

from storybench_prompts import CachePolicy, Provenance
from storybench_prompts.cache.entries import LATEST, EntryTable
from storybench_prompts.cache.withdrawals import WithdrawalLedger
from tests.factories import flat_set
from tests.fakes import FakeClock


def mirrored(version: int):
    return flat_set(version).with_provenance(
        Provenance(source="mirror", origin="directus", fetched_at_epoch=100.0)
    )


def fetched(version: int):
    return flat_set(version).with_provenance(
        Provenance(source="directus", origin="directus", fetched_at_epoch=200.0)
    )


def test_a_withdrawn_version_is_never_served_from_the_mirror():
    ledger = WithdrawalLedger()
    ledger.version_gone(2)
    assert ledger.is_withdrawn(2)
    assert ledger.servable(2, mirrored(2), None).copy is None
    ledger.published(2)
    assert ledger.servable(2, mirrored(2), None).copy is not None


def test_a_mirror_latest_above_directus_latest_is_refused_and_the_mirror_told():
    ledger = WithdrawalLedger()
    assert ledger.latest_answered(fetched(3)) is True
    assert ledger.latest_answered(fetched(3)) is False  # checked once per latest
    verdict = ledger.servable(LATEST, mirrored(5), None)
    assert verdict.withdraw_above == 3
    assert verdict.copy is not None
    assert verdict.copy.version == 3
    assert verdict.copy.provenance.stale is True


def test_latest_never_goes_back_unless_directus_says_so():
    ledger = WithdrawalLedger()
    assert ledger.servable(LATEST, mirrored(4), None).copy.version == 4
    assert ledger.best_latest.version == 4
    assert ledger.servable(LATEST, mirrored(3), None).copy.version == 4
    ledger.latest_answered(fetched(3))  # Directus itself says 3
    assert ledger.servable(LATEST, mirrored(3), None).copy.version == 3


def test_nothing_published_means_no_best_latest():
    ledger = WithdrawalLedger()
    ledger.servable(LATEST, mirrored(4), None)
    ledger.nothing_published()
    assert ledger.best_copy() is None
    assert ledger.servable(LATEST, mirrored(4), None).withdraw_above == -1


def test_a_newer_cached_answer_is_preferred_to_the_mirror_copy():
    clock = FakeClock()
    entries = EntryTable(CachePolicy(), clock)
    fresh = flat_set(2, text_suffix=" new")
    entries.store(2, fresh, fresh_for=10, now=clock())
    older = mirrored(2).with_provenance(
        mirrored(2).provenance.model_copy(update={"fetched_at_epoch": 1.0})
    )
    current = entries.get(2)
    served = WithdrawalLedger().servable(2, older, current).copy
    assert served.config_hash == fresh.config_hash
    assert served.provenance.stale


def test_the_memory_of_withdrawals_is_bounded_oldest_first():
    ledger = WithdrawalLedger()
    ledger.remember(range(5000))
    assert not ledger.is_withdrawn(0)
    assert ledger.is_withdrawn(4999)
    assert ledger.is_withdrawn(5000 - 4096)
