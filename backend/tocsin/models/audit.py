from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.backend import JSONDocument, UTCDateTime
from tocsin.db import Base


class AuditEntry(Base):
    """Append-only: written by services, read by approvers and admins, never changed through the API."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_name: Mapped[str] = mapped_column(String(64))  # "scheduler" for automatic actions
    action: Mapped[str] = mapped_column(String(32))
    alert_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
