"""services.orders.OrderDesk: the order service's placement path, over fakes of the ports."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from ordtool.domain.commands import PlaceOrder
from ordtool.domain.events import ORDER_CREATED
from ordtool.errors import DependencyUnavailable, UnknownCustomer
from ordtool.services.orders import OrderDesk, PlacedOrder, record_orders
from ordtool.store.group_commit import GroupCommit
from tests.unit.fakes import FakeCustomerDirectory, FakeDatabase, orders_uow_factory


def desk_for(db: FakeDatabase, directory: FakeCustomerDirectory) -> tuple[OrderDesk, GroupCommit]:
    writer = GroupCommit(partial(record_orders, orders_uow_factory(db)), name="test writer")
    return OrderDesk(directory, writer), writer


def order_for(customer_id: int, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder(customer_id=customer_id, sku="BOOK-42", quantity=quantity)


def place_all(desk: OrderDesk, commands: list[PlaceOrder]) -> list[PlacedOrder | BaseException]:
    async def run() -> list[PlacedOrder | BaseException]:
        return await asyncio.gather(
            *(desk.place(c, correlation_id=f"req-{i}") for i, c in enumerate(commands)),
            return_exceptions=True,
        )

    return asyncio.run(run())


def test_a_customer_in_memory_is_not_asked_for_again() -> None:
    db = FakeDatabase()
    directory = FakeCustomerDirectory({1, 2}, orders_db=db)
    directory.memory = {1}
    desk, writer = desk_for(db, directory)
    placed = place_all(desk, [order_for(1), order_for(2)])
    writer.close()
    assert directory.lookups_in_memory == [1]
    assert directory.lookups == [2]  # not in memory: asked (from a worker thread)
    assert directory.lookups_inside_transaction == 0
    assert all(isinstance(p, PlacedOrder) for p in placed)


def test_concurrent_orders_each_commit_with_their_own_event() -> None:
    db = FakeDatabase()
    directory = FakeCustomerDirectory(range(1, 51))
    directory.memory = set(range(1, 51))
    desk, writer = desk_for(db, directory)
    placed = place_all(desk, [order_for(i, quantity=i) for i in range(1, 51)])
    writer.close()
    orders = [p.order for p in placed if isinstance(p, PlacedOrder)]
    assert [(o.customer_id, o.quantity) for o in orders] == [(i, i) for i in range(1, 51)]
    assert len({o.id for o in orders}) == 50
    assert set(db.committed.orders) == {o.id for o in orders}
    events = db.committed.outbox
    assert [e.type for e in events] == [ORDER_CREATED] * 50
    assert {e.aggregate_id: e.correlation_id for e in events} == {
        o.id: f"req-{o.customer_id - 1}" for o in orders
    }


def test_an_unknown_customer_is_refused_and_the_others_still_commit() -> None:
    db = FakeDatabase()
    directory = FakeCustomerDirectory({1})
    desk, writer = desk_for(db, directory)
    placed = place_all(desk, [order_for(1), order_for(99)])
    writer.close()
    assert isinstance(placed[0], PlacedOrder)
    assert isinstance(placed[1], UnknownCustomer)
    assert [o.customer_id for o in db.committed.orders.values()] == [1]


def test_blocking_placement_reports_a_stale_answer_and_a_directory_outage() -> None:
    db = FakeDatabase()
    desk, writer = desk_for(db, FakeCustomerDirectory({1}, stale=True))
    assert desk.place_blocking(order_for(1)).customer_check_stale is True
    down, down_writer = desk_for(db, FakeCustomerDirectory({1}, down=True))
    with pytest.raises(DependencyUnavailable):
        down.place_blocking(order_for(1))
    writer.close()
    down_writer.close()
    assert len(db.committed.orders) == 1


def test_concurrent_orders_for_one_uncached_customer_share_one_look_up() -> None:
    db = FakeDatabase()
    directory = FakeCustomerDirectory({1, 2})
    desk, writer = desk_for(db, directory)
    placed = place_all(desk, [order_for(1)] * 20 + [order_for(2)] * 5 + [order_for(99)] * 3)
    writer.close()
    assert sorted(directory.lookups) == [1, 2, 99]  # one look-up per customer, not per order
    assert all(isinstance(p, PlacedOrder) for p in placed[:25])
    assert all(isinstance(p, UnknownCustomer) for p in placed[25:])
    assert len(db.committed.orders) == 25


def test_a_shared_look_up_that_fails_fails_every_order_waiting_on_it() -> None:
    db = FakeDatabase()
    directory = FakeCustomerDirectory({1}, down=True)
    desk, writer = desk_for(db, directory)
    placed = place_all(desk, [order_for(1)] * 10)
    assert all(isinstance(p, DependencyUnavailable) for p in placed)
    assert directory.lookups == [1]
    directory.down = False  # nothing lingers: the next order asks again
    assert isinstance(place_all(desk, [order_for(1)])[0], PlacedOrder)
    writer.close()
    assert directory.lookups == [1, 1]
