"""Alembic environment: the connection comes from `resources.store.database.migrate`."""

from __future__ import annotations

from alembic import context

from resources.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs `alembic` by hand
    raise RuntimeError("run migrations through resources.store.database.migrate(url)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
