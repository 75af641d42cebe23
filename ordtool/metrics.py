"""Prometheus metrics: defined once here, updated by the adapters, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_SECONDS = Histogram(
    "ordtool_http_request_duration_seconds",
    "HTTP request duration by service, route template, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ORDERS_CREATED = Counter(
    "ordtool_orders_created_total",
    "Order placement attempts by outcome (created, unknown_customer, invalid, unavailable).",
    ["outcome"],
)
CUSTOMER_CHECKS = Counter(
    "ordtool_customer_checks_total",
    "Customer checks by outcome (found, not_found, stale, unavailable, breaker_open).",
    ["outcome"],
)
CUSTOMER_CHECK_ATTEMPTS = Counter(
    "ordtool_customer_check_attempts_total",
    "HTTP attempts made to the customer service, by result (ok, retryable, error).",
    ["result"],
)
BREAKER_STATE = Gauge(
    "ordtool_circuit_breaker_state",
    "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.",
    ["dependency"],
)
CACHE_LOOKUPS = Counter(
    "ordtool_customer_cache_lookups_total",
    "Customer cache look-ups by result (hit, stale_hit, miss); a hit due for "
    "revalidation is a hit.",
    ["result"],
)
CACHE_REFRESHES = Counter(
    "ordtool_customer_cache_refreshes_total",
    "Background re-checks of cached customers by outcome "
    "(found, not_found, unanswered, breaker_open, not_queued).",
    ["outcome"],
)
EVENTS_PUBLISHED = Counter(
    "ordtool_events_published_total", "Outbox events confirmed by the broker.", ["source"]
)
OUTBOX_BACKLOG = Gauge(
    "ordtool_outbox_backlog", "Outbox events not yet published.", ["source"]
)
LIVE_CLIENTS = Gauge(
    "ordtool_live_clients", "Live orders pages connected to this process's WebSocket hub."
)
AUTH_REFUSALS = Counter(
    "ordtool_auth_refusals_total",
    "Requests refused by auth, by reason (missing, malformed, invalid_key, invalid_jwt, "
    "forbidden, rate_limited).",
    ["reason"],
)
IDEMPOTENCY_OUTCOMES = Counter(
    "ordtool_idempotency_requests_total",
    "Requests with an Idempotency-Key by outcome (stored, replayed, in_progress, mismatch, "
    "released).",
    ["outcome"],
)
EVENTS_PUBLISH_FAILURES = Counter(
    "ordtool_events_publish_failures_total",
    "Outbox events the broker nacked, returned (unroutable) or never confirmed; sent again.",
    ["source"],
)
RELAY_CONNECTS = Counter(
    "ordtool_relay_broker_connects_total", "Broker connections the outbox relay opened."
)
EVENTS_CONSUMED = Counter(
    "ordtool_events_consumed_total",
    "Deliveries handled by consumers, by outcome (handled, duplicate, retried, dead_lettered).",
    ["consumer", "outcome"],
)
