"""A small citizen-protocol client over a real WebSocket, for tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class Citizen:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, ws_url: str, **hello: Any) -> tuple[Citizen, list[dict[str, Any]]]:
        """Say hello and read up to and including the snapshot; returns the messages before it and the snapshot."""
        connection = await websockets.connect(f"{ws_url}/ws/citizen", compression=None)
        citizen = cls(connection)
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
        return json.loads(await asyncio.wait_for(self.connection.recv(), wait))

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
