"""The store on the embedded SQLite and on the real PostgreSQL: repositories, filters, cursor
pagination, and the outbox row every change writes in the same transaction."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from ordtool.bootstrap import App
from ordtool.domain import events
from ordtool.domain.commands import (
    ChangeOrderStatus,
    CreateCustomer,
    OrderQuery,
    Page,
    PlaceOrder,
    parse_input,
)
from ordtool.domain.events import customer_data, order_data
from ordtool.domain.orders import Order, OrderStatus
from ordtool.errors import ForbiddenTransition, UnknownCustomer
from ordtool.services import customers as customer_cases
from ordtool.services import orders as order_cases
from ordtool.store import bulk
from ordtool.store.tables import customers, customers_outbox, orders, orders_outbox

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def count(app: App, table: Any) -> int:
    database = "orders" if table in (orders, orders_outbox) else "customers"
    with app.engine(database).connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def outbox_rows(app: App, table: Any) -> list[Any]:
    database = "orders" if table is orders_outbox else "customers"
    with app.engine(database).connect() as connection:
        return list(connection.execute(select(table).order_by(table.c.id)))


def new_customer(app: App, email: str = "ada@example.com") -> int:
    command = parse_input(CreateCustomer, {"name": "Ada", "email": email, "address": "1 Rd"})
    return customer_cases.create_customer(app.customers_uow, command).id


def orders_at(app: App, specs: list[tuple[int, int]]) -> list[Order]:
    """Insert orders (customer_id, hours after T0) with known creation times, in one go."""
    with app.orders_uow(write=True) as uow:
        made = [
            uow.orders.add(
                PlaceOrder(customer_id=c, sku="SKU-1", quantity=1), T0 + timedelta(hours=h)
            )
            for c, h in specs
        ]
        uow.commit()
    return made


def listed(app: App, **raw: Any) -> list[int]:
    return [o.id for o in order_cases.list_orders(app.orders_uow, parse_input(OrderQuery, raw))]


# --- repositories ---------------------------------------------------------------------------


def test_customer_round_trip_and_lookups(any_app: App) -> None:
    ada_id = new_customer(any_app, "Ada@Example.com")
    grace_id = new_customer(any_app, "grace@example.com")
    ada = customer_cases.get_customer(any_app.customers_uow, ada_id)
    assert (ada.name, ada.email, ada.address) == ("Ada", "ada@example.com", "1 Rd")
    assert ada.created_at.tzinfo is not None and ada.created_at.utcoffset() == timedelta(0)
    with any_app.customers_uow() as uow:
        found = uow.customers.by_emails(["ada@example.com", "nobody@example.com"])
        assert list(found) == ["ada@example.com"] and found["ada@example.com"] == ada
        assert uow.customers.exists(grace_id) and not uow.customers.exists(grace_id + 100)


def test_customer_pages_follow_the_cursor(any_app: App) -> None:
    ids = [new_customer(any_app, f"c{i}@example.com") for i in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        page = customer_cases.list_customers(any_app.customers_uow, Page(limit=3, cursor=cursor))
        seen += [c.id for c in page]
        if len(page) < 3:
            break
        cursor = page[-1].id
    assert seen == sorted(ids, reverse=True)


def test_orders_keep_their_fields_and_utc_times(any_app: App) -> None:
    [made] = orders_at(any_app, [(5, 3)])
    got = order_cases.get_order(any_app.orders_uow, made.id)
    assert got == made
    assert got.created_at == T0 + timedelta(hours=3)
    assert got.created_at.utcoffset() == timedelta(0) and got.status is OrderStatus.PENDING


def test_the_database_rejects_what_validation_rejects(any_app: App) -> None:
    # Defence in depth: a bypass of the command models still cannot store a quantity of 0.
    bad = PlaceOrder.model_construct(customer_id=1, sku="X", quantity=0)
    with pytest.raises(IntegrityError), any_app.orders_uow(write=True) as uow:
        uow.orders.add(bad, T0)
    assert count(any_app, orders) == 0


# --- list filters and pagination ------------------------------------------------------------


@pytest.fixture
def history(any_app: App) -> list[Order]:
    """Ten orders, an hour apart, for customers 1 and 2; every third one COMPLETED."""
    made = orders_at(any_app, [(1 + i % 2, i) for i in range(10)])
    for order in made[::3]:
        order_cases.change_status(
            any_app.orders_uow, ChangeOrderStatus(order_id=order.id, status=OrderStatus.COMPLETED)
        )
    return made


def test_filter_by_customer_and_status(any_app: App, history: list[Order]) -> None:
    newest_first = list(reversed(history))
    assert listed(any_app, customer_id=2) == [o.id for o in newest_first if o.customer_id == 2]
    assert listed(any_app, customer_id=3) == []
    completed = [o.id for o in reversed(history[::3])]
    assert listed(any_app, status="completed") == completed
    assert listed(any_app, status="PENDING") == [
        o.id for o in newest_first if o.id not in completed
    ]
    assert listed(any_app, status="FAILED") == []


def test_filter_by_time_window(any_app: App, history: list[Order]) -> None:
    newest_first = list(reversed(history))
    # since is inclusive, until exclusive.
    window = listed(any_app, since=iso(T0 + timedelta(hours=2)), until=iso(T0 + timedelta(hours=5)))
    assert window == [history[4].id, history[3].id, history[2].id]
    # 11:00 in Tokyo is 02:00 UTC; so is 18:00 the day before in Los Angeles.
    tokyo = listed(any_app, since="2026-01-01T11:00:00+09:00")
    los_angeles = listed(any_app, since="2025-12-31T18:00:00-08:00")
    assert tokyo == los_angeles == [o.id for o in newest_first[:-2]]
    combined = listed(any_app, customer_id=1, status="PENDING", until=iso(T0 + timedelta(hours=7)))
    assert combined == [history[4].id, history[2].id]  # customer 1: 0, 2, 4, 6; 0 and 6 done


def test_cursor_pages_cover_everything_once(any_app: App, history: list[Order]) -> None:
    seen: list[int] = []
    cursor: int | None = None
    for _ in range(10):
        page = listed(any_app, limit=4, **({"cursor": cursor} if cursor else {}))
        seen += page
        if len(page) < 4:
            break
        cursor = page[-1]
    assert seen == [o.id for o in reversed(history)]
    # The cursor combines with filters.
    first = listed(any_app, customer_id=1, limit=2)
    rest = listed(any_app, customer_id=1, limit=50, cursor=first[-1])
    assert first + rest == [o.id for o in reversed(history) if o.customer_id == 1]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- the outbox -----------------------------------------------------------------------------


def assert_outbox_row(row: Any, event_type: str, aggregate_id: int, data: dict[str, Any]) -> None:
    envelope = json.loads(row.payload)
    assert set(envelope) == {"id", "type", "version", "occurred_at", "correlation_id", "data"}
    assert envelope["id"] == row.event_id and uuid.UUID(row.event_id)
    assert envelope["type"] == row.event_type == event_type
    assert envelope["version"] == 1
    assert row.aggregate_id == aggregate_id
    assert envelope["data"] == data
    assert envelope["occurred_at"] == iso(row.occurred_at)
    assert row.occurred_at.utcoffset() == timedelta(0)
    assert row.published_at is None


def test_create_customer_writes_one_outbox_row(any_app: App) -> None:
    customer_id = new_customer(any_app)
    customer = customer_cases.get_customer(any_app.customers_uow, customer_id)
    [row] = outbox_rows(any_app, customers_outbox)
    assert_outbox_row(row, events.CUSTOMER_CREATED, customer_id, customer_data(customer))
    assert row.occurred_at == customer.created_at


def test_each_order_change_writes_exactly_one_outbox_row(any_app: App) -> None:
    customer_id = new_customer(any_app)
    placed = order_cases.place_order(
        any_app.orders_uow,
        any_app.customer_directory,
        PlaceOrder(customer_id=customer_id, sku="BOOK-1", quantity=3),
        correlation_id="req-42",
    ).order
    [created] = outbox_rows(any_app, orders_outbox)
    assert_outbox_row(created, events.ORDER_CREATED, placed.id, order_data(placed))
    assert json.loads(created.payload)["correlation_id"] == "req-42"

    def change(status: OrderStatus) -> order_cases.StatusChange:
        command = ChangeOrderStatus(order_id=placed.id, status=status)
        return order_cases.change_status(any_app.orders_uow, command)

    done = change(OrderStatus.COMPLETED).order
    rows = outbox_rows(any_app, orders_outbox)
    assert len(rows) == 2
    expected = order_data(done) | {"previous_status": "PENDING"}
    assert_outbox_row(rows[1], events.ORDER_STATUS_CHANGED, placed.id, expected)
    assert order_cases.get_order(any_app.orders_uow, placed.id) == done

    # The same status again is a no-op: no change, no event. A forbidden one: neither.
    assert change(OrderStatus.COMPLETED).changed is False
    with pytest.raises(ForbiddenTransition):
        change(OrderStatus.PENDING)
    assert len(outbox_rows(any_app, orders_outbox)) == 2
    assert order_cases.get_order(any_app.orders_uow, placed.id) == done


def test_unknown_customer_writes_neither_order_nor_event(any_app: App) -> None:
    with pytest.raises(UnknownCustomer):
        order_cases.place_order(
            any_app.orders_uow,
            any_app.customer_directory,
            PlaceOrder(customer_id=12345, sku="BOOK-1", quantity=1),
        )
    assert count(any_app, orders) == count(any_app, orders_outbox) == 0


def test_a_failed_outbox_write_rolls_back_the_order(
    any_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order row is inserted first; when its event cannot be written, the order goes too,
    which is only possible if both are in one transaction."""
    customer_id = new_customer(any_app)
    first = order_cases.place_order(
        any_app.orders_uow,
        any_app.customer_directory,
        PlaceOrder(customer_id=customer_id, sku="BOOK-1", quantity=1),
    ).order
    [taken] = outbox_rows(any_app, orders_outbox)

    def clashing(order: Order, correlation_id: str | None = None) -> events.Event:
        return replace(events.order_created(order, correlation_id), id=uuid.UUID(taken.event_id))

    monkeypatch.setattr(order_cases, "order_created", clashing)
    with pytest.raises(IntegrityError):
        order_cases.place_order(
            any_app.orders_uow,
            any_app.customer_directory,
            PlaceOrder(customer_id=customer_id, sku="BOOK-2", quantity=1),
        )
    assert listed(any_app) == [first.id]
    assert count(any_app, orders_outbox) == 1


