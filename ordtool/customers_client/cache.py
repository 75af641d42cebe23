"""The cache of customer look-ups: in-process LRU, or Redis when several processes share it.

Only "this customer exists" is ever stored: caching "not found" would keep refusing a
customer created a second later. An entry's life, from when it was stored (``Lifetimes``)::

    FRESH       fresh_s          answers without asking the customer service
    REVALIDATE  + revalidate_s   answers too, while one background request confirms it
                                 (RFC 5861 stale-while-revalidate: a popular customer's
                                 entry is renewed before it runs out, off the request path)
    STALE       to + stale_s     good enough only when the customer service cannot answer
                                 (RFC 5861 stale-if-error)
    gone

The revalidate window lies inside the stale one (it is never longer).

Both caches are best effort: a cache that fails (Redis down) reads as a miss and never fails
the customer check; the customer service is the source of truth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)


class Freshness(StrEnum):
    FRESH = "fresh"
    REVALIDATE = "revalidate"  # still answers; due for a background refresh
    STALE = "stale"


@dataclass(frozen=True)
class Lifetimes:
    """How long an entry answers on its own, answers while it is refreshed, and serves as a
    stand-in when the customer service is unavailable; all in seconds from when it was stored."""

    fresh_s: float
    stale_s: float
    revalidate_s: float = 0.0

    @property
    def kept_s(self) -> float:
        return self.fresh_s + self.stale_s

    def freshness(self, age_s: float) -> Freshness | None:
        if age_s < self.fresh_s:
            return Freshness.FRESH
        if age_s < self.fresh_s + min(self.revalidate_s, self.stale_s):
            return Freshness.REVALIDATE
        if age_s < self.kept_s:
            return Freshness.STALE
        return None


class LookupCache(Protocol):
    def get(self, customer_id: int) -> Freshness | None:
        """How fresh the entry is when the customer is known to exist; None when nothing is
        kept."""
        ...

    # The entries live in this process: ``get`` takes no I/O and is safe on an event loop.
    in_memory: bool

    def put(self, customer_id: int) -> None:
        """Remember that the customer exists, as of now."""
        ...

    def invalidate(self, customer_id: int) -> None:
        """Forget the customer (it was deleted, or the customer service said 404)."""
        ...

    def close(self) -> None: ...


class InProcessLookupCache:
    """A bounded LRU in this process's memory; the least recently used entry goes first."""

    in_memory = True

    def __init__(
        self,
        lifetimes: Lifetimes,
        *,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lifetimes = lifetimes
        self._max_entries = max_entries
        self._clock = clock
        self._stored_at: OrderedDict[int, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, customer_id: int) -> Freshness | None:
        with self._lock:
            stored_at = self._stored_at.get(customer_id)
            if stored_at is None:
                return None
            freshness = self._lifetimes.freshness(self._clock() - stored_at)
            if freshness is None:
                del self._stored_at[customer_id]
            else:
                self._stored_at.move_to_end(customer_id)
            return freshness

    def put(self, customer_id: int) -> None:
        with self._lock:
            self._stored_at[customer_id] = self._clock()
            self._stored_at.move_to_end(customer_id)
            while len(self._stored_at) > self._max_entries:
                self._stored_at.popitem(last=False)

    def invalidate(self, customer_id: int) -> None:
        with self._lock:
            self._stored_at.pop(customer_id, None)

    def __len__(self) -> int:
        return len(self._stored_at)

    def close(self) -> None:
        pass


class RedisLookupCache:
    """Shared by every process that uses the same Redis and key prefix.

    A key ``{prefix}{customer_id}`` holds the wall-clock time it was stored (processes do not
    share a monotonic clock) and expires by itself when the stale window ends.
    """

    in_memory = False  # every answer is a round trip to Redis

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        lifetimes: Lifetimes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._lifetimes = lifetimes
        self._clock = clock

    def get(self, customer_id: int) -> Freshness | None:
        try:
            raw = self._client.get(self._key(customer_id))
        except redis.RedisError as exc:
            log.warning("customer cache unavailable, treated as a miss: %s", exc)
            return None
        stored_at = _parse_time(raw)
        if stored_at is None:
            return None
        return self._lifetimes.freshness(self._clock() - stored_at)

    def put(self, customer_id: int) -> None:
        keep_ms = max(1, int(self._lifetimes.kept_s * 1000))
        try:
            self._client.set(self._key(customer_id), repr(self._clock()), px=keep_ms)
        except redis.RedisError as exc:
            log.warning("customer cache unavailable, entry not stored: %s", exc)

    def invalidate(self, customer_id: int) -> None:
        try:
            self._client.delete(self._key(customer_id))
        except redis.RedisError as exc:
            # Not fatal: the entry still expires at the end of its stale window.
            log.warning("customer cache unavailable, entry not invalidated: %s", exc)

    def close(self) -> None:
        self._client.close()

    def _key(self, customer_id: int) -> str:
        return f"{self._prefix}{customer_id}"


def _parse_time(raw: object) -> float | None:
    """The stored timestamp, or None for an absent or foreign value (never a crash)."""
    if not isinstance(raw, bytes | str):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def redis_client(url: str, *, timeout_s: float) -> redis.Redis:
    """A Redis client that gives up within ``timeout_s`` and never retries on its own: a
    slow cache must not eat the customer check's deadline."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
