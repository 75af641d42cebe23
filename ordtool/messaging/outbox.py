"""The relay's queries over an outbox table (``store.tables._outbox``).

Rows are read in id order and marked by their ids, never by an id range: on PostgreSQL an id
can commit after a higher one, so a range could mark a row nobody published.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    Table,
    any_,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from ordtool.domain.chunks import batched
from ordtool.messaging.codec import Source
from ordtool.messaging.publisher import Outgoing
from ordtool.store.purge import purge_in_chunks
from ordtool.store.transactions import transaction
from ordtool.store.write_lock import write_transaction

ID_CHUNK = 5_000  # below SQLite's and psycopg's bound-parameter limits


@dataclass(frozen=True, slots=True)
class OutboxSource:
    name: Source
    engine: Engine
    outbox: Table
    leases: Table

    @property
    def lease_name(self) -> str:
        return f"relay:{self.name}"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: str
    event_type: str
    payload: str

    def outgoing(self) -> Outgoing:
        return Outgoing(self.event_id, self.event_type, self.payload.encode())


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    source: Source
    backlog: int
    oldest_unpublished: datetime | None
    last_published: datetime | None
    retained: int


def _columns(table: Table) -> list[ColumnElement[Any]]:
    c = table.c
    return [c.id, c.event_id, c.event_type, c.payload]


def fetch_unpublished(source: OutboxSource, limit: int, after_id: int = 0) -> list[OutboxRow]:
    """Unpublished rows in id order, after ``after_id`` (the last one already sent)."""
    statement = _unpublished_after(source.outbox)
    with transaction(source.engine) as connection:
        found = connection.execute(statement, {"after_id": after_id, "row_limit": limit})
        return [OutboxRow(*row) for row in found]


@cache
def _unpublished_after(table: Table) -> Select[Any]:
    """The relay's read, built once per table: it runs a few hundred times a second, and
    building the statement and its cache key anew each time was a third of the relay's CPU
    in that read (py-spy at 1,000 orders/s)."""
    return (
        select(*_columns(table))
        .where(table.c.published_at.is_(None))
        .where(table.c.id > bindparam("after_id"))
        .order_by(table.c.id)
        .limit(bindparam("row_limit", type_=Integer))
    )


def fetch_published(
    source: OutboxSource, since: datetime, after_id: int, limit: int
) -> list[OutboxRow]:
    """Published rows that occurred at or after ``since``, in id order after ``after_id``
    (what ``ordtool events replay`` sends again)."""
    table = source.outbox
    statement = (
        select(*_columns(table))
        .where(table.c.published_at.is_not(None))
        .where(table.c.occurred_at >= since)
        .where(table.c.id > after_id)
        .order_by(table.c.id)
        .limit(limit)
    )
    with transaction(source.engine) as connection:
        return [OutboxRow(*row) for row in connection.execute(statement)]


def mark_published(
    source: OutboxSource, batches: Sequence[tuple[Sequence[int], datetime]]
) -> None:
    """Stamp each batch's rows ``published_at`` = its time, all in one transaction."""
    table = source.outbox
    with write_transaction(source.engine) as connection:
        if connection.dialect.name == "postgresql":
            _skip_wal_flush(connection)
        for ids, published_at in batches:
            for chunk in batched(ids, ID_CHUNK):
                connection.execute(
                    update(table)
                    .where(_id_in(connection, table, chunk))
                    .values(published_at=published_at)
                )


def _id_in(connection: Connection, table: Table, ids: Sequence[int]) -> ColumnElement[bool]:
    """``id IN ids``; on PostgreSQL one array parameter, not a placeholder per id to render
    and parse."""
    if connection.dialect.name == "postgresql":
        return table.c.id == any_(bindparam("ids", list(ids), type_=ARRAY(BigInteger)))
    return table.c.id.in_(ids)


def _skip_wal_flush(connection: Connection) -> None:
    """A mark need not wait for PostgreSQL to flush its WAL: lost in a server crash, it only
    makes the relay send those events again, and consumers drop duplicates by event id."""
    connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def purgeable(table: Table, before: datetime) -> Select[tuple[int]]:
    """The ids of the rows published before ``before``."""
    return select(table.c.id).where(table.c.published_at < before)


def purge_published(source: OutboxSource, before: datetime) -> int:
    """Delete rows published before ``before`` (found on ``ix_outbox_published_at``), a chunk
    at a time outside the write lock (store.purge)."""
    table = source.outbox

    def remove(connection: Connection, doomed: Sequence[Any]) -> int:
        chosen = _id_in(connection, table, doomed)
        return connection.execute(
            delete(table).where(chosen).where(table.c.published_at < before)
        ).rowcount

    return purge_in_chunks(source.engine, purgeable(table, before), remove)


def status(source: OutboxSource) -> OutboxStatus:
    c = source.outbox.c
    unpublished = c.published_at.is_(None)
    with transaction(source.engine) as connection:
        backlog, oldest = connection.execute(
            select(func.count(), func.min(c.occurred_at)).where(unpublished)
        ).one()
        retained, last = connection.execute(
            select(func.count(), func.max(c.published_at)).where(c.published_at.is_not(None))
        ).one()
    return OutboxStatus(source.name, backlog, oldest, last, retained)


def published_event_ids(source: OutboxSource, since: datetime | None) -> Iterator[set[str]]:
    """The ids of published events (occurring at or after ``since``), a chunk at a time."""
    table = source.outbox
    statement = select(table.c.event_id).where(table.c.published_at.is_not(None))
    if since is not None:
        statement = statement.where(table.c.occurred_at >= since)
    with transaction(source.engine) as connection:
        result = connection.execute(statement.execution_options(yield_per=ID_CHUNK))
        for chunk in result.scalars().partitions():
            yield set(chunk)


def unpublished_count(source: OutboxSource, since: datetime | None) -> int:
    return _count(source, source.outbox.c.published_at.is_(None), since)


def published_count(source: OutboxSource, since: datetime | None) -> int:
    return _count(source, source.outbox.c.published_at.is_not(None), since)


def _count(source: OutboxSource, condition: ColumnElement[bool], since: datetime | None) -> int:
    statement = select(func.count()).where(condition)
    if since is not None:
        statement = statement.where(source.outbox.c.occurred_at >= since)
    with transaction(source.engine) as connection:
        return int(connection.execute(statement).scalar_one())
