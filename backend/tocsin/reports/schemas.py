from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tocsin.realtime.protocol import DeviceId, ReportIn
from tocsin.types import DbId


class ReportStatus(StrEnum):
    new = "new"
    verified = "verified"
    dismissed = "dismissed"
    duplicate = "duplicate"
    resolved = "resolved"


class ReportPost(ReportIn):
    """POST /api/v1/reports: the socket's report message plus the device id."""

    device_id: DeviceId


class ReportAck(BaseModel):
    """The acknowledgement: identical for the first send and every resend of the same `id`."""

    type: str = "ack"
    id: uuid.UUID
    report_id: int
    received_at: datetime
    status: ReportStatus


class LonLat(BaseModel):
    lon: float
    lat: float


class ReportOut(BaseModel):
    id: int
    client_id: uuid.UUID
    category: str
    text: str
    location: LonLat
    severity: str | None
    observed_at: datetime
    received_at: datetime
    status: ReportStatus
    status_reason: str | None
    status_by: str | None
    status_at: datetime | None
    duplicate_of: int | None
    incident_id: int | None


class OwnReport(BaseModel):
    """What a device sees of its own report."""

    id: int
    client_id: uuid.UUID
    category: str
    observed_at: datetime
    received_at: datetime
    status: ReportStatus
    status_at: datetime | None


class PublicReport(BaseModel):
    """Verified reports for the public: category, coarse place and time, nothing a person could be found by."""

    category: str
    location: LonLat
    observed_hour: datetime
    status: ReportStatus


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ReportStatus
    reason: Annotated[str, Field(max_length=1_000)] | None = None
    duplicate_of: DbId | None = None


class IncidentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Field(min_length=1, max_length=200)]
    report_ids: Annotated[list[DbId], Field(min_length=1, max_length=500)]


class IncidentOut(BaseModel):
    id: int
    title: str
    category: str
    created_by: str
    created_at: datetime
    report_ids: list[int]


class ClusterOut(BaseModel):
    category: str
    report_ids: list[int]
    centre: LonLat
