"""Table definitions. Each service owns its database: one MetaData per database.

The migrations under ``store/migrations`` create exactly these; a test checks they agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
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
    Index(
        "ix_outbox_unpublished",
        table.c.id,
        sqlite_where=table.c.published_at.is_(None),
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


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
