"""How long the order writer's transaction holds SQLite's write lock: per-row INSERTs against
ordtool's batch INSERT (store/bulk.py), with and without a busy thread beside it.

The transaction is what store.group_commit's writer runs for a batch of orders: BEGIN
IMMEDIATE, the orders, their order.created outbox rows, COMMIT, all on a real ordtool SQLite
database (migrated by the App). Two ways, alternated in one run:

- ``per-row``: what ordtool did before: one ``INSERT ... RETURNING id`` per order through
  SQLAlchemy (its only way to get SQLite ids back in order), then ``executemany`` for the
  outbox;
- ``sa-values``: ids taken first, then SQLAlchemy's own multi-row ``insert().values([...])``
  per table (built and compiled for each batch);
- ``batch``: ``SqlOrderRepository.add_many`` + ``SqlOutbox.add`` as they are now (ids taken
  first, one multi-row INSERT per table).

"busy" runs a thread spinning in Python beside the writer, as the order service's event
loop does under load, with the interpreter tuned as the services are (0.5 ms switch interval):
SQLite's driver gives up the GIL at every statement step, and each time the writer waits for
the busy thread's interval while it holds the lock.

    python bench/write_lock_hold.py [--batch 10] [--transactions 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from _support import machine_note
from sqlalchemy import Connection, insert

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.clock import utc_now
from ordtool.domain.commands import PlaceOrder
from ordtool.domain.events import order_created
from ordtool.domain.orders import Order, OrderStatus
from ordtool.interpreter import SWITCH_INTERVAL_S
from ordtool.store.bulk import next_ids
from ordtool.store.repositories import SqlOrderRepository, SqlOutbox
from ordtool.store.tables import orders, orders_outbox

Write = Callable[[Connection, Sequence[PlaceOrder]], None]

_INSERT_ORDER = insert(orders).returning(orders.c.id)


def per_row(connection: Connection, commands: Sequence[PlaceOrder]) -> None:
    now = utc_now()
    placed = []
    for c in commands:
        row = {"customer_id": c.customer_id, "sku": c.sku, "quantity": c.quantity,
               "status": "PENDING", "created_at": now, "updated_at": now}
        order_id = connection.execute(_INSERT_ORDER, row).scalar_one()
        placed.append(Order(order_id, c.customer_id, c.sku, c.quantity, OrderStatus.PENDING,
                            now, now))
    connection.execute(insert(orders_outbox), _outbox_rows(placed))


def _outbox_rows(placed: Sequence[Order]) -> list[dict[str, object]]:
    rows = []
    for order in placed:
        event = order_created(order, None)
        envelope = event.envelope()
        rows.append({"event_id": envelope["id"], "event_type": event.type,
                     "aggregate_id": event.aggregate_id, "payload": json.dumps(envelope),
                     "occurred_at": event.occurred_at})
    return rows


def sa_values(connection: Connection, commands: Sequence[PlaceOrder]) -> None:
    """One statement per table too, built by SQLAlchemy: ``insert().values([...])``."""
    now = utc_now()
    ids = next_ids(connection, orders, len(commands))
    placed = [Order(i, c.customer_id, c.sku, c.quantity, OrderStatus.PENDING, now, now)
              for i, c in zip(ids, commands, strict=True)]
    connection.execute(insert(orders).values([
        {"id": o.id, "customer_id": o.customer_id, "sku": o.sku, "quantity": o.quantity,
         "status": "PENDING", "created_at": now, "updated_at": now} for o in placed]))
    connection.execute(insert(orders_outbox).values(_outbox_rows(placed)))


def batch(connection: Connection, commands: Sequence[PlaceOrder]) -> None:
    placed = SqlOrderRepository(connection).add_many(commands, utc_now())
    SqlOutbox(connection, orders_outbox).add([order_created(order, None) for order in placed])


@contextmanager
def busy_thread(on: bool) -> Iterator[None]:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(100))

    thread = threading.Thread(target=spin, daemon=True)
    if on:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if on:
            thread.join()


def held_ms(app: App, write: Write, commands: Sequence[PlaceOrder], count: int) -> list[float]:
    """Each transaction's time from BEGIN IMMEDIATE to the end of COMMIT."""
    times = []
    for _ in range(count):
        with app.orders_engine.connect() as connection:
            connection.info["write"] = True  # BEGIN IMMEDIATE (store.engine)
            begun = time.perf_counter()
            with connection.begin():
                write(connection, commands)
            times.append((time.perf_counter() - begun) * 1000)
    return sorted(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=10, help="orders per transaction")
    parser.add_argument("--transactions", type=int, default=300, help="per way and round")
    args = parser.parse_args(argv)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    print(machine_note())
    commands = [PlaceOrder(customer_id=1, sku=f"SKU-{i}", quantity=1) for i in range(args.batch)]
    ways: dict[str, Write] = {"per-row": per_row, "sa-values": sa_values, "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        app = App(Settings(data_dir=Path(tmp)))
        print(f"\n{args.batch} orders per transaction, {args.transactions} transactions per "
              "way and round, 2 rounds alternated; lock held, ms")
        print(f"{'beside':8} {'way':9} {'p50':>7} {'p90':>7} {'p99':>7}")
        for busy in (False, True):
            with busy_thread(busy):
                for _round in range(2):
                    for name, write in ways.items():
                        t = held_ms(app, write, commands, args.transactions)
                        n = len(t)
                        print(f"{'busy' if busy else 'idle':8} {name:9} {t[n // 2]:7.2f} "
                              f"{t[n * 9 // 10]:7.2f} {t[n * 99 // 100]:7.2f}")
        app.close()
    print(machine_note())
    print("\ncommand:\n  python bench/write_lock_hold.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
