"""The live feed against real databases and the real RabbitMQ: every order event reaches every
follower, and a follower survives losing its broker connection."""

from __future__ import annotations

import json
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.clock import utc_now
from ordtool.domain.commands import ChangeOrderStatus, CreateCustomer, PlaceOrder
from ordtool.domain.events import order_created
from ordtool.domain.orders import OrderStatus
from ordtool.messaging.feed import BrokerFeed, Envelope, OutboxFeed
from ordtool.messaging.runtime import Events
from ordtool.services import customers as customer_cases
from ordtool.services import orders as order_cases
from tests.integration.test_messaging_support import (
    amqp_url,
    rabbitmqctl,
    vhost_fixture,  # noqa: F401
    with_broker,
)

WAIT_S = 10.0  # an upper bound for "it arrives", not a latency requirement


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Collector:
    def __init__(self) -> None:
        self.queue: queue.Queue[Envelope] = queue.Queue()
        self.seen: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        self.queue.put(envelope)

    def next(self, timeout: float = WAIT_S) -> Envelope:
        envelope = self.queue.get(timeout=timeout)
        self.seen.append(envelope)
        return envelope

    def quiet_for(self, seconds: float) -> bool:
        try:
            self.queue.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def place(app: App, customer_id: int, sku: str = "BOOK-1") -> int:
    command = PlaceOrder(customer_id=customer_id, sku=sku, quantity=1)
    return order_cases.place_order(app.orders_uow, app.customer_directory, command).order.id


@pytest.fixture
def customer_id(any_app: App) -> int:
    command = CreateCustomer(name="Ada", email=f"{uuid.uuid4().hex}@example.com", address="1 Rd")
    return customer_cases.create_customer(any_app.customers_uow, command).id


@pytest.fixture
def outbox_feed(any_app: App) -> Iterator[tuple[OutboxFeed, Collector]]:
    feed = OutboxFeed(lambda: any_app.orders_engine, poll_interval_s=0.05)
    collector = Collector()
    feed.start(collector)
    assert wait_until(lambda: feed.connected)
    yield feed, collector
    feed.stop()


def test_outbox_feed_delivers_new_order_events_in_order(
    any_app: App, customer_id: int, outbox_feed: tuple[OutboxFeed, Collector]
) -> None:
    _, collector = outbox_feed
    order_id = place(any_app, customer_id)
    change = ChangeOrderStatus(order_id=order_id, status=OrderStatus.COMPLETED)
    order_cases.change_status(any_app.orders_uow, change)

    created, changed = collector.next(), collector.next()
    assert (created["type"], created["data"]["id"]) == ("order.created", order_id)
    assert (changed["type"], changed["data"]["status"]) == ("order.status_changed", "COMPLETED")
    assert collector.quiet_for(0.5)  # each event once


def test_outbox_feed_starts_at_the_present(any_app: App, customer_id: int) -> None:
    place(any_app, customer_id, sku="OLD-1")
    feed = OutboxFeed(lambda: any_app.orders_engine, poll_interval_s=0.05)
    collector = Collector()
    feed.start(collector)
    try:
        assert wait_until(lambda: feed.connected)
        new_id = place(any_app, customer_id, sku="NEW-1")
        assert collector.next()["data"]["id"] == new_id
        assert collector.quiet_for(0.5)
    finally:
        feed.stop()


@pytest.mark.postgres
def test_outbox_feed_sees_a_transaction_that_commits_after_a_later_one(
    pg_app: App,
) -> None:
    """PostgreSQL hands out ids at insert time: id 1 may commit after id 2. A follower that
    only ever reads 'id > last seen' would lose it for good."""
    feed = OutboxFeed(lambda: pg_app.orders_engine, poll_interval_s=0.05)
    collector = Collector()
    feed.start(collector)
    try:
        assert wait_until(lambda: feed.connected)
        slow = pg_app.orders_uow(write=True)
        with slow:
            early = slow.orders.add(PlaceOrder(customer_id=1, sku="SLOW-1", quantity=1), utc_now())
            slow.outbox.add([order_created(early)])
            with pg_app.orders_uow(write=True) as fast:
                late = fast.orders.add(
                    PlaceOrder(customer_id=1, sku="FAST-1", quantity=1), utc_now()
                )
                fast.outbox.add([order_created(late)])
                fast.commit()
            assert collector.next()["data"]["id"] == late.id
            time.sleep(0.3)  # the follower has moved past the slow row's id by now
            slow.commit()
        assert collector.next()["data"]["id"] == early.id
    finally:
        feed.stop()


# ---- the broker (a vhost of each test's own) ---------------------------------------------------


def publish(vhost: str, routing_key: str, body: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url(vhost)))
    try:
        channel = connection.channel()
        channel.basic_publish("ordtool.events", routing_key, json.dumps(body).encode())
    finally:
        connection.close()


def envelope(kind: str, order_id: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "version": 1,
        "occurred_at": "2026-12-03T10:00:00Z",
        "correlation_id": None,
        "data": {"id": order_id},
    }


def broker_feed(settings: Settings, vhost: str) -> tuple[BrokerFeed, Collector]:
    configured = with_broker(settings, vhost, reconnect_max_s=1.0)
    feed = BrokerFeed(Events(configured, lambda _source: pytest.fail("no database needed")))
    collector = Collector()
    feed.start(collector)
    assert wait_until(lambda: feed.connected), "the feed never connected to RabbitMQ"
    return feed, collector


def test_every_broker_follower_gets_every_order_event(settings: Settings, vhost: str) -> None:
    first, first_events = broker_feed(settings, vhost)
    second, second_events = broker_feed(settings, vhost)
    try:
        publish(vhost, "customer.created", envelope("customer.created", 1))
        publish(vhost, "order.created", envelope("order.created", 7))
        publish(vhost, "order.status_changed", envelope("order.status_changed", 7))
        for events in (first_events, second_events):
            assert [events.next()["type"], events.next()["type"]] == [
                "order.created",
                "order.status_changed",
            ]
            assert events.quiet_for(0.3)  # the customer event is not bound
    finally:
        first.stop()
        second.stop()
    assert not first.connected


def test_broker_follower_reconnects_after_the_broker_closes_it(
    settings: Settings, vhost: str
) -> None:
    feed, events = broker_feed(settings, vhost)
    try:
        rabbitmqctl("close_all_connections", "-p", vhost, "test: closed from the broker side")
        assert wait_until(lambda: not feed.connected, timeout=5)
        assert wait_until(lambda: feed.connected), "the feed did not reconnect"
        publish(vhost, "order.created", envelope("order.created", 8))
        assert events.next()["data"]["id"] == 8
    finally:
        feed.stop()
