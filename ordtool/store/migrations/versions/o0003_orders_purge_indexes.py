"""orders database: indexes for the purges (expand only)

The relay's retention purge deletes outbox rows published before a cutoff, the idempotency
purge keys created before one; without these indexes each purge read every retained row
(and the relay published nothing meanwhile).

Revision ID: o0003
Revises: o0002
Create Date: 2026-12-04
"""
from ordtool.store.migrations.shared import create_purge_indexes, drop_purge_indexes

revision = "o0003"
down_revision = "o0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_purge_indexes()


def downgrade() -> None:
    drop_purge_indexes()
