"""What the events tests share: a RabbitMQ vhost per test, apps wired to it, threads and
child processes running relays and consumers, and small probes of the broker and outboxes.

Each test gets its own vhost (created with rabbitmqctl, deleted afterwards), so tests run in
parallel, beside a running ``ordtool up``, and ``close_all_connections -p VHOST`` touches
nobody else's connections.


Test modules import the fixtures by their function names (``*_fixture``); pytest knows them by
the names without the suffix.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.domain.commands import CreateCustomer, PlaceOrder
from ordtool.messaging import broker
from ordtool.messaging.consumer import Consumer, QueueSpec, Received
from ordtool.messaging.relay import Relay
from ordtool.services import customers, orders
from ordtool.store.tables import audit_events, orders_outbox
from tests.conftest import require_service
from tests.processes import ordtool_env

RABBITMQCTL_TIMEOUT_S = 60
# Short leases so that a standby takes over a killed relay within the test's patience.
TEST_LEASE_TTL_S = 2.0


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True,
        timeout=RABBITMQCTL_TIMEOUT_S, check=False,
    )
    assert result.returncode == 0, f"rabbitmqctl {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(name="vhost")
def vhost_fixture() -> Iterator[str]:
    """A fresh RabbitMQ vhost that guest may use; deleted with everything in it afterwards."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    name = f"ordtool-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


def amqp_url(vhost: str) -> str:
    return f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"


def with_broker(settings: Settings, vhost: str, **events: Any) -> Settings:
    """``settings`` with the test's vhost and short leases (plus any ``events`` overrides)."""
    group = settings.events.model_copy(update={"lease_ttl_s": TEST_LEASE_TTL_S, **events})
    return settings.model_copy(update={"amqp_url": SecretStr(amqp_url(vhost)), "events": group})


@pytest.fixture(name="events_app")
def events_app_fixture(settings: Settings, vhost: str) -> Iterator[App]:
    """An App on SQLite whose broker is the test's vhost."""
    app = App(with_broker(settings, vhost))
    yield app
    app.close()


@pytest.fixture(name="any_events_app", params=["sqlite", "postgresql"])
def any_events_app_fixture(request: pytest.FixtureRequest, vhost: str) -> Iterator[App]:
    """The same test with both databases on SQLite and on PostgreSQL."""
    base = "settings" if request.param == "sqlite" else "pg_settings"
    app = App(with_broker(request.getfixturevalue(base), vhost))
    yield app
    app.close()


def child_env(app: App, **extra: str) -> dict[str, str]:
    """Environment for an ``ordtool`` child process that uses this app's databases, vhost,
    exchange and lease time."""
    settings = app.settings
    assert settings.amqp_url is not None
    events = {
        "ORDTOOL_AMQP_URL": settings.amqp_url.get_secret_value(),
        "ORDTOOL_EVENTS__EXCHANGE": settings.events.exchange,
        "ORDTOOL_EVENTS__LEASE_TTL_S": str(settings.events.lease_ttl_s),
    }
    return ordtool_env(settings, **(events | extra))


# -- threads and processes ----------------------------------------------------------------------


@contextmanager
def running(worker: Relay | Consumer) -> Iterator[threading.Event]:
    """Run a relay or consumer in a thread for the block; stop it and wait for it after."""
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{type(worker).__name__} did not stop within 30 s"


@contextmanager
def ready(consumer: Consumer) -> Iterator[threading.Event]:
    """A consumer running in a thread whose queue is bound before the block starts."""
    with running(consumer) as stop:
        assert consumer.ready.wait(30), "the consumer did not start consuming within 30 s"
        yield stop


@dataclass
class Recorder:
    """A processor that remembers what it received, in arrival order."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, received: Received) -> bool:
        with self.lock:
            self.received.append(received)
        return True

    def ids(self) -> list[str]:
        with self.lock:
            return [str(r.envelope.id) for r in self.received]


def recording_consumer(app: App, patterns: tuple[str, ...] = ("#",)) -> tuple[Consumer, Recorder]:
    recorder = Recorder()
    return app.events.consumer("recorder", QueueSpec(patterns), recorder), recorder


def start_relay_process(app: App, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ordtool", "events", "relay"],
            env=child_env(app, **extra), cwd=app.settings.data_dir, stdout=out, stderr=out,
        )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL one child we started (by its pid) and reap it."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


# -- probes -------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def queue_depth(app: App, queue: str) -> int:
    with broker.blocking_channel(app.events.params("test-probe")) as channel:
        return int(channel.queue_declare(queue, passive=True).method.message_count)


def publish_raw(app: App, routing_key: str, body: bytes, message_id: str = "raw") -> None:
    """Publish one message as any producer could, confirmed, bypassing the outbox."""
    with broker.blocking_channel(app.events.params("test-producer")) as channel:
        channel.confirm_delivery()
        channel.basic_publish(
            app.events.topology.exchange, routing_key, body,
            pika.BasicProperties(message_id=message_id, delivery_mode=2), mandatory=True,
        )


def declare_topology(app: App) -> None:
    with broker.blocking_channel(app.events.params("test-setup")) as channel:
        app.events.topology.declare(channel)


def unpublished(app: App) -> int:
    with app.orders_engine.connect() as connection:
        return int(connection.execute(
            select(func.count()).where(orders_outbox.c.published_at.is_(None))
        ).scalar_one())


def audit_rows(app: App) -> dict[str, int]:
    """event id -> deliveries, as the audit consumer recorded them."""
    with app.audit_engine.connect() as connection:
        rows = connection.execute(select(audit_events.c.event_id, audit_events.c.deliveries))
        return {row.event_id: row.deliveries for row in rows}


def outbox_ids(app: App) -> dict[str, int]:
    """event id -> outbox row id, for the orders outbox."""
    with app.orders_engine.connect() as connection:
        rows = connection.execute(select(orders_outbox.c.event_id, orders_outbox.c.id))
        return {row.event_id: row.id for row in rows}


def a_customer(app: App) -> int:
    customer = customers.create_customer(
        app.customers_uow,
        CreateCustomer(name="Ada", email=f"ada-{uuid.uuid4().hex[:8]}@example.com",
                       address="1 Rd"),
    )
    return customer.id


def place_orders(app: App, customer_id: int, count: int) -> list[int]:
    return [
        orders.place_order(
            app.orders_uow, app.customer_directory,
            PlaceOrder(customer_id=customer_id, sku=f"SKU-{i}", quantity=1),
        ).order.id
        for i in range(count)
    ]
