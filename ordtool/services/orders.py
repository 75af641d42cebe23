"""Order use cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import anyio
from anyio import to_thread

from ordtool.domain.clock import utc_now
from ordtool.domain.commands import ChangeOrderStatus, OrderQuery, PlaceOrder
from ordtool.domain.events import order_created, order_status_changed
from ordtool.domain.orders import Order, check_transition
from ordtool.errors import NotFound, UnknownCustomer
from ordtool.services.ports import (
    BatchWriter,
    CustomerDirectory,
    CustomerLookup,
    OrdersUowFactory,
)


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order: Order
    customer_check_stale: bool  # accepted on a cached answer while the directory was down


@dataclass(frozen=True, slots=True)
class StatusChange:
    order: Order
    changed: bool  # False: the order already had that status (a safe retry)


@dataclass(frozen=True, slots=True)
class Placement:
    """An order whose customer has been checked, ready to write, and its events' correlation
    id."""

    command: PlaceOrder
    correlation_id: str | None = None


def place_order(
    uow_factory: OrdersUowFactory,
    directory: CustomerDirectory,
    command: PlaceOrder,
    correlation_id: str | None = None,
) -> PlacedOrder:
    # Ask the directory before opening the transaction: a slow customer check must never
    # hold a database lock.
    lookup = directory.lookup(command.customer_id, request_id=correlation_id)
    _require_customer(command, lookup)
    [order] = record_orders(uow_factory, [Placement(command, correlation_id)])
    return PlacedOrder(order, lookup.stale)


def record_orders(uow_factory: OrdersUowFactory, placements: Sequence[Placement]) -> list[Order]:
    """Write checked orders and their order.created events, all in one transaction."""
    with uow_factory(write=True) as uow:
        placed = uow.orders.add_many([p.command for p in placements], utc_now())
        uow.outbox.add(
            [
                order_created(order, placement.correlation_id)
                for order, placement in zip(placed, placements, strict=True)
            ]
        )
        uow.commit()
    return placed


class _Asking:
    """One customer look-up in a worker thread, awaited by every request that needs it."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.answer: CustomerLookup | None = None
        self.error: Exception | None = None


class _SharedLookups:
    """Concurrent requests for one customer the directory cannot answer from memory share
    one look-up: the first asks (in a worker thread, as it may wait on the customer service
    up to its deadline), the others await its answer without a thread of their own. Without
    this, a popular customer's entry missing (a cold start, say) sent one request to the
    customer service per order until the first answer came back."""

    def __init__(self, directory: CustomerDirectory) -> None:
        self._directory = directory
        self._asking: dict[int, _Asking] = {}

    async def lookup(self, customer_id: int, request_id: str | None) -> CustomerLookup:
        joined = self._asking.get(customer_id)
        if joined is None:
            return await self._ask(customer_id, request_id)
        await joined.done.wait()
        if joined.error is not None:
            raise joined.error
        if joined.answer is None:  # the asking request was cancelled: ask anew
            return await self.lookup(customer_id, request_id)
        return joined.answer

    async def _ask(self, customer_id: int, request_id: str | None) -> CustomerLookup:
        asking = self._asking[customer_id] = _Asking()
        try:
            ask = partial(self._directory.lookup, customer_id, request_id=request_id)
            asking.answer = await to_thread.run_sync(ask)
            return asking.answer
        except Exception as exc:
            asking.error = exc
            raise
        finally:
            del self._asking[customer_id]
            asking.done.set()


class OrderDesk:
    """Places orders for a server, where many requests arrive at once.

    The customer check answers from memory when it can (a fresh cache entry, most orders);
    otherwise concurrent requests for one customer share one look-up (``_SharedLookups``).
    The write goes through a batch writer, which commits the orders of concurrent requests
    together (store.group_commit) and answers each once its order is committed.
    """

    def __init__(
        self, directory: CustomerDirectory, writer: BatchWriter[Placement, Order]
    ) -> None:
        self._directory = directory
        self._shared = _SharedLookups(directory)
        self._writer = writer

    async def place(self, command: PlaceOrder, correlation_id: str | None = None) -> PlacedOrder:
        """From an event loop."""
        lookup = self._directory.lookup_in_memory(command.customer_id)
        if lookup is None:
            lookup = await self._shared.lookup(command.customer_id, correlation_id)
        _require_customer(command, lookup)
        order = await self._writer.submit(Placement(command, correlation_id))
        return PlacedOrder(order, lookup.stale)

    def place_blocking(
        self, command: PlaceOrder, correlation_id: str | None = None
    ) -> PlacedOrder:
        """From a worker thread."""
        lookup = self._directory.lookup(command.customer_id, request_id=correlation_id)
        _require_customer(command, lookup)
        order = self._writer.submit_blocking(Placement(command, correlation_id))
        return PlacedOrder(order, lookup.stale)


def _require_customer(command: PlaceOrder, lookup: CustomerLookup) -> None:
    if not lookup.exists:
        raise UnknownCustomer(command.customer_id)


def change_status(
    uow_factory: OrdersUowFactory, command: ChangeOrderStatus, correlation_id: str | None = None
) -> StatusChange:
    with uow_factory(write=True) as uow:
        order = uow.orders.get(command.order_id, for_update=True)
        if order is None:
            raise _order_not_found(command.order_id)
        if not check_transition(order.status, command.status):
            return StatusChange(order, changed=False)
        updated = order.with_status(command.status, utc_now())
        uow.orders.set_status(updated.id, updated.status, updated.updated_at)
        uow.outbox.add([order_status_changed(updated, order.status, correlation_id)])
        uow.commit()
    return StatusChange(updated, changed=True)


def get_order(uow_factory: OrdersUowFactory, order_id: int) -> Order:
    with uow_factory() as uow:
        order = uow.orders.get(order_id)
    if order is None:
        raise _order_not_found(order_id)
    return order


def list_orders(uow_factory: OrdersUowFactory, query: OrderQuery) -> list[Order]:
    with uow_factory() as uow:
        return uow.orders.list(query)


def _order_not_found(order_id: int) -> NotFound:
    return NotFound(f"order {order_id} does not exist", hint="list them: ordtool orders list")
