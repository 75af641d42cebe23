"""customers database: indexes for the purges (expand only)

The relay's retention purge deletes outbox rows published before a cutoff, the idempotency
purge keys created before one; without these indexes each purge read every retained row
(and the relay published nothing meanwhile).

Revision ID: c0003
Revises: c0002
Create Date: 2026-12-04
"""
from ordtool.store.migrations.shared import create_purge_indexes, drop_purge_indexes

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_purge_indexes()


def downgrade() -> None:
    drop_purge_indexes()
