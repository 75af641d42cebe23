"""orders database: orders with their (customer_id, created_at) index, outbox, inbox

Revision ID: o0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from ordtool.store.migrations.shared import create_inbox, create_outbox, drop_inbox, drop_outbox
from ordtool.store.types import UtcDateTime

revision = "o0001"
down_revision = None
branch_labels = ("orders",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("quantity BETWEEN 1 AND 10000", name="ck_orders_quantity"),
        sa.CheckConstraint("status IN ('PENDING', 'COMPLETED', 'FAILED')", name="ck_orders_status"),
    )
    op.create_index("ix_orders_customer_created", "orders", ["customer_id", "created_at"])
    create_outbox()
    create_inbox()


def downgrade() -> None:
    drop_inbox()
    drop_outbox()
    op.drop_index("ix_orders_customer_created", table_name="orders")
    op.drop_table("orders")
