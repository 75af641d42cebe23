"""Alembic migrations run from code: each database is one branch of one script directory."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from ordtool.errors import ConfigurationError

# The services' databases (each has its API keys and idempotency keys), and the audit
# consumer's record.
ServiceDatabase = Literal["orders", "customers"]
Database = Literal["orders", "customers", "audit"]
SERVICE_DATABASES: tuple[ServiceDatabase, ...] = ("customers", "orders")
DATABASES: tuple[Database, ...] = (*SERVICE_DATABASES, "audit")
SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")


@dataclass(frozen=True)
class MigrationStatus:
    database: Database
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(engine: Engine, database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["database"] = database
    return config


def _run(engine: Engine, database: Database, action: str, revision: str) -> None:
    config = _config(engine, database)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def upgrade(engine: Engine, database: Database, revision: str = "heads") -> None:
    target = f"{database}@head" if revision in ("head", "heads") else revision
    _run(engine, database, "upgrade", target)


def downgrade(engine: Engine, database: Database, revision: str = "-1") -> None:
    target = f"{database}@{revision}" if revision in ("-1", "base") else revision
    _run(engine, database, "downgrade", target)


def status(engine: Engine, database: Database) -> MigrationStatus:
    script = ScriptDirectory.from_config(_config(engine, database))
    head = script.revision_map.get_current_head(database)
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert head is not None
    return MigrationStatus(database, current, head)


def ensure_current(
    engine: Engine, database: Database, lock_dir: Path | None, *, create_if_empty: bool
) -> None:
    """Upgrade an empty database by itself if asked to; refuse one that is behind (the
    operator decides when to migrate a database that holds data)."""
    with _migration_lock(lock_dir):
        if create_if_empty and not inspect(engine).get_table_names():
            upgrade(engine, database)
            return
    state = status(engine, database)
    if not state.up_to_date:
        raise ConfigurationError(
            f"the {database} database is at revision {state.current}, this ordtool needs "
            f"{state.head}",
            hint="run: ordtool db upgrade",
        )


@contextmanager
def _migration_lock(lock_dir: Path | None) -> Iterator[None]:
    """Two processes starting on one fresh embedded database must not both create it."""
    if lock_dir is None:
        yield
        return
    with (lock_dir / ".migrate.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
