"""Customer directory over HTTP: ask the customer service, and never wait past the deadline.

The old system retried this check in an unbounded loop behind a 5 s timeout, so a slow
customer service made every order slow. Here one look-up::

    fresh cache hit ───────────────────────────────────────────────> exists (no HTTP at all)
    hit due for revalidation ──────> exists at once; one background re-check renews the entry
    breaker open ──────────────────────────────────────────────────> stale cache or 503, at once
    GET /customers/{id}, attempts share ONE deadline (default 1 s):
        200 with a well-formed body for that id ──> exists; cached (fresh 60 s, stale 1 h)
        404 ───────────────────────────────────────> does not exist; never cached
        connect error, timeout, 502/503/504 ──────> retry (at most max_retries, jittered
                                                     exponential backoff inside the deadline)
        any other answer, a malformed body ───────> failed, no retry
    no answer in time ─────────────────────────────> stale cache entry (stale=True) or 503

Every attempt's outcome feeds the circuit breaker. The time an attempt spends waiting for a
pooled connection counts against the deadline like the rest.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError

from ordtool import __version__
from ordtool.config import CustomerCheckSettings
from ordtool.customers_client.breaker import BreakerState, CircuitBreaker
from ordtool.customers_client.cache import Freshness, LookupCache
from ordtool.customers_client.refresh import BackgroundRefresher
from ordtool.errors import DependencyUnavailable
from ordtool.metrics import (
    CACHE_LOOKUPS,
    CACHE_REFRESHES,
    CUSTOMER_CHECK_ATTEMPTS,
    CUSTOMER_CHECKS,
)
from ordtool.services.ports import CustomerLookup

log = logging.getLogger(__name__)

DEPENDENCY = "customer-service"
RETRYABLE_STATUSES = frozenset({502, 503, 504})
MAX_BODY_BYTES = 64 * 1024  # a customer is a few hundred bytes; more is not an answer
MIN_ATTEMPT_S = 0.01  # less time than this left: another attempt could not finish


class _AttemptFailed(Exception):
    """One HTTP attempt got no usable answer."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


class _Unanswered(Exception):
    """The whole check got no answer: no attempt left, no time left, or the breaker is open."""

    def __init__(self, reason: str, *, breaker_open: bool = False) -> None:
        super().__init__(reason)
        self.breaker_open = breaker_open


_BREAKER_OPEN = _Unanswered("circuit breaker open", breaker_open=True)


class _CustomerBody(BaseModel):
    """The part of the customer service's answer we rely on; the rest is ignored."""

    model_config = ConfigDict(extra="ignore")

    id: StrictInt
    name: str
    email: str


class _TimeLeft(Mapping[str, float]):
    """httpx timeouts for one attempt that all draw on one budget.

    httpx applies its pool, connect, write and read timeouts one phase at a time, each in
    full, so a 0.4 s timeout could let an attempt last 0.4 s waiting for a pooled
    connection, plus 0.4 s connecting, plus 0.4 s reading. httpcore looks each phase's
    timeout up in this mapping (the request's "timeout" extension) as the phase starts; by
    answering with the time left until the attempt's deadline, the phases share it.
    """

    _PHASES = ("connect", "read", "write", "pool")

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __getitem__(self, phase: str) -> float:
        if phase not in self._PHASES:
            raise KeyError(phase)
        # 0 would make the socket non-blocking rather than time out at once.
        return max(0.001, self._deadline - time.monotonic())

    def __iter__(self) -> Iterator[str]:
        return iter(self._PHASES)

    def __len__(self) -> int:
        return len(self._PHASES)


