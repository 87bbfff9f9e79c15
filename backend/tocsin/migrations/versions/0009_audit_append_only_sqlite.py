"""The audit log is append-only on SQLite too (PostgreSQL has had its trigger since 0001).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

from tocsin import backend

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if not backend.is_postgres(dialect):
        for statement in backend.audit_append_only_ddl(dialect)[0]:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if not backend.is_postgres(dialect):
        for statement in backend.audit_append_only_ddl(dialect)[1]:
            op.execute(statement)
