"""The ceiling for POST /orders here: a bare FastAPI route that validates a similar body and
does one SQLite insert, nothing else (no auth, no customer check, no outbox, no metrics).

Run with the same uvicorn settings as ``ordtool serve`` (one worker):
    CEILING_DB=/tmp/ceiling.db uvicorn --app-dir bench ceiling_app:create_app --factory \
        --port 8100 --no-access-log --no-proxy-headers --no-server-header

The database uses ordtool's SQLite settings (WAL, synchronous=NORMAL, BEGIN IMMEDIATE) and,
like ordtool, the route is a plain ``def`` that FastAPI runs in its thread pool, so the only
difference from the order service is the work the service does per request.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL,
    sku VARCHAR(64) NOT NULL,
    quantity INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_orders_customer_created ON orders (customer_id, created_at);
"""


class NewOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Annotated[int, Field(gt=0, le=2**63 - 1, strict=True)]
    sku: Annotated[str, Field(min_length=1, max_length=64,
                              pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")]
    quantity: Annotated[int, Field(ge=1, le=10_000, strict=True)]


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=15, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=15000")
    return connection


def create_app() -> FastAPI:
    path = os.environ.get("CEILING_DB", "ceiling.db")
    _connect(path).executescript(SCHEMA)
    local = threading.local()  # one connection per thread-pool thread, like a pool would give
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/orders", status_code=201)
    def create_order(order: NewOrder) -> dict[str, Any]:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = _connect(path)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        connection.execute("BEGIN IMMEDIATE")
        cursor = connection.execute(
            "INSERT INTO orders (customer_id, sku, quantity, status, created_at, updated_at) "
            "VALUES (?, ?, ?, 'PENDING', ?, ?)",
            (order.customer_id, order.sku, order.quantity, now, now),
        )
        connection.execute("COMMIT")
        return {"id": cursor.lastrowid, **order.model_dump(), "status": "PENDING",
                "created_at": now, "updated_at": now}

    return app
