"""The purges find their rows through an index, not by reading every retained row.

Each purge runs on a timer in a long-lived process (the relay, the order service); a scan of
hours of retained rows stalled the relay's publishing for as long as it took. The planner is
asked directly: on PostgreSQL with sequential scans priced out, so that a usable index is
taken even on a table this small.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Executable

from ordtool.bootstrap import App
from ordtool.messaging.outbox import purgeable
from ordtool.store.idempotency import expired
from ordtool.store.tables import orders_idempotency, orders_outbox

MOMENT = datetime(2026, 12, 4, tzinfo=UTC)


def plan(connection: Connection, statement: Executable) -> str:
    compiled = statement.compile(  # type: ignore[attr-defined]  # Executable: no compile()
        dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled}").scalars().all()
    else:
        rows = [row[-1] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    return "\n".join(rows)


def test_the_outbox_purge_reads_the_published_at_index(any_app: App) -> None:
    with any_app.orders_engine.begin() as connection:
        shown = plan(connection, purgeable(orders_outbox, MOMENT))
    assert "ix_outbox_published_at" in shown, shown


def test_the_idempotency_purge_reads_the_created_at_index(any_app: App) -> None:
    with any_app.orders_engine.begin() as connection:
        shown = plan(connection, expired(orders_idempotency, MOMENT, MOMENT))
    assert "ix_idempotency_keys_created_at" in shown, shown
