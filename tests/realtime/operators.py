"""Helpers for operator-feed tests: connect with a token (header or first message) and read the feed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_feed(ws_url: str, token: str, *, since: int | None = None) -> tuple[ClientConnection, dict[str, Any]]:
    """An operator feed signed in with the handshake header; returns it and its welcome."""
    query = f"?since={since}" if since is not None else ""
    feed = await websockets.connect(f"{ws_url}/ws/operator{query}", additional_headers=bearer(token))
    welcome = json.loads(await asyncio.wait_for(feed.recv(), 10))
    assert welcome["type"] == "welcome", welcome
    return feed, welcome


async def read_events(feed: ClientConnection, count: int, *, wait: float = 15) -> list[dict[str, Any]]:
    """The next `count` feed events (report_new, report_status), skipping counts and pongs."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(wait):
        while len(events) < count:
            message = json.loads(await feed.recv())
            if message["type"] in ("report_new", "report_status"):
                events.append(message)
    return events


async def closed_with(feed: ClientConnection, *, wait: float = 15) -> tuple[int, str]:
    """Read until the server closes the feed; its close code and reason."""
    async with asyncio.timeout(wait):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await feed.recv()
    close = feed.protocol.close_rcvd
    assert close is not None, "closed without a close frame"
    return close.code, close.reason


async def nothing_more(feed: ClientConnection) -> list[dict[str, Any]]:
    """Ping and collect every feed event that arrives before the pong (what the server had queued)."""
    await feed.send(json.dumps({"type": "ping", "id": "fence"}))
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while True:
            message = json.loads(await feed.recv())
            if message["type"] == "pong":
                return events
            if message["type"] in ("report_new", "report_status"):
                events.append(message)
