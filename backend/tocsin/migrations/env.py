"""Alembic environment: runs on the connection tocsin.migrate hands over (both backends, async engines)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tocsin import models  # noqa: F401  (registers every table on Base.metadata)
from tocsin.db import Base

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tocsin db upgrade`, which provides the connection")
run_migrations(connection)
