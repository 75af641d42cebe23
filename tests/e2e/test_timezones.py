"""Timestamps written by a process in one time zone and read by a process in another are the
same instant and print with ``Z``, on SQLite and on PostgreSQL (whose sessions take their zone
from PGTZ)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from ordtool.config import Settings
from tests.processes import ok_json, ordtool_env

TOKYO = {"TZ": "Asia/Tokyo", "PGTZ": "Asia/Tokyo"}
LOS_ANGELES = {"TZ": "America/Los_Angeles", "PGTZ": "America/Los_Angeles"}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Settings:
    fixture = "settings" if request.param == "sqlite" else "pg_settings"
    settings: Settings = request.getfixturevalue(fixture)
    return settings


def parse_z(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp)


def test_written_in_tokyo_read_in_los_angeles(backend: Settings) -> None:
    tokyo, los_angeles = ordtool_env(backend, **TOKYO), ordtool_env(backend, **LOS_ANGELES)
    started = datetime.now(UTC)
    customer = ok_json(
        ["customers", "create", "--name", "Tomo", "--email", "tomo@example.jp", "--address", "1"],
        tokyo,
    )
    order = ok_json(
        [
            "orders",
            "create",
            "--customer-id",
            str(customer["id"]),
            "--sku",
            "TZ-1",
            "--quantity",
            "1",
        ],
        tokyo,
    )
    shown = ok_json(["orders", "show", str(order["id"])], los_angeles)
    assert shown == order
    assert ok_json(["customers", "show", str(customer["id"])], los_angeles) == customer

    created = parse_z(order["created_at"])
    # Local Tokyo or Los Angeles time labelled as UTC would be 8 or 9 hours off.
    assert abs(created - started) < timedelta(minutes=10)

    # The filters read the same instant whatever offset the operator types it in.
    as_tokyo = created.astimezone(ZoneInfo("Asia/Tokyo")).isoformat()
    assert as_tokyo.endswith("+09:00")
    listed = ok_json(["orders", "list", "--since", as_tokyo], los_angeles)
    assert [o["id"] for o in listed["items"]] == [order["id"]]

    assert stored_created_at(backend, order["id"]) == created


def stored_created_at(settings: Settings, order_id: int) -> datetime:
    """What the database itself holds, read without ordtool's column type."""
    if settings.orders_database_url is None:
        with sqlite3.connect(settings.data_dir / "orders.db") as connection:
            [raw] = connection.execute(
                "SELECT created_at FROM orders WHERE id = ?", (order_id,)
            ).fetchone()
        # SQLite keeps no zone: the text must be UTC wall-clock time, not the writer's.
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    engine = create_engine(settings.orders_database_url.get_secret_value())
    try:
        with engine.connect() as connection:
            connection.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
            value: Any = connection.execute(
                text("SELECT created_at FROM orders WHERE id = :id"), {"id": order_id}
            ).scalar_one()
    finally:
        engine.dispose()
    assert value.utcoffset() == timedelta(hours=9)  # timestamptz, shown in the session's zone
    return value.astimezone(UTC)
