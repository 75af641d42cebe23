"""Order use cases."""

from __future__ import annotations

from dataclasses import dataclass

from ordtool.domain.clock import utc_now
from ordtool.domain.commands import ChangeOrderStatus, OrderQuery, PlaceOrder
from ordtool.domain.events import order_created, order_status_changed
from ordtool.domain.orders import Order, check_transition
from ordtool.errors import NotFound, UnknownCustomer
from ordtool.services.ports import CustomerDirectory, OrdersUowFactory


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order: Order
    customer_check_stale: bool  # accepted on a cached answer while the directory was down


@dataclass(frozen=True, slots=True)
class StatusChange:
    order: Order
    changed: bool  # False: the order already had that status (a safe retry)


def place_order(
    uow_factory: OrdersUowFactory,
    directory: CustomerDirectory,
    command: PlaceOrder,
    correlation_id: str | None = None,
) -> PlacedOrder:
    # Ask the directory before opening the transaction: a slow customer check must never
    # hold a database lock.
    lookup = directory.lookup(command.customer_id, request_id=correlation_id)
    if not lookup.exists:
        raise UnknownCustomer(command.customer_id)
    with uow_factory(write=True) as uow:
        order = uow.orders.add(command, utc_now())
        uow.outbox.add([order_created(order, correlation_id)])
        uow.commit()
    return PlacedOrder(order, lookup.stale)


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
