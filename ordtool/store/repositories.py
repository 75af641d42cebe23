"""Repositories over one SQLAlchemy connection (the unit of work's transaction)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Row,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import DateTime, TypeDecorator

from ordtool.domain.chunks import batched
from ordtool.domain.clock import as_utc
from ordtool.domain.commands import CreateCustomer, OrderQuery, Page, PlaceOrder
from ordtool.domain.customers import Customer
from ordtool.domain.events import Event
from ordtool.domain.orders import Order, OrderStatus
from ordtool.errors import AlreadyExists
from ordtool.store.bulk import insert_rows, next_ids
from ordtool.store.tables import customers, orders

# Below SQLite's and psycopg's limits on bound parameters per statement.
IN_CLAUSE_CHUNK = 5_000


# In Customer's field order, so a row unpacks straight into one (faster than by name).
_CUSTOMER_COLUMNS = (
    customers.c.id,
    customers.c.name,
    customers.c.email,
    customers.c.address,
    customers.c.created_at,
    customers.c.updated_at,
)


def _customer(row: Row[Any]) -> Customer:
    return Customer(row.id, row.name, row.email, row.address, row.created_at, row.updated_at)


def _order(row: Row[Any]) -> Order:
    return Order(
        row.id,
        row.customer_id,
        row.sku,
        row.quantity,
        OrderStatus(row.status),
        row.created_at,
        row.updated_at,
    )


def _driver_value(connection: Connection, column: Column[Any]) -> Callable[[Any], Any]:
    """The column type's own conversion of a value into what the database driver receives.

    SQLAlchemy converts every parameter of every row; a bulk write repeats one timestamp
    100,000 times, and converting it each time (UtcDateTime, then SQLite's text format) was
    ~18% of seeding's time. Bulk writes convert each distinct timestamp once with this and
    send the result as a ``_Converted`` parameter, so it is stored exactly as the column
    would have stored it.
    """
    dialect = connection.dialect
    convert = column.type.dialect_impl(dialect).bind_processor(dialect)
    return convert or (lambda value: value)


class _Converted(TypeDecorator[Any]):
    """A timestamp already converted by ``_driver_value``: handed to the driver untouched.
    Its impl keeps the bind cast PostgreSQL needs (``::TIMESTAMP WITH TIME ZONE``)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def _converted(name: str) -> Any:
    return bindparam(name, type_=_Converted())


class SqlOutbox:
    def __init__(self, connection: Connection, table: Table) -> None:
        self._connection = connection
        self._table = table
        self.added = 0  # events written in this transaction

    def add(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self.added += len(events)
        convert = _driver_value(self._connection, self._table.c.occurred_at)
        sent = {moment: convert(moment) for moment in {e.occurred_at for e in events}}
        rows = [_outbox_row(e, sent[e.occurred_at]) for e in events]
        insert_rows(self._connection, self._table, _OUTBOX_COLUMNS, rows)


_OUTBOX_COLUMNS = ("event_id", "event_type", "aggregate_id", "payload", "occurred_at")


# json.dumps(..., separators=...) builds a new encoder on every call; seeding writes 100,000
# payloads, so reuse one (same output).
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _outbox_row(event: Event, occurred_at_sent: Any) -> tuple[Any, ...]:
    """In ``_OUTBOX_COLUMNS``' order."""
    envelope = event.envelope()
    return (envelope["id"], event.type, event.aggregate_id, _COMPACT_JSON.encode(envelope),
            occurred_at_sent)


# RETURNING in parameter order makes SQLAlchemy send one INSERT per row on SQLite (no
# sentinel column to sort by); unordered, it sends one INSERT per ~1,000 rows, and the unique
# email maps each new id back to its command.
_INSERT_CUSTOMERS = (
    insert(customers)
    .values(created_at=_converted("stamp_sent"), updated_at=_converted("stamp_sent"))
    .returning(customers.c.email, customers.c.id)
)


class SqlCustomerRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, command: CreateCustomer, now: datetime) -> Customer:
        return self.add_many([command], now)[0]

    def add_many(self, commands: Sequence[CreateCustomer], now: datetime) -> list[Customer]:
        if not commands:
            return []
        stamp = as_utc(now)  # what the UtcDateTime column would hand back
        sent = _driver_value(self._connection, customers.c.created_at)(stamp)
        rows = [
            {"name": c.name, "email": c.email, "address": c.address, "stamp_sent": sent}
            for c in commands
        ]
        try:
            ids: dict[str, int] = dict(self._connection.execute(_INSERT_CUSTOMERS, rows).all())
        except IntegrityError as exc:
            raise AlreadyExists(
                "a customer with one of these emails already exists",
                hint="use another email, or ordtool seed --idempotent to update",
            ) from exc
        return [Customer(ids[c.email], c.name, c.email, c.address, stamp, stamp) for c in commands]

    def update_many(self, updated: Sequence[Customer]) -> None:
        if not updated:
            return
        statement = (
            update(customers)
            .where(customers.c.id == bindparam("b_id"))
            .values(
                name=bindparam("b_name"),
                address=bindparam("b_address"),
                updated_at=bindparam("b_updated_at"),
            )
        )
        self._connection.execute(
            statement,
            [
                {
                    "b_id": c.id,
                    "b_name": c.name,
                    "b_address": c.address,
                    "b_updated_at": c.updated_at,
                }
                for c in updated
            ],
        )

    def get(self, customer_id: int, *, for_update: bool = False) -> Customer | None:
        statement = select(customers).where(customers.c.id == customer_id)
        if for_update:
            statement = statement.with_for_update()
        row = self._connection.execute(statement).first()
        return _customer(row) if row else None

    def delete(self, customer_id: int) -> bool:
        """Return False when there was no such customer."""
        result = self._connection.execute(delete(customers).where(customers.c.id == customer_id))
        return result.rowcount > 0

    def exists(self, customer_id: int) -> bool:
        found = self._connection.execute(
            select(customers.c.id).where(customers.c.id == customer_id)
        ).first()
        return found is not None

    def by_emails(self, emails: Iterable[str]) -> dict[str, Customer]:
        found: dict[str, Customer] = {}
        for chunk in batched(emails, IN_CLAUSE_CHUNK):
            statement = select(*_CUSTOMER_COLUMNS).where(customers.c.email.in_(chunk))
            rows = self._connection.execute(statement).all()  # fetchall, not a row at a time
            found.update((row.email, Customer(*row)) for row in rows)
        return found

    def list(self, page: Page) -> list[Customer]:
        statement = select(customers).order_by(customers.c.id.desc()).limit(page.limit)
        if page.cursor is not None:
            statement = statement.where(customers.c.id < page.cursor)
        return [_customer(row) for row in self._connection.execute(statement)]


_ORDER_COLUMNS = ("id", "customer_id", "sku", "quantity", "status", "created_at", "updated_at")


class SqlOrderRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, command: PlaceOrder, now: datetime) -> Order:
        return self.add_many([command], now)[0]

    def add_many(self, commands: Sequence[PlaceOrder], now: datetime) -> list[Order]:
        """New PENDING orders stamped ``now``, in the commands' order, in one INSERT (store.bulk:
        the ids are taken first, so none has to come back row by row)."""
        stamp = as_utc(now)
        sent = _driver_value(self._connection, orders.c.created_at)(stamp)
        pending = OrderStatus.PENDING
        ids = next_ids(self._connection, orders, len(commands))
        insert_rows(self._connection, orders, _ORDER_COLUMNS, [
            (order_id, c.customer_id, c.sku, c.quantity, pending.value, sent, sent)
            for order_id, c in zip(ids, commands, strict=True)
        ])
        return [Order(order_id, c.customer_id, c.sku, c.quantity, pending, stamp, stamp)
                for order_id, c in zip(ids, commands, strict=True)]

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        statement = select(orders).where(orders.c.id == order_id)
        if for_update:
            statement = statement.with_for_update()
        row = self._connection.execute(statement).first()
        return _order(row) if row else None

    def set_status(self, order_id: int, status: OrderStatus, now: datetime) -> None:
        self._connection.execute(
            update(orders)
            .where(orders.c.id == order_id)
            .values(status=status.value, updated_at=now)
        )

    def list(self, query: OrderQuery) -> list[Order]:
        statement = select(orders).order_by(orders.c.id.desc()).limit(query.limit)
        if query.cursor is not None:
            statement = statement.where(orders.c.id < query.cursor)
        if query.customer_id is not None:
            statement = statement.where(orders.c.customer_id == query.customer_id)
        if query.status is not None:
            statement = statement.where(orders.c.status == query.status.value)
        if query.since is not None:
            statement = statement.where(orders.c.created_at >= query.since)
        if query.until is not None:
            statement = statement.where(orders.c.created_at < query.until)
        return [_order(row) for row in self._connection.execute(statement)]
