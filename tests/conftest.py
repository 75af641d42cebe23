"""Shared fixtures: isolated data directories, settings, and real service connections.

A test that needs a server skips with a reason when the server is absent, unless
ORDTOOL_REQUIRE_SERVICES=1 (set by .ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ordtool.bootstrap import App, upgrade_databases
from ordtool.config import Settings

PG_ADMIN_URL = os.environ.get("ORDTOOL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ORDTOOL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("ORDTOOL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under ORDTOOL_REQUIRE_SERVICES=1, fail) when nothing listens at host:port."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
        if os.environ.get("ORDTOOL_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(environment="test", data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def sqlite_app(settings: Settings) -> Iterator[App]:
    app = App(settings)
    yield app
    app.close()


def _fresh_pg_database() -> tuple[str, str]:
    name = f"ordtool_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database for this test alone."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name, url = _fresh_pg_database()
    yield url
    _drop_pg_database(name)


@pytest.fixture
def pg_settings(data_dir: Path) -> Iterator[Settings]:
    """Settings whose three databases are fresh PostgreSQL databases, already migrated."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    fresh = {database: _fresh_pg_database() for database in ("orders", "customers", "audit")}
    settings = Settings(  # type: ignore[call-arg]
        environment="test",
        data_dir=data_dir,
        orders_database_url=fresh["orders"][1],
        customers_database_url=fresh["customers"][1],
        audit_database_url=fresh["audit"][1],
        _env_file=None,
    )
    upgrade_databases(settings)
    yield settings
    for name, _ in fresh.values():
        _drop_pg_database(name)


@pytest.fixture
def pg_app(pg_settings: Settings) -> Iterator[App]:
    app = App(pg_settings)
    yield app
    app.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request: pytest.FixtureRequest) -> App:
    """The same test on the embedded SQLite and on the real PostgreSQL."""
    fixture = "sqlite_app" if request.param == "sqlite" else "pg_app"
    app: App = request.getfixturevalue(fixture)
    return app
