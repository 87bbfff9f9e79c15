"""What is stored about a device: its preferences and saved places (while it keeps them), and its answers to alerts."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.kernel import exercise_clock
from tocsin.models import Alert, AlertDelivery, AlertResponse, Device, Exercise
from tocsin.realtime.protocol import Hello, Location, Place


async def _create(session: AsyncSession, device_id: str) -> tuple[Device, bool]:
    """Write the device's row unless it exists; (the row, whether this call wrote it). INSERT ... ON CONFLICT DO
    NOTHING: the same new device saying hello on two workers at once ends well on both, one writing the row and the
    other finding it (PostgreSQL makes the second wait for the first's commit; SQLite has one writer)."""
    now = datetime.now(UTC)
    blank = {"places": [], "languages": [], "categories": [], "min_severity": "Unknown"}
    written = await backend.insert_or_ignore(
        session, Device, {"id": device_id, **blank, "created_at": now, "last_seen_at": now}
    )
    device = await session.get(Device, device_id)
    assert device is not None  # written here, or committed by the other connection
    return device, written


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _check_exercise(session: AsyncSession, hello: Hello, device: Device | None) -> None:
    """An exercise device stays one (with the exercise's join token each time); a public device id never joins one."""
    joining = hello.exercise.id if hello.exercise else None
    stored = device.exercise_id if device is not None else None
    if device is not None and joining != stored:
        if stored is not None:
            raise JoinRefused("exercise_required", "this device id belongs to an exercise: join it in hello")
        raise JoinRefused("device_in_use", "use a device id of its own for an exercise")
    if hello.exercise is not None:
        exercise = await session.get(Exercise, hello.exercise.id)
        if exercise is None or not hmac.compare_digest(exercise.join_token.encode(), hello.exercise.token.encode()):
            raise JoinRefused("exercise_unknown", "no such exercise, or the join token is wrong")
        if exercise.state in exercise_clock.ENDED:
            raise JoinRefused("exercise_ended", "this exercise has ended")


def _unchanged(device: Device, hello: Hello) -> bool:
    return (
        (hello.places is None or [p.model_dump(mode="json") for p in hello.places] == device.places)
        and (hello.languages is None or hello.languages == device.languages)
        and (hello.categories is None or list(hello.categories) == device.categories)
        and (hello.min_severity is None or hello.min_severity == device.min_severity)
    )


async def remember(session: AsyncSession, hello: Hello, may_create: Callable[[], bool] = lambda: True) -> Device:
    """Create or refresh the device row; places and preferences given in `hello` replace the stored ones.
    `may_create` is asked before a new device id is stored (new ids are bounded per address)."""
    device = await session.get(Device, hello.device_id)
    await _check_exercise(session, hello, device)
    if device is None:
        if not may_create():
            raise JoinRefused("too_many_devices", "too many new devices from this address; try again in a minute")
        device, written = await _create(session, hello.device_id)
        if not written:  # another connection of this device id wrote it meanwhile: its exercise rules apply
            await _check_exercise(session, hello, device)
    elif device.exercise_id is not None and _unchanged(device, hello):
        # A synthetic citizen (its row written in bulk when the exercise began) coming back: read, no write, so a
        # thousand of them reconnecting do not queue for SQLite's one writer in front of an operator.
        return device
    if hello.exercise is not None:
        device.exercise_id = hello.exercise.id
    device.last_seen_at = datetime.now(UTC)
    if hello.places is not None:
        device.places = [p.model_dump(mode="json") for p in hello.places]
    if hello.languages is not None:
        device.languages = hello.languages
    if hello.categories is not None:
        device.categories = list(hello.categories)
    if hello.min_severity is not None:
        device.min_severity = hello.min_severity
    await session.flush()
    return device


async def save_places(session: AsyncSession, device_id: str, places: list[Place]) -> None:
    device = await session.get(Device, device_id)
    if device is None:  # purged while connected (retention): it exists again
        device, _ = await _create(session, device_id)
    device.places = [p.model_dump(mode="json") for p in places]  # an empty list deletes them
    device.last_seen_at = datetime.now(UTC)


async def save_preferences(
    session: AsyncSession,
    device_id: str,
    *,
    languages: list[str] | None,
    categories: list[str] | None,
    min_severity: str | None,
) -> None:
    device = await session.get(Device, device_id)
    if device is None:
        return
    if languages is not None:
        device.languages = languages
    if categories is not None:
        device.categories = categories
    if min_severity is not None:
        device.min_severity = min_severity


async def seen(session: AsyncSession, device_id: str) -> None:
    await session.execute(update(Device).where(Device.id == device_id).values(last_seen_at=datetime.now(UTC)))


async def _sent(session: AsyncSession, alert_id: uuid.UUID, device_id: str) -> bool:
    """The delivery is written down (by any worker)."""
    query = select(AlertDelivery.alert_id).where(
        AlertDelivery.alert_id == alert_id, AlertDelivery.device_id == device_id
    )
    return (await session.execute(query)).first() is not None


class UnknownAlert(Exception):
    pass


class NotDelivered(Exception):
    pass


async def respond(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID,
    device_id: str,
    checkin: str | None = None,
    location: Location | None = None,
    sent_here: bool = False,
    may_have: bool = False,
) -> None:
    """Record an acknowledgement, and a check-in if given (a later check-in replaces the earlier one).

    Only from a device the alert was sent to (`sent_here`: this worker sent it and has not written that down yet), or
    may have been sent to (`may_have`: it is live and applies to the device; another worker may not have written the
    delivery yet): then the delivery row is written here too. Rows are made by INSERT ... ON CONFLICT DO NOTHING, so
    two answers at once both end well with one row, and a device counts once however often it answers."""
    if await session.get(Alert, alert_id) is None:
        raise UnknownAlert(str(alert_id))
    now = datetime.now(UTC)
    if not sent_here and not await _sent(session, alert_id, device_id):
        if not may_have:
            raise NotDelivered(str(alert_id))
        await backend.insert_or_ignore(
            session, AlertDelivery, {"alert_id": alert_id, "device_id": device_id, "targeted_at": now}
        )
    await backend.insert_or_ignore(
        session, AlertResponse, {"alert_id": alert_id, "device_id": device_id, "acknowledged_at": now}
    )
    if checkin is not None:
        await session.execute(
            update(AlertResponse)
            .where(AlertResponse.alert_id == alert_id, AlertResponse.device_id == device_id)
            .values(
                checkin=checkin,
                checkin_at=now,
                checkin_lon=location.lon if location else None,
                checkin_lat=location.lat if location else None,
            )
        )
