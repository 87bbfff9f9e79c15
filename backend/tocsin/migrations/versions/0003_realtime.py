"""Devices, alert responses, citizen reports and incidents.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tocsin.backend import AreaGeometry, JSONDocument, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("places", JSONDocument, nullable=False),
        sa.Column("languages", JSONDocument, nullable=False),
        sa.Column("categories", JSONDocument, nullable=False),
        sa.Column("min_severity", sa.String(16), nullable=False),
        sa.Column("exercise_id", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index(op.f("ix_devices_exercise_id"), "devices", ["exercise_id"])
    op.create_index(op.f("ix_devices_last_seen_at"), "devices", ["last_seen_at"])
    op.create_table(
        "alert_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("checkin", sa.String(16), nullable=True),
        sa.Column("checkin_at", UTCDateTime(), nullable=True),
        sa.Column("checkin_lon", sa.Float(), nullable=True),
        sa.Column("checkin_lat", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_alert_responses_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_responses")),
        sa.UniqueConstraint("alert_id", "device_id", name=op.f("uq_alert_responses_alert_id_device_id")),
    )
    op.create_index(op.f("ix_alert_responses_alert_id"), "alert_responses", ["alert_id"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("geom", AreaGeometry(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("observed_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_by", sa.String(64), nullable=True),
        sa.Column("status_at", UTCDateTime(), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("exercise_id", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["reports.id"], name=op.f("fk_reports_duplicate_of_reports"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_reports_incident_id_incidents"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("client_id", name=op.f("uq_reports_client_id")),
    )
    for column in ("device_id", "category", "received_at", "status", "incident_id", "exercise_id"):
        op.create_index(op.f(f"ix_reports_{column}"), "reports", [column])
    op.create_index("ix_reports_lon_lat", "reports", ["lon", "lat"])
    if op.get_context().dialect.name == "postgresql":
        op.create_index("ix_reports_geom", "reports", ["geom"], postgresql_using="gist")


def downgrade() -> None:
    for table in ("reports", "incidents", "alert_responses", "devices"):
        op.drop_table(table)
