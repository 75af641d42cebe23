"""Background re-checks of cached customers: stale-while-revalidate, off the request path.

A popular customer's entry runs out every fresh TTL; without this, the request that finds
it expired waits for the customer service (and at 1,000 orders/s, every request of that
second for an expired popular customer does). Instead the entry keeps answering for its
revalidate window while one background request confirms it.

Bounded on every side, so that a slow or failing customer service cannot pile work up here:
a fixed pool of worker threads, one pending re-check per customer (single flight), at most
``max_pending`` re-checks waiting, at most ``rate_per_s`` started per second, and none
accepted after ``close``. The rate matters most: entries stored together (a warm-up, a
restart) run out together, and re-checking 10,000 of them as fast as the pool could took the
customer service's and this process's CPU from the orders (bench/latency_slo.py: p99 129 ms
at 1,000 orders/s with about 600 re-checks/s, 9 ms with none). A customer refused a re-check
now is asked again on its next look-up, and its entry answers until the window closes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ordtool.ratelimit import RateLimiter

log = logging.getLogger(__name__)

BURST_S = 0.05


class BackgroundRefresher:
    """Runs ``refresh(customer_id)`` on a small pool, at most once at a time per customer."""

    def __init__(
        self,
        refresh: Callable[[int], None],
        *,
        workers: int,
        rate_per_s: float,
        max_pending: int = 1000,
    ) -> None:
        self._refresh = refresh
        self._max_pending = max_pending
        # A burst of 50 ms' worth: the re-checks due together start evenly spread.
        self._rate = RateLimiter(rate_per_s, burst=max(1, round(rate_per_s * BURST_S)))
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="customer-refresh")

    def request(self, customer_id: int) -> bool:
        """Make sure a re-check of this customer is pending: True when one is (queued now or
        earlier); False when too many are, the rate is spent, or the refresher is closed.
        Never blocks (safe on an event loop)."""
        with self._lock:
            if customer_id in self._pending:
                return True
            if self._closed or len(self._pending) >= self._max_pending:
                return False
            if self._rate.acquire("re-checks") > 0:
                return False
            self._pending.add(customer_id)
            self._pool.submit(self._run, customer_id)
            return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Drop what is queued and wait for the re-checks already running (each is bounded
        by the customer check's deadline)."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._pending.clear()  # cancelled ones never ran to discard themselves

    def _run(self, customer_id: int) -> None:
        try:
            self._refresh(customer_id)
        except Exception:
            # A re-check is best effort: the entry still answers, then turns stale.
            log.exception("background re-check of customer %s failed", customer_id)
        finally:
            with self._lock:
                self._pending.discard(customer_id)
