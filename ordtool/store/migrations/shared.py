"""Tables both databases have, as migration steps (frozen: later changes get new revisions)."""

import sqlalchemy as sa
from alembic import op

from ordtool.store.types import UtcDateTime


def create_outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    _create_partial_outbox_index("ix_outbox_unpublished", "id", "published_at IS NULL")


def _create_partial_outbox_index(name: str, column: str, where: str) -> None:
    """An index on the outbox rows that match ``where`` (both backends support partial
    indexes)."""
    condition = sa.text(where)
    op.create_index(name, "outbox", [column], sqlite_where=condition, postgresql_where=condition)


def create_purge_indexes() -> None:
    """The purges find their rows by time: the relay's published outbox rows by
    ``published_at < cutoff``, the idempotency purge its rows by ``created_at``. Without these
    indexes each purge read every retained row, the idempotency one under SQLite's write lock
    (c0003/o0003)."""
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    _create_partial_outbox_index(
        "ix_outbox_published_at", "published_at", "published_at IS NOT NULL"
    )


def drop_purge_indexes() -> None:
    op.drop_index("ix_outbox_published_at", table_name="outbox")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")


def drop_outbox() -> None:
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")


def create_inbox() -> None:
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def drop_inbox() -> None:
    op.drop_table("inbox")


def create_access_tables(database: str) -> None:
    """api_keys, idempotency_keys and leases: every service database has them (c0002/o0002)."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(500), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("key_hash", name=f"uq_{database}_api_keys_hash"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("caller", "route", "key"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )


def drop_access_tables() -> None:
    op.drop_table("leases")
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
