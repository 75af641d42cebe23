"""Retention purges that do not stall writers: the rows are found by a read (on an index by
time, outside any write lock) and deleted by key in a short write transaction, a chunk at a
time. On SQLite the order service waits for every write lock held, so a purge holds it for
one chunk's delete only, and a purge that finds nothing takes no lock at all.

``PurgeTimer`` says when a long-running process (the relay, the audit consumer) purges next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select

from ordtool.store.transactions import transaction
from ordtool.store.write_lock import write_transaction

PURGE_CHUNK = 5_000  # keys a delete names: below SQLite's and psycopg's parameter bounds


def purge_in_chunks(
    engine: Engine,
    find: Select[Any],
    remove: Callable[[Connection, Sequence[Any]], int],
    max_chunks: int | None = None,
) -> int:
    """Read up to ``PURGE_CHUNK`` keys with ``find`` and ``remove`` them, until a read finds
    fewer (or ``max_chunks`` were removed); the rows removed."""
    chunk = PURGE_CHUNK
    purged, chunks = 0, 0
    while max_chunks is None or chunks < max_chunks:
        with transaction(engine) as connection:
            doomed = list(connection.execute(find.limit(chunk)).scalars())
        if not doomed:
            break
        with write_transaction(engine) as connection:
            purged += remove(connection, doomed)
        chunks += 1
        if len(doomed) < chunk:
            break
    return purged


class PurgeTimer:
    """Due at the first ask, then every ``interval_s``; ``again_now`` after a purge that left
    rows behind (it stopped at its chunk bound)."""

    def __init__(self, interval_s: float, monotonic: Callable[[], float] = time.monotonic):
        self._interval_s, self._monotonic = interval_s, monotonic
        self._next = 0.0

    def due(self) -> bool:
        now = self._monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval_s
        return True

    def again_now(self) -> None:
        self._next = 0.0
