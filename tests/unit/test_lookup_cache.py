"""The in-process cache of customer look-ups: fresh, stale, gone, bounded, on a fake clock."""

from __future__ import annotations

from ordtool.customers_client.cache import Freshness, InProcessLookupCache, Lifetimes


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def make(clock: FakeClock, max_entries: int = 100) -> InProcessLookupCache:
    lifetimes = Lifetimes(fresh_s=60, stale_s=3600)
    return InProcessLookupCache(lifetimes, max_entries=max_entries, clock=clock)


def test_fresh_then_stale_then_gone() -> None:
    clock = FakeClock()
    cache = make(clock)
    assert cache.get(7) is None
    cache.put(7)
    assert cache.get(7) is Freshness.FRESH
    clock.now += 59.9
    assert cache.get(7) is Freshness.FRESH
    clock.now += 0.2
    assert cache.get(7) is Freshness.STALE
    clock.now += 3599
    assert cache.get(7) is Freshness.STALE
    clock.now += 1
    assert cache.get(7) is None
    assert len(cache) == 0  # expired entries do not linger


def test_put_again_makes_it_fresh() -> None:
    clock = FakeClock()
    cache = make(clock)
    cache.put(7)
    clock.now += 100
    cache.put(7)
    assert cache.get(7) is Freshness.FRESH


def test_invalidate_forgets() -> None:
    clock = FakeClock()
    cache = make(clock)
    cache.put(7)
    cache.invalidate(7)
    cache.invalidate(8)  # unknown: no error
    assert cache.get(7) is None


def test_least_recently_used_goes_first() -> None:
    clock = FakeClock()
    cache = make(clock, max_entries=2)
    cache.put(1)
    cache.put(2)
    assert cache.get(1) is Freshness.FRESH  # 1 is now the most recently used
    cache.put(3)
    assert cache.get(2) is None
    assert cache.get(1) is Freshness.FRESH
    assert cache.get(3) is Freshness.FRESH
    assert len(cache) == 2


def test_revalidate_window_follows_fresh_and_precedes_stale() -> None:
    clock = FakeClock()
    cache = InProcessLookupCache(
        Lifetimes(fresh_s=60, stale_s=3600, revalidate_s=30), max_entries=10, clock=clock
    )
    cache.put(7)
    clock.now += 59.9
    assert cache.get(7) is Freshness.FRESH
    clock.now += 0.2
    assert cache.get(7) is Freshness.REVALIDATE
    clock.now += 29.8
    assert cache.get(7) is Freshness.REVALIDATE
    clock.now += 0.2
    assert cache.get(7) is Freshness.STALE
    clock.now += 3570
    assert cache.get(7) is None


def test_revalidate_window_never_outlasts_the_stale_window() -> None:
    lifetimes = Lifetimes(fresh_s=10, stale_s=5, revalidate_s=30)
    assert lifetimes.freshness(14.9) is Freshness.REVALIDATE
    assert lifetimes.freshness(15) is None
    assert Lifetimes(fresh_s=10, stale_s=5).freshness(10) is Freshness.STALE
