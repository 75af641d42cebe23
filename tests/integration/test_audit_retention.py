"""The audit consumer forgets what it received before the retention: its record and its inbox
rows together, a chunk at a time, on its own as it consumes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, insert, select

from ordtool.bootstrap import App
from ordtool.messaging import audit
from ordtool.messaging.audit import AUDIT_CONSUMER, RETENTION_MARGIN, AuditRetention
from ordtool.store import purge
from ordtool.store.tables import audit_events, audit_inbox
from tests.integration.test_messaging_support import (
    audit_rows,
    events_app_fixture,  # noqa: F401
    publish_raw,
    ready,
    vhost_fixture,  # noqa: F401
    wait_until,
)
from tests.integration.test_purge_plans import plan

pytestmark = pytest.mark.timeout(120)


def received(engine: Engine, hours_ago: float, count: int) -> list[str]:
    """``count`` events the audit consumer recorded ``hours_ago``, as it would have."""
    moment = datetime.now(UTC) - timedelta(hours=hours_ago)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with engine.begin() as connection:
        connection.execute(insert(audit_inbox), [
            {"consumer": AUDIT_CONSUMER, "event_id": event_id, "received_at": moment}
            for event_id in ids])
        connection.execute(insert(audit_events), [
            {"event_id": event_id, "event_type": "order.created", "source": "orders",
             "occurred_at": moment, "received_at": moment, "deliveries": 1}
            for event_id in ids])
    return ids


def inbox_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(audit_inbox.c.event_id)).scalars())


def test_the_record_older_than_the_retention_goes_with_its_inbox_rows(any_app: App) -> None:
    engine, events = any_app.audit_engine, any_app.settings.events
    beyond = events.retention_hours + RETENTION_MARGIN.total_seconds() / 3600
    old = received(engine, beyond + 1, 3)
    kept = received(engine, beyond - 0.5, 2)  # within the margin: the outbox may still hold it
    assert AuditRetention(engine, events)() == 3
    assert set(audit_rows(any_app)) == set(kept) == inbox_ids(engine)
    assert not set(old) & inbox_ids(engine)


def test_a_backlog_is_purged_a_chunk_a_call_and_then_only_when_due(
    any_app: App, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(purge, "PURGE_CHUNK", 2)
    engine, events = any_app.audit_engine, any_app.settings.events
    received(engine, events.retention_hours + 2, 5)
    clock = [1000.0]
    retention = AuditRetention(engine, events, monotonic=lambda: clock[0])
    assert [retention(), retention(), retention()] == [2, 2, 1]  # full chunks: due again
    received(engine, events.retention_hours + 2, 1)
    assert retention() == 0  # the backlog is done: not before purge_interval_s
    clock[0] += events.purge_interval_s
    assert retention() == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(audit_events)).scalar() == 0


def test_the_purge_reads_the_received_at_index(any_app: App) -> None:
    with any_app.audit_engine.begin() as connection:
        shown = plan(connection, audit.forgettable(datetime(2026, 12, 4, tzinfo=UTC)))
    assert "ix_audit_events_received_at" in shown, shown


def test_the_running_audit_consumer_purges_and_records_a_late_duplicate_anew(
    events_app: App,
) -> None:
    app = events_app
    engine = app.audit_engine
    (old,) = received(engine, app.settings.events.retention_hours + 2, 1)
    body = json.dumps({"id": old, "type": "order.created", "version": 1,
                       "occurred_at": "2026-12-01T10:00:00Z", "correlation_id": None,
                       "data": {"id": 7}}).encode()
    with ready(app.events.audit_consumer()):
        wait_until(lambda: old not in audit_rows(app), 20, "the old record to be purged")
        publish_raw(app, "order.created", body, old)  # the same event, delivered again late
        wait_until(lambda: audit_rows(app).get(old) == 1, 20, "the late delivery recorded")
    assert old in inbox_ids(engine)
