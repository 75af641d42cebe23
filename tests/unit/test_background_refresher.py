"""Background re-checks: one at a time per customer, bounded, nothing after close."""

from __future__ import annotations

import threading
import time

from ordtool.customers_client.refresh import BackgroundRefresher


class Gate:
    """A refresh that blocks until released, recording what it was asked."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.seen: list[int] = []

    def __call__(self, customer_id: int) -> None:
        self.seen.append(customer_id)
        self.started.release()
        assert self.release.wait(5)


def test_one_pending_re_check_per_customer() -> None:
    gate = Gate()
    refresher = BackgroundRefresher(gate, workers=2, rate_per_s=100)
    assert refresher.request(7)
    assert gate.started.acquire(timeout=5)
    assert refresher.request(7)  # already pending: not queued twice
    assert refresher.pending == 1
    gate.release.set()
    refresher.close()
    assert gate.seen == [7]
    assert refresher.pending == 0


def test_refuses_beyond_max_pending_and_after_close() -> None:
    gate = Gate()
    refresher = BackgroundRefresher(gate, workers=1, rate_per_s=100, max_pending=2)
    assert refresher.request(1)
    assert refresher.request(2)
    assert not refresher.request(3)  # full
    gate.release.set()
    assert gate.started.acquire(timeout=5)
    assert gate.started.acquire(timeout=5)  # the second ran too
    refresher.close()
    assert not refresher.request(4)
    assert sorted(gate.seen) == [1, 2]


def test_a_failing_re_check_frees_its_customer() -> None:
    calls: list[int] = []

    def failing(customer_id: int) -> None:
        calls.append(customer_id)
        raise RuntimeError("customer service said something odd")

    refresher = BackgroundRefresher(failing, workers=1, rate_per_s=100)
    assert refresher.request(5)
    refresher.close()
    assert calls == [5]
    assert refresher.pending == 0


def test_at_most_rate_per_s_re_checks_start() -> None:
    done: list[int] = []
    refresher = BackgroundRefresher(done.append, workers=1, rate_per_s=60)
    queued = [refresher.request(customer_id) for customer_id in range(10)]
    deadline = time.monotonic() + 5
    while refresher.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    refresher.close()
    assert queued.count(True) == 3  # the burst is 50 ms' worth
    assert sorted(done) == [0, 1, 2]