class HttpCustomerDirectory:
    """The customer-directory port over HTTP, with deadline, retries, breaker and cache.

    Thread-safe: one instance (one connection pool, one breaker) serves the whole process.
    """

    def __init__(
        self,
        base_url: str,
        check: CustomerCheckSettings,
        *,
        cache: LookupCache,
        api_key: str | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._check = check
        self._cache = cache
        self._breaker = breaker or CircuitBreaker(
            DEPENDENCY,
            window=check.breaker_window,
            failure_rate=check.breaker_failure_rate,
            min_calls=check.breaker_min_calls,
            open_s=check.breaker_open_s,
            probes=check.breaker_half_open_probes,
        )
        self._client = httpx.Client(
            base_url=base_url,
            headers=_static_headers(api_key),
            limits=httpx.Limits(
                max_connections=check.pool_size, max_keepalive_connections=check.pool_size
            ),
            timeout=check.attempt_timeout_s,
            follow_redirects=False,
        )
        self._refresher = BackgroundRefresher(
            self._refresh,
            workers=check.cache_refresh_workers,
            rate_per_s=check.cache_refresh_rate,
        )

    def lookup(self, customer_id: int, *, request_id: str | None = None) -> CustomerLookup:
        cached = self._cache.get(customer_id)
        if (answer := self._answer_from_cache(customer_id, cached)) is not None:
            return answer
        CACHE_LOOKUPS.labels(result="miss").inc()
        try:
            exists = self._ask(customer_id, request_id)
        except _Unanswered as failure:
            return self._fall_back(customer_id, cached, failure, request_id)
        self._remember(customer_id, exists)
        CUSTOMER_CHECKS.labels(outcome="found" if exists else "not_found").inc()
        return CustomerLookup(exists=exists)

    def lookup_in_memory(self, customer_id: int) -> CustomerLookup | None:
        """What the in-process cache and the breaker can tell without a request: a fresh
        entry; or, while the breaker is open, the stale entry or DependencyUnavailable at
        once. None when only ``lookup`` can tell (it then asks the cache again)."""
        if not self._cache.in_memory:
            return None  # a Redis read is I/O: a worker thread's job
        cached = self._cache.get(customer_id)
        if (answer := self._answer_from_cache(customer_id, cached)) is not None:
            return answer
        if self._breaker.state is not BreakerState.OPEN:
            return None
        CACHE_LOOKUPS.labels(result="miss").inc()
        return self._fall_back(customer_id, cached, _BREAKER_OPEN, None)

    def _answer_from_cache(
        self, customer_id: int, cached: Freshness | None
    ) -> CustomerLookup | None:
        """A hit for a fresh entry; for one due for revalidation, a hit that queues its
        re-check (never blocks), or a stale answer while the breaker is not closed (nobody
        has confirmed the customer lately, and the response must say so). None when the
        customer service must be asked."""
        if cached is Freshness.REVALIDATE:
            breaker = self._breaker.state
            if breaker is not BreakerState.OPEN and not self._refresher.request(customer_id):
                CACHE_REFRESHES.labels(outcome="not_queued").inc()
            if breaker is not BreakerState.CLOSED:
                return self._fall_back(customer_id, Freshness.STALE, _BREAKER_OPEN, None)
        elif cached is not Freshness.FRESH:
            return None
        CACHE_LOOKUPS.labels(result="hit").inc()
        CUSTOMER_CHECKS.labels(outcome="found").inc()
        return CustomerLookup(exists=True)

    def _refresh(self, customer_id: int) -> None:
        """A background re-check: renews the entry, or forgets a customer that is gone. The
        breaker decides as for any look-up (open: nothing is asked; half-open: a re-check
        may be its probe)."""
        try:
            exists = self._ask(customer_id, None)
        except _Unanswered as failure:
            outcome = "breaker_open" if failure.breaker_open else "unanswered"
            CACHE_REFRESHES.labels(outcome=outcome).inc()
            return
        self._remember(customer_id, exists)
        CACHE_REFRESHES.labels(outcome="found" if exists else "not_found").inc()

    def _remember(self, customer_id: int, exists: bool) -> None:
        if exists:
            self._cache.put(customer_id)
        else:
            self._cache.invalidate(customer_id)  # deleted: its stale entry must not outlive it

    def invalidate(self, customer_id: int) -> None:
        """Forget a cached customer (a customer.deleted or .updated event calls this)."""
        self._cache.invalidate(customer_id)

    def health(self) -> dict[str, Any]:
        """For /readyz: the breaker's state, read from memory (no request is made)."""
        return {"kind": "http", "breaker": self._breaker.snapshot()}

    def close(self) -> None:
        self._refresher.close()  # first: its re-checks use the client and the cache
        self._client.close()
        self._cache.close()

    def _fall_back(
        self,
        customer_id: int,
        cached: Freshness | None,
        failure: _Unanswered,
        request_id: str | None,
    ) -> CustomerLookup:
        if cached is Freshness.STALE:
            CACHE_LOOKUPS.labels(result="stale_hit").inc()
            CUSTOMER_CHECKS.labels(outcome="stale").inc()
            log.warning(
                "customer %s accepted from stale cache (%s) request_id=%s",
                customer_id,
                failure,
                request_id,
            )
            return CustomerLookup(exists=True, stale=True)
        outcome = "breaker_open" if failure.breaker_open else "unavailable"
        CUSTOMER_CHECKS.labels(outcome=outcome).inc()
        retry_after = float(max(1, math.ceil(self._breaker.retry_after())))
        raise DependencyUnavailable(
            f"customer service unavailable ({failure}): cannot check customer {customer_id}",
            hint=f"retry in {retry_after:g} s",
            retry_after=retry_after,
        )

    def _ask(self, customer_id: int, request_id: str | None) -> bool:
        """Does the customer service know this customer? Raises _Unanswered."""
        deadline = time.monotonic() + self._check.deadline_s
        failure = "deadline reached"
        for attempt in range(self._check.max_retries + 1):
            if attempt and not self._back_off(attempt, deadline):
                break
            left = deadline - time.monotonic()
            if left < MIN_ATTEMPT_S:
                break
            if not self._breaker.allow():
                raise _Unanswered("circuit breaker open", breaker_open=attempt == 0)
            budget = min(self._check.attempt_timeout_s, left)
            try:
                found = self._attempt(customer_id, request_id, budget)
            except _AttemptFailed as exc:
                self._attempt_failed(exc, attempt + 1, request_id)
                failure = f"{exc} after {attempt + 1} attempt{'s' if attempt else ''}"
                if not exc.retryable:
                    break
                continue
            except BaseException:
                self._breaker.record_failure()  # a half-open probe must always report back
                raise
            self._breaker.record_success()
            CUSTOMER_CHECK_ATTEMPTS.labels(result="ok").inc()
            return found
        raise _Unanswered(failure)

    def _attempt_failed(self, exc: _AttemptFailed, number: int, request_id: str | None) -> None:
        self._breaker.record_failure()
        CUSTOMER_CHECK_ATTEMPTS.labels(result="retryable" if exc.retryable else "error").inc()
        log.info("customer check attempt %d failed: %s request_id=%s", number, exc, request_id)

    def _back_off(self, attempt: int, deadline: float) -> bool:
        """Sleep a full-jitter exponential delay, cut short so that a last attempt still fits
        before the deadline; False when there is no time left for one."""
        room = deadline - time.monotonic() - MIN_ATTEMPT_S
        if room <= 0:
            return False
        ceiling = self._check.backoff_base_s * 2 ** (attempt - 1)
        # Jitter spreads the retries of many clients; not a security use of randomness.
        time.sleep(min(random.uniform(0, ceiling), room))  # noqa: S311
        return True

    def _attempt(self, customer_id: int, request_id: str | None, budget: float) -> bool:
        attempt_deadline = time.monotonic() + budget
        headers = {"X-Request-ID": request_id} if request_id else None
        try:
            with self._client.stream(
                "GET",
                f"/customers/{customer_id}",
                headers=headers,
                extensions={"timeout": _TimeLeft(attempt_deadline)},
            ) as response:
                body = _read_body(response, attempt_deadline)
        except httpx.TimeoutException as exc:
            raise _AttemptFailed(f"timed out ({type(exc).__name__})", retryable=True) from exc
        except httpx.ConnectError as exc:
            raise _AttemptFailed(f"cannot connect: {exc}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise _AttemptFailed(f"{type(exc).__name__}: {exc}", retryable=False) from exc
        return _interpret(customer_id, response.status_code, body)


def _static_headers(api_key: str | None) -> dict[str, str]:
    headers = {
        "Accept": "application/json",
        # Compressed bodies could expand past MAX_BODY_BYTES inside one chunk.
        "Accept-Encoding": "identity",
        "User-Agent": f"ordtool/{__version__}",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _read_body(response: httpx.Response, deadline: float) -> bytes:
    """The body, up to MAX_BODY_BYTES, before the attempt's deadline (a server that trickles
    bytes would otherwise reset the read timeout with every chunk)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _AttemptFailed(f"response body over {MAX_BODY_BYTES} bytes", retryable=False)
        if time.monotonic() > deadline:
            raise _AttemptFailed("timed out reading the body", retryable=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _interpret(customer_id: int, status: int, body: bytes) -> bool:
    """The customer service's answer is untrusted input: anything unexpected is a failed
    attempt, never a crash and never a guess."""
    if status == 404:
        return False
    if status in RETRYABLE_STATUSES:
        raise _AttemptFailed(f"HTTP {status}", retryable=True)
    if status != 200:
        raise _AttemptFailed(f"HTTP {status}", retryable=False)
    try:
        customer = _CustomerBody.model_validate_json(body)
    except ValidationError as exc:
        raise _AttemptFailed(_malformed(exc), retryable=False) from None
    if customer.id != customer_id:
        raise _AttemptFailed(
            f"answered for customer {customer.id} instead of {customer_id}", retryable=False
        )
    return True


def _malformed(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"malformed answer ({where}: {first['msg']})"
