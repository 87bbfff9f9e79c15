"""`/ws/citizen`: a device says hello, gets what it missed and what applies now, then lives on live alerts.

Order on connect (see docs/protocol.md): welcome -> replay of every missed alert message (seq > last_seq) -> snapshot
of the active alerts that apply -> live messages. Live messages that arrive during the replay wait in `Client.held`
and are released after it, skipping any the replay already sent, so the device sees every sequence number once and
in order.

`CitizenSession` speaks to its connection only through `CitizenTransport` (transport.py), whichever carries it: the
ASGI route below, the lean listener (listener.py) or an exercise's in-process link. The hello is handshake.py's;
receipts and answers to alerts are answers.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, assert_never

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from tocsin.alerts.schemas import SEVERITY_RANK
from tocsin.models import Device as StoredDevice
from tocsin.realtime import answers, devices, handshake, protocol
from tocsin.realtime.hub import Client
from tocsin.realtime.protocol import (
    AckAlert,
    CheckIn,
    ClientMessage,
    Hello,
    LocationUpdate,
    MyReports,
    Ping,
    PlacesUpdate,
    Preferences,
    ProtocolViolation,
    Received,
    ReportIn,
)
from tocsin.realtime.ratelimit import Limiter
from tocsin.realtime.runtime import Realtime
from tocsin.realtime.transport import AsgiTransport, CitizenTransport, DirectWrites
from tocsin.reports import service as reports
from tocsin.reports.writer import ReportRefused
from tocsin.resilience import ThrottledLog, database_unreachable, describe

log = logging.getLogger(__name__)
_outages = ThrottledLog(log)  # a database outage is said once a minute, not once per device or message
router = APIRouter()

MAX_VIOLATIONS = 5


class CitizenSession:
    """One device's connection, from its hello to its last frame."""

    def __init__(self, transport: CitizenTransport, realtime: Realtime, *, direct: DirectWrites | None = None) -> None:
        self.transport = transport
        self.realtime = realtime
        self.direct = direct  # the connection's fast path for the fan-out, if its carrier has one
        self._client: Client | None = None
        self.violations = 0
        self.writer: asyncio.Task[None] | None = None
        self.closing: int | None = None

    @property
    def client(self) -> Client:
        """The device in the hub; there is one from the welcome on."""
        assert self._client is not None, "no device before its hello"
        return self._client

    def request_close(self, code: int) -> None:
        if self.closing is None:
            self.closing = code
            asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.transport.close(code)

    async def send(self, message: dict[str, Any]) -> None:
        """After the hello through the device's queue (in order with alerts), before it straight to the socket."""
        if self._client is not None:
            await self._client.put((), protocol.encode(message))
        else:
            await self.transport.send_text(protocol.encode(message))

    def _written(self, alert_ids: tuple[uuid.UUID, ...]) -> None:
        for alert_id in alert_ids:
            self.realtime.deliveries.wrote(alert_id, (self.client.device.device_id,))

    async def write(self, client: Client) -> None:
        """The device's writer task: sends what its queue holds, in order, until a close code or the end."""
        try:
            while (item := await client.queue.get()) is not None:
                if isinstance(item, int):  # a close code, after everything queued before it
                    self.request_close(item)
                    return
                alert_ids, text = item
                client.sending = True
                await self.transport.send_text(text)
                client.sending = False
                if alert_ids:
                    self._written(alert_ids)
        except WebSocketDisconnect:
            return
        finally:
            # Nobody sends for this device any more: let waiting producers go and end the session.
            client.closed = True
            while not client.queue.empty():
                client.queue.get_nowait()
            self.request_close(protocol.CLOSE_SERVER_ERROR)

    async def run(self) -> None:
        await self.transport.accept()
        try:
            hello = await handshake.receive_hello(self.transport)
            if hello is None or not await self._join(hello):
                return
            while self.closing is None:
                frame = await self.transport.receive_frame()
                if isinstance(frame, bytes):
                    await self.send(protocol.error("binary_frame", "send JSON in text frames"))
                    await self._close_after_sending(protocol.CLOSE_UNSUPPORTED_DATA)
                    return
                await self._handle_text(frame)
        except WebSocketDisconnect:
            pass
        finally:
            await self._finish()

    async def _join(self, hello: Hello) -> bool:
        """Admit the device and start it; False if it was refused or could not start (it was told why). The stored
        row is not kept: this frame is gone once the device has started (a connection holds little memory)."""
        stored = await handshake.admit(self.transport, self.realtime, hello)
        return stored is not None and await self._start(hello, stored)

    async def _start(self, hello: Hello, stored: StoredDevice) -> bool:
        """Join the hub, welcome the device, replay what it missed and send the snapshot; False if that failed."""
        realtime = self.realtime
        client = Client(
            handshake.hub_device(hello, stored),
            self.request_close,
            realtime.settings.client_queue_size,
            direct=self.direct,
            written=self._written,
        )
        client.held = []
        self._client = client
        upto = realtime.hub.add(client)  # from here on, live messages for this device are held
        self.writer = asyncio.create_task(self.write(client))
        await self.send(handshake.welcome(hello, upto))
        # A device may have seen more than this worker has fanned out yet (it was on another worker).
        replayed = max(upto, hello.last_seq or 0)
        try:
            if hello.last_seq is not None and hello.last_seq < upto:
                replayed = await realtime.dispatcher.replay(client, hello.last_seq, upto)
            await client.put(*await realtime.dispatcher.snapshot(client, upto))
        except Exception as exc:  # the database failed us: the device reconnects and replays from its last_seq
            _outages.failure(
                "replay", "replay or snapshot for a device failed (%s); asking it to reconnect", describe(exc)
            )
            client.held = None
            await self._close_after_sending(protocol.CLOSE_TRY_AGAIN_LATER)
            return False
        await self._release_held(replayed)
        return True

    async def _release_held(self, after: int) -> None:
        held, self.client.held = self.client.held or [], None
        for seq, alert_ids, text in held:
            if seq > after:
                await self.client.put(alert_ids, text)

    async def _resnapshot(self) -> None:
        """After a location or places change: the snapshot first, then whatever was fanned out meanwhile."""
        upto = self.realtime.hub.last_seq
        try:
            await self.client.put(*await self.realtime.dispatcher.snapshot(self.client, upto))
        except Exception as exc:  # as in _start: held alerts must not pile up unsent; reconnecting replays them
            _outages.failure("resnapshot", "snapshot after a move failed (%s); asking it to reconnect", describe(exc))
            self.client.held = None
            await self._close_after_sending(protocol.CLOSE_TRY_AGAIN_LATER)
            return
        await self._release_held(upto)

    async def _handle_text(self, text: str) -> None:
        message: ClientMessage | None = None
        try:
            message = protocol.parse(text)
            device_id = self.client.device.device_id
            if not (self._ip_allows(self.realtime.ip_messages) and self.realtime.device_messages.allow(device_id)):
                limited = "too many messages; slow down"
                await self._violation(
                    ProtocolViolation("rate_limited", limited, id=protocol.message_id(message)), count=False
                )
                return
            await self._dispatch(message)
        except ProtocolViolation as violation:
            await self._violation(violation)
        except Exception as exc:  # a bug or a database failure: this message fails, the connection and others go on
            if database_unreachable(exc):
                _outages.failure("message", "a device's message failed: database unreachable (%s)", describe(exc))
                unavailable = "the server cannot reach its database; resend shortly"
                echoed = None if message is None else protocol.message_id(message)
                await self.send(protocol.error("unavailable", unavailable, id=echoed))
                return
            log.exception("handling a %s message failed", type(message).__name__)
            await self.send(protocol.error("internal", "the server could not handle this message; resend later"))

    def _ip_allows(self, limiter: Limiter) -> bool:
        """Per-address limits guard the public. An exercise's synthetic citizens share one address by design: in-process
        they are exempt (nobody outside the server can be one); over WebSockets each exercise gets the per-address
        budget of its own, so a join token cannot eat into the public's."""
        if self.transport.in_process:
            return True
        address, exercise = self.transport.client.host, self.client.device.exercise_id
        return limiter.allow(address if exercise is None else f"{address} {exercise}")

    async def _violation(self, violation: ProtocolViolation, *, count: bool = True) -> None:
        await self.send(violation.body)
        if violation.code == "too_big":
            await self._close_after_sending(protocol.CLOSE_TOO_BIG)
            return
        if count:
            self.violations += 1
            if self.violations >= MAX_VIOLATIONS:
                await self._close_after_sending(protocol.CLOSE_POLICY)

    async def _close_after_sending(self, code: int) -> None:
        """The error goes out first, then the close frame."""
        self.client.closed = True
        await self.client.queue.put(code)
        if self.writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer

    async def _dispatch(self, message: ClientMessage) -> None:
        device = self.client.device
        match message:
            case Ping():
                await self.send({"type": "pong", "id": message.id})
            case LocationUpdate():
                await self._move(message)
            case PlacesUpdate():
                await self._save_places(message)
            case Preferences():
                await self._preferences(message)
            case AckAlert() | CheckIn():
                await answers.record_answer(self.realtime, device, message)
                await self._ack(message.id, alert_id=str(message.alert_id))
            case Received():
                await answers.note_receipts(self.realtime, device, message)
                await self._ack(message.id)
            case ReportIn():
                await self._report(message)
            case MyReports():
                await self._my_reports(message)
            case Hello():
                raise ProtocolViolation("already_said_hello", "hello is the first message only", id=message.id)
            case _:
                assert_never(message)

    async def _ack(self, message_id: str | None, **extra: Any) -> None:
        if message_id is not None or extra:
            await self.send({"type": "ack", "id": message_id, **extra})

    async def _move(self, message: LocationUpdate) -> None:
        location = (message.location.lon, message.location.lat) if message.location else None
        self.client.held = []  # live alerts for the new place wait until the snapshot is out
        self.realtime.hub.set_location(self.client, location)
        await self._ack(message.id)
        await self._resnapshot()

    async def _save_places(self, message: PlacesUpdate) -> None:
        async with self.realtime.database.sessions() as session:
            await devices.save_places(session, self.client.device.device_id, message.places)
            await session.commit()
        self.client.held = []
        self.realtime.hub.set_places(self.client, [place.geometry() for place in message.places])
        await self._ack(message.id)
        await self._resnapshot()

    async def _preferences(self, message: Preferences) -> None:
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

    async def _report(self, message: ReportIn) -> None:
        realtime = self.realtime
        device = self.client.device
        if not (realtime.device_reports.allow(device.device_id) and self._ip_allows(realtime.ip_reports)):
            await self.send(protocol.error("rate_limited", "too many reports; resend later", id=str(message.id)))
            return
        try:
            ack, _ = await realtime.writer.submit(device.device_id, message, device.exercise_id)
        except ReportRefused as refused:
            await self.send(protocol.error(refused.code, refused.message, id=str(message.id), field=refused.field))
            return
        await self.send(ack.model_dump(mode="json"))

    async def _my_reports(self, message: MyReports) -> None:
        async with self.realtime.database.sessions() as session:
            own = await reports.own_reports(session, device_id=self.client.device.device_id)
        await self.send({"type": "my_reports", "id": message.id, "reports": [r.model_dump(mode="json") for r in own]})

    async def _finish(self) -> None:
        client = self._client
        if client is not None:
            self.realtime.hub.remove(client)
            # Retention counts from the last time a device was seen; an exercise's devices end with their exercise
            # (and thousands of them leaving at a stop must not queue for the database in front of operators).
            if client.device.exercise_id is None:
                with contextlib.suppress(Exception):
                    async with self.realtime.database.sessions() as session:
                        await devices.seen(session, client.device.device_id)
                        await session.commit()
            client.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
        if self.closing is not None:  # make sure our close code goes out before the server closes with 1000
            with contextlib.suppress(Exception):
                await self.transport.close(self.closing)


@router.websocket("/ws/citizen")
async def citizen_socket(websocket: WebSocket) -> None:
    """The citizen protocol (docs/protocol.md): no account, an anonymous device id."""
    session = CitizenSession(AsgiTransport(websocket), websocket.app.state.realtime)
    # In a task of its own: each message then wakes the session's few frames, not also the two dozen of the ASGI
    # middleware stack this route runs under.
    await asyncio.create_task(session.run())
