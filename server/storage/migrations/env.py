"""Alembic's entry: migrations run on the connection storage hands over
(``server.storage.migrate``), inside its transaction and lock."""

from alembic import context

from server.storage import schema

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying a table
)
with context.begin_transaction():
    context.run_migrations()
