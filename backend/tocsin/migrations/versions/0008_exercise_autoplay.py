"""Exercises: scripted player actions run only when the exercise was asked to play itself (autoplay).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Exercises created before this revision ran their scripted moves; they keep doing so.
    op.add_column("exercises", sa.Column("autoplay", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE exercises SET autoplay = :yes").bindparams(yes=True))


def downgrade() -> None:
    op.drop_column("exercises", "autoplay")
