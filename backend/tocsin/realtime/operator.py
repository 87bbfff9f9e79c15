"""`/ws/operator`: new reports, report status changes and per-alert counts, live, for signed-in staff.

The access token (the same as for the REST API) never goes in the URL, where logs keep it: API clients send it in
the handshake's `Authorization: Bearer` header; browsers, which cannot set headers on a WebSocket, send
`{"type": "auth", "token": ...}` as the first message within AUTH_SECONDS. A `token` query parameter is refused.
Every event carries `seq`; a console reconnects with its last one (`?since=` or `since` in the auth message) and
gets what it missed (realtime/feed.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError

from tocsin.auth import service as users
from tocsin.auth.tokens import TokenClaims, read_token
from tocsin.realtime import protocol
from tocsin.realtime.feed import Console, OperatorFeed, refusal
from tocsin.realtime.runtime import Realtime
from tocsin.types import DB_ID_MAX, Cursor

router = APIRouter()
AUTH_SECONDS = 5.0
MAX_MESSAGE = 8_192
CURSOR: TypeAdapter[int] = TypeAdapter(Cursor)


class Refused(Exception):
    """Close the socket with 1008 and this reason (at most 123 bytes)."""


def _parse(text: str) -> dict[str, Any] | None:
    if len(text) > MAX_MESSAGE:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") in protocol.OPERATOR_CLIENT_TYPES:
        return message
    return None


def _cursor(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit() and len(value) <= len(str(DB_ID_MAX)):
        value = int(value)
    try:
        return CURSOR.validate_python(value, strict=True)
    except ValidationError:
        raise Refused(f"since must be the seq of the last event received (0..{DB_ID_MAX})") from None


async def _credentials(websocket: WebSocket) -> tuple[str, int | None]:
    """The token and the cursor, from the handshake header or the first message."""
    if "token" in websocket.query_params:
        raise Refused("no token in the URL: use the Authorization header or a first auth message")
    since = _cursor(websocket.query_params.get("since"))
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), since
    try:
        async with asyncio.timeout(AUTH_SECONDS):
            message = _parse(await websocket.receive_text())
    except TimeoutError:
        raise Refused('sign in: send {"type": "auth", "token": ...} first') from None
    except KeyError:  # a binary frame
        raise Refused("messages are JSON text frames") from None
    token = message.get("token") if message is not None and message["type"] == "auth" else None
    if not isinstance(token, str) or not token:
        raise Refused('sign in: the first message is {"type": "auth", "token": ...}')
    return token, _cursor(message.get("since")) if message and "since" in message else since


async def _signed_in(websocket: WebSocket) -> tuple[TokenClaims, str, int | None]:
    token, since = await _credentials(websocket)
    claims = read_token(token, key=websocket.app.state.settings.signing_key)
    if claims is None:
        raise Refused("the access token is invalid or expired; sign in again")
    async with websocket.app.state.database.sessions() as session:
        user = await users.get_user(session, user_id=claims.user_id)
    reason = refusal(user, claims)
    if reason is not None:
        raise Refused(reason)
    assert user is not None
    return claims, user.username, since


async def _answer_pings(websocket: WebSocket, console: Console, closed: asyncio.Event) -> None:
    """The only message after signing in is ping; anything else gets an error."""
    while not closed.is_set():
        message = _parse(await websocket.receive_text())
        if message is None or message["type"] != "ping":
            error = protocol.error("invalid", "after signing in, the only message is ping")
            console.queue.put_nowait(protocol.encode_operator(error))
            continue
        console.queue.put_nowait(protocol.encode_operator({"type": "pong", "id": message.get("id")}))


@router.websocket("/ws/operator")
async def operator_socket(websocket: WebSocket) -> None:
    """Live feed for operators (docs/protocol.md)."""
    await websocket.accept()  # refusals below are close frames with a reason, which a refused handshake cannot carry
    try:
        claims, username, since = await _signed_in(websocket)
    except Refused as refused:
        await websocket.close(1008, str(refused))
        return
    except WebSocketDisconnect:
        return
    realtime: Realtime = websocket.app.state.realtime
    operators: OperatorFeed = realtime.operators
    closing: set[asyncio.Task[None]] = set()
    closed = asyncio.Event()

    def close(code: int, reason: str) -> None:
        closed.set()
        task = asyncio.get_running_loop().create_task(websocket.close(code, reason))
        closing.add(task)

    console = Console(claims=claims, close=close)
    await operators.join(console, {"type": "welcome", "user": username}, since)
    lifetime = (claims.expires_at - datetime.now(UTC)).total_seconds()
    expiry = asyncio.get_running_loop().call_later(
        max(lifetime, 0), operators.drop, console, 1008, "the access token expired; sign in again"
    )

    async def write() -> None:
        while True:
            await websocket.send_text(await console.queue.get())

    writer = asyncio.create_task(write())
    try:
        await _answer_pings(websocket, console, closed)
    except (WebSocketDisconnect, RuntimeError, KeyError, asyncio.QueueFull):
        pass
    finally:
        expiry.cancel()
        operators.leave(console)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        for task in closing:
            with contextlib.suppress(Exception):
                await task
