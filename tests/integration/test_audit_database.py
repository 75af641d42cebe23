"""The audit record has a database of its own; what the orders database recorded before that is
moved there by `ordtool db upgrade`."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, insert, select

from ordtool.bootstrap import App
from ordtool.config import Settings
from ordtool.messaging.audit import AUDIT_CONSUMER, move_retired_record
from ordtool.store import purge
from ordtool.store.tables import (
    audit_events,
    audit_inbox,
    orders_outbox,
    retired_orders_audit_events,
)
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


def test_an_embedded_install_from_before_the_audit_database_verifies_clean(
    settings: Settings,
) -> None:
    """Upgraded in place on SQLite, nobody runs `ordtool db upgrade`: the orders database is
    already current and the audit database is created on first use. Its first use must take
    over the old record, or `events verify` calls every earlier event lost."""
    before = App(settings)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    _published(before.orders_engine, ids)
    _record(before.orders_engine, retired_orders_audit_events, ids)
    before.close()
    assert not (settings.data_dir / "audit.db").exists()

    result = run_ordtool(["events", "verify", "--wait", "0", "--json"], ordtool_env(settings))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["published"], report["received"], report["lost"]) == (3, 3, 0)


def _published(engine: Engine, ids: list[str]) -> None:
    moment = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as connection:
        connection.execute(insert(orders_outbox), [
            {"event_id": event_id, "event_type": "order.created", "aggregate_id": number,
             "payload": "{}", "occurred_at": moment, "published_at": moment}
            for number, event_id in enumerate(ids, start=1)])


def test_an_orders_database_out_of_reach_leaves_the_audit_record_usable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The audit consumer needs the orders database only for the move: one it cannot reach
    leaves the move for later (with the command that does it) and the consumer working."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    unreachable = settings.model_copy(update={
        "orders_database_url": SecretStr(f"postgresql://ordtool:s3cret@127.0.0.1:{closed}/x")})
    app = App(unreachable)
    try:
        with caplog.at_level(logging.WARNING, logger="ordtool.bootstrap"):
            assert _rows(app.audit_engine, audit_events) == {}
    finally:
        app.close()
    assert "run: ordtool db upgrade" in caplog.text
    assert "s3cret" not in caplog.text
