"""The order writer's gap after each commit on SQLite (store.group_commit, ``gap_s``).

SQLite's write lock has no queue. Under a steady stream of orders, the writer thread used to
take it again at once after each commit, so another process's short write (the relay's mark,
the audit consumer's record) found it taken at almost every try: free at 10-16% of tries on
an idle machine with no gap. With the gap, the writer never begins within ``gap_s`` of its
last commit, and the lock is free at most tries.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, event

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.commands import CreateCustomer, PlaceOrder
from ordtool.services.customers import create_customer
from ordtool.services.orders import OrderDesk
from ordtool.store.engine import make_engine

PLACERS = 16  # callers placing orders back to back: the writer always has a batch waiting
TRIES = 200
TRY_EVERY_S = 0.002


def keep_placing(desk: OrderDesk, customer_id: int, stop: threading.Event) -> None:
    command = PlaceOrder(customer_id=customer_id, sku="SKU-1", quantity=1)
    while not stop.is_set():
        desk.place_blocking(command)


def free_share(engine: Engine) -> float:
    """The share of single tries (no waiting) that found the write lock free."""
    free = 0
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        raw.execute("PRAGMA busy_timeout=0")
        for _ in range(TRIES):
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
            else:
                raw.execute("ROLLBACK")
                free += 1
            time.sleep(TRY_EVERY_S)
    return free / TRIES


def test_other_writers_find_the_lock_free_between_two_commits(settings: Settings) -> None:
    gap_ms = 4.0
    app = App(settings.model_copy(update={"orders_commit_gap_ms": gap_ms}))
    customer = create_customer(
        app.customers_uow, CreateCustomer(name="Ada", email="ada@example.com", address="1 Rd")
    )
    marks: list[tuple[str, float]] = []  # the orders engine's begins and commits, in order
    for name in ("begin", "commit"):
        event.listen(app.orders_engine, name,
                     lambda _conn, name=name: marks.append((name, time.monotonic())))
    other = make_engine(app.settings.database_url("orders"))
    stop = threading.Event()
    try:
        with ThreadPoolExecutor(PLACERS) as pool:
            for _ in range(PLACERS):
                pool.submit(keep_placing, app.order_desk, customer.id, stop)
            try:
                time.sleep(0.3)  # the writer busy
                share = free_share(other)
            finally:
                stop.set()
    finally:
        other.dispose()
        app.close()
    pairs = itertools.pairwise(marks)
    gaps = [b[1] - a[1] for a, b in pairs if (a[0], b[0]) == ("commit", "begin")]
    assert len(gaps) > 20, "the writer should have committed many batches"
    assert min(gaps) >= gap_ms / 1000, f"began again {min(gaps) * 1000:.2f} ms after a commit"
    assert share >= 0.35, f"the lock was free at {share:.0%} of tries"
