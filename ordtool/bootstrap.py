"""The one place that wires adapters to the service layer.

CLI commands and HTTP apps ask for an ``App``; it builds engines lazily, so a command that
touches only orders never opens the customers database. Adapters that pull in heavy
libraries (httpx, redis, pika) are imported where they are first needed, so a CLI command
that uses none of them starts fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ordtool.config import Settings, load_settings
from ordtool.customers_client.local import LocalCustomerDirectory
from ordtool.domain.orders import Order
from ordtool.services.keys import KeyVerifier
from ordtool.services.orders import OrderDesk, Placement, record_orders
from ordtool.services.ports import ApiKeyStore, CustomerDirectory
from ordtool.store import migrate
from ordtool.store.engine import make_engine
from ordtool.store.group_commit import GroupCommit
from ordtool.store.idempotency import SqlIdempotencyStore
from ordtool.store.keys import SqlApiKeyStore
from ordtool.store.tables import (
    customers_api_keys,
    customers_idempotency,
    orders_api_keys,
    orders_idempotency,
)
from ordtool.store.uow import SqlCustomersUnitOfWork, SqlOrdersUnitOfWork

if TYPE_CHECKING:
    from ordtool.customers_client.cache import LookupCache
    from ordtool.customers_client.http import HttpCustomerDirectory
    from ordtool.messaging.feed import Feed
    from ordtool.messaging.runtime import Events

log = logging.getLogger(__name__)


def upgrade_databases(
    settings: Settings, databases: tuple[migrate.Database, ...] = migrate.DATABASES
) -> int:
    """Apply every missing migration (what `ordtool db upgrade` does), e.g. to a new server
    database, which an App never migrates by itself. With both the orders and the audit
    database, also move the audit record the orders database kept before the audit had a
    database of its own; the records moved."""
    bare = App(settings, auto_migrate=False)
    try:
        for database in databases:
            migrate.upgrade(bare.engine(database), database)
        if {"orders", "audit"} <= set(databases):
            from ordtool.messaging.audit import move_retired_record

            return move_retired_record(bare.orders_engine, bare.audit_engine)
        return 0
    finally:
        bare.close()


class App:
    def __init__(self, settings: Settings | None = None, *, auto_migrate: bool = True) -> None:
        self.settings = settings or load_settings()
        self._auto_migrate = auto_migrate
        # Connections this process already holds (e.g. an in-process relay's broker
        # connection) register a probe here; /readyz calls each and never opens a connection.
        self.readiness_probes: dict[str, Callable[[], bool]] = {}

    def engine(self, database: migrate.Database) -> Engine:
        engine: Engine = getattr(self, f"{database}_engine")
        return engine

    @cached_property
    def orders_engine(self) -> Engine:
        return self._open("orders")

    @cached_property
    def customers_engine(self) -> Engine:
        return self._open("customers")

    @cached_property
    def audit_engine(self) -> Engine:
        engine = self._open("audit")
        if self._auto_migrate and engine.dialect.name == "sqlite":
            self._adopt_retired_audit_record(engine)
        return engine

    def _adopt_retired_audit_record(self, audit_engine: Engine) -> None:
        """An embedded audit database is created on first use, and an install upgraded in
        place has no reason to run `ordtool db upgrade` (its orders database is current), so
        its first use also moves what the orders database recorded before it existed, as
        `db upgrade` does. Once moved this is one empty read; the contract migration o0005
        ends it. The audit consumer needs no orders database otherwise, so one it cannot use
        now only leaves the move to the next start or to `db upgrade`."""
        from ordtool.messaging.audit import move_retired_record

        try:
            moved = move_retired_record(self.orders_engine, audit_engine)
        except Exception as exc:
            log.warning("the audit records kept in the orders database were not moved to the "
                        "audit database (%s); run: ordtool db upgrade", exc)
            return
        if moved:
            log.info("moved %d audit records from the orders database to the audit database",
                     moved)

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
    def order_desk(self) -> OrderDesk:
        """Order placement for the order service: concurrent requests' orders are committed
        together by one writer thread (started on the first order)."""
        return OrderDesk(self.customer_directory, self._order_writer)

    @cached_property
    def _order_writer(self) -> GroupCommit[Placement, Order]:
        # PostgreSQL locks rows, not the database: a gap there would only delay orders.
        sqlite = self.orders_engine.dialect.name == "sqlite"
        gap_s = self.settings.orders_commit_gap_ms / 1000 if sqlite else 0.0
        return GroupCommit(
            partial(record_orders, self.orders_uow), name="orders writer", gap_s=gap_s
        )

    @cached_property
    def customer_directory(self) -> CustomerDirectory:
        """Over HTTP when a customer service URL is set (the order service; the CLI too),
        else straight from the local customers database."""
        url = self.settings.customer_service_url
        if not url:
            return LocalCustomerDirectory(self.customers_uow)
        from ordtool.customers_client.http import HttpCustomerDirectory

        key = self.settings.customer_service_key
        return HttpCustomerDirectory(
            url,
            self.settings.customer_check,
            cache=self._customer_cache(),
            api_key=key.get_secret_value() if key else None,
        )

    def _customer_cache(self) -> LookupCache:
        from ordtool.customers_client.cache import (
            InProcessLookupCache,
            Lifetimes,
            RedisLookupCache,
            redis_client,
        )

        check = self.settings.customer_check
        lifetimes = Lifetimes(
            fresh_s=check.cache_fresh_s,
            stale_s=check.cache_stale_s,
            revalidate_s=check.cache_revalidate_s,
        )
        if self.settings.redis_url is None:
            return InProcessLookupCache(lifetimes, max_entries=check.cache_max_entries)
        client = redis_client(
            self.settings.redis_url.get_secret_value(), timeout_s=check.cache_timeout_s
        )
        return RedisLookupCache(
            client,
            prefix=check.cache_key_prefix,
            lifetimes=lifetimes,
        )

    def customer_directory_health(self) -> dict[str, Any]:
        """The customer check's state for /readyz, read from memory (never a request)."""
        directory = self._http_directory()
        return directory.health() if directory else {"kind": "local"}

    def invalidate_customer(self, customer_id: int) -> None:
        """Drop a cached customer look-up (on customer.updated / customer.deleted events)."""
        directory = self._http_directory()
        if directory:
            directory.invalidate(customer_id)

    def _http_directory(self) -> HttpCustomerDirectory | None:
        directory = self.customer_directory
        return None if isinstance(directory, LocalCustomerDirectory) else directory  # type: ignore[return-value]

    def api_key_store(self, database: migrate.ServiceDatabase) -> SqlApiKeyStore:
        table = orders_api_keys if database == "orders" else customers_api_keys
        return SqlApiKeyStore(self.engine(database), table)

    def api_key_stores(self) -> list[ApiKeyStore]:
        """Both services' keys: a key made by the CLI works on both services."""
        return [self.api_key_store(database) for database in migrate.SERVICE_DATABASES]

    def key_verifier(self, database: migrate.ServiceDatabase) -> KeyVerifier:
        """One per database per process, so its cache of verified keys is shared."""
        verifiers: dict[str, KeyVerifier] = self.__dict__.setdefault("_key_verifiers", {})
        if database not in verifiers:
            cache_s = self.settings.auth.key_cache_s
            verifiers.setdefault(database, KeyVerifier(self.api_key_store(database), cache_s))
        return verifiers[database]

    def idempotency_store(self, database: migrate.ServiceDatabase) -> SqlIdempotencyStore:
        table = orders_idempotency if database == "orders" else customers_idempotency
        return SqlIdempotencyStore(self.engine(database), table)

    @cached_property
    def events(self) -> Events:
        """The outbox relay, consumers and event operations (no connection until asked)."""
        from ordtool.messaging.runtime import Events

        return Events(self.settings, self.engine)

    def live_feed(self) -> Feed:
        """Order events for live displays (the page's hub, ``orders watch``): a private queue
        on the broker when one is configured, else the orders database's outbox."""
        from ordtool.messaging.feed import BrokerFeed, OutboxFeed

        if self.settings.amqp_url is not None:
            return BrokerFeed(self.events)
        return OutboxFeed(lambda: self.orders_engine)

    def close(self) -> None:
        writer = self.__dict__.pop("_order_writer", None)
        if writer is not None:
            writer.close()  # writes what is queued while the engine is still open
        directory = self.__dict__.pop("customer_directory", None)
        if directory is not None and not isinstance(directory, LocalCustomerDirectory):
            directory.close()  # its pooled connections and cache client
        for name in ("orders_engine", "customers_engine", "audit_engine"):
            engine = self.__dict__.pop(name, None)
            if engine is not None:
                engine.dispose()
