"""Table definitions. Each service owns its database: one MetaData per database.

The migrations under ``store/migrations`` create exactly these; a test checks they agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ColumnElement,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ordtool.domain.orders import OrderStatus
from ordtool.domain.values import (
    MAX_ADDRESS_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
)
from ordtool.store.types import UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")

customers_metadata = MetaData()
orders_metadata = MetaData()
# The audit consumer's record, in a database of its own: on SQLite its writes never queue for
# the orders database's one write lock (bench/event_latency.py).
audit_metadata = MetaData()


def _outbox(metadata: MetaData) -> Table:
    """Events written in the same transaction as the change; the relay publishes them in id
    order and stamps published_at only after the broker confirmed them."""
    table = Table(
        "outbox",
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("event_type", String(64), nullable=False),
        Column("aggregate_id", BigInteger, nullable=False),
        Column("payload", Text, nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
        UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    published = table.c.published_at
    _partial_index("ix_outbox_unpublished", table.c.id, published.is_(None))  # the relay
    _partial_index("ix_outbox_published_at", published, published.is_not(None))  # the purge
    return table


def _partial_index(name: str, column: Column[Any], where: ColumnElement[bool]) -> Index:
    """An index on the rows that match ``where`` (both backends support partial indexes)."""
    return Index(name, column, sqlite_where=where, postgresql_where=where)


def _inbox(metadata: MetaData) -> Table:
    """Event ids a consumer has handled, so a redelivered event is dropped."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("received_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("consumer", "event_id"),
    )


customers = Table(
    "customers",
    customers_metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME_LENGTH), nullable=False),
    Column("email", String(MAX_EMAIL_LENGTH), nullable=False),
    Column("address", String(MAX_ADDRESS_LENGTH), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("email", name="uq_customers_email"),
)
customers_outbox = _outbox(customers_metadata)
customers_inbox = _inbox(customers_metadata)

_status_values = ", ".join(f"'{status.value}'" for status in OrderStatus)

orders = Table(
    "orders",
    orders_metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", BigInteger, nullable=False),
    Column("sku", String(MAX_SKU_LENGTH), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(f"quantity BETWEEN 1 AND {MAX_QUANTITY}", name="ck_orders_quantity"),
    CheckConstraint(f"status IN ({_status_values})", name="ck_orders_status"),
)
Index("ix_orders_customer_created", orders.c.customer_id, orders.c.created_at)
orders_outbox = _outbox(orders_metadata)
orders_inbox = _inbox(orders_metadata)


def _api_keys(metadata: MetaData) -> Table:
    """API keys allowed to call this service. Only the SHA-256 of a key is kept, so a stolen
    database yields no usable key; checking a key costs one hash and one indexed look-up."""
    return Table(
        "api_keys",
        metadata,
        Column("id", String(32), primary_key=True),
        Column("name", String(100), nullable=False),
        Column("key_hash", String(64), nullable=False),
        Column("scopes", String(500), nullable=False),  # space-separated
        Column("created_at", UtcDateTime, nullable=False),
        Column("revoked_at", UtcDateTime, nullable=True),
        UniqueConstraint("key_hash", name=f"uq_{metadata.info['name']}_api_keys_hash"),
    )


def _idempotency_keys(metadata: MetaData) -> Table:
    """First response to each (caller, route, Idempotency-Key); status_code NULL = running."""
    table = Table(
        "idempotency_keys",
        metadata,
        Column("caller", String(64), nullable=False),
        Column("route", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("status_code", Integer, nullable=True),
        Column("response_body", Text, nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("caller", "route", "key"),
    )
    Index("ix_idempotency_keys_created_at", table.c.created_at)  # the purge
    return table


def _leases(metadata: MetaData) -> Table:
    """Named leases (e.g. the active outbox relay): one holder at a time until it expires."""
    return Table(
        "leases",
        metadata,
        Column("name", String(100), primary_key=True),
        Column("holder", String(100), nullable=False),
        Column("expires_at", UtcDateTime, nullable=False),
    )


customers_metadata.info["name"] = "customers"
orders_metadata.info["name"] = "orders"
customers_api_keys = _api_keys(customers_metadata)
orders_api_keys = _api_keys(orders_metadata)
customers_idempotency = _idempotency_keys(customers_metadata)
orders_idempotency = _idempotency_keys(orders_metadata)
customers_leases = _leases(customers_metadata)
orders_leases = _leases(orders_metadata)


def _audit_events(metadata: MetaData) -> Table:
    """What the audit consumer received: one row per event id, with how often it was
    delivered."""
    table = Table(
        "audit_events",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("source", String(20), nullable=False),  # which outbox: orders | customers
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("received_at", UtcDateTime, nullable=False),
        Column("deliveries", Integer, nullable=False, server_default="1"),
    )
    Index("ix_audit_events_received_at", table.c.received_at)  # the retention purge
    return table


audit_metadata.info["name"] = "audit"
audit_events = _audit_events(audit_metadata)
audit_inbox = _inbox(audit_metadata)
# Retired: where the audit consumer kept its record before it had a database of its own (up
# to o0004). Nothing writes it any more; `ordtool db upgrade` moves what it holds into the
# audit database, and a contract migration of the next release drops it.
retired_orders_audit_events = _audit_events(orders_metadata)
