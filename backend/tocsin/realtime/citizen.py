"""`/ws/citizen`: a device says hello, gets what it missed and what applies now, then lives on live alerts.

Order on connect (see docs/protocol.md): welcome -> replay of every missed alert message (seq > last_seq) -> snapshot
of the active alerts that apply -> live messages. Live messages that arrive during the replay wait in `Client.held`
and are released after it, skipping any the replay already sent, so the device sees every sequence number once and
in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from tocsin.alerts.schemas import SEVERITY_RANK
from tocsin.realtime import devices, protocol
from tocsin.realtime.hub import Client, Device
from tocsin.realtime.protocol import (
    CLIENT_MESSAGES,
    AckAlert,
    CheckIn,
    Hello,
    LocationUpdate,
    MyReports,
    Ping,
    PlacesUpdate,
    Preferences,
    Received,
    ReportIn,
)
from tocsin.realtime.ratelimit import Limiter
from tocsin.realtime.runtime import Realtime
from tocsin.reports import service as reports
from tocsin.reports.writer import ReportRefused
from tocsin.resilience import ThrottledLog, database_unreachable, describe

log = logging.getLogger(__name__)
_outages = ThrottledLog(log)  # a database outage is said once a minute, not once per device or message
router = APIRouter()

HELLO_TIMEOUT_SECONDS = 10
MAX_VIOLATIONS = 5
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_SERVER_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


class ProtocolViolation(Exception):
    def __init__(self, code: str, message: str, *, id: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.body = protocol.error(code, message, id=id, field=field)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"][1:])  # loc[0] is the message type (the union's tag)
    return path or "type", str(first["msg"])


def parse(text: str) -> Any:
    if len(text.encode("utf-8")) > protocol.MAX_MESSAGE_BYTES:
        raise ProtocolViolation("too_big", f"a message is at most {protocol.MAX_MESSAGE_BYTES} bytes")
    try:
        raw = json.loads(text)
    except ValueError:
        raise ProtocolViolation("invalid_json", "messages are JSON objects") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ProtocolViolation("invalid", "a message is a JSON object with a 'type'", field="type")
    message_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    if raw["type"] not in protocol.CLIENT_TYPES:
        raise ProtocolViolation(
            "unknown_type", f"unknown message type '{raw['type'][:40]}'", id=message_id, field="type"
        )
    try:
        return CLIENT_MESSAGES.validate_python(raw)
    except ValidationError as exc:
        field, reason = _first_error(exc)
        raise ProtocolViolation("invalid", f"{field}: {reason}", id=message_id, field=field) from None


def _id_of(message: Any) -> str | None:
    value = getattr(message, "id", None)
    return None if value is None else str(value)


def _stored_places(stored: Any) -> list[protocol.Place]:
    """Saved places as stored; one that today's rules refuse is left out rather than refusing the device."""
    places = []
    for value in stored.places:
        try:
            places.append(protocol.Place.model_validate(value))
        except ValueError:
            log.warning("a stored place of device %s no longer validates; ignored", stored.id)
    return places


def _device(hello: Hello, stored: Any) -> Device:
    places = _stored_places(stored)
    return Device(
        device_id=hello.device_id,
        languages=list(stored.languages),
        categories=frozenset(stored.categories),
        min_severity_rank=SEVERITY_RANK.get(stored.min_severity, 0),
        exercise_id=stored.exercise_id,
        location=(hello.location.lon, hello.location.lat) if hello.location else None,
        places=[p.geometry() for p in places],
    )


