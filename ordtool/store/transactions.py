"""One short transaction on an engine, for adapters that need no unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from ordtool.errors import DependencyUnavailable


def connect(engine: Engine) -> Connection:
    """A connection from the pool; a database that cannot be reached is DependencyUnavailable
    (exit 3, HTTP 503), named without its password."""
    try:
        return engine.connect()
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise DependencyUnavailable(
            f"cannot reach the database {where}",
            hint="check that it is running and the URL setting is right",
        ) from exc


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """Commit when the block ends normally, roll back when it raises.

    ``write`` makes SQLite take its write lock up front (BEGIN IMMEDIATE, see store.engine),
    so concurrent writers queue on the busy timeout instead of failing half-way.
    """
    connection = connect(engine)
    try:
        connection.info["write"] = write
        with connection.begin():
            yield connection
    finally:
        connection.info.pop("write", None)
        connection.close()
