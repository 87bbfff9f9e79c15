"""The alert as our JSON API carries it: CAP 1.2 element names and structure, GeoJSON for polygons.

A `CapAlert` holds everything a CAP 1.2 message can say, so XML -> CapAlert -> XML loses nothing (empty elements stay
empty strings, absent ones stay None). Sizes are bounded here, once, for both the JSON and the XML way in.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from tocsin import geo
from tocsin.types import Instant

MAX_INFOS = 32
MAX_AREAS_PER_INFO = 64
MAX_LIST_ITEMS = 100
MAX_GEOCODES = 2_000
MAX_SHORT_TEXT = 500
MAX_LONG_TEXT = 20_000


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def no_nul(value: str) -> str:
    """Characters XML 1.0 cannot carry (NUL and the other C0 controls but tab, LF, CR; U+FFFE/FFFF) would break the
    CAP export and the feed, and PostgreSQL refuses NUL: they are refused where text comes in."""
    match = _NOT_XML.search(value)
    if match:
        raise ValueError(f"must not contain the control character U+{ord(match.group()):04X}")
    return value


XmlSafe = AfterValidator(no_nul)


ShortText = Annotated[str, Field(max_length=MAX_SHORT_TEXT), XmlSafe]
LongText = Annotated[str, Field(max_length=MAX_LONG_TEXT), XmlSafe]
UriText = Annotated[str, Field(max_length=2_000), XmlSafe]
Decimal = Annotated[float, Field(allow_inf_nan=False)]


class Status(StrEnum):
    actual = "Actual"
    exercise = "Exercise"
    system = "System"
    test = "Test"
    draft = "Draft"


class MsgType(StrEnum):
    alert = "Alert"
    update = "Update"
    cancel = "Cancel"
    ack = "Ack"
    error = "Error"


class Scope(StrEnum):
    public = "Public"
    restricted = "Restricted"
    private = "Private"


Category = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]
ResponseType = Literal["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]

SEVERITY_RANK: dict[str, int] = {"Unknown": 0, "Minor": 1, "Moderate": 2, "Severe": 3, "Extreme": 4}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NamedValue(_Strict):
    """CAP eventCode, parameter and geocode: a valueName and a value."""

    valueName: ShortText
    value: LongText


class Resource(_Strict):
    resourceDesc: ShortText
    mimeType: ShortText
    size: Annotated[int, Field(ge=0)] | None = None
    uri: UriText | None = None
    derefUri: Annotated[str, Field(max_length=1_500_000), XmlSafe] | None = None
    digest: ShortText | None = None


class CircleIn(_Strict):
    center: tuple[float, float] = Field(description="[lon, lat], GeoJSON order")
    radiusKm: float = Field(ge=0, le=geo.MAX_CIRCLE_RADIUS_KM)

    def to_circle(self) -> geo.Circle:
        return geo.Circle(lon=self.center[0], lat=self.center[1], radius_km=self.radiusKm)


class Area(_Strict):
    areaDesc: LongText
    geometry: dict[str, Any] | None = Field(
        default=None,
        description="GeoJSON Polygon or MultiPolygon (lon, lat), exterior rings only; each becomes a CAP <polygon>",
    )
    circles: Annotated[list[CircleIn], Field(max_length=geo.MAX_CIRCLES_PER_AREA)] = []
    geocode: Annotated[list[NamedValue], Field(max_length=MAX_GEOCODES)] = []
    altitude: Decimal | None = None
    ceiling: Decimal | None = None

    @field_validator("geometry")
    @classmethod
    def _valid_geometry(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                geo.validate_geojson_area(value)
            except geo.GeometryError as exc:
                raise ValueError(f"{exc.field}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _ceiling_needs_altitude(self) -> Area:
        if self.ceiling is not None and self.altitude is None:
            raise ValueError("ceiling needs altitude (CAP 1.2)")
        return self

    def polygon_rings(self) -> list[list[list[float]]]:
        return geo.geojson_polygon_rings(self.geometry)


class Info(_Strict):
    language: Annotated[str, Field(max_length=35, pattern=r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")] | None = None
    category: Annotated[list[Category], Field(min_length=1, max_length=12)]
    event: ShortText
    responseType: Annotated[list[ResponseType], Field(max_length=9)] = []
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    audience: ShortText | None = None
    eventCode: Annotated[list[NamedValue], Field(max_length=MAX_LIST_ITEMS)] = []
    effective: Instant | None = None
    onset: Instant | None = None
    expires: Instant | None = None
    senderName: ShortText | None = None
    headline: ShortText | None = None
    description: LongText | None = None
    instruction: LongText | None = None
    web: UriText | None = None
    contact: ShortText | None = None
    parameter: Annotated[list[NamedValue], Field(max_length=MAX_LIST_ITEMS)] = []
    resource: Annotated[list[Resource], Field(max_length=20)] = []
    area: Annotated[list[Area], Field(max_length=MAX_AREAS_PER_INFO)] = []

    @property
    def lang(self) -> str:
        return self.language or "en-US"


class AlertBody(_Strict):
    """What an operator writes: the CAP message without the parts the server assigns."""

    status: Status = Status.actual
    source: ShortText | None = None
    scope: Scope = Scope.public
    restriction: ShortText | None = None
    addresses: LongText | None = None
    code: Annotated[list[ShortText], Field(max_length=MAX_LIST_ITEMS)] = []
    note: LongText | None = None
    incidents: LongText | None = None
    info: Annotated[list[Info], Field(min_length=1, max_length=MAX_INFOS)]

    @model_validator(mode="after")
    def _scope_rules(self) -> AlertBody:
        if self.scope is Scope.restricted and not self.restriction:
            raise ValueError("restriction: required when scope is Restricted (CAP 1.2)")
        if self.scope is Scope.private and not self.addresses:
            raise ValueError("addresses: required when scope is Private (CAP 1.2)")
        return self


class CapAlert(AlertBody):
    """A complete CAP 1.2 message."""

    identifier: Annotated[str, Field(min_length=1, max_length=255)]
    sender: Annotated[str, Field(min_length=1, max_length=255)]
    sent: Instant
    msgType: MsgType = MsgType.alert
    references: LongText | None = None
    info: Annotated[list[Info], Field(max_length=MAX_INFOS)] = []  # CAP allows none (e.g. an Ack)

    @field_validator("identifier", "sender")
    @classmethod
    def _no_space_comma_or_restricted(cls, value: str) -> str:
        if any(ch in value for ch in " ,<&"):
            raise ValueError("must not contain spaces, commas, '<' or '&' (CAP 1.2)")
        return no_nul(value)


# ---- API shapes around the CAP message --------------------------------------------------------------------------


class AlertState(StrEnum):
    draft = "draft"
    approved = "approved"
    scheduled = "scheduled"
    issued = "issued"
    updated = "updated"  # superseded by an issued Update
    cancelled = "cancelled"
    expired = "expired"
    discarded = "discarded"


class AlertDraftIn(AlertBody):
    exercise_id: Annotated[str, Field(max_length=64)] | None = None


class AlertEditIn(AlertBody):
    pass


class FromTemplateIn(_Strict):
    template: Annotated[str, Field(max_length=64)]
    languages: Annotated[list[str], Field(max_length=MAX_INFOS)] | None = Field(
        default=None, description="Languages to include, in order (default: every language of the template)"
    )
    variables: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=MAX_SHORT_TEXT)]] = {}
    area: Area
    status: Status = Status.actual
    onset: Instant | None = None
    expires: Instant | None = None
    web: Annotated[str, Field(max_length=2_000)] | None = None
    contact: ShortText | None = None
    exercise_id: Annotated[str, Field(max_length=64)] | None = None


class IssueIn(_Strict):
    at: Instant | None = Field(default=None, description="Issue at this time instead of now")


class FollowUpIn(_Strict):
    """Start an Update or a Cancel of an issued alert. Without `info`, the update copies the current texts."""

    info: Annotated[list[Info], Field(min_length=1, max_length=MAX_INFOS)] | None = None
    note: LongText | None = None


class UserRef(BaseModel):
    id: int
    username: str


class AlertOut(BaseModel):
    id: uuid.UUID
    state: AlertState
    origin: str
    template_id: str | None
    status: Status
    msgType: MsgType
    marking: str | None = Field(description="EXERCISE / TEST / SYSTEM / DRAFT for anything that is not an Actual alert")
    identifier: str
    sender: str
    sent: datetime
    references_alert_id: uuid.UUID | None
    exercise_id: str | None
    signed: bool
    author: UserRef | None
    approved_by: UserRef | None
    approved_at: datetime | None
    issued_at: datetime | None
    scheduled_for: datetime | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    active: bool
    cap: CapAlert
    links: dict[str, str]
