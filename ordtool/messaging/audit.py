"""The audit consumer and ``ordtool events verify``.

The audit queue is bound to every event type and declared before the relay's first publish,
so it receives every event published. The consumer records each one once in ``audit_events``,
counting further deliveries of the same event id, in the audit database: a database of its own,
so that on SQLite its writes never wait for the orders database's write lock. Verification
compares that record with the outboxes of both service databases:

- lost: published (confirmed by the broker) but never received: a broken guarantee;
- pending: not yet published (the relay is behind or stopped): not lost yet;
- duplicates: received more than once (at-least-once at work; the inbox dropped them).

The record is kept as long as the outboxes keep published events (``retention_hours``), plus
a margin, so verification always finds the record of every event an outbox still holds.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, insert, select, update

from ordtool.config import EventsSettings
from ordtool.domain.clock import utc_now
from ordtool.messaging.consumer import InboxProcessor, Received
from ordtool.messaging.outbox import OutboxSource, published_event_ids, unpublished_count
from ordtool.store import purge
from ordtool.store.bulk import insert_new
from ordtool.store.tables import audit_events, audit_inbox, retired_orders_audit_events
from ordtool.store.transactions import transaction
from ordtool.store.write_lock import write_transaction

log = logging.getLogger(__name__)

AUDIT_CONSUMER = "audit"
SHOWN_LOST_IDS = 20
VERIFY_POLL_S = 0.5
# The record outlives the outbox rows it is checked against: an event is received after it
# was published, and this covers clocks that differ between the relay's and this machine.
RETENTION_MARGIN = timedelta(hours=1)


def audit_processor(audit_engine: Engine) -> InboxProcessor:
    return InboxProcessor(AUDIT_CONSUMER, audit_engine, audit_inbox, _record, _count_again)


def _record(connection: Connection, batch: Sequence[Received]) -> None:
    if not batch:
        return
    now = utc_now()
    connection.execute(insert(audit_events), [
        {"event_id": str(r.envelope.id), "event_type": r.envelope.type, "source": r.source,
         "occurred_at": r.envelope.occurred_at, "received_at": now, "deliveries": 1}
        for r in batch
    ])


def _count_again(connection: Connection, batch: Sequence[Received]) -> None:
    again = Counter(str(r.envelope.id) for r in batch)
    connection.execute(
        update(audit_events)
        .where(audit_events.c.event_id == bindparam("duplicate_id"))
        .values(deliveries=audit_events.c.deliveries + bindparam("times")),
        [{"duplicate_id": event_id, "times": times} for event_id, times in again.items()],
    )


def purge_audit(audit_engine: Engine, before: datetime, max_chunks: int | None = None) -> int:
    """Forget the events received before ``before``: their audit record and their inbox rows
    together, so that a duplicate arriving later is recorded anew instead of failing on the
    record's key. Found on ``ix_audit_events_received_at``; the rows removed."""

    def remove(connection: Connection, doomed: Sequence[Any]) -> int:
        connection.execute(delete(audit_inbox).where(
            audit_inbox.c.consumer == AUDIT_CONSUMER, audit_inbox.c.event_id.in_(doomed)))
        return connection.execute(delete(audit_events).where(
            audit_events.c.event_id.in_(doomed), audit_events.c.received_at < before)).rowcount

    return purge.purge_in_chunks(audit_engine, forgettable(before), remove, max_chunks)


def move_retired_record(orders_engine: Engine, audit_engine: Engine) -> int:
    """Move what the audit consumer recorded in the orders database, before it had one of its
    own, into the audit database (with inbox rows, so a late duplicate still counts as one),
    a chunk at a time: each chunk is copied (what is there already is kept) before it is
    deleted, so a move cut short is simply run again. The rows moved."""
    retired = retired_orders_audit_events

    def move(connection: Connection, event_ids: Sequence[Any]) -> int:
        rows = [row._asdict() for row in connection.execute(
            select(retired).where(retired.c.event_id.in_(event_ids)))]
        if not rows:
            return 0
        with write_transaction(audit_engine) as audit:
            audit.execute(insert_new(audit, audit_events), rows)
            audit.execute(insert_new(audit, audit_inbox), [
                {"consumer": AUDIT_CONSUMER, "event_id": row["event_id"],
                 "received_at": row["received_at"]} for row in rows])
        return connection.execute(delete(retired).where(retired.c.event_id.in_(event_ids))).rowcount

    return purge.purge_in_chunks(orders_engine, select(retired.c.event_id), move)


