"""Units of work: one connection, one transaction, repositories bound to it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine, Table

from ordtool.store.doorbell import doorbell_for
from ordtool.store.repositories import SqlCustomerRepository, SqlOrderRepository, SqlOutbox
from ordtool.store.tables import customers_outbox, orders_outbox
from ordtool.store.transactions import connect


class SqlUnitOfWork:
    """Use as ``with uow: ...; uow.commit()``. Leaving without commit rolls back, so an
    exception half-way never leaves a partial write."""

    outbox_table: Table
    outbox: SqlOutbox

    def __init__(self, engine: Engine, *, write: bool = False) -> None:
        self._engine = engine
        self._write = write
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        assert self._connection is not None, "use the unit of work in a with block"
        return self._connection

    def __enter__(self) -> Self:
        connection = connect(self._engine)
        connection.info["write"] = self._write
        connection.begin()
        self._connection = connection
        self.outbox = SqlOutbox(connection, self.outbox_table)
        self._bind(connection)
        return self

    def _bind(self, connection: Connection) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self.connection
        try:
            if connection.in_transaction():
                connection.rollback()
        finally:
            connection.info.pop("write", None)
            connection.close()
            self._connection = None

    def commit(self) -> None:
        self.connection.commit()
        if self.outbox.added:
            doorbell_for(self._engine.url).ring()  # the relay reads them now, not at its next poll


class SqlCustomersUnitOfWork(SqlUnitOfWork):
    outbox_table = customers_outbox
    customers: SqlCustomerRepository

    def _bind(self, connection: Connection) -> None:
        self.customers = SqlCustomerRepository(connection)


class SqlOrdersUnitOfWork(SqlUnitOfWork):
    outbox_table = orders_outbox
    orders: SqlOrderRepository

    def _bind(self, connection: Connection) -> None:
        self.orders = SqlOrderRepository(connection)
