"""Events against the real RabbitMQ: publish and consume, dedup, unroutable, dead letters."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.commands import ChangeOrderStatus
from ordtool.domain.orders import OrderStatus
from ordtool.errors import ConfigurationError, DependencyUnavailable
from ordtool.messaging import broker
from ordtool.messaging import relay as relay_module
from ordtool.messaging.codec import PoisonMessage, decode
from ordtool.messaging.consumer import QueueSpec, Received
from ordtool.messaging.outbox import OutboxRow, OutboxSource, fetch_unpublished
from ordtool.messaging.topology import Topology
from ordtool.services import orders
from ordtool.store.tables import audit_inbox, orders_outbox
from tests.integration.test_messaging_support import (
    a_customer,
    any_events_app_fixture,  # noqa: F401
    audit_rows,
    declare_topology,
    events_app_fixture,  # noqa: F401
    place_orders,
    publish_raw,
    queue_depth,
    ready,
    recording_consumer,
    running,
    unpublished,
    vhost_fixture,  # noqa: F401
    wait_until,
    with_broker,
)

pytestmark = pytest.mark.timeout(120)

IDLE_S = 6.0  # a relay idle this long waits ~5 s between polls


def an_envelope(event_type: str = "order.created", **data: object) -> bytes:
    return json.dumps({
        "id": str(uuid.uuid4()), "type": event_type, "version": 1,
        "occurred_at": "2026-12-01T10:00:00Z", "correlation_id": None,
        "data": {"id": 7, **data},
    }).encode()


def test_codec_refuses_what_is_not_an_envelope() -> None:
    assert decode(an_envelope()).type == "order.created"
    for body in (b"", b"not json", b"[]", b'{"id": "x"}',
                 an_envelope().replace(b"Z\"", b"\""),  # a time without a zone
                 an_envelope("Order Created"), b" " * (1024 * 1024 + 1)):
        with pytest.raises(PoisonMessage):
            decode(body)


def test_events_published_and_consumed_exactly_once(any_events_app: App) -> None:
    app = any_events_app
    customer_id = a_customer(app)
    placed = place_orders(app, customer_id, 20)
    orders.change_status(app.orders_uow, ChangeOrderStatus(order_id=placed[0],
                                                           status=OrderStatus.COMPLETED))
    tail, seen = recording_consumer(app, ("order.*",))
    with ready(app.events.audit_consumer()), ready(tail), running(app.events.relay()):
        wait_until(lambda: len(audit_rows(app)) == 22, 30, "22 audited events")
        wait_until(lambda: len(seen.ids()) == 21, 30, "21 order events on the tail")
    assert unpublished(app) == 0
    assert set(audit_rows(app).values()) == {1}
    first = seen.received[0].envelope
    assert (first.type, first.data["customer_id"], first.data["status"]) == (
        "order.created", customer_id, "PENDING")
    assert seen.received[-1].envelope.type == "order.status_changed"
    result = app.events.verify(None, wait_s=0)
    assert (result.published, result.lost, result.pending, result.duplicates) == (22, 0, 0, 0)


def test_duplicate_delivery_is_recorded_once(events_app: App) -> None:
    body = an_envelope()
    event_id = json.loads(body)["id"]
    with ready(events_app.events.audit_consumer()):
        publish_raw(events_app, "order.created", body, event_id)
        publish_raw(events_app, "order.created", body, event_id)
        wait_until(lambda: audit_rows(events_app).get(event_id) == 2, 20, "two deliveries")
    with events_app.audit_engine.connect() as connection:
        inbox = connection.execute(
            select(func.count()).where(audit_inbox.c.event_id == event_id)
        ).scalar_one()
    assert (audit_rows(events_app), inbox) == ({event_id: 2}, 1)


def test_unroutable_event_is_not_marked_published(events_app: App) -> None:
    app = events_app
    topology = app.events.topology
    customer_id = a_customer(app)
    relay = app.events.relay()
    relay.step()  # connects, declares the topology, publishes the customer's event
    with broker.blocking_channel(app.events.params("test")) as channel:
        channel.queue_unbind(topology.audit_queue, topology.exchange, "#")
    place_orders(app, customer_id, 3)
    with pytest.raises(broker.TRANSIENT_ERRORS, match="3 orders events were not confirmed"):
        relay.step()  # mandatory publishes come back: no queue takes them
    relay.shutdown()
    assert unpublished(app) == 3
    # Once a queue takes them again, the same rows go out and are marked.
    with broker.blocking_channel(app.events.params("test")) as channel:
        channel.queue_bind(topology.audit_queue, topology.exchange, "#")
    with running(app.events.relay()):
        wait_until(lambda: unpublished(app) == 0, 30, "the rows to be published")
    assert queue_depth(app, topology.audit_queue) == 4  # 1 customer + 3 orders, once each


def test_undecodable_message_goes_to_the_dead_letter_queue(events_app: App) -> None:
    app = events_app
    with ready(app.events.audit_consumer()):
        publish_raw(app, "order.created", b"\x00 not an event", "poison-1")
        publish_raw(app, "order.created", an_envelope(), "fine-1")
        wait_until(lambda: len(audit_rows(app)) == 1, 20, "the valid event audited")
        dead = app.events.topology.dead_letter_queue
        wait_until(lambda: queue_depth(app, dead) == 1, 20, "the poison message dead-lettered")
    with broker.blocking_channel(app.events.params("test")) as channel:
        _method, properties, body = channel.basic_get(dead, auto_ack=True)
    assert (body, properties.message_id) == (b"\x00 not an event", "poison-1")


def test_failing_handler_is_retried_then_dead_lettered(events_app: App) -> None:
    app = events_app
    attempts: list[int] = []

    def broken(received: Received) -> bool:
        attempts.append(received.attempt)
        raise RuntimeError("handler bug")

    topology = app.events.topology
    queue = QueueSpec(("order.#",), topology.queue_for("broken"))
    with ready(app.events.consumer("broken", queue, broken)):
        publish_raw(app, "order.created", an_envelope(), "doomed")
        wait_until(lambda: queue_depth(app, topology.dead_letter_queue) == 1, 30,
                   "the message in the dead-letter queue")
    max_attempts = app.settings.events.max_attempts
    assert attempts == list(range(1, max_attempts + 1))  # never acked as if it had worked
    assert queue_depth(app, queue.name or "") == 0


def test_database_outage_is_waited_out_without_spending_attempts(
    events_app: App, vhost: str
) -> None:
    app = App(with_broker(events_app.settings, vhost, reconnect_max_s=0.2))
    calls: list[int] = []

    def database_down_for_a_while(received: Received) -> bool:
        calls.append(received.attempt)
        if len(calls) <= 8:  # more failures than max_attempts (5)
            raise DependencyUnavailable("cannot reach the database")
        return True

    topology = app.events.topology
    queue = QueueSpec(("order.#",), topology.queue_for("patient"))
    with ready(app.events.consumer("patient", queue, database_down_for_a_while)):
        publish_raw(app, "order.created", an_envelope(), "waits")
        wait_until(lambda: len(calls) == 9, 30, "the handler to succeed at last")
    assert calls == [1] * 9  # one delivery, handled in place until the database came back
    # Acked (an unacked message would be back in its queue now the consumer is gone).
    assert queue_depth(app, queue.name or "") == 0
    assert queue_depth(app, topology.dead_letter_queue) == 0
    app.close()


def test_customer_events_invalidate_the_cached_lookup(events_app: App) -> None:
    invalidated: list[int] = []
    done = threading.Event()

    def invalidate(customer_id: int) -> None:
        invalidated.append(customer_id)
        done.set()

    with ready(events_app.events.customer_cache_consumer(invalidate)):
        publish_raw(events_app, "order.created", an_envelope(), "not-a-customer-event")
        publish_raw(events_app, "customer.updated", an_envelope("customer.updated", id=42))
        assert done.wait(20)
    assert invalidated == [42]


def test_topology_is_idempotent_and_refuses_a_conflicting_queue(events_app: App) -> None:
    declare_topology(events_app)
    declare_topology(events_app)  # the same declaration again is fine
    other = Topology(events_app.events.topology.exchange, max_attempts=99)
    with broker.blocking_channel(events_app.events.params("test")) as channel, \
            pytest.raises(ConfigurationError, match="differs"):
        other.declare(channel)


def test_published_rows_are_purged_after_the_retention(any_events_app: App) -> None:
    app = any_events_app
    place_orders(app, a_customer(app), 2)
    with running(app.events.relay()):
        wait_until(lambda: unpublished(app) == 0, 30, "the rows to be published")
    retention = timedelta(hours=app.settings.events.retention_hours)
    with app.orders_engine.begin() as connection:
        first, second = connection.execute(select(orders_outbox.c.id)).scalars().all()
        connection.execute(update(orders_outbox).where(orders_outbox.c.id == first).values(
            published_at=datetime.now(UTC) - retention - timedelta(minutes=1)))
    relay = app.events.relay()
    relay.step()  # a relay purges when it starts, then every purge_interval_s
    relay.shutdown()
    with app.orders_engine.connect() as connection:
        assert connection.execute(select(orders_outbox.c.id)).scalars().all() == [second]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_quiet_outbox_is_read_again_when_its_bell_rings_and_one_without_a_bell_always(
    backend: str, request: pytest.FixtureRequest, vhost: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = request.getfixturevalue("settings" if backend == "sqlite" else "pg_settings")
    app = App(with_broker(base, vhost, poll_interval_s=10.0))
    reads: Counter[str] = Counter()

    def counted(source: OutboxSource, *args: int) -> list[OutboxRow]:
        reads[source.name] += 1
        return fetch_unpublished(source, *args)

    monkeypatch.setattr(relay_module, "fetch_unpublished", counted)
    relay = app.events.relay()
    try:
        customer_id = a_customer(app)  # one event waiting in the customers outbox
        relay.step()  # reads both: the customer's event goes out, the orders outbox is empty
        relay.step()  # customers read again (it had rows): empty now
        relay.step()  # with a bell, both are quiet: nothing is read
        place_orders(app, customer_id, 2)  # rings the orders bell
        relay.step()
    finally:
        relay.shutdown()
        app.close()
    every_pass = {"customers": 4, "orders": 4}
    assert reads == ({"customers": 2, "orders": 2} if backend == "sqlite" else every_pass)
    assert unpublished(app) == 0


def test_an_idle_relay_is_woken_by_the_commit_not_by_its_next_poll(
    settings: Settings, vhost: str,
) -> None:
    app = App(with_broker(settings, vhost, poll_interval_s=10.0))
    customer_id = a_customer(app)
    try:
        with running(app.events.relay()):
            place_orders(app, customer_id, 1)
            wait_until(lambda: unpublished(app) == 0, 30, "the first order's event")
            # Idle, the relay's waits double up to 10 s: 6 s on, it sleeps until ~10 s.
            time.sleep(IDLE_S)
            place_orders(app, customer_id, 1)
            committed = time.monotonic()
            wait_until(lambda: unpublished(app) == 0, 30, "the second order's event")
            took = time.monotonic() - committed
    finally:
        app.close()
    assert took < 2.0, f"published {took:.1f} s after the commit: the relay waited for its poll"
