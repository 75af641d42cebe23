"""Idempotency keys in one service database (the IdempotencyStore port).

The row's primary key (caller, route, key) is the lock: of two requests that insert the same
key at once, the database lets exactly one insert succeed (PostgreSQL makes the second wait for
the first's commit, then fails it; SQLite serialises writers), so exactly one runs the handler.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Delete,
    Engine,
    Table,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ordtool.services.ports import StoredResponse
from ordtool.store.transactions import transaction

Scope = tuple[str, str, str]  # (caller, route, key)


class SqlIdempotencyStore:
    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._table = table

    def _where(self, scope: Scope) -> ColumnElement[bool]:
        caller, route, key = scope
        table = self._table
        return and_(table.c.caller == caller, table.c.route == route, table.c.key == key)

    def claim(
        self,
        scope: Scope,
        request_hash: str,
        now: datetime,
        *,
        expired_before: datetime,
        abandoned_before: datetime,
    ) -> StoredResponse | None:
        caller, route, key = scope
        row = {
            "caller": caller,
            "route": route,
            "key": key,
            "request_hash": request_hash,
            "status_code": None,
            "response_body": None,
            "created_at": now,
        }
        # Two rounds at most: the second follows the removal of an expired row.
        for _ in range(2):
            try:
                with transaction(self._engine, write=True) as connection:
                    connection.execute(insert(self._table).values(row))
                return None
            except IntegrityError:
                held = self._held(scope)
            if held is None:
                continue  # finished and released between our insert and our read
            if not held.reclaimable(expired_before, abandoned_before):
                return held
            self._remove_if_unchanged(scope, held.created_at)
        # Only reachable when other requests took the key in both rounds: report it as
        # running, which tells the client to retry.
        held = self._held(scope)
        return held if held is not None else StoredResponse(request_hash, None, None, now)

    def _held(self, scope: Scope) -> StoredResponse | None:
        table = self._table
        statement = select(
            table.c.request_hash, table.c.status_code, table.c.response_body, table.c.created_at
        ).where(self._where(scope))
        with transaction(self._engine) as connection:
            found = connection.execute(statement).first()
        if found is None:
            return None
        return StoredResponse(
            found.request_hash, found.status_code, found.response_body, found.created_at
        )

    def _remove_if_unchanged(self, scope: Scope, created_at: datetime) -> None:
        # Matching created_at too means a row another request has just re-inserted survives.
        with transaction(self._engine, write=True) as connection:
            connection.execute(
                delete(self._table).where(
                    self._where(scope), self._table.c.created_at == created_at
                )
            )

    def complete(self, scope: Scope, status_code: int, body: str) -> None:
        with transaction(self._engine, write=True) as connection:
            connection.execute(
                update(self._table)
                .where(self._where(scope))
                .values(status_code=status_code, response_body=body)
            )

    def release(self, scope: Scope) -> None:
        with transaction(self._engine, write=True) as connection:
            connection.execute(
                delete(self._table).where(self._where(scope), self._table.c.status_code.is_(None))
            )

    def purge(self, completed_before: datetime, running_before: datetime) -> int:
        with transaction(self._engine, write=True) as connection:
            result = connection.execute(expired(self._table, completed_before, running_before))
        return result.rowcount


def expired(table: Table, completed_before: datetime, running_before: datetime) -> Delete:
    """Keys older than their time-to-live, and requests that stopped running long ago; found
    on the ``created_at`` index, so the write lock is held briefly."""
    return delete(table).where(
        or_(
            table.c.created_at < completed_before,
            and_(table.c.status_code.is_(None), table.c.created_at < running_before),
        )
    )
