"""`/ws/operator`: new reports, report status changes and per-alert counts, live, for signed-in staff.

Browsers cannot set headers on a WebSocket, so the access token (the same as for the REST API) comes as the `token`
query parameter or in an `Authorization: Bearer` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tocsin.auth import service as users
from tocsin.auth.schemas import Role
from tocsin.auth.tokens import read_token
from tocsin.realtime import protocol
from tocsin.realtime.runtime import Realtime

router = APIRouter()
# Reports carry citizens' words and exact places: the same roles as triage over REST.
STAFF = (Role.operator, Role.approver)


async def _authorised(websocket: WebSocket) -> str | None:
    token = websocket.query_params.get("token")
    header = websocket.headers.get("authorization", "")
    if token is None and header.lower().startswith("bearer "):
        token = header[7:]
    if not token:
        return None
    user_id = read_token(token, key=websocket.app.state.settings.signing_key)
    if user_id is None:
        return None
    async with websocket.app.state.database.sessions() as session:
        user = await users.get_user(session, user_id=user_id)
    if user is None or not user.is_active or not users.has_role(user, *STAFF):
        return None
    return user.username


def _parse(text: str) -> dict[str, object] | None:
    if len(text) > 1_024:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") in protocol.OPERATOR_CLIENT_TYPES:
        return message
    return None


@router.websocket("/ws/operator")
async def operator_socket(websocket: WebSocket) -> None:
    """Live feed for operators (docs/protocol.md)."""
    username = await _authorised(websocket)
    if username is None:
        await websocket.close(1008, "sign in: ?token=<access token>")
        return
    await websocket.accept()
    realtime: Realtime = websocket.app.state.realtime
    queue: asyncio.Queue[str] = asyncio.Queue(1_000)
    closed = asyncio.Event()

    def close(code: int) -> None:
        closed.set()
        asyncio.get_running_loop().create_task(websocket.close(code))

    realtime.operators.queues[queue] = close
    await websocket.send_text(protocol.encode_operator({"type": "welcome", "user": username}))
    realtime.operators.last_counts.clear()  # the new console gets every current count on the next push

    async def write() -> None:
        while True:
            await websocket.send_text(await queue.get())

    writer = asyncio.create_task(write())
    try:
        while not closed.is_set():
            message = _parse(await websocket.receive_text())
            if message is None:
                await websocket.send_text(
                    protocol.encode_operator(protocol.error("invalid", "the only message is ping"))
                )
                continue
            await websocket.send_text(protocol.encode_operator({"type": "pong", "id": message.get("id")}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        realtime.operators.queues.pop(queue, None)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
