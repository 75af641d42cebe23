"""audit database: the audit consumer's record (audit_events) and its inbox

Until now these lived in the orders database (o0002, o0004), where the audit consumer's writes
queued for SQLite's one write lock behind the order service's and the relay's. The orders
database keeps its retired ``audit_events`` until a contract migration of the next release;
``ordtool db upgrade`` moves its rows here.

Revision ID: a0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from ordtool.store.migrations.shared import create_inbox, drop_inbox
from ordtool.store.types import UtcDateTime

revision = "a0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_index("ix_audit_events_received_at", "audit_events", ["received_at"])
    create_inbox()


def downgrade() -> None:
    drop_inbox()
    op.drop_index("ix_audit_events_received_at", table_name="audit_events")
    op.drop_table("audit_events")
