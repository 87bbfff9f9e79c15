"""Operator feed cursor and per-user token version.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tocsin.backend import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "operator_events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_operator_events_report_id_reports"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_operator_events")),
    )
    op.create_index(op.f("ix_operator_events_report_id"), "operator_events", ["report_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_operator_events_report_id"), table_name="operator_events")
    op.drop_table("operator_events")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_version")
