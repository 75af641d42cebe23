"""Retention purges that do not stall writers: the rows are found by a read (on an index by
time, outside any write lock) and deleted by key in a short write transaction, a chunk at a
time. On SQLite the order service waits for every write lock held, so a purge holds it for
one chunk's delete only, and a purge that finds nothing takes no lock at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Select

from ordtool.store.transactions import transaction
from ordtool.store.write_lock import write_transaction


def purge_in_chunks(
    engine: Engine,
    find: Select[Any],
    remove: Callable[[Connection, Sequence[Any]], int],
    chunk: int,
    max_chunks: int | None = None,
) -> int:
    """Run ``find`` (it returns up to ``chunk`` keys) and ``remove`` the keys it found until
    it finds fewer than ``chunk`` (or ``max_chunks`` were removed); the rows removed."""
    purged, chunks = 0, 0
    while max_chunks is None or chunks < max_chunks:
        with transaction(engine) as connection:
            doomed = list(connection.execute(find).scalars())
        if not doomed:
            break
        with write_transaction(engine) as connection:
            purged += remove(connection, doomed)
        chunks += 1
        if len(doomed) < chunk:
            break
    return purged
