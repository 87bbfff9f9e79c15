"""The lean citizen listener: the same protocol as `/ws/citizen`, served by the `websockets` library directly.

Under uvicorn and Starlette an idle WebSocket costs a worker about 36 KiB; on the `websockets` server it costs about
15 KiB (docs/performance.md). With TOCSIN_CITIZEN_PORT set, each worker also listens there (SO_REUSEPORT, so several
workers share the port and the kernel spreads devices over them) and the reverse proxy routes `/ws/citizen` to it.
The ASGI route stays for single-port setups. Both feed the same hub.
"""

from __future__ import annotations

import logging

from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from tocsin.realtime.citizen import CitizenSession
from tocsin.realtime.hub import Client
from tocsin.realtime.runtime import Realtime
from tocsin.realtime.transport import PeerAddress

log = logging.getLogger(__name__)

PATH = "/ws/citizen"
MAX_FRAME_BYTES = 65_536
WRITE_BUFFER_LIMIT = 256 * 1024  # bytes waiting in the socket's send buffer before we fall back to the queue


class ListenerSocket:
    """A citizen's `websockets` connection as a `CitizenTransport`, which the fan-out may also write to directly
    (`DirectWrites`)."""

    in_process = False

    def __init__(self, connection: ServerConnection, trusted_proxies: frozenset[str] = frozenset()) -> None:
        self.connection = connection
        self.client = PeerAddress(client_address(connection, trusted_proxies))

    async def accept(self) -> None:
        return None  # the handshake is done by the time the handler runs

    async def receive_frame(self) -> str | bytes:
        try:
            return await self.connection.recv()
        except ConnectionClosed as closed:
            raise WebSocketDisconnect(closed.rcvd.code if closed.rcvd else 1006) from None

    async def send_text(self, text: str) -> None:
        try:
            await self.connection.send(text)
        except ConnectionClosed:
            raise WebSocketDisconnect(1006) from None

    def write_now(self, text: str) -> bool:
        """Write a frame without awaiting, if the connection can take it now."""
        if not writable(self.connection):
            return False
        broadcast([self.connection], text)
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)


def writable(connection: ServerConnection) -> bool:
    """Open, not in the middle of a fragmented message, send buffer not backed up: `broadcast` will write to it."""
    return (
        connection.protocol.state is State.OPEN
        and connection.send_in_progress is None
        and connection.transport.get_write_buffer_size() <= WRITE_BUFFER_LIMIT
    )


def write_batch(clients: list[Client], text: str) -> list[Client]:
    """One frame to many devices, encoded once (`websockets.broadcast`); returns the devices it was written to.
    A write that fails on the socket is logged by websockets and that connection closes: its device replays."""
    ready: list[Client] = []
    connections: list[ServerConnection] = []
    for client in clients:
        if client.direct is not None and writable(client.direct.connection):
            ready.append(client)
            connections.append(client.direct.connection)
    broadcast(connections, text)
    return ready


def client_address(connection: ServerConnection, trusted_proxies: frozenset[str]) -> str:
    """The peer, or, when the peer is a trusted reverse proxy, the last address in X-Forwarded-For it did not add
    itself (so per-IP limits count citizens, not the proxy)."""
    remote = connection.remote_address
    peer = str(remote[0]) if remote else "unknown"
    request = connection.request
    if peer not in trusted_proxies or request is None:
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return peer


class CitizenListener:
    def __init__(self, realtime: Realtime) -> None:
        self.realtime = realtime
        self.server: Server | None = None
        self.trusted = frozenset(p.strip() for p in realtime.settings.trusted_proxies.split(",") if p.strip())

    async def _handle(self, connection: ServerConnection) -> None:
        socket = ListenerSocket(connection, self.trusted)
        await CitizenSession(socket, self.realtime, direct=socket).run()

    @staticmethod
    def _only_citizen_path(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != PATH:
            return connection.respond(404, f"only {PATH} is served on this port\n")
        return None

    async def start(self, host: str, port: int) -> None:
        self.server = await serve(
            self._handle,
            host,
            port,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            max_queue=16,
            reuse_port=True,
            process_request=self._only_citizen_path,
            backlog=4096,
        )
        self.realtime.hub.write_batch = write_batch
        log.info("citizen listener on ws://%s:%d%s", host, port, PATH)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close(close_connections=True)
            await self.server.wait_closed()
