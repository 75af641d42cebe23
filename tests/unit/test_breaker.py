"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from ordtool.customers_client.breaker import BreakerState, CircuitBreaker
from ordtool.metrics import BREAKER_STATE


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(
    clock: FakeClock,
    *,
    window: int = 10,
    failure_rate: float = 0.5,
    min_calls: int = 4,
    probes: int = 1,
) -> CircuitBreaker:
    return CircuitBreaker(
        "test-dep",
        window=window,
        failure_rate=failure_rate,
        min_calls=min_calls,
        open_s=5.0,
        probes=probes,
        clock=clock,
    )


def gauge() -> float:
    return BREAKER_STATE.labels(dependency="test-dep")._value.get()


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.allow()
        breaker.record_failure()


def test_stays_closed_below_min_calls_even_if_all_fail(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 3)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_opens_when_failure_rate_reached_over_min_calls(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(2):
        breaker.record_success()
    fail(breaker, 1)
    assert breaker.state is BreakerState.CLOSED  # 1 of 3, below min_calls anyway
    fail(breaker, 1)  # 2 failures of 4 calls = 0.5
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5.0)
    assert gauge() == 2


def test_failure_rate_below_threshold_keeps_it_closed(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(6):
        breaker.record_success()
    fail(breaker, 4)  # 4 of 10 = 0.4 < 0.5
    assert breaker.state is BreakerState.CLOSED


def test_only_the_last_window_of_calls_counts(clock: FakeClock) -> None:
    breaker = make(clock, window=4, min_calls=4, failure_rate=0.5)
    for _ in range(6):
        breaker.record_success()
    fail(breaker, 1)  # window [S, S, S, F]: 0.25
    assert breaker.state is BreakerState.CLOSED
    fail(breaker, 1)  # window [S, S, F, F]: 0.5, though only 2 of all 8 calls failed
    assert breaker.state is BreakerState.OPEN


def test_half_open_after_interval_lets_one_probe_through(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert gauge() == 1
    assert not breaker.allow()  # a second caller while the probe is out


def test_probe_success_closes_with_a_fresh_window(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert gauge() == 0
    fail(breaker, 3)  # the old failures are gone: 3 calls < min_calls
    assert breaker.state is BreakerState.CLOSED


def test_probe_failure_reopens_for_a_full_interval(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == pytest.approx(5.0)
    clock.now += 4
    assert not breaker.allow()


def test_several_probes_must_all_succeed(clock: FakeClock) -> None:
    breaker = make(clock, probes=2)
    fail(breaker, 4)
    clock.now += 5
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_snapshot_for_readyz(clock: FakeClock) -> None:
    breaker = make(clock)
    fail(breaker, 4)
    clock.now += 1
    snapshot = breaker.snapshot()
    assert snapshot == {
        "dependency": "test-dep",
        "state": "open",
        "window_calls": 4,
        "window_failures": 4,
        "retry_after_s": 4.0,
    }
