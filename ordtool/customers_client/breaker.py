"""A circuit breaker for one dependency: stop calling a service that keeps failing.

CLOSED    every call goes through; each outcome lands in a sliding window of the last
          ``window`` calls. Once the window holds ``min_calls`` outcomes and the share of
          failures reaches ``failure_rate``, the breaker OPENs.
OPEN      no call goes through (callers fail at once, or fall back to a cache) until
          ``open_s`` has passed; then the next caller becomes a HALF_OPEN probe.
HALF_OPEN at most ``probes`` calls go through at a time; ``probes`` successes in a row close
          the breaker (with a fresh window), any failure opens it again for ``open_s``.

One breaker is shared by every thread of the process, so all state changes hold a lock.
The state is exported as the ``BREAKER_STATE`` gauge (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from ordtool.metrics import BREAKER_STATE


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    def __init__(
        self,
        dependency: str,
        *,
        window: int = 20,
        failure_rate: float = 0.5,
        min_calls: int = 10,
        open_s: float = 5.0,
        probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dependency = dependency
        self._failure_rate = failure_rate
        self._min_calls = min(min_calls, window)  # a window smaller than min_calls never opens
        self._open_s = open_s
        self._probes = probes
        self._clock = clock
        self._lock = threading.Lock()
        self._outcomes: deque[bool] = deque(maxlen=window)  # True = failure
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._export()

    @property
    def state(self) -> BreakerState:
        """The state as a caller would meet it now (an expired OPEN reads as HALF_OPEN)."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._open_expired():
                return BreakerState.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """May a call go through now? A True in HALF_OPEN reserves a probe: the caller must
        report its outcome with record_success or record_failure."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                if not self._open_expired():
                    return False
                self._enter(BreakerState.HALF_OPEN)
            if self._state is BreakerState.HALF_OPEN:
                if self._probes_in_flight >= self._probes:
                    return False
                self._probes_in_flight += 1
            return True

    def record_success(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._probe_successes += 1
                if self._probe_successes >= self._probes:
                    self._enter(BreakerState.CLOSED)
            elif self._state is BreakerState.CLOSED:
                self._outcomes.append(False)

    def record_failure(self) -> None:
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._enter(BreakerState.OPEN)
            elif self._state is BreakerState.CLOSED:
                self._outcomes.append(True)
                if self._tripped():
                    self._enter(BreakerState.OPEN)

    def retry_after(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it is not open)."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._open_s - self._clock())

    def snapshot(self) -> dict[str, Any]:
        """What /readyz shows: the state, the failures in the window, when it may close."""
        state = self.state
        with self._lock:
            failures = sum(self._outcomes)
            calls = len(self._outcomes)
        return {
            "dependency": self.dependency,
            "state": state.value,
            "window_calls": calls,
            "window_failures": failures,
            "retry_after_s": round(self.retry_after(), 3),
        }

    def _tripped(self) -> bool:
        calls = len(self._outcomes)
        return calls >= self._min_calls and sum(self._outcomes) / calls >= self._failure_rate

    def _open_expired(self) -> bool:
        return self._clock() - self._opened_at >= self._open_s

    def _enter(self, state: BreakerState) -> None:
        self._state = state
        self._probes_in_flight = 0
        self._probe_successes = 0
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        if state is BreakerState.CLOSED:
            self._outcomes.clear()  # the failures that opened it are history now
        self._export()

    def _export(self) -> None:
        BREAKER_STATE.labels(dependency=self.dependency).set(_GAUGE_VALUE[self._state])
