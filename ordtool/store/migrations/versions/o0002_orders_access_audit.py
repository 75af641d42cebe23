"""orders database: api_keys, idempotency_keys, leases, audit_events (expand only)

Revision ID: o0002
Revises: o0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

from ordtool.store.migrations.shared import create_access_tables, drop_access_tables
from ordtool.store.types import UtcDateTime

revision = "o0002"
down_revision = "o0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_access_tables("orders")
    op.create_table(
        "audit_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False, server_default="1"),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    drop_access_tables()
