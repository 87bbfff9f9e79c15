from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.backend import AreaGeometry, JSONDocument, UTCDateTime
from tocsin.db import Base


class Alert(Base):
    """One CAP message and where it is in its life (state).

    `content` is the whole CAP message as the `CapAlert` schema dumps it (lossless, including empty elements);
    the plain columns repeat what queries filter on.
    """

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("sender", "identifier"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    identifier: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    sent: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), index=True)
    msg_type: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    origin: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    original_xml: Mapped[str | None] = mapped_column(Text)
    signed: Mapped[bool] = mapped_column(default=False)
    references_alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("alerts.id"))
    exercise_id: Mapped[str | None] = mapped_column(String(64), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertArea(Base):
    """One CAP <area> of one <info>, with the geometry devices are matched against (polygons and circles united)."""

    __tablename__ = "alert_areas"
    __table_args__ = (
        Index("ix_alert_areas_bbox", "min_lon", "max_lon", "min_lat", "max_lat"),
        Index("ix_alert_areas_geom", "geom", postgresql_using="gist").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    info_index: Mapped[int]
    area_index: Mapped[int]
    area_desc: Mapped[str] = mapped_column(Text)
    geom: Mapped[BaseGeometry | None] = mapped_column(AreaGeometry())
    min_lon: Mapped[float | None]
    min_lat: Mapped[float | None]
    max_lon: Mapped[float | None]
    max_lat: Mapped[float | None]


class AlertEvent(Base):
    """The delivery sequence: one row each time an alert message goes out or ends.

    `seq` is handed out in commit order (see backend.lock_delivery_sequence), so "every event after N" is complete.
    """

    __tablename__ = "alert_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # issued | expired
    at: Mapped[datetime] = mapped_column(UTCDateTime())
