"""Write transactions for the relay's marks and a consumer's batch: on SQLite, the write lock
is asked for every millisecond instead of on SQLite's busy handler's schedule.

SQLite has one write lock per database and no queue for it. A writer that finds it taken
sleeps in SQLite's busy handler, 1, 2, 5, 10, 15, 20, 25 ... up to 100 ms between tries, and
keeps sleeping through the moments the lock is free: under a busy order service the relay
waited 54 ms and the audit consumer 79 ms at the 99th percentile (exactly those steps
added up), and every event waits on those two writes (bench/event_latency.py: commit ->
audit p99 127 ms at 300 orders/s; 21 ms with this). So these two writers, one short
transaction each, try at once and then every half millisecond (``busy_timeout`` of 1 ms per
try) until the usual deadline. Order-service writers keep SQLite's own schedule. (Since
a0001 the audit consumer writes to a database of its own, where it rarely meets another
writer; the relay's marks still share the orders database's lock.)

PostgreSQL has row locks and no such problem: there this is ``transaction(write=True)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from ordtool.store.engine import SQLITE_BUSY_TIMEOUT_MS
from ordtool.store.transactions import transaction

TRY_MS = 1  # busy_timeout of one try: SQLite's handler sleeps at most this long
PAUSE_S = 0.0005  # between tries


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """``transaction(engine, write=True)``, taking SQLite's write lock promptly."""
    if engine.dialect.name != "sqlite":
        with transaction(engine, write=True) as connection:
            yield connection
        return
    # A failure to connect is an OperationalError here (transaction() maps it to
    # DependencyUnavailable): the relay and the consumers retry both alike.
    with engine.connect() as connection:
        connection.info["write"] = True  # store.engine begins with BEGIN IMMEDIATE
        try:
            with _begun(connection):
                yield connection
        finally:
            connection.info.pop("write", None)


@contextmanager
def _begun(connection: Connection) -> Iterator[None]:
    raw = connection.connection.driver_connection
    _busy_timeout(raw, TRY_MS)
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    try:
        while True:
            try:
                begun = connection.begin()
                break
            except OperationalError as exc:
                if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                    raise
            time.sleep(PAUSE_S)
    finally:
        # Held now (or given up): the statements and COMMIT wait as usual if they must.
        _busy_timeout(raw, SQLITE_BUSY_TIMEOUT_MS)
    with begun:
        yield


def _busy_timeout(raw: Any, milliseconds: int) -> None:
    raw.execute(f"PRAGMA busy_timeout={int(milliseconds)}")
