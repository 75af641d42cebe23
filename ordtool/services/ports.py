"""Ports: what the use cases need from the outside world, as Protocols.

Adapters in ``store``, ``customers_client`` and ``messaging`` implement them; unit tests use
fakes of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

from ordtool.domain.commands import CreateCustomer, OrderQuery, Page, PlaceOrder
from ordtool.domain.customers import Customer
from ordtool.domain.events import Event
from ordtool.domain.keys import ApiKey
from ordtool.domain.orders import Order, OrderStatus

ItemT = TypeVar("ItemT", contravariant=True)
ResultT = TypeVar("ResultT", covariant=True)


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

    def lookup_in_memory(self, customer_id: int) -> CustomerLookup | None:
        """The answer when this process's memory holds it (no I/O, safe on an event loop);
        None when only ``lookup`` can tell."""
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
    def add_many(self, commands: Sequence[PlaceOrder], now: datetime) -> list[Order]: ...
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


class BatchWriter(Protocol[ItemT, ResultT]):
    """Writes items from many callers in shared transactions (store.group_commit)."""

    async def submit(self, item: ItemT) -> ResultT: ...
    def submit_blocking(self, item: ItemT) -> ResultT: ...


class ApiKeyStore(Protocol):
    """The API keys one service database holds (each service checks keys against its own)."""

    def add(self, key: ApiKey) -> None:
        """Raises AlreadyExists when the id or hash is taken."""
        ...

    def get(self, key_id: str) -> ApiKey | None: ...
    def list(self) -> list[ApiKey]: ...

    def revoke(self, key_id: str, now: datetime) -> bool:
        """True if a key with that id exists (revoking twice is a no-op)."""
        ...

    def delete(self, key_id: str) -> None:
        """Undo an add that could not be completed everywhere."""
        ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What an idempotency key holds: ``status_code`` None while the first request runs."""

    request_hash: str
    status_code: int | None
    body: str | None
    created_at: datetime

    @property
    def running(self) -> bool:
        return self.status_code is None

    def reclaimable(self, expired_before: datetime, abandoned_before: datetime) -> bool:
        """Past its time to live, or a run that never finished (its process died)."""
        limit = abandoned_before if self.running else expired_before
        return self.created_at < limit


class IdempotencyStore(Protocol):
    def claim(
        self,
        scope: tuple[str, str, str],
        request_hash: str,
        now: datetime,
        *,
        expired_before: datetime,
        abandoned_before: datetime,
    ) -> StoredResponse | None:
        """Insert a running row for (caller, route, key); the primary key makes it a lock.

        Returns None when this request now owns the key, else the row that holds it. A row
        past its time (see StoredResponse.reclaimable) is replaced.
        """
        ...

    def complete(self, scope: tuple[str, str, str], status_code: int, body: str) -> None: ...
    def release(self, scope: tuple[str, str, str]) -> None: ...

    def purge(self, completed_before: datetime, running_before: datetime) -> int:
        """Delete expired rows; returns how many."""
        ...
