"""The citizen WebSocket protocol (`/ws/citizen`): every message a device may send, and every message the server
sends. docs/protocol.md explains it; docs/asyncapi.yaml describes it, and a test keeps the three in step.

All messages are JSON objects with a `type`. Client messages that can fail carry an `id` that the server echoes in
its `ack` or `error`. Coordinates are GeoJSON order: lon, lat.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from tocsin import geo
from tocsin.alerts.schemas import Category, Severity, no_nul
from tocsin.reports.schemas import DeviceId as DeviceId  # the report message's shape belongs to reports
from tocsin.reports.schemas import Location as Location
from tocsin.reports.schemas import ReportIn as ReportIn
from tocsin.types import Cursor

MAX_MESSAGE_BYTES = 16_384
MAX_PLACES = 10
MAX_PLACE_RADIUS_KM = 50.0
MAX_PLACE_VERTICES = 1_000
MAX_RECEIVED = 100

MessageId = Annotated[str, Field(min_length=1, max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Place(_In):
    """A saved place: a point with a radius, or a polygon (GeoJSON, exterior ring only)."""

    name: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(no_nul)]
    point: Location | None = None
    radius_km: float = Field(default=1.0, ge=0, le=MAX_PLACE_RADIUS_KM)
    polygon: dict[str, Any] | None = None

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        if value.get("type") != "Polygon":
            raise ValueError("a place polygon is a GeoJSON Polygon")
        try:
            geo.validate_geojson_area(value)
        except geo.GeometryError as exc:
            raise ValueError(f"{exc.field}: {exc}") from None
        if len(value["coordinates"][0]) > MAX_PLACE_VERTICES:
            raise ValueError(f"a place polygon has at most {MAX_PLACE_VERTICES} vertices")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Place:
        if (self.point is None) == (self.polygon is None):
            raise ValueError("a place has either a point (with radius_km) or a polygon")
        return self

    def geometry(self) -> Any:
        if self.point is not None:
            return geo.circle_polygon(geo.Circle(lon=self.point.lon, lat=self.point.lat, radius_km=self.radius_km))
        return geo.from_geojson(self.polygon or {})


Languages = Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]], Field(max_length=10)]


class ExerciseJoin(_In):
    """A device taking part in an exercise: it then gets that exercise's messages and nothing else."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    token: Annotated[str, Field(min_length=1, max_length=64)]


class Hello(_In):
    type: Literal["hello"]
    id: MessageId | None = None
    device_id: DeviceId
    last_seq: Cursor | None = None
    location: Location | None = None
    places: Annotated[list[Place], Field(max_length=MAX_PLACES)] | None = None
    languages: Languages | None = None
    categories: Annotated[list[Category], Field(max_length=12)] | None = None
    min_severity: Severity | None = None
    exercise: ExerciseJoin | None = None


class LocationUpdate(_In):
    type: Literal["location"]
    id: MessageId | None = None
    location: Location | None = Field(description="null forgets the current location")


class PlacesUpdate(_In):
    type: Literal["places"]
    id: MessageId | None = None
    places: Annotated[list[Place], Field(max_length=MAX_PLACES)]


class Preferences(_In):
    type: Literal["preferences"]
    id: MessageId | None = None
    languages: Languages | None = None
    categories: Annotated[list[Category], Field(max_length=12)] | None = None
    min_severity: Severity | None = None


class AckAlert(_In):
    type: Literal["ack_alert"]
    id: MessageId | None = None
    alert_id: uuid.UUID


class Received(_In):
    """The device has the alerts in hand (shown them, or stored them to show): counted as received."""

    type: Literal["received"]
    id: MessageId | None = None
    alert_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_RECEIVED)]


class CheckIn(_In):
    type: Literal["checkin"]
    id: MessageId | None = None
    alert_id: uuid.UUID
    status: Literal["safe", "need_help"]
    location: Location | None = None


class MyReports(_In):
    type: Literal["my_reports"]
    id: MessageId | None = None


class Ping(_In):
    type: Literal["ping"]
    id: MessageId | None = None


ClientMessage = Annotated[
    Hello | LocationUpdate | PlacesUpdate | Preferences | AckAlert | Received | CheckIn | ReportIn | MyReports | Ping,
    Field(discriminator="type"),
]
CLIENT_MESSAGES = TypeAdapter(ClientMessage)
CLIENT_TYPES = (
    "hello",
    "location",
    "places",
    "preferences",
    "ack_alert",
    "received",
    "checkin",
    "report",
    "my_reports",
    "ping",
)
SERVER_TYPES = ("welcome", "alert", "snapshot", "ack", "error", "my_reports", "report_status", "pong")
OPERATOR_SERVER_TYPES = ("welcome", "report_new", "report_status", "reload", "alert_counts", "error", "pong")
OPERATOR_CLIENT_TYPES = ("auth", "ping")


def encode(message: dict[str, Any]) -> str:
    """Compact JSON; every server message goes through here (the AsyncAPI test checks its `type`)."""
    assert message["type"] in SERVER_TYPES, message["type"]
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=_default)


def encode_operator(message: dict[str, Any]) -> str:
    """Every message to an operator goes through here (the AsyncAPI test checks its `type`)."""
    assert message["type"] in OPERATOR_SERVER_TYPES, message["type"]
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def error(code: str, message: str, *, id: str | None = None, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if id is not None:
        body["id"] = id
    if field is not None:
        body["field"] = field
    return body


# Close codes (docs/protocol.md, "Limits and errors").
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


class ProtocolViolation(Exception):
    """A message the protocol refuses: answered with `error` (its `id`, `code`, `field`); the fifth closes."""

    def __init__(self, code: str, message: str, *, id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.body = error(code, message, id=id, field=field)

    @property
    def code(self) -> str:
        return str(self.body["code"])


def message_id(message: ClientMessage) -> str | None:
    """The `id` the answer echoes (a report's is its UUID)."""
    return None if message.id is None else str(message.id)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"][1:])  # loc[0] is the message type (the union's tag)
    return path or "type", str(first["msg"])


def parse(text: str) -> ClientMessage:
    """One text frame from a device as the message it is, or ProtocolViolation saying what is wrong with it."""
    # At most 4 bytes a character: most messages need no encoding to know they are small enough.
    if len(text) > MAX_MESSAGE_BYTES // 4 and len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ProtocolViolation("too_big", f"a message is at most {MAX_MESSAGE_BYTES} bytes")
    try:
        # The fast path, for the messages that are valid: pydantic reads the JSON itself, in one pass.
        return CLIENT_MESSAGES.validate_json(text)
    except ValueError:  # not JSON, or not a valid message: the path below says which, and echoes the id
        pass
    try:
        raw = json.loads(text)
    except ValueError:
        raise ProtocolViolation("invalid_json", "messages are JSON objects") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ProtocolViolation("invalid", "a message is a JSON object with a 'type'", field="type")
    raw_id = raw.get("id")
    echoed = raw_id if isinstance(raw_id, str) else None
    if raw["type"] not in CLIENT_TYPES:
        raise ProtocolViolation("unknown_type", f"unknown message type '{raw['type'][:40]}'", id=echoed, field="type")
    try:
        return CLIENT_MESSAGES.validate_python(raw)
    except ValidationError as exc:
        field, reason = _first_error(exc)
        raise ProtocolViolation("invalid", f"{field}: {reason}", id=echoed, field=field) from None