def test_a_failed_outbox_write_rolls_back_the_customer(
    any_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_customer(any_app, "first@example.com")
    [taken] = outbox_rows(any_app, customers_outbox)

    def clashing(customer: Any, correlation_id: str | None = None) -> events.Event:
        made = events.customer_created(customer, correlation_id)
        return replace(made, id=uuid.UUID(taken.event_id))

    monkeypatch.setattr(customer_cases, "customer_created", clashing)
    with pytest.raises(IntegrityError):
        new_customer(any_app, "second@example.com")
    assert count(any_app, customers) == count(any_app, customers_outbox) == 1


# --- group commit (the order service's write path) ------------------------------------------


def test_concurrent_placements_share_transactions_and_each_has_its_event(any_app: App) -> None:
    """App.order_desk on the real database: 300 concurrent orders, fewer commits than orders,
    and every order stored once with exactly one order.created event naming it."""
    customer_id = new_customer(any_app)
    commits: list[int] = []
    event.listen(any_app.orders_engine, "commit", lambda _conn: commits.append(1))

    async def place_many() -> list[order_cases.PlacedOrder]:
        desk = any_app.order_desk
        return await asyncio.gather(
            *(
                desk.place(
                    PlaceOrder(customer_id=customer_id, sku=f"SKU-{i}", quantity=1 + i % 9),
                    correlation_id=f"req-{i}",
                )
                for i in range(300)
            )
        )

    placed = asyncio.run(place_many())
    ids = [p.order.id for p in placed]
    assert len(set(ids)) == 300
    assert count(any_app, orders) == 300
    assert 0 < len(commits) < 300, "concurrent orders should have shared commits"
    rows = outbox_rows(any_app, orders_outbox)
    payloads = {row.aggregate_id: json.loads(row.payload) for row in rows}
    assert len(rows) == 300 and set(payloads) == set(ids)
    for p in placed:
        envelope = payloads[p.order.id]
        assert envelope["type"] == events.ORDER_CREATED
        assert envelope["data"] == order_data(p.order)
        assert envelope["correlation_id"] == f"req-{int(p.order.sku.split('-')[1])}"
    stored = {o.id: o for o in order_cases.list_orders(any_app.orders_uow, OrderQuery(limit=500))}
    assert all(stored[p.order.id] == p.order for p in placed), "answered as stored"


def test_a_batch_too_big_for_one_statement_is_split_and_keeps_its_order(
    any_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store.bulk: ids taken up front, then as many multi-row INSERTs as the parameter limit
    needs (here 2 orders of 7 columns each per statement), every row once, in order."""
    monkeypatch.setattr(bulk, "MAX_PARAMETERS", 14)
    customer_id = new_customer(any_app)
    earlier = orders_at(any_app, [(customer_id, 1)])
    inserts: list[str] = []
    event.listen(any_app.orders_engine, "before_cursor_execute",
                 lambda *args: inserts.append(args[2]) if args[2].startswith("INSERT") else None)
    commands = [PlaceOrder(customer_id=customer_id, sku="SKU-1", quantity=q) for q in range(1, 6)]
    with any_app.orders_uow(write=True) as uow:
        placed = uow.orders.add_many(commands, T0)
        uow.commit()
    assert len([sql for sql in inserts if "orders" in sql]) == 3
    assert [o.id for o in placed] == list(range(earlier[0].id + 1, earlier[0].id + 6))
    stored = order_cases.list_orders(any_app.orders_uow, OrderQuery(limit=10))
    assert sorted(stored, key=lambda o: o.id) == earlier + placed
