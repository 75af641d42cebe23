"""A live feed of order events for displays: the live page's hub and ``ordtool orders watch``.

Two sources behind one small interface, chosen by the settings:

- ``BrokerFeed`` (``amqp_url`` set): a private, exclusive, auto-delete queue bound to
  ``order.*`` on the events exchange, so every order-service replica and every terminal gets
  every event, whichever process wrote it.
- ``OutboxFeed`` (no broker): follows the orders database's outbox table by id, every 200 ms.
  Reading a table by its primary key is cheap, and it sees orders placed by the CLI as well.

Both run in a daemon thread and hand each envelope (a dict, as in ``domain/events.py``) to a
sink callable *in that thread*; the caller moves it where it needs it (an asyncio loop, a queue).
A display upserts rows by order id, so an event seen twice (at-least-once delivery) is harmless;
an event missed while the source was down is made good by the display reloading.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal, Protocol

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from ordtool.errors import DependencyUnavailable
from ordtool.messaging.consumer import Consumer, QueueSpec, Received
from ordtool.messaging.runtime import Events
from ordtool.store.tables import orders_outbox

log = logging.getLogger(__name__)

Envelope = dict[str, Any]
Sink = Callable[[Envelope], None]
FeedMode = Literal["broker", "outbox"]

ORDER_EVENTS_BINDING = "order.*"
POLL_INTERVAL_S = 0.2
POLL_BATCH = 500
# An id below the highest one seen may still commit later (PostgreSQL hands out ids at insert,
# transactions commit in any order); such gaps are re-read for this long before being given up
# (a rolled-back transaction leaves a gap for good).
GAP_WAIT_S = 10.0
MAX_GAPS = 1_000


class Feed(Protocol):
    mode: FeedMode

    @property
    def connected(self) -> bool:
        """Is the source reachable right now (the broker connection is up, the last poll
        worked)?"""
        ...

    def start(self, sink: Sink) -> None: ...

    def stop(self) -> None: ...


class OutboxCursor:
    """Which outbox ids to read next: everything above ``last``, plus recent gaps below it.

    Pure bookkeeping (no I/O), so its rules are unit-tested on their own.
    """

    def __init__(self, last: int) -> None:
        self.last = last
        self.gaps: dict[int, float] = {}  # missing id -> give up on it at this monotonic time

    def advance(self, ids: Iterable[int], now: float) -> None:
        for row_id in ids:
            if self.gaps.pop(row_id, None) is not None or row_id <= self.last:
                continue
            first_missing = max(self.last + 1, row_id - MAX_GAPS)
            for missing in range(first_missing, row_id):
                self.gaps[missing] = now + GAP_WAIT_S
            self.last = row_id
        self._expire(now)

    def _expire(self, now: float) -> None:
        for row_id in [i for i, deadline in self.gaps.items() if deadline <= now]:
            del self.gaps[row_id]
        while len(self.gaps) > MAX_GAPS:
            del self.gaps[min(self.gaps)]


class OutboxFeed:
    mode: FeedMode = "outbox"

    def __init__(
        self, engine: Callable[[], Engine], poll_interval_s: float = POLL_INTERVAL_S
    ) -> None:
        self._engine = engine  # asked for on each poll: the database may not be up yet
        self._interval = poll_interval_s
        self._cursor: OutboxCursor | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self, sink: Sink) -> None:
        assert self._thread is None, "a feed starts once"
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name="ordtool-outbox-feed", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, sink: Sink) -> None:
        while True:
            try:
                self._poll(sink)
                self._connected = True
            except (SQLAlchemyError, DependencyUnavailable) as exc:
                if self._connected:
                    log.warning("live feed: cannot read the outbox: %s", type(exc).__name__)
                self._connected = False
            if self._stopping.wait(self._interval):
                return

    def _poll(self, sink: Sink) -> None:
        with self._engine().connect() as connection:
            if self._cursor is None:
                # Start at the present: a display loads its first rows on its own.
                newest = connection.execute(select(func.max(orders_outbox.c.id))).scalar()
                self._cursor = OutboxCursor(newest or 0)
                return
            cursor = self._cursor
            wanted = orders_outbox.c.id > cursor.last
            if cursor.gaps:
                wanted = or_(wanted, orders_outbox.c.id.in_(sorted(cursor.gaps)))
            rows = connection.execute(
                select(orders_outbox.c.id, orders_outbox.c.event_type, orders_outbox.c.payload)
                .where(wanted)
                .order_by(orders_outbox.c.id)
                .limit(POLL_BATCH)
            ).all()
        cursor.advance((row.id for row in rows), time.monotonic())
        for row in rows:
            if row.event_type.startswith("order."):
                _deliver(sink, row.payload)


class BrokerFeed:
    """A private queue bound to ``order.*``, through the events consumer building block
    (topology declared, reconnects with backoff forever, undecodable messages dead-lettered)."""

    mode: FeedMode = "broker"

    def __init__(self, events: Events, name: str = "live") -> None:
        self._events = events
        self._name = name
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        consumer = self._consumer
        return consumer is not None and consumer.ready.is_set() and not self._stopping.is_set()

    def start(self, sink: Sink) -> None:
        assert self._consumer is None, "a feed starts once"

        def show(received: Received) -> bool:
            sink(received.envelope.model_dump(mode="json"))
            return True

        self._consumer = self._events.consumer(
            self._name, QueueSpec((ORDER_EVENTS_BINDING,)), show
        )
        self._thread = self._events.start(self._consumer, self._stopping)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _deliver(sink: Sink, payload: str | bytes) -> None:
    try:
        envelope = json.loads(payload)
    except ValueError:
        log.warning("live feed: dropped an outbox row that is not JSON")
        return
    if isinstance(envelope, dict) and isinstance(envelope.get("data"), dict):
        sink(envelope)
    else:
        log.warning("live feed: dropped an outbox row without an envelope")
