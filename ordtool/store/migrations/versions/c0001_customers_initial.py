"""customers database: customers, outbox, inbox

Revision ID: c0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ordtool.store.migrations.shared import create_inbox, create_outbox, drop_inbox, drop_outbox
from ordtool.store.types import UtcDateTime

revision = "c0001"
down_revision = None
branch_labels = ("customers",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("email", name="uq_customers_email"),
    )
    create_outbox()
    create_inbox()


def downgrade() -> None:
    drop_inbox()
    drop_outbox()
    op.drop_table("customers")
