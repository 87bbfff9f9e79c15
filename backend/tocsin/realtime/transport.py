"""What carries one citizen's connection: the one protocol `CitizenSession` speaks to.

Three carriers implement it: the ASGI route `/ws/citizen` (`AsgiTransport`, over Starlette's WebSocket), the lean
listener (`listener.ListenerSocket`, over a `websockets` connection) and an exercise's in-process link (a pair of
queues in the exercise's links module). Whatever the carrier, a connection that is gone shows as Starlette's
`WebSocketDisconnect` from `receive_frame` and `send_text`, never as another exception, and `close` on it does
nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

CLOSE_ABNORMAL = 1006  # the connection dropped without a close frame


class Peer(Protocol):
    @property
    def host(self) -> str:
        """The device's address, as per-address limits count it (behind a trusted proxy: the forwarded one)."""
        ...


class CitizenTransport(Protocol):
    """One device's connection."""

    @property
    def client(self) -> Peer: ...

    @property
    def in_process(self) -> bool:
        """An exercise's synthetic citizen inside the server (nobody outside can be one): per-address limits do not
        apply. Set by the carrier, never by anything a client sends."""
        ...

    async def accept(self) -> None: ...

    async def receive_frame(self) -> str | bytes:
        """The next frame: `str` for a text frame, `bytes` for a binary one."""
        ...

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with this code and reason; nothing happens if the connection is gone already."""
        ...


class DirectWrites(Protocol):
    """A connection the fan-out may write to without awaiting, one at a time or in one batch with others (the lean
    listener: `websockets.broadcast`). Only when nothing is queued or being sent for the device, so frames keep their
    order."""

    def write_now(self, text: str) -> bool:
        """Write a frame now if the connection can take it; False if not (the frame then goes to the queue)."""
        ...

    @property
    def connection(self) -> ServerConnection: ...


@dataclass(frozen=True, slots=True)
class PeerAddress:
    host: str


class AsgiTransport:
    """`/ws/citizen` under the ASGI server: Starlette's WebSocket, with every way it reports a lost connection
    (a disconnect message, `RuntimeError` once closed) turned into `WebSocketDisconnect`."""

    in_process = False

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.client = PeerAddress(websocket.client.host if websocket.client else "unknown")

    async def accept(self) -> None:
        await self.websocket.accept()

    async def receive_frame(self) -> str | bytes:
        try:
            message = await self.websocket.receive()
        except RuntimeError:
            raise WebSocketDisconnect(CLOSE_ABNORMAL) from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code") or 1000)
        text: str | None = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def send_text(self, text: str) -> None:
        try:
            await self.websocket.send_text(text)
        except RuntimeError:
            raise WebSocketDisconnect(CLOSE_ABNORMAL) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # closed or gone already
            await self.websocket.close(code, reason)
