"""In-memory fakes of the ports in ``ordtool.services.ports``, for use-case tests without I/O.

A fake unit of work behaves like the real one where the use cases rely on it: work happens on a
copy of the committed state, ``commit`` publishes the copy, and leaving the ``with`` block
without committing throws the copy away. So "nothing was written" is observable here too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from ordtool.domain.commands import CreateCustomer, OrderQuery, Page, PlaceOrder
from ordtool.domain.customers import Customer
from ordtool.domain.events import Event
from ordtool.domain.orders import Order, OrderStatus
from ordtool.errors import AlreadyExists, DependencyUnavailable
from ordtool.services.ports import (
    CustomerDirectory,
    CustomerLookup,
    CustomersUowFactory,
    OrdersUowFactory,
)


@dataclass
class FakeTables:
    """The committed contents of one fake database."""

    customers: dict[int, Customer] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    outbox: list[Event] = field(default_factory=list)


class FakeOutbox:
    def __init__(self, tables: FakeTables) -> None:
        self._tables = tables

    def add(self, events: Sequence[Event]) -> None:
        self._tables.outbox.extend(events)


def _next_id(rows: dict[int, object]) -> int:
    return max(rows, default=0) + 1


class FakeCustomerRepository:
    def __init__(self, tables: FakeTables) -> None:
        self._rows = tables.customers
        self.add_many_calls = 0

    def add(self, command: CreateCustomer, now: datetime) -> Customer:
        return self.add_many([command], now)[0]

    def add_many(self, commands: Sequence[CreateCustomer], now: datetime) -> list[Customer]:
        self.add_many_calls += 1
        created = []
        for command in commands:
            if self.by_emails([command.email]):  # the real table has a unique constraint
                raise AlreadyExists(f"a customer with email {command.email} already exists")
            customer = Customer(
                _next_id(dict(self._rows)),
                command.name,
                command.email,
                command.address,
                now,
                now,
            )
            self._rows[customer.id] = customer
            created.append(customer)
        return created

    def update_many(self, customers: Sequence[Customer]) -> None:
        for customer in customers:
            assert customer.id in self._rows, "update of a customer that does not exist"
            self._rows[customer.id] = customer

    def get(self, customer_id: int, *, for_update: bool = False) -> Customer | None:
        return self._rows.get(customer_id)

    def delete(self, customer_id: int) -> bool:
        return self._rows.pop(customer_id, None) is not None

    def exists(self, customer_id: int) -> bool:
        return customer_id in self._rows

    def by_emails(self, emails: Iterable[str]) -> dict[str, Customer]:
        wanted = set(emails)
        return {c.email: c for c in self._rows.values() if c.email in wanted}

    def list(self, page: Page) -> list[Customer]:
        newest_first = sorted(self._rows.values(), key=lambda c: c.id, reverse=True)
        after = [c for c in newest_first if page.cursor is None or c.id < page.cursor]
        return after[: page.limit]


class FakeOrderRepository:
    def __init__(self, tables: FakeTables) -> None:
        self._rows = tables.orders

    def add(self, command: PlaceOrder, now: datetime) -> Order:
        order = Order(
            _next_id(dict(self._rows)),
            command.customer_id,
            command.sku,
            command.quantity,
            OrderStatus.PENDING,
            now,
            now,
        )
        self._rows[order.id] = order
        return order

    def add_many(self, commands: Sequence[PlaceOrder], now: datetime) -> list[Order]:
        return [self.add(command, now) for command in commands]

    def get(self, order_id: int, *, for_update: bool = False) -> Order | None:
        return self._rows.get(order_id)

    def set_status(self, order_id: int, status: OrderStatus, now: datetime) -> None:
        current = self._rows[order_id]
        self._rows[order_id] = current.with_status(status, now)

    def list(self, query: OrderQuery) -> list[Order]:
        found = sorted(self._rows.values(), key=lambda o: o.id, reverse=True)
        return [o for o in found if _matches(o, query)][: query.limit]


def _matches(order: Order, query: OrderQuery) -> bool:
    return (
        (query.cursor is None or order.id < query.cursor)
        and (query.customer_id is None or order.customer_id == query.customer_id)
        and (query.status is None or order.status == query.status)
        and (query.since is None or order.created_at >= query.since)
        and (query.until is None or order.created_at < query.until)
    )


class FakeDatabase:
    """Committed state plus bookkeeping the tests assert on."""

    def __init__(self) -> None:
        self.committed = FakeTables()
        self.commits = 0
        self.open_units = 0
        self.write_units = 0
        self.last_customers: FakeCustomerRepository | None = None  # to count bulk writes


class _FakeUnitOfWork:
    def __init__(self, database: FakeDatabase, *, write: bool) -> None:
        self._database = database
        self._write = write
        self._working: FakeTables | None = None

    @property
    def working(self) -> FakeTables:
        assert self._working is not None, "use the unit of work in a with block"
        return self._working

    @property
    def outbox(self) -> FakeOutbox:
        return FakeOutbox(self.working)

    def __enter__(self) -> Self:
        self._working = copy.deepcopy(self._database.committed)
        self._database.open_units += 1
        self._database.write_units += self._write
        self._bind(self._working)
        return self

    def _bind(self, tables: FakeTables) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._working = None  # uncommitted work is dropped, like a rollback
        self._database.open_units -= 1

    def commit(self) -> None:
        assert self._write, "commit in a read-only unit of work"
        self._database.committed = copy.deepcopy(self.working)
        self._database.commits += 1


class FakeCustomersUnitOfWork(_FakeUnitOfWork):
    customers: FakeCustomerRepository

    def _bind(self, tables: FakeTables) -> None:
        self.customers = FakeCustomerRepository(tables)
        self._database.last_customers = self.customers


class FakeOrdersUnitOfWork(_FakeUnitOfWork):
    orders: FakeOrderRepository

    def _bind(self, tables: FakeTables) -> None:
        self.orders = FakeOrderRepository(tables)


def customers_uow_factory(database: FakeDatabase) -> CustomersUowFactory:
    def factory(*, write: bool = False) -> FakeCustomersUnitOfWork:
        return FakeCustomersUnitOfWork(database, write=write)

    return factory


def orders_uow_factory(database: FakeDatabase) -> OrdersUowFactory:
    def factory(*, write: bool = False) -> FakeOrdersUnitOfWork:
        return FakeOrdersUnitOfWork(database, write=write)

    return factory


class FakeCustomerDirectory:
    """Knows a set of customer ids; ``down`` makes it fail as an unreachable service does.

    It records whether a database transaction was open during each look-up, because a slow
    customer check must never hold a database lock."""

    def __init__(
        self,
        known: Iterable[int] = (),
        *,
        stale: bool = False,
        down: bool = False,
        orders_db: FakeDatabase | None = None,
    ) -> None:
        self.known = set(known)
        self.stale = stale
        self.down = down
        self._orders_db = orders_db
        self.memory: set[int] = set()
        self.lookups: list[int] = []
        self.lookups_in_memory: list[int] = []
        self.lookups_inside_transaction = 0

    def lookup(self, customer_id: int, *, request_id: str | None = None) -> CustomerLookup:
        self.lookups.append(customer_id)
        if self._orders_db is not None and self._orders_db.open_units:
            self.lookups_inside_transaction += 1
        if self.down:
            raise DependencyUnavailable("customer service unreachable")
        return CustomerLookup(exists=customer_id in self.known, stale=self.stale)

    def lookup_in_memory(self, customer_id: int) -> CustomerLookup | None:
        """Like a cache that holds the ``memory`` ids: fresh, without asking."""
        if customer_id in self.memory:
            self.lookups_in_memory.append(customer_id)
            return CustomerLookup(exists=True)
        return None


# Structural checks: mypy fails here if a fake drifts away from its port.
_directory: CustomerDirectory = FakeCustomerDirectory()
