"""The outbox relay: outbox rows -> RabbitMQ, marked published only after their confirm.

One relay process serves the outboxes of both databases over one long-lived connection.
Per outbox it must hold the lease ``relay:<outbox>`` (``lease.py``), so one relay at a time
publishes an outbox, in id order, and one aggregate's events leave in the order they were
written. A relay that holds no lease is a standby: it keeps trying and takes over when the
holder dies.

Each pass: read up to ``batch_size`` unpublished rows, publish them all with confirms in
flight, and hand the confirmed ones to the marker (``marks.py``), whose thread stamps
``published_at`` while the next pass goes on; rows confirmed and not yet stamped are left out
of what the relay reads. A crash between the confirm and the stamp sends those rows again:
delivery is at least once, and consumers drop duplicates by event id. Any failure (broker
down, a nack, a returned message, the database gone) closes the connection and retries after
a jittered backoff, forever.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import timedelta

import pika

from ordtool import metrics
from ordtool.config import EventsSettings
from ordtool.domain.clock import utc_now
from ordtool.errors import DependencyUnavailable
from ordtool.messaging import broker
from ordtool.messaging.lease import Lease
from ordtool.messaging.marks import Marker
from ordtool.messaging.outbox import (
    OutboxRow,
    OutboxSource,
    fetch_unpublished,
    purge_published,
)
from ordtool.messaging.publisher import ConfirmingPublisher, InFlight
from ordtool.messaging.topology import Topology
from ordtool.store.doorbell import Listener, bell_address, wait_for_ring
from ordtool.store.purge import PurgeTimer

log = logging.getLogger(__name__)

STANDBY_POLL_FRACTION = 0.25  # of the lease's time-to-live
# Batches sent and not yet confirmed: the next one is encoded and sent while the broker
# confirms the last, so neither side waits for the other.
WINDOW = 2
MAX_BATCHES_PER_PASS = 10  # then the other outbox gets its turn
MIN_WAIT_S = 1.0
# Confirmed rows waiting for their marks, in batches, before the relay sends no more of that
# outbox: memory stays bounded when the database refuses writes, and each pass re-reads (and
# skips) fewer pending rows. Under a burst (bench/relay_bench.py) the relay drained the
# outbox at 0.69-0.74 of the publisher's rate with 10, 0.80-0.85 with 2.
MAX_PENDING_BATCHES = 2
MARK_FLUSH_S = 5.0  # at shutdown, before the leases go: a successor resends what is unmarked
# The wait after a pass that found rows (not a full batch); it doubles with every pass in a
# row that finds nothing, up to poll_interval_s. Shorter costs CPU that the order service on
# the same 2 cores needs (a pass reads both outboxes): 2 ms used 0.3 cores at 100 orders/s,
# 5 ms 0.18, for p99 commit -> audit 12-19 ms either way (bench/event_latency.py).
FIRST_POLL_S = 0.005


class Found(enum.IntEnum):
    """What a relay pass found: nothing, some rows, or a full batch (more are waiting)."""

    NOTHING = 0
    SOME = 1
    FULL = 2


class PublishFailed(DependencyUnavailable):
    """Some events of a batch were nacked, returned or not confirmed in time."""


def holder_id() -> str:
    """Who holds a lease: readable in ``ordtool events status``, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Relay:
    def __init__(
        self,
        sources: Sequence[OutboxSource],
        params: pika.URLParameters,
        topology: Topology,
        settings: EventsSettings,
        holder: str | None = None,
    ) -> None:
        self.holder = holder or holder_id()
        self._sources = list(sources)
        self._params = params
        self._topology = topology
        self._settings = settings
        self._publisher = ConfirmingPublisher(params, topology.exchange)
        self._leases = {
            s.name: Lease(s.engine, s.leases, s.lease_name, self.holder, settings.lease_ttl_s)
            for s in self._sources
        }
        self._purges = {s.name: PurgeTimer(settings.purge_interval_s) for s in self._sources}
        # Rung by the outbox's writers after each commit (store.doorbell), where it has one.
        self._bells = {s.name: Listener(bell_address(s.engine.url)) for s in self._sources}
        # monotonic time before which an outbox found empty is read only if its bell rang
        self._quiet_until = dict.fromkeys(self._bells, 0.0)
        self._markers = {s.name: Marker(s) for s in self._sources}

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; then finish the batch in hand, give the leases up (a
        standby takes over at once) and close the connection."""
        delays = self._delays()
        empty_polls = 0
        try:
            while not stop.is_set():
                try:
                    found = self.step()
                except broker.TRANSIENT_ERRORS as exc:
                    log.warning("relay: %s; retrying", exc)
                    # Let a standby that can reach the broker (or database) take over now.
                    self.shutdown()
                    stop.wait(next(delays))
                    continue
                delays = self._delays()
                if found is Found.FULL:
                    continue  # a backlog: straight on
                empty_polls = 0 if found else empty_polls + 1
                # While events keep coming the relay keeps its cadence: waking at every
                # commit made the passes back to back, 0.06 cores more at 500 orders/s for no
                # lower latency. A bell ends the longer waits of an outbox gone quiet.
                self._wait(stop, self._idle_seconds(empty_polls), bells=empty_polls > 0)
        finally:
            self.shutdown()
            for marker in self._markers.values():
                marker.close(MARK_FLUSH_S)

    def step(self) -> Found:
        """One pass over the outboxes whose lease this relay holds: what it found (falsy when
        nothing)."""
        held = [s for s in self._sources if self._leases[s.name].hold()]
        rung = self._answer_bells(held)
        if held:
            self._ensure_open()
        found = Found.NOTHING
        for source in held:
            if not self._quiet(source, rung):
                found = max(found, self._relay_and_note(source))
            self._purge_when_due(source)
        return found

    def _quiet(self, source: OutboxSource, rung: set[str]) -> bool:
        """An outbox with a bell that was empty at its last read and has not rung since is
        left alone for up to ``poll_interval_s`` (a read per pass of a quiet outbox, the
        customers' while orders stream in, was a good part of the relay's CPU)."""
        return (
            self._bells[source.name].bound
            and source.name not in rung
            and time.monotonic() < self._quiet_until[source.name]
        )

    def _relay_and_note(self, source: OutboxSource) -> Found:
        found = self._relay(source, self._leases[source.name])
        rest = 0.0 if found else self._settings.poll_interval_s
        self._quiet_until[source.name] = time.monotonic() + rest
        return found

    def shutdown(self) -> None:
        self._publisher.close()
        self._answer_bells([])
        flushed = [marker.flush(MARK_FLUSH_S) for marker in self._markers.values()]
        if not all(flushed):
            log.warning("relay: some confirmed events are not marked yet; a successor may "
                        "send them again (consumers drop the duplicates)")
        for lease in self._leases.values():
            if lease.remaining() > 0:
                try:
                    lease.release()
                except broker.TRANSIENT_ERRORS as exc:  # the lease then simply expires
                    log.warning("relay: could not release %s: %s", lease.name, exc)

    def _answer_bells(self, held: Sequence[OutboxSource]) -> set[str]:
        """Listen to the bells of the outboxes this relay holds, and only those (a successor
        must be able to take a bell over); the rings so far are answered by this pass. The
        outboxes whose bell rang since the last pass."""
        rung: set[str] = set()
        for source in self._sources:
            bell = self._bells[source.name]
            if source in held:
                bell.bind()
                if bell.take_rings():
                    rung.add(source.name)
            else:
                bell.close()
        return rung

    def _relay(self, source: OutboxSource, lease: Lease) -> Found:
        """Publish up to ``MAX_BATCHES_PER_PASS`` batches of this outbox, the next batch sent
        while the broker confirms the previous one."""
        if self._publisher.blocked:
            return Found.NOTHING  # the broker asked publishers to wait (resource alarm)
        size = self._settings.batch_size
        in_flight: deque[tuple[list[OutboxRow], InFlight]] = deque()
        after_id, batches, more, failed = 0, 0, True, 0
        while True:
            if more and batches < MAX_BATCHES_PER_PASS and len(in_flight) < WINDOW:
                rows, more = self._unsent(source, lease, size, after_id)
                if batches == 0:
                    metrics.OUTBOX_BACKLOG.labels(source.name).set(len(rows))
                if rows:
                    outgoing = [row.outgoing() for row in rows]
                    in_flight.append((rows, self._publisher.send(outgoing)))
                    after_id, batches = rows[-1].id, batches + 1
                    continue
            if not in_flight:
                break
            failed += self._settle(source, *in_flight.popleft(), lease)
        if failed:
            metrics.EVENTS_PUBLISH_FAILURES.labels(source.name).inc(failed)
            raise PublishFailed(
                f"{failed} {source.name} events were not confirmed "
                "(nacked, returned as unroutable, or the connection failed)"
            )
        if more:
            return Found.FULL
        return Found.SOME if batches else Found.NOTHING

    def _unsent(
        self, source: OutboxSource, lease: Lease, size: int, after_id: int
    ) -> tuple[list[OutboxRow], bool]:
        """Up to ``size`` unpublished rows after ``after_id`` that are not pending a mark, and
        whether more may be waiting; none once the lease is lost."""
        if not lease.hold():
            return [], False
        pending = self._markers[source.name].pending()
        if len(pending) >= MAX_PENDING_BATCHES * size:
            return [], False  # the marks are stuck: wait for them before sending more
        limit = size + len(pending)
        rows = fetch_unpublished(source, limit, after_id)
        unsent = [row for row in rows if row.id not in pending]
        return unsent[:size], len(rows) == limit or len(unsent) > size

    def _settle(self, source: OutboxSource, rows: list[OutboxRow], batch: InFlight,
                lease: Lease) -> int:
        """Wait for a batch's confirms, hand the confirmed rows to the marker; return how
        many failed."""
        # Never wait for confirms long past the lease: a successor may be publishing by then.
        timeout = min(self._settings.confirm_timeout_s, max(lease.remaining(), MIN_WAIT_S))
        verdicts = self._publisher.settle(batch, timeout)
        confirmed = [row.id for row, ok in zip(rows, verdicts, strict=True) if ok]
        if confirmed:
            self._markers[source.name].add(confirmed, utc_now())
            metrics.EVENTS_PUBLISHED.labels(source.name).inc(len(confirmed))
        return len(rows) - len(confirmed)

    def _ensure_open(self) -> None:
        if self._publisher.is_open:
            return
        # The audit queue exists before the first publish: nothing is published unkept.
        with broker.blocking_channel(self._params) as channel:
            self._topology.declare(channel)
        self._publisher.open(self._settings.connect_timeout_s)
        metrics.RELAY_CONNECTS.inc()
        log.info("relay %s: connected to the broker", self.holder)

    def _purge_when_due(self, source: OutboxSource) -> None:
        if not self._purges[source.name].due():
            return
        cutoff = utc_now() - timedelta(hours=self._settings.retention_hours)
        purged = purge_published(source, cutoff)
        if purged:
            log.info("relay: purged %d %s events published before %s", purged, source.name,
                     cutoff)

    def _idle_seconds(self, empty_polls: int) -> float:
        """The wait before the next pass, after ``empty_polls`` passes in a row found nothing:
        short while events are coming (an event committed now goes out within a few ms, and
        the next pass carries what came meanwhile), doubling up to ``poll_interval_s`` while
        the outbox stays empty, so that an idle relay costs little."""
        if any(lease.remaining() > 0 for lease in self._leases.values()):
            first = min(FIRST_POLL_S, self._settings.poll_interval_s)
            return min(self._settings.poll_interval_s, first * 2.0 ** min(empty_polls, 16))
        return self._settings.lease_ttl_s * STANDBY_POLL_FRACTION

    def _wait(self, stop: threading.Event, seconds: float, *, bells: bool = True) -> None:
        """Wait, answering the broker's heartbeats when connected; return early on stop or,
        with ``bells``, when a bell rings (events were committed)."""
        listening = [bell for bell in self._bells.values() if bell.bound] if bells else []
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            slice_s = min(remaining, 0.25)
            if self._publisher.is_open:
                rung = self._publisher.idle(slice_s, wake=listening)
            elif listening:
                rung = wait_for_ring(listening, slice_s)
            else:
                rung = stop.wait(slice_s)
            if rung:
                return

    def _delays(self) -> Iterator[float]:
        return broker.reconnect_delays(self._settings.reconnect_max_s)
