"""orders database: an index for the audit record's retention purge (expand only)

The audit consumer now deletes what it received before the retention cutoff, found by
``received_at``, with the matching inbox rows.

Revision ID: o0004
Revises: o0003
Create Date: 2026-12-04
"""
from alembic import op

revision = "o0004"
down_revision = "o0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_received_at", "audit_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_received_at", table_name="audit_events")