def forgettable(before: datetime) -> Select[tuple[str]]:
    """The ids of the events received before ``before``."""
    return select(audit_events.c.event_id).where(audit_events.c.received_at < before)


class AuditRetention:
    """The audit consumer's upkeep: at most every ``purge_interval_s``, purge the record older
    than the outboxes' retention (plus ``RETENTION_MARGIN``). One chunk a call: the consumer
    answers its broker's heartbeats and deliveries between chunks (a first purge after an
    upgrade may have millions of rows to go), and a full chunk makes the next call due."""

    def __init__(self, audit_engine: Engine, settings: EventsSettings,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine, self._settings = audit_engine, settings
        # Due at the first call: a consumer started after a pause catches up.
        self._timer = purge.PurgeTimer(settings.purge_interval_s, monotonic)

    def __call__(self) -> int:
        if not self._timer.due():
            return 0
        cutoff = utc_now() - timedelta(hours=self._settings.retention_hours) - RETENTION_MARGIN
        purged = purge_audit(self._engine, cutoff, max_chunks=1)
        if purged >= purge.PURGE_CHUNK:
            self._timer.again_now()  # more to go: on the next turn of the consumer's loop
        if purged:
            log.info("audit: forgot %d events received before %s", purged, cutoff)
        return purged


@dataclass(slots=True)
class Reconciliation:
    published: int = 0
    received: int = 0
    pending: int = 0
    duplicates: int = 0  # events delivered more than once
    extra_deliveries: int = 0  # deliveries beyond the first, summed
    lost_ids: list[str] = field(default_factory=list)
    lost: int = 0

    @property
    def ok(self) -> bool:
        return self.lost == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "published": self.published,
            "received": self.received,
            "lost": self.lost,
            "pending": self.pending,
            "duplicates": self.duplicates,
            "extra_deliveries": self.extra_deliveries,
            "lost_ids": self.lost_ids,
            "ok": self.ok,
        }


def reconcile(
    sources: Sequence[OutboxSource], audit_engine: Engine, since: datetime | None
) -> Reconciliation:
    received = _audited(audit_engine, since)
    result = Reconciliation()
    for source in sources:
        result.pending += unpublished_count(source, since)
        for chunk in published_event_ids(source, since):
            result.published += len(chunk)
            for event_id in chunk:
                deliveries = received.get(event_id)
                if deliveries is None:
                    result.lost += 1
                    if len(result.lost_ids) < SHOWN_LOST_IDS:
                        result.lost_ids.append(event_id)
                    continue
                result.received += 1
                if deliveries > 1:
                    result.duplicates += 1
                    result.extra_deliveries += deliveries - 1
    return result


def verify(
    sources: Sequence[OutboxSource],
    audit_engine: Engine,
    since: datetime | None,
    wait_s: float,
) -> Reconciliation:
    """Reconcile; while events are missing, give the audit consumer up to ``wait_s`` seconds
    to catch up (a published event may still be in its queue)."""
    deadline = time.monotonic() + wait_s
    while True:
        result = reconcile(sources, audit_engine, since)
        if result.ok or time.monotonic() >= deadline:
            return result
        time.sleep(VERIFY_POLL_S)


def _audited(audit_engine: Engine, since: datetime | None) -> dict[str, int]:
    statement = select(audit_events.c.event_id, audit_events.c.deliveries)
    if since is not None:
        statement = statement.where(audit_events.c.occurred_at >= since)
    with transaction(audit_engine) as connection:
        return {row.event_id: row.deliveries for row in connection.execute(statement)}
