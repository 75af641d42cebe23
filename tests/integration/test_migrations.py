"""The migrations create exactly the tables the code declares, and go down and up again."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ordtool.bootstrap import App
from ordtool.store import migrate
from ordtool.store.tables import audit_metadata, customers_metadata, orders_metadata

METADATA = {"orders": orders_metadata, "customers": customers_metadata, "audit": audit_metadata}


@pytest.mark.parametrize("database", migrate.DATABASES)
def test_migrations_match_tables(any_app: App, database: migrate.Database) -> None:
    engine = any_app.engine(database)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), METADATA[database])
    assert diff == []


@pytest.mark.parametrize("database", migrate.DATABASES)
def test_downgrade_to_base_and_up_again(any_app: App, database: migrate.Database) -> None:
    engine = any_app.engine(database)
    migrate.downgrade(engine, database, "base")
    assert migrate.status(engine, database).current is None
    migrate.upgrade(engine, database)
    assert migrate.status(engine, database).up_to_date
