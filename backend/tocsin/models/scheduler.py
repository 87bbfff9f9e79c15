from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from tocsin.backend import UTCDateTime
from tocsin.db import Base


class SchedulerHeartbeat(Base):
    """The active scheduler's last proof that it holds the scheduler lock, readable by every worker (`/readyz`,
    `/metrics`). One row per scheduler role; `holder` names the process (host:pid:random)."""

    __tablename__ = "scheduler_heartbeats"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lag_seconds: Mapped[float] = mapped_column(Float)
