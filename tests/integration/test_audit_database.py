"""The audit record has a database of its own; what the orders database recorded before that is
moved there by `ordtool db upgrade`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.messaging.audit import AUDIT_CONSUMER, move_retired_record
from ordtool.store import purge
from ordtool.store.tables import audit_events, audit_inbox, retired_orders_audit_events
from tests.processes import ordtool_env, run_ordtool


def _record(engine: Engine, table: object, ids: list[str], deliveries: int = 1) -> None:
    moment = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as connection:
        connection.execute(insert(table), [  # type: ignore[arg-type]
            {"event_id": event_id, "event_type": "order.created", "source": "orders",
             "occurred_at": moment, "received_at": moment, "deliveries": deliveries}
            for event_id in ids])


def _rows(engine: Engine, table: object) -> dict[str, int]:
    with engine.connect() as connection:
        found = connection.execute(select(table.c.event_id, table.c.deliveries))  # type: ignore[attr-defined]
        return {row.event_id: row.deliveries for row in found}


def test_the_retired_record_moves_to_the_audit_database_once(
    any_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(purge, "PURGE_CHUNK", 2)  # several chunks
    orders, audit = any_app.orders_engine, any_app.audit_engine
    old = [str(uuid.uuid4()) for _ in range(5)]
    _record(orders, retired_orders_audit_events, old, deliveries=2)
    _record(audit, audit_events, old[:1], deliveries=3)  # moved once already, then cut short

    assert move_retired_record(orders, audit) == 5
    assert _rows(orders, retired_orders_audit_events) == {}
    assert _rows(audit, audit_events) == {old[0]: 3} | dict.fromkeys(old[1:], 2)
    with audit.connect() as connection:
        inbox = set(connection.execute(
            select(audit_inbox.c.event_id).where(audit_inbox.c.consumer == AUDIT_CONSUMER)
        ).scalars())
    assert inbox == set(old)
    assert move_retired_record(orders, audit) == 0


def test_db_upgrade_moves_the_retired_record_and_says_so(settings: Settings) -> None:
    app = App(settings)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    _record(app.orders_engine, retired_orders_audit_events, ids)
    app.close()
    result = run_ordtool(["db", "upgrade"], ordtool_env(settings))
    assert result.returncode == 0, result.stderr
    assert "moved 3 audit records" in result.stderr
    again = App(settings)
    try:
        assert set(_rows(again.audit_engine, audit_events)) == set(ids)
    finally:
        again.close()
