"""The in-process cache of customer look-ups: fresh, stale, gone, bounded, on a fake clock."""

from __future__ import annotations

from ordtool.customers_client.cache import Freshness, InProcessLookupCache, Lifetimes


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def make(
    clock: FakeClock, max_entries: int = 100, revalidate_s: float = 0.0
) -> InProcessLookupCache:
    lifetimes = Lifetimes(fresh_s=60, stale_s=3600, revalidate_s=revalidate_s)
    return InProcessLookupCache(lifetimes, max_entries=max_entries, clock=clock)


def aged(
    cache: InProcessLookupCache, clock: FakeClock, steps: list[float]
) -> list[Freshness | None]:
    """Customer 7's freshness after each step of the clock, from when it was stored."""
    cache.put(7)
    seen = []
    for step in steps:
        clock.now += step
        seen.append(cache.get(7))
    return seen


def test_fresh_then_stale_then_gone() -> None:
    clock = FakeClock()
    cache = make(clock)
    assert cache.get(7) is None
    assert aged(cache, clock, [0, 59.9, 0.2, 3599, 1]) == [
        Freshness.FRESH, Freshness.FRESH, Freshness.STALE, Freshness.STALE, None
    ]
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
    cache = make(clock, revalidate_s=30)
    assert aged(cache, clock, [59.9, 0.2, 29.8, 0.2, 3570]) == [
        Freshness.FRESH, Freshness.REVALIDATE, Freshness.REVALIDATE, Freshness.STALE, None
    ]


def test_revalidate_window_never_outlasts_the_stale_window() -> None:
    lifetimes = Lifetimes(fresh_s=10, stale_s=5, revalidate_s=30)
    assert lifetimes.freshness(14.9) is Freshness.REVALIDATE
    assert lifetimes.freshness(15) is None
    assert Lifetimes(fresh_s=10, stale_s=5).freshness(10) is Freshness.STALE
