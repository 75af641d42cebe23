"""The one place that wires adapters to the service layer.

CLI commands and HTTP apps ask for an ``App``; it builds engines lazily, so a command that
touches only orders never opens the customers database.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from ordtool.config import Settings, load_settings
from ordtool.customers_client.local import LocalCustomerDirectory
from ordtool.services.ports import CustomerDirectory
from ordtool.store import migrate
from ordtool.store.engine import make_engine
from ordtool.store.uow import SqlCustomersUnitOfWork, SqlOrdersUnitOfWork


class App:
    def __init__(self, settings: Settings | None = None, *, auto_migrate: bool = True) -> None:
        self.settings = settings or load_settings()
        self._auto_migrate = auto_migrate

    def engine(self, database: migrate.Database) -> Engine:
        return self.orders_engine if database == "orders" else self.customers_engine

    @cached_property
    def orders_engine(self) -> Engine:
        return self._open("orders")

    @cached_property
    def customers_engine(self) -> Engine:
        return self._open("customers")

    def _open(self, database: migrate.Database) -> Engine:
        url = self.settings.database_url(database)
        engine = make_engine(url)
        if self._auto_migrate:
            # An empty embedded database is created on first use; a server database is
            # migrated only by the operator (ordtool db upgrade), so it is only checked.
            embedded = url.startswith("sqlite")
            lock_dir: Path | None = self.settings.data_dir if embedded else None
            migrate.ensure_current(engine, database, lock_dir, create_if_empty=embedded)
        return engine

    def orders_uow(self, *, write: bool = False) -> SqlOrdersUnitOfWork:
        return SqlOrdersUnitOfWork(self.orders_engine, write=write)

    def customers_uow(self, *, write: bool = False) -> SqlCustomersUnitOfWork:
        return SqlCustomersUnitOfWork(self.customers_engine, write=write)

    @cached_property
    def customer_directory(self) -> CustomerDirectory:
        return LocalCustomerDirectory(self.customers_uow)

    def close(self) -> None:
        for name in ("orders_engine", "customers_engine"):
            engine = self.__dict__.pop(name, None)
            if engine is not None:
                engine.dispose()
