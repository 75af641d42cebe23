"""Domain events and their envelope (design.md section 4, docs/events.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from uuid_utils.compat import uuid7

from ordtool.domain.clock import iso_z
from ordtool.domain.customers import Customer
from ordtool.domain.orders import Order, OrderStatus

ENVELOPE_VERSION = 1

ORDER_CREATED = "order.created"
ORDER_STATUS_CHANGED = "order.status_changed"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_DELETED = "customer.deleted"


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    aggregate_id: int
    correlation_id: str | None = None
    # Time-ordered (UUIDv7): the unique indexes on event ids (outbox, inbox, audit) grow at
    # their end instead of at random pages, which halved the write-ahead log an order writes
    # on SQLite (9.0 -> 4.4 KB per order, batches of 10).
    id: uuid.UUID = field(default_factory=uuid7)
    version: int = ENVELOPE_VERSION

    def envelope(self) -> dict[str, Any]:
        """The JSON-ready envelope every consumer receives."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "occurred_at": iso_z(self.occurred_at),
            "correlation_id": self.correlation_id,
            "data": self.data,
        }


def order_data(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "sku": order.sku,
        "quantity": order.quantity,
        "status": str(order.status),
        "created_at": iso_z(order.created_at),
        "updated_at": iso_z(order.updated_at),
    }


def customer_data(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "address": customer.address,
        "created_at": iso_z(customer.created_at),
        "updated_at": iso_z(customer.updated_at),
    }


def order_created(order: Order, correlation_id: str | None = None) -> Event:
    return Event(ORDER_CREATED, order.created_at, order_data(order), order.id, correlation_id)


def order_status_changed(
    order: Order, previous: OrderStatus, correlation_id: str | None = None
) -> Event:
    data = order_data(order) | {"previous_status": str(previous)}
    return Event(ORDER_STATUS_CHANGED, order.updated_at, data, order.id, correlation_id)


def customer_created(customer: Customer, correlation_id: str | None = None) -> Event:
    return Event(
        CUSTOMER_CREATED, customer.created_at, customer_data(customer), customer.id, correlation_id
    )


def customer_updated(customer: Customer, correlation_id: str | None = None) -> Event:
    return Event(
        CUSTOMER_UPDATED, customer.updated_at, customer_data(customer), customer.id, correlation_id
    )


def customer_deleted(
    customer: Customer, deleted_at: datetime, correlation_id: str | None = None
) -> Event:
    """The customer as it was when deleted, so a consumer can drop what it cached."""
    data = customer_data(customer) | {"deleted_at": iso_z(deleted_at)}
    return Event(CUSTOMER_DELETED, deleted_at, data, customer.id, correlation_id)
