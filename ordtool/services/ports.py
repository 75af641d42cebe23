"""Ports: what the use cases need from the outside world, as Protocols.

Adapters in ``store``, ``customers_client`` and ``messaging`` implement them; unit tests use
fakes of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from ordtool.domain.commands import CreateCustomer, OrderQuery, Page, PlaceOrder
from ordtool.domain.customers import Customer
from ordtool.domain.events import Event
from ordtool.domain.orders import Order, OrderStatus


@dataclass(frozen=True, slots=True)
class CustomerLookup:
    """The customer directory's answer. ``stale`` = served from cache while the customer
    service could not be asked."""

    exists: bool
    stale: bool = False


class CustomerDirectory(Protocol):
    def lookup(self, customer_id: int, *, request_id: str | None = None) -> CustomerLookup:
        """Does this customer exist? Raises DependencyUnavailable when nobody can tell."""
        ...


class Outbox(Protocol):
    def add(self, events: Sequence[Event]) -> None: ...


class CustomerRepository(Protocol):
    def add(self, command: CreateCustomer, now: datetime) -> Customer: ...
    def add_many(self, commands: Sequence[CreateCustomer], now: datetime) -> list[Customer]: ...
    def update_many(self, customers: Sequence[Customer]) -> None: ...
    def get(self, customer_id: int, *, for_update: bool = False) -> Customer | None: ...
    def delete(self, customer_id: int) -> bool: ...
    def exists(self, customer_id: int) -> bool: ...
    def by_emails(self, emails: Iterable[str]) -> dict[str, Customer]: ...
    def list(self, page: Page) -> list[Customer]: ...


class OrderRepository(Protocol):
    def add(self, command: PlaceOrder, now: datetime) -> Order: ...
    def get(self, order_id: int, *, for_update: bool = False) -> Order | None: ...
    def set_status(self, order_id: int, status: OrderStatus, now: datetime) -> None: ...
    def list(self, query: OrderQuery) -> list[Order]: ...


class UnitOfWork(Protocol):
    """One transaction: the change and its outbox events commit together or not at all."""

    @property
    def outbox(self) -> Outbox: ...

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def commit(self) -> None: ...


class CustomersUnitOfWork(UnitOfWork, Protocol):
    @property
    def customers(self) -> CustomerRepository: ...


class OrdersUnitOfWork(UnitOfWork, Protocol):
    @property
    def orders(self) -> OrderRepository: ...


class CustomersUowFactory(Protocol):
    def __call__(self, *, write: bool = False) -> CustomersUnitOfWork: ...


class OrdersUowFactory(Protocol):
    def __call__(self, *, write: bool = False) -> OrdersUnitOfWork: ...
