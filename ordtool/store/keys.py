"""API keys in one service database (the ApiKeyStore port)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ordtool.domain.keys import ApiKey
from ordtool.errors import AlreadyExists
from ordtool.store.transactions import transaction


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(
        row.id,
        row.name,
        row.key_hash,
        frozenset(row.scopes.split()),
        row.created_at,
        row.revoked_at,
    )


class SqlApiKeyStore:
    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._table = table

    def add(self, key: ApiKey) -> None:
        row = {
            "id": key.id,
            "name": key.name,
            "key_hash": key.key_hash,
            "scopes": " ".join(sorted(key.scopes)),
            "created_at": key.created_at,
            "revoked_at": key.revoked_at,
        }
        try:
            with transaction(self._engine, write=True) as connection:
                connection.execute(insert(self._table).values(row))
        except IntegrityError as exc:
            raise AlreadyExists(f"an API key with id {key.id} already exists") from exc

    def get(self, key_id: str) -> ApiKey | None:
        # The primary key: one indexed look-up per key check.
        with transaction(self._engine) as connection:
            row = connection.execute(
                select(self._table).where(self._table.c.id == key_id)
            ).first()
        return _key(row) if row else None

    def list(self) -> list[ApiKey]:
        statement = select(self._table).order_by(self._table.c.created_at, self._table.c.id)
        with transaction(self._engine) as connection:
            return [_key(row) for row in connection.execute(statement)]

    def revoke(self, key_id: str, now: datetime) -> bool:
        table = self._table
        with transaction(self._engine, write=True) as connection:
            connection.execute(
                update(table)
                .where(table.c.id == key_id, table.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            found = connection.execute(select(table.c.id).where(table.c.id == key_id)).first()
        return found is not None

    def delete(self, key_id: str) -> None:
        with transaction(self._engine, write=True) as connection:
            connection.execute(delete(self._table).where(self._table.c.id == key_id))
