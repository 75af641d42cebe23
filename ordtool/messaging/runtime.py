"""What the CLI and the services ask of the events machinery, built from the settings.

``bootstrap.App.events`` builds one; nothing here opens a connection until asked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pika
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import Engine

from ordtool.config import Settings
from ordtool.errors import ConfigurationError
from ordtool.messaging import audit, broker
from ordtool.messaging.codec import SOURCES, Source
from ordtool.messaging.consumer import (
    BatchProcessor,
    Consumer,
    Processor,
    QueueSpec,
    invalidating,
)
from ordtool.messaging.lease import LeaseState, lease_state
from ordtool.messaging.outbox import OutboxSource, OutboxStatus, published_count, status
from ordtool.messaging.publisher import ConfirmingPublisher
from ordtool.messaging.relay import Relay
from ordtool.messaging.replay import replay
from ordtool.messaging.topology import Topology
from ordtool.store.migrate import Database
from ordtool.store.tables import (
    customers_leases,
    customers_outbox,
    orders_leases,
    orders_outbox,
)

CUSTOMER_EVENTS = "customer.#"
CUSTOMER_CACHE_CONSUMER = "customer-cache"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    outbox: OutboxStatus
    relay: LeaseState | None


@dataclass(frozen=True, slots=True)
class EventsStatus:
    sources: list[SourceStatus]
    broker_reachable: bool
    queue_depths: dict[str, int | None]  # None: the queue does not exist (yet)


class Events:
    def __init__(self, settings: Settings, engine: Callable[[Database], Engine]) -> None:
        self._settings = settings
        self._events = settings.events
        self._engine = engine
        self.topology = Topology(self._events.exchange, self._events.max_attempts)

    @property
    def amqp_url(self) -> str:
        if self._settings.amqp_url is None:
            raise ConfigurationError(
                "no message broker is configured",
                hint="set ORDTOOL_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2F",
            )
        return self._settings.amqp_url.get_secret_value()

    def params(self, role: str) -> pika.URLParameters:
        return broker.parameters(self.amqp_url, self._events, f"ordtool {role}")

    def sources(self, only: Source | None = None) -> list[OutboxSource]:
        tables = {"orders": (orders_outbox, orders_leases),
                  "customers": (customers_outbox, customers_leases)}
        return [
            OutboxSource(name, self._engine(name), *tables[name])
            for name in SOURCES
            if only is None or name == only
        ]

    # -- long-running parts -------------------------------------------------------------------

    def relay(self) -> Relay:
        return Relay(self.sources(), self.params("relay"), self.topology, self._events)

    def consumer(self, name: str, queue: QueueSpec, process: Processor,
                 batch: BatchProcessor | None = None,
                 upkeep: Callable[[], object] | None = None) -> Consumer:
        return Consumer(name, self.params(name), self.topology, queue, process, self._events,
                        batch, upkeep)

    def audit_consumer(self) -> Consumer:
        """Events that arrive together are recorded in one transaction, in the audit database;
        the record older than the retention is purged as it goes."""
        queue = QueueSpec(("#",), self.topology.audit_queue)
        engine = self._engine("audit")
        processor = audit.audit_processor(engine)
        retention = audit.AuditRetention(engine, self._events)
        return self.consumer(audit.AUDIT_CONSUMER, queue, processor, processor.many, retention)

    def customer_cache_consumer(self, invalidate: Callable[[int], object]) -> Consumer:
        """Customer events drop the customer from this process's look-up cache. A private
        queue, so that every order-service replica hears every change."""
        queue = QueueSpec((CUSTOMER_EVENTS,))
        return self.consumer(CUSTOMER_CACHE_CONSUMER, queue, invalidating(invalidate))

    def start(self, consumer_or_relay: Consumer | Relay, stop: threading.Event) -> threading.Thread:
        """Run a relay or consumer in a daemon thread until ``stop`` is set."""
        thread = threading.Thread(
            target=consumer_or_relay.run, args=(stop,), name=type(consumer_or_relay).__name__,
            daemon=True,
        )
        thread.start()
        return thread

    # -- one-shot operations -----------------------------------------------------------------

    def status(self) -> EventsStatus:
        sources = [
            SourceStatus(status(s), lease_state(s.engine, s.leases, s.lease_name))
            for s in self.sources()
        ]
        queues = (self.topology.audit_queue, self.topology.dead_letter_queue)
        try:
            depths = self._queue_depths(queues)
        except broker.TRANSIENT_ERRORS:
            return EventsStatus(sources, False, dict.fromkeys(queues))
        return EventsStatus(sources, True, depths)

    def _queue_depths(self, queues: tuple[str, ...]) -> dict[str, int | None]:
        depths: dict[str, int | None] = {}
        with broker.blocking_channel(self.params("status")) as channel:
            connection = channel.connection
            for queue in queues:
                probe = connection.channel()  # a missing queue closes the channel (404)
                try:
                    depths[queue] = probe.queue_declare(queue, passive=True).method.message_count
                    probe.close()
                except ChannelClosedByBroker:
                    depths[queue] = None
        return depths

    def replay(
        self, since: datetime, only: Source | None, progress: Callable[[int], None]
    ) -> int:
        params = self.params("replay")
        with broker.blocking_channel(params) as channel:
            self.topology.declare(channel)
        publisher = ConfirmingPublisher(params, self.topology.exchange)
        publisher.open(self._events.connect_timeout_s)
        try:
            return replay(
                self.sources(only), publisher, since, batch_size=self._events.batch_size,
                confirm_timeout_s=self._events.confirm_timeout_s, progress=progress,
            )
        finally:
            publisher.close()

    def replayable(self, since: datetime, only: Source | None) -> int:
        return sum(published_count(source, since) for source in self.sources(only))

    def verify(self, since: datetime | None, wait_s: float) -> audit.Reconciliation:
        return audit.verify(self.sources(), self._engine("audit"), since, wait_s)
