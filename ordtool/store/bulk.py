"""Batch writes inside a short write transaction: ids taken up front, one INSERT per table.

Why not SQLAlchemy's own ways: SQLite's driver gives up the GIL at every statement step, and
a step is a row for ``executemany`` or for an ``INSERT ... RETURNING`` per row (the only way
SQLAlchemy returns SQLite ids in parameter order). While the order service's writer thread
holds SQLite's only write lock, each give-up lets the busy event loop run its full switch
interval first, and the relay's marks (in another process) queue behind that lock.
SQLAlchemy's ``insert().values([...])`` sends one statement, but builds and compiles it anew
for each batch. So the statement is rendered here once per (table, columns, rows) shape and
sent as the driver's own SQL, with values the driver takes as they are.

A 10-order transaction beside a busy thread held the lock (p50) 6.5-7.0 ms with a statement
per row, 8.8-9.4 ms with ``insert().values()``, 3.3-3.5 ms this way; p99 22-26, 15-16 and
9-10 ms (bench/write_lock_hold.py, docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ordtool.domain.chunks import batched

# Bound parameters per statement: below SQLite's 32,766 and PostgreSQL's 65,535.
MAX_PARAMETERS = 30_000

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_new(engine: Engine | Connection, table: Table) -> Insert:
    """An INSERT into ``table`` that skips the rows whose key is there already (ON CONFLICT
    DO NOTHING, as each backend spells it)."""
    insert = postgresql_insert if engine.dialect.name == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing()


def next_ids(connection: Connection, table: Table, count: int) -> Sequence[int]:
    """``count`` fresh ids for new rows of ``table`` (its integer primary key ``id``), so that
    the INSERT needs no RETURNING. Call it in a write transaction."""
    if count == 0:
        return []
    if connection.dialect.name == "postgresql":
        sequence = func.pg_get_serial_sequence(table.name, "id")
        taken = select(func.nextval(sequence)).select_from(func.generate_series(1, count))
        return list(connection.execute(taken).scalars())
    # SQLite gives a new row max(id) + 1 itself. BEGIN IMMEDIATE holds the write lock, so no
    # other writer takes these ids before the commit; were it not held, the INSERT would
    # fail on the primary key or on a stale snapshot, never write a row twice.
    last = connection.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    return range(last + 1, last + 1 + count)


def insert_rows(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """INSERT ``rows`` (tuples in ``columns``' order, values ready for the driver: no type
    conversion happens here) in as few statements as the parameter limit allows."""
    if not rows:
        return
    per_statement = max(1, MAX_PARAMETERS // len(columns))
    for chunk in batched(rows, per_statement):
        sql = _insert_sql(connection, table, tuple(columns), len(chunk))
        connection.exec_driver_sql(sql, tuple(value for row in chunk for value in row))


def _insert_sql(connection: Connection, table: Table, columns: tuple[str, ...], count: int) -> str:
    dialect = connection.dialect
    placeholder = _PLACEHOLDERS.get(dialect.paramstyle)
    if placeholder is None:  # pragma: no cover - ordtool runs on sqlite3 and psycopg
        raise NotImplementedError(f"no multi-row INSERT for paramstyle {dialect.paramstyle}")
    preparer = dialect.identifier_preparer
    return _render(preparer.format_table(table), tuple(preparer.quote(c) for c in columns),
                   placeholder, count)


@lru_cache(maxsize=512)  # a group-commit writer sees a few batch sizes over and over
def _render(table: str, columns: tuple[str, ...], placeholder: str, count: int) -> str:
    # Only identifiers, quoted by the dialect, go into the text; every value is a parameter.
    row = "(" + ", ".join([placeholder] * len(columns)) + ")"
    head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608
    return head + ", ".join([row] * count)
