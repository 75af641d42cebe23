"""messaging.marks: the relay's marks written by a thread of their own, on the real SQLite
database: stamped with the confirm's time, pending until committed, waiting out a held write
lock without holding up the caller."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select

from ordtool.bootstrap import App
from ordtool.domain.commands import PlaceOrder
from ordtool.messaging.marks import Marker
from ordtool.messaging.outbox import OutboxSource
from ordtool.services import orders as order_cases
from ordtool.store.tables import orders_outbox
from ordtool.store.write_lock import write_transaction
from tests.integration.test_messaging_support import a_customer

CONFIRMED_AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def outbox_with_rows(app: App, count: int) -> tuple[OutboxSource, list[int]]:
    customer_id = a_customer(app)
    for _ in range(count):
        order_cases.place_order(app.orders_uow, app.customer_directory,
                                PlaceOrder(customer_id=customer_id, sku="SKU-1", quantity=1))
    [source] = app.events.sources("orders")
    with app.orders_engine.connect() as connection:
        ids = list(connection.execute(select(orders_outbox.c.id)).scalars())
    return source, ids


def published_at(app: App) -> dict[int, datetime | None]:
    with app.orders_engine.connect() as connection:
        rows = connection.execute(select(orders_outbox.c.id, orders_outbox.c.published_at))
        return {row.id: row.published_at for row in rows}


def test_marks_carry_the_confirm_time_and_stop_being_pending(sqlite_app: App) -> None:
    source, ids = outbox_with_rows(sqlite_app, 3)
    marker = Marker(source)
    marker.add(ids[:2], CONFIRMED_AT)
    assert marker.flush(10)
    assert marker.pending() == frozenset()
    assert published_at(sqlite_app) == {ids[0]: CONFIRMED_AT, ids[1]: CONFIRMED_AT, ids[2]: None}
    marker.close(10)


def test_a_held_write_lock_keeps_rows_pending_and_the_caller_free(sqlite_app: App) -> None:
    source, ids = outbox_with_rows(sqlite_app, 2)
    marker = Marker(source)
    with write_transaction(sqlite_app.orders_engine):  # another writer holds the lock
        started = time.monotonic()
        marker.add(ids, CONFIRMED_AT)
        assert time.monotonic() - started < 0.5, "add() waited for the database"
        assert not marker.flush(0.3)
        assert marker.pending() == frozenset(ids)  # the relay leaves these out meanwhile
    assert marker.flush(30), "marked once the lock was free"
    assert set(published_at(sqlite_app).values()) == {CONFIRMED_AT}
    marker.close(10)
