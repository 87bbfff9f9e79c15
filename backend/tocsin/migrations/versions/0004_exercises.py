"""Exercises: the run of a scenario, its timeline, synthetic devices, receipts, and the evaluation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tocsin.backend import JSONDocument, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _exercise_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["exercise_id"], ["exercises.id"], name=op.f(f"fk_{table}_exercise_id_exercises"), ondelete="CASCADE"
    )


def upgrade() -> None:
    # Before this revision exercise_id was free text that named nothing; from here on it names a row of `exercises`
    # and only Exercise alerts carry one. Devices that claimed one become ordinary devices.
    op.execute("UPDATE alerts SET exercise_id = NULL WHERE exercise_id IS NOT NULL")
    op.execute("UPDATE devices SET exercise_id = NULL WHERE exercise_id IS NOT NULL")
    op.create_table(
        "exercises",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("scenario_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("scenario", JSONDocument, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("speed", sa.Float(), nullable=False),
        sa.Column("clock_seconds", sa.Float(), nullable=False),
        sa.Column("clock_at", UTCDateTime(), nullable=True),
        sa.Column("clock_version", sa.Integer(), nullable=False),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("join_token", sa.String(64), nullable=False),
        sa.Column("stats", JSONDocument, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercises")),
    )
    op.create_index(op.f("ix_exercises_state"), "exercises", ["state"])
    op.create_table(
        "exercise_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("exercise_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scenario_seconds", sa.Float(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("to", sa.String(16), nullable=True),
        sa.Column("objectives", JSONDocument, nullable=False),
        sa.Column("fulfils", JSONDocument, nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=True),
        _exercise_fk("exercise_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercise_events")),
        sa.UniqueConstraint("exercise_id", "key", name=op.f("uq_exercise_events_exercise_id_key")),
    )
    op.create_index(op.f("ix_exercise_events_exercise_id"), "exercise_events", ["exercise_id"])
    op.create_table(
        "exercise_devices",
        sa.Column("exercise_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("area", sa.String(64), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.Column("vulnerable", sa.Boolean(), nullable=False),
        _exercise_fk("exercise_devices"),
        sa.PrimaryKeyConstraint("exercise_id", "device_id", name=op.f("pk_exercise_devices")),
    )
    op.create_table(
        "exercise_receipts",
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("exercise_id", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("scenario_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_exercise_receipts_alert_id_alerts"), ondelete="CASCADE"
        ),
        _exercise_fk("exercise_receipts"),
        sa.PrimaryKeyConstraint("alert_id", "device_id", name=op.f("pk_exercise_receipts")),
    )
    op.create_index(op.f("ix_exercise_receipts_exercise_id"), "exercise_receipts", ["exercise_id"])
    op.create_table(
        "exercise_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exercise_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("objective", sa.String(16), nullable=True),
        sa.Column("inject", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("scenario_seconds", sa.Float(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        _exercise_fk("exercise_observations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercise_observations")),
    )
    op.create_index(op.f("ix_exercise_observations_exercise_id"), "exercise_observations", ["exercise_id"])
    op.create_table(
        "exercise_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exercise_id", sa.String(64), nullable=False),
        sa.Column("objective", sa.String(16), nullable=False),
        sa.Column("rating", sa.String(1), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("rated_by", sa.String(64), nullable=False),
        sa.Column("rated_at", UTCDateTime(), nullable=False),
        _exercise_fk("exercise_ratings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercise_ratings")),
        sa.UniqueConstraint("exercise_id", "objective", name=op.f("uq_exercise_ratings_exercise_id_objective")),
    )
    op.create_index(op.f("ix_exercise_ratings_exercise_id"), "exercise_ratings", ["exercise_id"])
    op.create_table(
        "exercise_improvements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exercise_id", sa.String(64), nullable=False),
        sa.Column("objective", sa.String(16), nullable=True),
        sa.Column("issue", sa.Text(), nullable=False),
        sa.Column("corrective_action", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("due", sa.Date(), nullable=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _exercise_fk("exercise_improvements"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercise_improvements")),
    )
    op.create_index(op.f("ix_exercise_improvements_exercise_id"), "exercise_improvements", ["exercise_id"])


def downgrade() -> None:
    for table in (
        "exercise_improvements",
        "exercise_ratings",
        "exercise_observations",
        "exercise_receipts",
        "exercise_devices",
        "exercise_events",
        "exercises",
    ):
        op.drop_table(table)
