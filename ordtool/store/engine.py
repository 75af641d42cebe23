"""Engines for the embedded SQLite default and for PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL

from ordtool.errors import ConfigurationError

SQLITE_BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed)
    raise ConfigurationError(
        f"unsupported database {parsed.get_backend_name()!r}",
        hint="use a postgresql:// URL or leave the URL unset for SQLite in ORDTOOL_DATA_DIR",
    )


def _postgres_engine(url: URL) -> Engine:
    # psycopg 3 is the only PostgreSQL driver ordtool ships.
    return create_engine(
        url.set(drivername="postgresql+psycopg"),
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
    )


def _sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:":
        _ensure_writable_dir(Path(url.database).parent)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN, so writers can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; synchronous=NORMAL in WAL loses nothing when the
    # process crashes (only an OS crash or power cut can drop the last commits).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_sqlite_transaction(connection: Any) -> None:
    # A write transaction that starts deferred and upgrades later can fail at once with
    # SQLITE_BUSY under concurrency; BEGIN IMMEDIATE waits for the lock (busy_timeout) instead.
    mode = "BEGIN IMMEDIATE" if connection.info.get("write") else "BEGIN"
    connection.exec_driver_sql(mode)


def _ensure_writable_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # os.access trusts permission bits, which root passes everywhere; only creating a file
        # also catches /proc, /sys and read-only mounts.
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise _unwritable(directory, exc.strerror) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _unwritable(directory, "permission denied")


def _unwritable(directory: Path, reason: str | None) -> ConfigurationError:
    return ConfigurationError(
        f"cannot write the database directory {directory}: {reason}",
        hint="set ORDTOOL_DATA_DIR to a writable directory",
    )
