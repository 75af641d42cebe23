"""customers database: api_keys, idempotency_keys, leases (expand only)

Revision ID: c0002
Revises: c0001
Create Date: 2026-12-03
"""
from ordtool.store.migrations.shared import create_access_tables, drop_access_tables

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_access_tables("customers")


def downgrade() -> None:
    drop_access_tables()
