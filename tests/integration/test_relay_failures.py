"""The relay through failures, against the real RabbitMQ and databases: the broker closing
every connection mid-stream, a relay killed between publish and mark, a standby taking over
from a killed relay."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.commands import ChangeOrderStatus
from ordtool.domain.orders import OrderStatus
from ordtool.messaging.consumer import Received
from ordtool.messaging.lease import lease_state
from ordtool.services import orders
from ordtool.store.tables import orders_leases
from tests.integration.test_messaging_support import (
    a_customer,
    audit_rows,
    declare_topology,
    events_app_fixture,  # noqa: F401
    kill,
    outbox_ids,
    place_orders,
    queue_depth,
    rabbitmqctl,
    ready,
    recording_consumer,
    running,
    start_relay_process,
    unpublished,
    vhost_fixture,  # noqa: F401
    wait_until,
    with_broker,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def relay_connects() -> float:
    return REGISTRY.get_sample_value("ordtool_relay_broker_connects_total") or 0.0


def test_broker_closing_every_connection_mid_stream_loses_nothing(
    events_app: App, vhost: str
) -> None:
    app, total = events_app, 2_000
    customer_id = a_customer(app)
    written: list[int] = []
    connects_before = relay_connects()

    def write() -> None:
        for _ in range(total // 50):
            written.extend(place_orders(app, customer_id, 50))

    with ready(app.events.audit_consumer()), running(app.events.relay()):
        writer = threading.Thread(target=write)
        writer.start()
        for threshold in (total // 4, total // 2, 3 * total // 4):
            _wait_for_count(written, threshold)
            rabbitmqctl("close_all_connections", "-p", vhost, "ordtool test: broker-side close")
        writer.join(timeout=120)
        wait_until(lambda: unpublished(app) == 0, 90, "the outbox to drain")
        result = app.events.verify(None, wait_s=60)
    assert len(written) == total
    assert (result.published, result.lost, result.pending) == (total + 1, 0, 0)
    assert relay_connects() - connects_before >= 4  # the first connection and 3 reconnects


def _wait_for_count(items: list[int], count: int) -> None:
    wait_until(lambda: len(items) >= count, 120, f"{count} orders written")


@pytest.mark.postgres
def test_relay_killed_between_publish_and_mark_sends_duplicates_the_inbox_drops(
    pg_settings: Settings, vhost: str, tmp_path: Path
) -> None:
    app = App(with_broker(pg_settings, vhost))
    declare_topology(app)  # the audit queue keeps what is published; nobody consumes yet
    place_orders(app, a_customer(app), 50)
    with _outbox_locked(app):  # reads pass; the relay's UPDATE (the mark) waits
        relay = start_relay_process(app, tmp_path / "relay.log")
        try:
            # The marks wait in the relay's marker thread; the passes go on meanwhile.
            audit_queue = app.events.topology.audit_queue
            wait_until(lambda: queue_depth(app, audit_queue) == 51, 60,
                       "the 50 order events and the customer's confirmed by the broker")
            time.sleep(1.0)  # a hundred passes or so, each reading the 50 unmarked rows
            assert queue_depth(app, audit_queue) == 51, "pending rows were sent again"
            assert unpublished(app) == 50  # published, confirmed, not marked
        finally:
            kill(relay)
    assert unpublished(app) == 50  # the killed relay never marked them
    with ready(app.events.audit_consumer()), running(app.events.relay()):
        wait_until(lambda: unpublished(app) == 0, 60, "the successor to publish again")
        wait_until(lambda: sum(audit_rows(app).values()) == 101, 60, "51 + 50 deliveries")
    deliveries = audit_rows(app)
    assert len(deliveries) == 51  # each event recorded once...
    assert sorted(deliveries.values()).count(2) == 50  # ...though every order event came twice
    result = app.events.verify(None, wait_s=0)
    assert (result.lost, result.duplicates, result.extra_deliveries) == (0, 50, 50)
    app.close()


@pytest.mark.postgres
def test_outbox_lock_helper_really_blocks_the_mark(pg_settings: Settings, vhost: str) -> None:
    """The previous test relies on LOCK TABLE letting the relay read but not mark."""
    app = App(with_broker(pg_settings, vhost))
    place_orders(app, a_customer(app), 1)
    with _outbox_locked(app), app.orders_engine.connect() as other:
        other.execute(text("SET lock_timeout = '200ms'"))
        assert other.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 1
        with pytest.raises(Exception, match="lock timeout"):
            other.execute(text("UPDATE outbox SET published_at = now()"))
    app.close()


def test_standby_takes_over_a_killed_relay_without_reordering(
    events_app: App, tmp_path: Path
) -> None:
    app = events_app
    customer_id = a_customer(app)
    tail, seen = recording_consumer(app, ("order.#",))
    with ready(tail):
        first = start_relay_process(app, tmp_path / "first.log")
        second = None
        try:
            wait_until(lambda: _holder_pid(app) == first.pid, 30, "the first relay's lease")
            second = start_relay_process(app, tmp_path / "second.log")
            writer = threading.Thread(target=_orders_with_changes, args=(app, customer_id, 300))
            writer.start()
            wait_until(lambda: len(seen.ids()) >= 150, 60, "150 events through the first")
            assert _holder_pid(app) == first.pid  # the second one waited as a standby
            kill(first)
            writer.join(timeout=120)
            expected = set(outbox_ids(app))
            wait_until(lambda: expected <= set(seen.ids()), 60, "every event after takeover")
            assert _holder_pid(app) == second.pid
        finally:
            for process in (first, second):
                if process is not None:
                    kill(process)
    _assert_in_outbox_order_per_order(app, seen.received)


def _orders_with_changes(app: App, customer_id: int, count: int) -> None:
    """Place orders and complete each one right after, so every order has two events."""
    for _ in range(count):
        order_id = place_orders(app, customer_id, 1)[0]
        orders.change_status(
            app.orders_uow, ChangeOrderStatus(order_id=order_id, status=OrderStatus.COMPLETED)
        )


def _holder_pid(app: App) -> int | None:
    state = lease_state(app.orders_engine, orders_leases, "relay:orders")
    return int(state.holder.split(":")[1]) if state else None


def _assert_in_outbox_order_per_order(app: App, received: list[Received]) -> None:
    """Taking each event at its first delivery (later ones are duplicates the inbox drops),
    every order's events arrive in the order they were written."""
    row_id = outbox_ids(app)
    first_deliveries: dict[str, Received] = {}  # keeps first-arrival order
    for item in received:
        first_deliveries.setdefault(str(item.envelope.id), item)
    rows_by_order: dict[int, list[int]] = defaultdict(list)
    for event_id, item in first_deliveries.items():
        rows_by_order[item.envelope.data["id"]].append(row_id[event_id])
    assert len(rows_by_order) == 300
    assert all(len(rows) == 2 for rows in rows_by_order.values())
    assert all(rows == sorted(rows) for rows in rows_by_order.values())


@contextmanager
def _outbox_locked(app: App) -> Iterator[None]:
    """Hold ``LOCK TABLE outbox IN EXCLUSIVE MODE`` on the orders database: SELECTs go on,
    UPDATEs wait until the block ends."""
    with app.orders_engine.connect() as connection:
        connection.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            connection.rollback()
