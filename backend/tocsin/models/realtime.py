from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.backend import AreaGeometry, JSONDocument, UTCDateTime
from tocsin.db import Base


class Device(Base):
    """A citizen's app, known only by the anonymous id it chose. No location, no address, no person.

    `places` are the saved places the device keeps (deleted the moment it drops them); its current location is used
    for matching in memory and never stored.
    """

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    places: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    languages: Mapped[list[str]] = mapped_column(JSONDocument)
    categories: Mapped[list[str]] = mapped_column(JSONDocument)
    min_severity: Mapped[str] = mapped_column(String(16))
    exercise_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AlertResponse(Base):
    """What one device answered to one alert: received (acknowledged) and its check-in."""

    __tablename__ = "alert_responses"
    __table_args__ = (UniqueConstraint("alert_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checkin: Mapped[str | None] = mapped_column(String(16))  # safe | need_help
    checkin_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Only when the citizen chose to send it with a check-in ("I need help, here").
    checkin_lon: Mapped[float | None]
    checkin_lat: Mapped[float | None]


class AlertDelivery(Base):
    """One alert meant for one device (in its area, wanting it): live, in a connection's snapshot, or on replay.

    `written_at`: the message was written to the device's socket; `received_at`: the device said it received it.
    Written in batches off the fan-out path, so a row may appear up to a second after the message went out.
    """

    __tablename__ = "alert_deliveries"

    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    targeted_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Incident(Base):
    """Several reports about the same situation (one flooded street), grouped by an operator."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Report(Base):
    """A citizen's report. `client_id` is the UUID the app made: a resend finds this row instead of a new one."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_lon_lat", "lon", "lat"),
        Index("ix_reports_geom", "geom", postgresql_using="gist").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    text: Mapped[str] = mapped_column(Text)
    lon: Mapped[float]
    lat: Mapped[float]
    geom: Mapped[BaseGeometry | None] = mapped_column(AreaGeometry())
    severity: Mapped[str | None] = mapped_column(String(16))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_by: Mapped[str | None] = mapped_column(String(64))
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"), index=True)
    exercise_id: Mapped[str | None] = mapped_column(String(64), index=True)


class OperatorEvent(Base):
    """One entry of the operator feed (a new report, a status change), numbered in commit order.

    `seq` is the cursor operator consoles resume from. The content is read from the report, so nothing of a purged
    report stays here (its entries keep only their number, so numbers are never handed out twice). Exercise reports
    have no entries: they never reach real operators.
    """

    __tablename__ = "operator_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # report_new | report_status
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
