"""What a report looks like: as a device sends it (the citizen socket's `report` message and POST /api/v1/reports),
as it is acknowledged, and as operators, the device and the public see it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tocsin.alerts.schemas import Severity, no_nul
from tocsin.types import DbId, Instant

MAX_REPORT_TEXT = 2_000

# A device's own random id (docs/protocol.md): it is also the key to the device's reports, so it is kept out of URLs.
DeviceId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class ReportCategory(StrEnum):
    flooding = "flooding"
    fire = "fire"
    smoke = "smoke"
    power_outage = "power_outage"
    telecom_outage = "telecom_outage"
    water_supply = "water_supply"
    gas_smell = "gas_smell"
    structural_damage = "structural_damage"
    injured_or_trapped = "injured_or_trapped"
    road_blocked = "road_blocked"
    other = "other"


# A point as a device sends it: lon, lat (GeoJSON order).
class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class ReportIn(BaseModel):
    """A citizen report; `id` is the client-made UUID that makes a resend harmless."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["report"] = "report"
    id: uuid.UUID
    category: ReportCategory
    text: Annotated[str, Field(max_length=MAX_REPORT_TEXT), AfterValidator(no_nul)] = ""
    location: Location
    observed_at: Instant
    severity: Severity | None = None


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

    model_config = ConfigDict(from_attributes=True)

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
