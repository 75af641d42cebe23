"""The consumer building block: prefetch, one transaction per event, ack after commit.

For each delivery:

1. decode the envelope (``codec``); a message that cannot be an event goes to the dead-letter
   queue at once: retrying it cannot help;
2. run the processor. ``InboxProcessor`` inserts ``(consumer, event id)`` into the inbox and
   runs the handler in the same database transaction, so a redelivered event (the relay
   re-sends after a crash, the broker redelivers after a lost ack) is recognised and skipped;
3. ack only after that transaction committed. A crash before the ack redelivers the event;
   the inbox then drops it.
4. A handler that raises is retried (requeued after a short backoff) up to ``max_attempts``
   deliveries, then dead-lettered, never acked as if it had worked. A database that is down
   is not the event's fault: that delivery is retried in place, with backoff, until the
   database answers (heartbeats go on meanwhile), and spends none of the attempts.
   Quorum queues count deliveries themselves (``x-delivery-count``), and their
   ``x-delivery-limit`` dead-letters a message that keeps killing its consumer before it can
   even nack.

A consumer given a ``BatchProcessor`` (the audit consumer) handles the deliveries that arrived
together (up to the prefetch) in one transaction, and acks them after that commit. On SQLite,
where the order service, the relay and the consumer queue for one write lock, one lock per
batch instead of one per event is what lets the consumer keep up. If the batch fails, each of
its events is handled on its own as above, so one bad event is retried or dead-lettered alone.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties
from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import InterfaceError, OperationalError

from ordtool import metrics
from ordtool.config import EventsSettings
from ordtool.domain.clock import utc_now
from ordtool.errors import DependencyUnavailable
from ordtool.messaging import broker
from ordtool.messaging.codec import Envelope, PoisonMessage, Source, decode, source_of
from ordtool.messaging.topology import Topology
from ordtool.store.bulk import insert_new
from ordtool.store.write_lock import write_transaction

log = logging.getLogger(__name__)

MAX_RETRY_DELAY_S = 1.0
# Failures of what the handler stands on rather than of the handler: retried in place.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    DependencyUnavailable,
    OperationalError,
    InterfaceError,
)
MAX_TRACKED_FAILURES = 10_000


@dataclass(frozen=True, slots=True)
class Received:
    envelope: Envelope
    source: Source
    attempt: int  # 1 on the first delivery


# A processor handles one event; it returns False when it recognised a duplicate. It may
# raise PoisonMessage for an event it can never handle (dead-lettered at once).
Processor = Callable[[Received], bool]
# Handles several events in one transaction; one such verdict per event, in order.
BatchProcessor = Callable[[Sequence[Received]], list[bool]]
# Writes what a batch of events means, in the caller's transaction.
Handler = Callable[[Connection, Sequence[Received]], None]
T = TypeVar("T")


class InboxProcessor:
    """Run ``handle`` at most once per event id for the consumer ``name``: the inbox rows and
    the handler's writes commit together. Duplicates go to ``on_duplicate`` instead.

    A batch is a few statements, whatever its size (one multi-row insert into the inbox that
    returns the ids it took, then the handler's): on SQLite the write lock that the order
    service is waiting for is held for a few milliseconds, not a statement per event."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        inbox: Table,
        handle: Handler,
        on_duplicate: Handler | None = None,
    ) -> None:
        self.name, self._engine, self._inbox = name, engine, inbox
        self._handle, self._on_duplicate = handle, on_duplicate
        # rowcount is not reliable here across drivers; the returned ids are.
        self._take = insert_new(engine, inbox).returning(inbox.c.event_id)

    def __call__(self, received: Received) -> bool:
        return self.many([received])[0]

    def many(self, batch: Sequence[Received]) -> list[bool]:
        """Several events in one transaction (a ``BatchProcessor``); True for each event
        handled, False for a duplicate. An event id twice in one batch is a duplicate the
        second time, as it would be in two transactions."""
        ids = [str(received.envelope.id) for received in batch]
        first: dict[str, int] = {}  # event id -> where it first occurs in the batch
        for index, event_id in enumerate(ids):
            first.setdefault(event_id, index)
        now = utc_now()
        rows = [{"consumer": self.name, "event_id": event_id, "received_at": now}
                for event_id in first]
        with write_transaction(self._engine) as connection:
            taken = set(connection.execute(self._take, rows).scalars())
            new = [first.get(event_id) == index and event_id in taken
                   for index, event_id in enumerate(ids)]
            self._handle(connection, [r for r, fresh in zip(batch, new, strict=True) if fresh])
            repeated = [r for r, fresh in zip(batch, new, strict=True) if not fresh]
            if repeated and self._on_duplicate is not None:
                self._on_duplicate(connection, repeated)
        return new


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Where a consumer reads: ``name`` = a durable quorum queue shared by every instance (each
    event handled once, kept while nobody consumes); ``name=None`` = a private, exclusive
    queue that lives as long as the connection (every instance sees every event)."""

    patterns: tuple[str, ...]
    name: str | None = None


class Outcome(enum.Enum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"


class Consumer:
    def __init__(
        self,
        name: str,
        params: pika.URLParameters,
        topology: Topology,
        queue: QueueSpec,
        process: Processor,
        settings: EventsSettings,
        batch: BatchProcessor | None = None,
        upkeep: Callable[[], object] | None = None,
    ) -> None:
        """``upkeep`` runs between deliveries, often: it decides itself when there is work
        (the audit consumer's retention purge)."""
        self.name = name
        self._params, self._topology, self._queue = params, topology, queue
        self._process, self._settings, self._batch = process, settings, batch
        self._upkeep = upkeep
        # Deliveries waiting for their batch: (delivery tag, properties, body).
        self._pending: list[tuple[int, BasicProperties, bytes]] = []
        self._failures: dict[str, int] = {}
        self.ready = threading.Event()  # set once the queue is bound and consumed
        self._stop = threading.Event()
        # How to wait inside a delivery: the connection's sleep answers heartbeats meanwhile.
        self._sleep: Callable[[float], None] = time.sleep

    def run(self, stop: threading.Event, *, fail_fast: bool = False) -> None:
        """Consume until ``stop`` is set, reconnecting with backoff across broker outages.
        ``fail_fast``: raise DependencyUnavailable if the first connection fails."""
        delays: Iterator[float] | None = None
        while not stop.is_set():
            try:
                self._consume(stop)
                return
            except broker.TRANSIENT_ERRORS as exc:
                if fail_fast and not self.ready.is_set():
                    raise
                self.ready.clear()
                delays = delays or broker.reconnect_delays(self._settings.reconnect_max_s)
                log.warning("consumer %s: %s; reconnecting", self.name, exc)
                stop.wait(next(delays))

    def _consume(self, stop: threading.Event) -> None:
        self._stop = stop
        self._pending.clear()  # delivery tags of a closed channel mean nothing on a new one
        with broker.blocking_channel(self._params) as channel:
            self._sleep = channel.connection.sleep
            self._topology.declare(channel)
            queue = self._declare(channel)
            channel.basic_qos(prefetch_count=self._settings.prefetch)
            channel.basic_consume(queue, self._on_message)
            self.ready.set()
            log.info("consumer %s: consuming %s", self.name, queue)
            while not stop.is_set():
                # Returns once deliveries arrived (all that came together are dispatched).
                channel.connection.process_data_events(time_limit=0.25)
                self._handle_pending(channel)
                self._keep_up()

    def _declare(self, channel: BlockingChannel) -> str:
        spec = self._queue
        if spec.name is not None:
            self._topology.declare_queue(channel, spec.name, spec.patterns)
            return spec.name
        arguments = {"x-dead-letter-exchange": self._topology.dead_letter_exchange}
        declared = channel.queue_declare("", exclusive=True, auto_delete=True, arguments=arguments)
        queue = str(declared.method.queue)
        for pattern in spec.patterns:
            channel.queue_bind(queue, self._topology.exchange, routing_key=pattern)
        return queue

    def _on_message(
        self, channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties,
        body: bytes,
    ) -> None:
        tag = int(method.delivery_tag or 0)
        if self._batch is not None:
            self._pending.append((tag, properties, body))
            return
        self._settle(channel, tag, self.handle(body, properties))

    def _settle(self, channel: BlockingChannel, tag: int, outcome: Outcome) -> None:
        metrics.EVENTS_CONSUMED.labels(self.name, outcome.value).inc()
        if outcome in (Outcome.HANDLED, Outcome.DUPLICATE):
            channel.basic_ack(tag)
        else:
            channel.basic_nack(tag, requeue=outcome is Outcome.RETRIED)

    def _handle_pending(self, channel: BlockingChannel) -> None:
        """Handle the deliveries that arrived together as one batch, then ack them."""
        pending, self._pending = self._pending, []
        if not pending or self._batch is None:
            return
        decoded: list[tuple[int, Received]] = []
        for tag, properties, body in pending:
            try:
                envelope = decode(body)
            except PoisonMessage as exc:
                self._settle(channel, tag, self._poison(properties.message_id, exc))
                continue
            attempt = self._attempt(str(envelope.id), properties)
            decoded.append((tag, Received(envelope, source_of(envelope.type), attempt)))
        if not decoded:
            return
        batch = self._batch
        try:
            verdicts = self._waiting_out_outages(lambda: batch([r for _, r in decoded]))
        except Exception:  # one bad event must not fail the others: each on its own
            log.warning("consumer %s: a batch of %d failed; handling its events one by one",
                        self.name, len(decoded), exc_info=True)
            batched = {tag for tag, _ in decoded}
            for tag, properties, body in pending:
                if tag in batched:
                    self._settle(channel, tag, self.handle(body, properties))
            return
        if verdicts is None:  # stopping during an outage: all of them come back later
            for tag, _ in decoded:
                self._settle(channel, tag, Outcome.RETRIED)
            return
        for (_, received), handled in zip(decoded, verdicts, strict=True):
            self._failures.pop(str(received.envelope.id), None)
            outcome = Outcome.HANDLED if handled else Outcome.DUPLICATE
            metrics.EVENTS_CONSUMED.labels(self.name, outcome.value).inc()
        # One ack for the whole batch: every delivery up to its last tag is settled now (the
        # poison ones were nacked above). An ack per delivery, a socket write each, was a
        # quarter of the audit consumer's time at 1,000 events/s (py-spy).
        channel.basic_ack(max(tag for tag, _ in decoded), multiple=True)

    def _keep_up(self) -> None:
        """Run the upkeep; a database that is down now only puts it off (it comes due again
        at its next interval), deliveries go on."""
        if self._upkeep is None:
            return
        try:
            self._upkeep()
        except INFRASTRUCTURE_ERRORS as exc:
            log.warning("consumer %s: upkeep put off: %s", self.name, exc)

    def _waiting_out_outages(self, call: Callable[[], T]) -> T | None:
        """``call()``, retried in place with backoff while the database (or what else the
        handler stands on) is down, however long; None if the consumer is stopped meanwhile.
        An outage is not the event's fault: it spends none of its attempts."""
        delays = broker.reconnect_delays(self._settings.reconnect_max_s)
        while True:
            try:
                return call()
            except INFRASTRUCTURE_ERRORS as exc:
                if self._stop.is_set():
                    return None
                log.warning("consumer %s: %s; retrying", self.name, exc)
                self._sleep(next(delays))

    def handle(self, body: bytes, properties: BasicProperties) -> Outcome:
        """Decide one delivery's fate (the ack or nack is the caller's)."""
        try:
            envelope = decode(body)
        except PoisonMessage as exc:
            return self._poison(properties.message_id, exc)
        event_id = str(envelope.id)
        attempt = self._attempt(event_id, properties)
        received = Received(envelope, source_of(envelope.type), attempt)
        try:
            handled = self._waiting_out_outages(lambda: self._process(received))
        except PoisonMessage as exc:
            return self._poison(event_id, exc)
        except Exception as exc:
            return self._failed(event_id, attempt, exc)
        if handled is None:  # stopping during an outage
            return Outcome.RETRIED
        self._failures.pop(event_id, None)
        return Outcome.HANDLED if handled else Outcome.DUPLICATE

    def _poison(self, message_id: str | None, exc: PoisonMessage) -> Outcome:
        log.error("consumer %s: dead-lettering message %s: %s", self.name, message_id, exc)
        return Outcome.DEAD_LETTERED

    def _attempt(self, event_id: str, properties: BasicProperties) -> int:
        # Quorum queues tell how often a message was delivered before; a private classic
        # queue does not, so failures are also counted here.
        headers = properties.headers or {}
        delivered_before = headers.get("x-delivery-count", 0)
        if not isinstance(delivered_before, int):
            delivered_before = 0
        return max(delivered_before, self._failures.get(event_id, 0)) + 1

    def _failed(self, event_id: str, attempt: int, exc: Exception) -> Outcome:
        if attempt >= self._settings.max_attempts:
            log.error("consumer %s: event %s failed %d times, dead-lettering: %s",
                      self.name, event_id, attempt, exc)
            self._failures.pop(event_id, None)
            return Outcome.DEAD_LETTERED
        log.warning("consumer %s: event %s failed (attempt %d), retrying: %s",
                    self.name, event_id, attempt, exc)
        if len(self._failures) >= MAX_TRACKED_FAILURES:
            self._failures.clear()
        self._failures[event_id] = attempt
        self._sleep(min(MAX_RETRY_DELAY_S, 0.05 * 2**attempt))
        return Outcome.RETRIED


def invalidating(invalidate: Callable[[int], object]) -> Processor:
    """A processor for customer events: drop the changed customer from a look-up cache.
    Invalidating twice is harmless, so it needs no inbox."""

    def process(received: Received) -> bool:
        customer_id = received.envelope.data.get("id")
        if not isinstance(customer_id, int) or isinstance(customer_id, bool) or customer_id < 1:
            raise PoisonMessage(f"customer event without a customer id: {customer_id!r}")
        invalidate(customer_id)
        return True

    return process
