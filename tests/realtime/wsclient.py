"""A small citizen-protocol client over a real WebSocket, for tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class Citizen:
    """Like an app, it says `received` for every alert it gets (live, replayed or in a snapshot), unless told not to."""

    def __init__(self, connection: ClientConnection, *, say_received: bool = True) -> None:
        self.connection = connection
        self.say_received = say_received

    @classmethod
    async def connect(
        cls, ws_url: str, *, say_received: bool = True, **hello: Any
    ) -> tuple[Citizen, list[dict[str, Any]]]:
        """Say hello and read up to and including the snapshot; returns the messages before it and the snapshot."""
        connection = await websockets.connect(f"{ws_url}/ws/citizen", compression=None)
        citizen = cls(connection, say_received=say_received)
        hello.setdefault("device_id", f"dev-{uuid.uuid4().hex[:12]}")
        await citizen.send({"type": "hello", **hello})
        received = []
        while True:
            message = await citizen.receive()
            received.append(message)
            if message["type"] == "snapshot":
                return citizen, received

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, wait: float = 10) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.connection.recv(), wait))
        alerts = [message] if message["type"] == "alert" else message.get("alerts", [])
        if self.say_received and message["type"] in ("alert", "snapshot") and alerts:
            await self.send({"type": "received", "alert_ids": [a["alert_id"] for a in alerts]})
        return message

    async def receive_type(self, kind: str, wait: float = 10) -> dict[str, Any]:
        while True:
            message = await self.receive(wait)
            if message["type"] == kind:
                return message

    async def nothing_for(self, seconds: float) -> list[dict[str, Any]]:
        got = []
        try:
            while True:
                got.append(await self.receive(seconds))
        except TimeoutError:
            return got

    async def close(self) -> None:
        await self.connection.close()
