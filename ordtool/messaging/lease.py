"""One holder at a time for a named lease in a database's ``leases`` table.

The active outbox relay holds ``relay:<outbox>``; a standby keeps trying and takes over once
the holder stops renewing (it died, hung, or lost its database) and the lease expires. The
rows live in the same database as the outbox, so this works the same on SQLite and
PostgreSQL, and nothing else (no ZooKeeper, no advisory locks) is needed.

The holder renews when half the time-to-live has gone and treats the lease as lost a safety
margin before it expires, so a holder and its successor are never both active while their
clocks agree to within that margin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, Table, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ordtool.domain.clock import utc_now
from ordtool.store.transactions import transaction

SAFETY_MARGIN = 0.2  # of the time-to-live


@dataclass(frozen=True, slots=True)
class LeaseState:
    holder: str
    expires_at: datetime


class Lease:
    def __init__(
        self,
        engine: Engine,
        table: Table,
        name: str,
        holder: str,
        ttl_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine, self._table, self.name, self.holder = engine, table, name, holder
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._valid_until = 0.0  # monotonic; 0 = not held
        self._renew_at = 0.0

    def remaining(self) -> float:
        """Seconds this holder may still act on the lease without renewing it."""
        return max(0.0, self._valid_until - self._monotonic())

    def hold(self) -> bool:
        """True when this process holds the lease, acquiring or renewing it when due."""
        now = self._monotonic()
        if now < self._renew_at:
            return True
        if self._claim():
            self._valid_until = now + self._ttl * (1 - SAFETY_MARGIN)
            self._renew_at = now + self._ttl / 2
            return True
        self._valid_until = self._renew_at = 0.0
        return False

    def _claim(self) -> bool:
        table, now = self._table, utc_now()
        expires = now + timedelta(seconds=self._ttl)
        with transaction(self._engine, write=True) as connection:
            claimed = connection.execute(
                update(table)
                .where(table.c.name == self.name)
                .where(or_(table.c.holder == self.holder, table.c.expires_at < now))
                .values(holder=self.holder, expires_at=expires)
            )
            if claimed.rowcount == 1:
                return True
            if connection.execute(select(table.c.name).where(table.c.name == self.name)).first():
                return False
        try:  # nobody ever held it; two standbys may race to create it, one wins
            with transaction(self._engine, write=True) as connection:
                connection.execute(
                    insert(table).values(name=self.name, holder=self.holder, expires_at=expires)
                )
        except IntegrityError:
            return False
        return True

    def release(self) -> None:
        """Give the lease up at once, so a standby need not wait for it to expire."""
        self._valid_until = self._renew_at = 0.0
        table = self._table
        with transaction(self._engine, write=True) as connection:
            connection.execute(
                delete(table).where(table.c.name == self.name, table.c.holder == self.holder)
            )


def lease_state(engine: Engine, table: Table, name: str) -> LeaseState | None:
    with transaction(engine) as connection:
        row = connection.execute(
            select(table.c.holder, table.c.expires_at).where(table.c.name == name)
        ).first()
    return LeaseState(row.holder, row.expires_at) if row else None
