"""Token buckets, in process: ``rate`` requests per second, bursts up to ``burst``, per caller
(an API key; or one name for a single budget, such as the customer cache's re-checks).

For API keys, in process means the limit is per replica; behind N replicas a caller gets up
to N times the rate. That is the usual trade for a check that costs no network round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_callers: int = 100_000,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> float:
        """Take a token: 0.0 when allowed, else the seconds until one will be available."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(caller, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            if tokens >= 1.0:
                self._store(caller, tokens - 1.0, now)
                return 0.0
            self._store(caller, tokens, now)
            return (1.0 - tokens) / self._rate

    def _store(self, caller: str, tokens: float, now: float) -> None:
        if caller not in self._buckets and len(self._buckets) >= self._max_callers:
            self._forget_full(now)
        self._buckets[caller] = (tokens, now)

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: dropping it changes nothing.
        refill_s = self._burst / self._rate
        self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < refill_s}
