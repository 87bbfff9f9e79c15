"""The hello: the first message on a citizen connection, and admitting the device it names.

The device's row is written or refreshed in the hello's own transaction, before the device joins the hub. A refusal
(exercise rules, too many new devices from one address) or an unreachable database ends the connection with an
`error` the device understands and the close code docs/protocol.md gives for it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tocsin.alerts.schemas import SEVERITY_RANK
from tocsin.models import Device as StoredDevice
from tocsin.realtime import devices, protocol
from tocsin.realtime.hub import Device
from tocsin.realtime.protocol import Hello, ProtocolViolation
from tocsin.realtime.runtime import Realtime
from tocsin.realtime.transport import CitizenTransport
from tocsin.resilience import ThrottledLog, database_unreachable, describe

log = logging.getLogger(__name__)
_outages = ThrottledLog(log)  # a database outage is said once a minute, not once per device

HELLO_TIMEOUT_SECONDS = 10


async def _refuse(transport: CitizenTransport, error: dict[str, Any], code: int) -> None:
    await transport.send_text(protocol.encode(error))
    await transport.close(code)


async def receive_hello(transport: CitizenTransport) -> Hello | None:
    """The device's hello, within HELLO_TIMEOUT_SECONDS; anything else is refused and the connection closed (None)."""
    try:
        frame = await asyncio.wait_for(transport.receive_frame(), timeout=HELLO_TIMEOUT_SECONDS)
        if isinstance(frame, bytes):
            raise ProtocolViolation("binary_frame", "send JSON in text frames")
        message = protocol.parse(frame)
    except TimeoutError:
        await transport.close(protocol.CLOSE_POLICY, "say hello first")
        return None
    except ProtocolViolation as violation:
        too_big = violation.code == "too_big"
        await _refuse(transport, violation.body, protocol.CLOSE_TOO_BIG if too_big else protocol.CLOSE_POLICY)
        return None
    if not isinstance(message, Hello):
        await _refuse(transport, protocol.error("hello_first", "the first message is hello"), protocol.CLOSE_POLICY)
        return None
    return message


async def admit(transport: CitizenTransport, realtime: Realtime, hello: Hello) -> StoredDevice | None:
    """Store or refresh the device (devices.remember, committed here); None if it may not join, which it was told."""

    def may_create() -> bool:
        # New device ids per address are bounded (each is a voice in the counts); in-process exercise devices are not.
        return transport.in_process or realtime.ip_new_devices.allow(transport.client.host)

    try:
        async with realtime.database.sessions() as session:
            stored = await devices.remember(session, hello, may_create)
            await session.commit()
        return stored
    except devices.JoinRefused as refused:
        await _refuse(transport, protocol.error(refused.code, str(refused), id=hello.id), protocol.CLOSE_POLICY)
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        _outages.failure("hello", "devices cannot join while the database is unreachable (%s)", describe(exc))
        unavailable = protocol.error(
            "unavailable", "the server cannot reach its database; reconnect shortly", id=hello.id
        )
        await _refuse(transport, unavailable, protocol.CLOSE_TRY_AGAIN_LATER)
    return None


def _stored_places(stored: StoredDevice) -> list[protocol.Place]:
    """Saved places as stored; one that today's rules refuse is left out rather than refusing the device."""
    places = []
    for value in stored.places:
        try:
            places.append(protocol.Place.model_validate(value))
        except ValueError:
            log.warning("a stored place of device %s no longer validates; ignored", stored.id)
    return places


def hub_device(hello: Hello, stored: StoredDevice) -> Device:
    """What the hub matches alerts against: the stored preferences and places, and the location said in hello."""
    return Device(
        device_id=hello.device_id,
        languages=list(stored.languages),
        categories=frozenset(stored.categories),
        min_severity_rank=SEVERITY_RANK.get(stored.min_severity, 0),
        exercise_id=stored.exercise_id,
        location=(hello.location.lon, hello.location.lat) if hello.location else None,
        places=[place.geometry() for place in _stored_places(stored)],
    )


def welcome(hello: Hello, upto: int) -> dict[str, Any]:
    """The first server message: the snapshot that follows is complete up to `upto`."""
    return {
        "type": "welcome",
        "id": hello.id,
        "device_id": hello.device_id,
        "seq": upto,
        "limits": {"max_message_bytes": protocol.MAX_MESSAGE_BYTES, "max_places": protocol.MAX_PLACES},
    }