class CitizenSession:
    def __init__(self, websocket: WebSocket, realtime: Realtime) -> None:
        self.websocket = websocket
        self.realtime = realtime
        self.client: Client | None = None
        self.ip = websocket.client.host if websocket.client else "unknown"
        self.violations = 0
        self.writer: asyncio.Task[None] | None = None
        self.closing: int | None = None

    def request_close(self, code: int) -> None:
        if self.closing is None:
            self.closing = code
            asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code)

    async def send(self, message: dict[str, Any]) -> None:
        if self.client is not None:
            await self.client.put((), protocol.encode(message))
        else:
            await self.websocket.send_text(protocol.encode(message))

    def _written(self, alert_ids: tuple[Any, ...]) -> None:
        assert self.client is not None
        for alert_id in alert_ids:
            self.realtime.deliveries.wrote(alert_id, (self.client.device.device_id,))

    async def write(self) -> None:
        assert self.client is not None
        try:
            while True:
                item = await self.client.queue.get()
                if item is None:
                    return
                if isinstance(item, int):
                    self.request_close(item)
                    return
                alert_ids, text = item
                self.client.sending = True
                await self.websocket.send_text(text)
                self.client.sending = False
                if alert_ids:
                    self._written(alert_ids)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            # Nobody sends for this device any more: let waiting producers go and end the session.
            self.client.closed = True
            while not self.client.queue.empty():
                self.client.queue.get_nowait()
            self.request_close(CLOSE_SERVER_ERROR)

    async def _receive(self) -> str | bytes:
        """The next frame; bytes for a binary frame (refused by the caller)."""
        if isinstance(self.websocket, WebSocket):
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code") or 1000)
            text = message.get("text")
            return text if text is not None else bytes(message.get("bytes") or b"")
        frame: str | bytes = await self.websocket.receive_frame()
        return frame

    async def run(self) -> None:
        await self.websocket.accept()
        try:
            hello = await self._hello()
            if hello is None:
                return
            if not await self._start(hello):
                return
            while self.closing is None:
                frame = await self._receive()
                if isinstance(frame, bytes):
                    await self.send(protocol.error("binary_frame", "send JSON in text frames"))
                    await self._close_after_sending(CLOSE_UNSUPPORTED_DATA)
                    return
                await self._handle_text(frame)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await self._finish()

    async def _hello(self) -> Hello | None:
        try:
            frame = await asyncio.wait_for(self._receive(), timeout=HELLO_TIMEOUT_SECONDS)
            if isinstance(frame, bytes):
                raise ProtocolViolation("binary_frame", "send JSON in text frames")
            message = parse(frame)
        except TimeoutError:
            await self.websocket.close(CLOSE_POLICY, "say hello first")
            return None
        except ProtocolViolation as violation:
            await self.websocket.send_text(protocol.encode(violation.body))
            await self.websocket.close(CLOSE_TOO_BIG if violation.body["code"] == "too_big" else CLOSE_POLICY)
            return None
        if not isinstance(message, Hello):
            await self.websocket.send_text(protocol.encode(protocol.error("hello_first", "the first message is hello")))
            await self.websocket.close(CLOSE_POLICY)
            return None
        return message

    async def _start(self, hello: Hello) -> bool:
        realtime = self.realtime
        try:
            stored = await devices.remember_committed(realtime.database, hello, may_create=self._may_create_device)
        except devices.JoinRefused as refused:
            await self.websocket.send_text(protocol.encode(protocol.error(refused.code, str(refused), id=hello.id)))
            await self.websocket.close(CLOSE_POLICY)
            return False
        except Exception as exc:
            if not database_unreachable(exc):
                raise
            _outages.failure("hello", "devices cannot join while the database is unreachable (%s)", describe(exc))
            unavailable = protocol.error(
                "unavailable", "the server cannot reach its database; reconnect shortly", id=hello.id
            )
            await self.websocket.send_text(protocol.encode(unavailable))
            await self.websocket.close(CLOSE_TRY_AGAIN_LATER)
            return False
        self.client = Client(
            _device(hello, stored),
            self.request_close,
            realtime.settings.client_queue_size,
            write_now=getattr(self.websocket, "write_now", None),
            direct=getattr(self.websocket, "lean_connection", None),
            written=self._written,
        )
        self.client.held = []
        upto = realtime.hub.add(self.client)  # from here on, live messages for this device are held
        self.writer = asyncio.create_task(self.write())
        await self.send(
            {
                "type": "welcome",
                "id": hello.id,
                "device_id": hello.device_id,
                "seq": upto,
                "limits": {"max_message_bytes": protocol.MAX_MESSAGE_BYTES, "max_places": protocol.MAX_PLACES},
            }
        )
        # A device may have seen more than this worker has fanned out yet (it was on another worker).
        replayed = max(upto, hello.last_seq or 0)
        try:
            if hello.last_seq is not None and hello.last_seq < upto:
                replayed = await realtime.dispatcher.replay(self.client, hello.last_seq, upto)
            await self.client.put(*await realtime.dispatcher.snapshot(self.client, upto))
        except Exception as exc:  # the database failed us: the device reconnects and replays from its last_seq
            _outages.failure(
                "replay", "replay or snapshot for a device failed (%s); asking it to reconnect", describe(exc)
            )
            self.client.held = None
            await self._close_after_sending(CLOSE_TRY_AGAIN_LATER)
            return False
        await self._release_held(replayed)
        return True

    def _may_create_device(self) -> bool:
        """New device ids per address are bounded (each is a voice in the counts); exercise devices exist already."""
        return bool(getattr(self.websocket, "in_process", False)) or self.realtime.ip_new_devices.allow(self.ip)

    async def _release_held(self, after: int) -> None:
        assert self.client is not None
        held, self.client.held = self.client.held or [], None
        for seq, alert_ids, text in held:
            if seq > after:
                await self.client.put(alert_ids, text)

    async def _resnapshot(self) -> None:
        """After a location or places change: the snapshot first, then whatever was fanned out meanwhile."""
        assert self.client is not None
        upto = self.realtime.hub.last_seq
        try:
            await self.client.put(*await self.realtime.dispatcher.snapshot(self.client, upto))
        except Exception as exc:  # as in _start: held alerts must not pile up unsent; reconnecting replays them
            _outages.failure("resnapshot", "snapshot after a move failed (%s); asking it to reconnect", describe(exc))
            self.client.held = None
            await self._close_after_sending(CLOSE_TRY_AGAIN_LATER)
            return
        await self._release_held(upto)

    async def _handle_text(self, text: str) -> None:
        assert self.client is not None
        realtime = self.realtime
        message: Any = None
        device_id = self.client.device.device_id
        try:
            message = parse(text)
            if not (self._ip_allows(realtime.ip_messages) and realtime.device_messages.allow(device_id)):
                limited = ProtocolViolation("rate_limited", "too many messages; slow down", id=_id_of(message))
                await self._violation(limited, count=False)
                return
            await self._dispatch(message)
        except ProtocolViolation as violation:
            await self._violation(violation)
        except Exception as exc:  # a bug or a database failure: this message fails, the connection and others go on
            if database_unreachable(exc):
                _outages.failure("message", "a device's message failed: database unreachable (%s)", describe(exc))
                unavailable = "the server cannot reach its database; resend shortly"
                await self.send(protocol.error("unavailable", unavailable, id=_id_of(message)))
                return
            log.exception("handling a %s message failed", type(message).__name__)
            await self.send(protocol.error("internal", "the server could not handle this message; resend later"))

    def _ip_allows(self, limiter: Limiter) -> bool:
        """Per-address limits guard the public. An exercise's synthetic citizens share one address by design: in-process
        they are exempt (nobody outside the server can be one); over WebSockets each exercise gets the per-address
        budget of its own, so a join token cannot eat into the public's."""
        assert self.client is not None
        if getattr(self.websocket, "in_process", False):  # set by the socket object, not by anything a client sends
            return True
        exercise = self.client.device.exercise_id
        return limiter.allow(self.ip if exercise is None else f"{self.ip} {exercise}")

    async def _violation(self, violation: ProtocolViolation, *, count: bool = True) -> None:
        await self.send(violation.body)
        if violation.body["code"] == "too_big":
            await self._close_after_sending(CLOSE_TOO_BIG)
            return
        if count:
            self.violations += 1
            if self.violations >= MAX_VIOLATIONS:
                await self._close_after_sending(CLOSE_POLICY)

    async def _close_after_sending(self, code: int) -> None:
        """The error goes out first, then the close frame."""
        assert self.client is not None
        self.client.closed = True
        await self.client.queue.put(code)
        if self.writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer

    async def _dispatch(self, message: Any) -> None:
        assert self.client is not None
        realtime = self.realtime
        device = self.client.device
        if isinstance(message, Hello):
            raise ProtocolViolation("already_said_hello", "hello is the first message only", id=message.id)
        if isinstance(message, Ping):
            await self.send({"type": "pong", "id": message.id})
        elif isinstance(message, LocationUpdate):
            location = (message.location.lon, message.location.lat) if message.location else None
            self.client.held = []  # live alerts for the new place wait until the snapshot is out
            realtime.hub.set_location(self.client, location)
            await self._ack(message.id)
            await self._resnapshot()
        elif isinstance(message, PlacesUpdate):
            async with realtime.database.sessions() as session:
                await devices.save_places(session, device.device_id, message.places)
                await session.commit()
            self.client.held = []
            realtime.hub.set_places(self.client, [p.geometry() for p in message.places])
            await self._ack(message.id)
            await self._resnapshot()
        elif isinstance(message, Preferences):
            await self._preferences(message)
        elif isinstance(message, AckAlert | CheckIn):
            await self._respond(message)
        elif isinstance(message, Received):
            for alert_id in message.alert_ids:
                if not realtime.deliveries.noted(alert_id, device.device_id) and await self._may_have(alert_id):
                    realtime.deliveries.target(alert_id, (device.device_id,))  # its row may not be written yet
                realtime.deliveries.receive(alert_id, device.device_id)
            await self._ack(message.id)
        elif isinstance(message, ReportIn):
            await self._report(message)
        elif isinstance(message, MyReports):
            async with realtime.database.sessions() as session:
                own = await reports.own_reports(session, device_id=device.device_id)
            await self.send(
                {"type": "my_reports", "id": message.id, "reports": [r.model_dump(mode="json") for r in own]}
            )

    async def _ack(self, message_id: str | None, **extra: Any) -> None:
        if message_id is not None or extra:
            await self.send({"type": "ack", "id": message_id, **extra})

    async def _preferences(self, message: Preferences) -> None:
        assert self.client is not None
        device = self.client.device
        if message.languages is not None:
            device.languages = message.languages
        if message.categories is not None:
            device.categories = frozenset(message.categories)
        if message.min_severity is not None:
            device.min_severity_rank = SEVERITY_RANK.get(message.min_severity, 0)
        async with self.realtime.database.sessions() as session:
            await devices.save_preferences(
                session,
                device.device_id,
                languages=message.languages,
                categories=None if message.categories is None else list(message.categories),
                min_severity=message.min_severity,
            )
            await session.commit()
        await self._ack(message.id)

    async def _may_have(self, alert_id: uuid.UUID) -> bool:
        """The alert is live and applies to this device where it is now, so it was or is being sent to it, perhaps by
        another worker that has not written the delivery down yet (the device moved here within its flush interval,
        or that worker cannot reach the database). The same rules as the fan-out, exercise isolation included."""
        assert self.client is not None
        device = self.client.device
        alert = await self.realtime.dispatcher.active_alert(alert_id)
        return alert is not None and device.wants(alert) and device.inside(alert.geometry)

    async def _respond(self, message: AckAlert | CheckIn) -> None:
        """An answer counts once per device, and only from a device the alert was sent to or may have been sent to
        (which also keeps exercise devices and public devices out of each other's alerts)."""
        assert self.client is not None
        device_id = self.client.device.device_id
        sent_here = self.realtime.deliveries.noted(message.alert_id, device_id)
        may_have = not sent_here and await self._may_have(message.alert_id)
        try:
            async with self.realtime.database.sessions() as session:
                await devices.respond(
                    session,
                    alert_id=message.alert_id,
                    device_id=device_id,
                    checkin=message.status if isinstance(message, CheckIn) else None,
                    location=message.location if isinstance(message, CheckIn) else None,
                    sent_here=sent_here,
                    may_have=may_have,
                )
                await session.commit()
        except devices.UnknownAlert:
            raise ProtocolViolation("unknown_alert", "no such alert", id=message.id, field="alert_id") from None
        except devices.NotDelivered:
            raise ProtocolViolation(
                "not_delivered", "this alert was not sent to this device", id=message.id, field="alert_id"
            ) from None
        await self._ack(message.id, alert_id=str(message.alert_id))

    async def _report(self, message: ReportIn) -> None:
        assert self.client is not None
        realtime = self.realtime
        device_id = self.client.device.device_id
        if not (realtime.device_reports.allow(device_id) and self._ip_allows(realtime.ip_reports)):
            await self.send(protocol.error("rate_limited", "too many reports; resend later", id=str(message.id)))
            return
        try:
            ack, _ = await realtime.writer.submit(device_id, message, self.client.device.exercise_id)
        except ReportRefused as refused:
            await self.send(protocol.error(refused.code, refused.message, id=str(message.id), field=refused.field))
            return
        await self.send(ack.model_dump(mode="json"))

    async def _finish(self) -> None:
        if self.client is not None:
            self.realtime.hub.remove(self.client)
            # Retention counts from the last time a device was seen; an exercise's devices end with their exercise
            # (and thousands of them leaving at a stop must not queue for the database in front of operators).
            if self.client.device.exercise_id is None:
                with contextlib.suppress(Exception):
                    async with self.realtime.database.sessions() as session:
                        await devices.seen(session, self.client.device.device_id)
                        await session.commit()
            self.client.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.client.queue.put_nowait(None)
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
        if self.closing is not None:  # make sure our close code goes out before the server closes with 1000
            with contextlib.suppress(Exception):
                await self.websocket.close(self.closing)


@router.websocket("/ws/citizen")
async def citizen_socket(websocket: WebSocket) -> None:
    """The citizen protocol (docs/protocol.md): no account, an anonymous device id."""
    await CitizenSession(websocket, websocket.app.state.realtime).run()
