"""Consumers that handle the deliveries arriving together in one transaction (the audit
consumer): every event still recorded once, duplicates counted, a bad event retried alone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import event

from ordtool.bootstrap import App
from ordtool.messaging import broker
from ordtool.messaging.consumer import QueueSpec, Received
from tests.integration.test_messaging_support import (
    Recorder,
    audit_rows,
    declare_topology,
    events_app_fixture,  # noqa: F401
    publish_raw,
    queue_depth,
    ready,
    vhost_fixture,  # noqa: F401
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def an_envelope(order_id: int) -> tuple[str, bytes]:
    event_id = str(uuid.uuid4())
    return event_id, json.dumps({
        "id": event_id, "type": "order.created", "version": 1,
        "occurred_at": "2026-12-01T10:00:00Z", "correlation_id": None,
        "data": {"id": order_id},
    }).encode()


def test_audit_records_a_burst_in_few_transactions(events_app: App) -> None:
    app = events_app
    declare_topology(app)  # the audit queue keeps what is published before the consumer runs
    published = [an_envelope(i) for i in range(40)]
    for event_id, body in published:
        publish_raw(app, "order.created", body, event_id)
    twice_id, twice_body = published[7]
    publish_raw(app, "order.created", twice_body, twice_id)  # a re-sent duplicate
    publish_raw(app, "order.created", b"not an event", "poison")
    commits: list[int] = []
    event.listen(app.orders_engine, "commit", lambda _connection: commits.append(1))
    with ready(app.events.audit_consumer()):
        wait_until(lambda: sum(audit_rows(app).values()) == 41, 30, "41 deliveries audited")
        dead = app.events.topology.dead_letter_queue
        wait_until(lambda: queue_depth(app, dead) == 1, 20, "the poison message dead-lettered")
    expected = {event_id: 1 for event_id, _ in published} | {twice_id: 2}
    assert audit_rows(app) == expected
    # One transaction per event would be 41 commits; the burst came in a few batches.
    assert len(commits) <= 10
    assert queue_depth(app, app.events.topology.audit_queue) == 0  # all acked


def test_a_failing_event_in_a_batch_is_retried_alone(events_app: App) -> None:
    app = events_app
    topology = app.events.topology
    queue = QueueSpec(("order.#",), topology.queue_for("batched"))
    declare_topology(app)
    with broker.blocking_channel(app.events.params("test-setup")) as channel:
        topology.declare_queue(channel, queue.name or "", queue.patterns)
    bad_order = 13
    for order_id in (1, 2, bad_order, 4, 5):
        publish_raw(app, "order.created", an_envelope(order_id)[1])
    batches: list[list[int]] = []
    one_by_one = Recorder()
    bad_attempts: list[int] = []

    def broken_on_13(received: Received) -> bool:
        if received.envelope.data["id"] == bad_order:
            bad_attempts.append(received.attempt)
            raise RuntimeError("handler bug")
        return one_by_one(received)

    def all_or_nothing(received: Sequence[Received]) -> list[bool]:
        """A batch in one transaction: one bad event and none of it happened."""
        ids = [r.envelope.data["id"] for r in received]
        batches.append(ids)
        if bad_order in ids:
            raise RuntimeError("handler bug")
        return [one_by_one(r) for r in received]

    with ready(app.events.consumer("batched", queue, broken_on_13, all_or_nothing)):
        wait_until(lambda: queue_depth(app, topology.dead_letter_queue) == 1, 30,
                   "the bad event dead-lettered")
    assert max(len(b) for b in batches) > 1  # they did arrive together
    # The others handled once each, never held back or dead-lettered with the bad one; the
    # bad one retried on its own until its attempts were spent.
    assert sorted(r.envelope.data["id"] for r in one_by_one.received) == [1, 2, 4, 5]
    assert bad_attempts == list(range(1, app.settings.events.max_attempts + 1))
    assert queue_depth(app, queue.name or "") == 0
