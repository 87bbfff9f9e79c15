"""How a synthetic citizen reaches the server: the real citizen protocol, over a real WebSocket or in-process.

In-process, the device's frames go through the very `CitizenSession` that serves `/ws/citizen`, over a pair of
queues instead of a socket: same hello, replay, snapshot, acknowledgements, limits. Over WebSockets they go to
TOCSIN_EXERCISE_CITIZEN_URL like any phone's.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Protocol

from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tocsin.realtime.citizen import CitizenSession
from tocsin.realtime.runtime import Realtime

CONNECT_TIMEOUT_SECONDS = 10


class LinkClosed(Exception):
    pass


class Link(Protocol):
    async def send(self, text: str) -> None: ...
    async def recv(self) -> str: ...
    async def close(self) -> None: ...


class MemorySocket:
    """The server side of an in-process link: the methods CitizenSession uses on a WebSocket."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()  # device -> server
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()  # server -> device
        self.client = SimpleNamespace(host="in-process")
        self.in_process = True  # CitizenSession: no per-address limits for in-process links
        self.closed = False

    async def accept(self) -> None:
        return None

    async def receive_frame(self) -> str:
        text = await self.inbox.get()
        if text is None:
            raise WebSocketDisconnect(1000)
        return text

    async def send_text(self, text: str) -> None:
        if self.closed:
            raise WebSocketDisconnect(1006)
        self.outbox.put_nowait(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(None)


class MemoryLink:
    def __init__(self, realtime: Realtime) -> None:
        self.socket = MemorySocket()
        self.session = asyncio.create_task(CitizenSession(self.socket, realtime).run())
        self.session.add_done_callback(lambda _: self.socket.outbox.put_nowait(None))  # however the session ended

    async def send(self, text: str) -> None:
        if self.socket.closed:
            raise LinkClosed
        self.socket.inbox.put_nowait(text)

    async def recv(self) -> str:
        text = await self.socket.outbox.get()
        if text is None:
            raise LinkClosed
        return text

    async def close(self) -> None:
        self.socket.inbox.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self.session), timeout=5)
        self.socket.closed = True


class WebSocketLink:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str) -> WebSocketLink:
        try:
            connection = await connect(url, compression=None, open_timeout=CONNECT_TIMEOUT_SECONDS, max_queue=64)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise LinkClosed(str(exc)) from None
        return cls(connection)

    async def send(self, text: str) -> None:
        try:
            await self.connection.send(text)
        except ConnectionClosed:
            raise LinkClosed from None

    async def recv(self) -> str:
        try:
            message = await self.connection.recv()
        except ConnectionClosed:
            raise LinkClosed from None
        return message if isinstance(message, str) else message.decode("utf-8", errors="replace")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), timeout=5)
