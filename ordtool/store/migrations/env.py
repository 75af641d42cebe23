"""Alembic environment: ordtool passes an open connection in ``config.attributes``."""

from alembic import context

from ordtool.store.tables import audit_metadata, customers_metadata, orders_metadata

config = context.config
connection = config.attributes["connection"]
metadata = {"orders": orders_metadata, "customers": customers_metadata, "audit": audit_metadata}[
    config.attributes["database"]
]

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
