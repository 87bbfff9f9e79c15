"""The operator feed of one worker: which consoles are connected, how far each has got, and who they are.

Events of the feed (new reports, status changes) are numbered in the database (`reports/feed.py`). The bus brings
them fast; whenever a number is skipped (a lost publish, a Redis restart) or the bus comes back, or at each poll,
the worker reads what it has not delivered from the database instead. Every console gets each event once, in order:
it has a cursor (`last_seq`), and nothing at or below it is sent again. A console that reconnects with its cursor
gets what it missed; further back than REPLAY_LIMIT it is told to reload.

Consoles are re-checked against their account whenever an account changes (bus), every RECHECK_SECONDS, and closed
when their token expires (the socket does that).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tocsin.auth import service as users
from tocsin.auth.schemas import Role
from tocsin.auth.tokens import TokenClaims
from tocsin.db import Database
from tocsin.models import User
from tocsin.realtime import protocol
from tocsin.reports import feed

log = logging.getLogger(__name__)

# Reports carry citizens' words and exact places: the same roles as triage over REST.
STAFF = (Role.operator, Role.approver)
REPLAY_LIMIT = 500
PAGE = 500
QUEUE_SIZE = 1_000


def refusal(user: User | None, claims: TokenClaims) -> str | None:
    """Why this token may not (or may no longer) hold the feed; None if it may. Short: it is a close reason."""
    if not users.token_still_valid(user, claims):
        return "account disabled or changed; sign in again"
    assert user is not None
    if not users.has_role(user, *STAFF):
        return "the operator feed needs the role operator or approver"
    return None


@dataclass(eq=False)
class Console:
    """One connected operator console."""

    claims: TokenClaims
    close: Callable[[int, str], None]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    last_seq: int = 0


class OperatorFeed:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.consoles: set[Console] = set()
        self.cursor: int | None = None  # every event up to here has been handed to every console
        self.lock = asyncio.Lock()  # one delivery at a time: joins, live events and catch-ups never interleave
        self.last_counts: dict[uuid.UUID, dict[str, int]] = {}

    def _put(self, console: Console, text: str) -> None:
        try:
            console.queue.put_nowait(text)
        except asyncio.QueueFull:  # a console that cannot keep up reconnects with its cursor
            self.drop(console, 1013, "too slow; reconnect with your last seq")

    def drop(self, console: Console, code: int, reason: str) -> None:
        if console in self.consoles:
            self.consoles.discard(console)
            console.close(code, reason)

    def broadcast(self, message: dict[str, Any]) -> None:
        """A message without a cursor (per-alert counts) to every console."""
        text = protocol.encode_operator(message)
        for console in list(self.consoles):
            self._put(console, text)

    def _deliver(self, events: list[dict[str, Any]], consoles: set[Console]) -> None:
        if not consoles:  # nobody to encode for (a worker no console is connected to follows the cursor only)
            return
        for event in events:
            text = protocol.encode_operator(event)
            for console in list(consoles):
                if event["seq"] > console.last_seq:
                    console.last_seq = event["seq"]
                    self._put(console, text)

    async def _read_after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        async with self.database.sessions() as session:
            return await feed.events_after(session, seq, limit=limit)

    async def _latest(self) -> int:
        async with self.database.sessions() as session:
            return await feed.latest(session)

    async def _start_cursor(self) -> int:
        if self.cursor is None:
            async with self.database.sessions() as session:
                self.cursor = await feed.latest(session)
        return self.cursor

    async def on_events(self, events: list[dict[str, Any]]) -> None:
        """Events from the bus, in order. A skipped number means the bus lost something: read the database."""
        async with self.lock:
            cursor = await self._start_cursor()
            fresh = [event for event in events if event["seq"] > cursor]
            if not fresh:
                return
            if [event["seq"] for event in fresh] != list(range(cursor + 1, cursor + 1 + len(fresh))):
                await self._catch_up()
                return
            self._deliver(fresh, self.consoles)
            self.cursor = fresh[-1]["seq"]

    async def catch_up(self) -> None:
        """Deliver what the database has and this worker has not (the bus came back; the poll)."""
        async with self.lock:
            await self._start_cursor()
            await self._catch_up()

    async def _catch_up(self) -> None:
        assert self.cursor is not None
        while True:
            events = await self._read_after(self.cursor, PAGE)
            if not events:
                return
            self._deliver(events, self.consoles)
            self.cursor = max(self.cursor, events[-1]["seq"])
            if len(events) < PAGE:
                return

    async def join(self, console: Console, welcome: dict[str, Any], since: int | None) -> None:
        """Welcome the console, replay what it missed after `since`, then keep it on the live feed."""
        async with self.lock:
            cursor = await self._start_cursor()
            start = cursor
            if since is not None and since > cursor:
                # The console comes from a worker further along: what it has seen is not sent again when this worker
                # catches up. A number past every event (another database) counts as the latest one.
                start = min(since, await self._latest())
            self._put(console, protocol.encode_operator({**welcome, "seq": start}))
            console.last_seq = start
            if since is not None and since < cursor:
                missed = await self._read_after(since, REPLAY_LIMIT + 1)
                if len(missed) > REPLAY_LIMIT:
                    reload = {"type": "reload", "seq": cursor, "reason": "too much missed: reload from the REST API"}
                    self._put(console, protocol.encode_operator(reload))
                else:
                    console.last_seq = since
                    self._deliver(missed, {console})
                    console.last_seq = max(console.last_seq, cursor)
            self.consoles.add(console)
        self.last_counts.clear()  # the new console gets every current count on the next push

    def leave(self, console: Console) -> None:
        self.consoles.discard(console)

    async def recheck(self, user_id: int | None = None) -> None:
        """Close the consoles whose account no longer admits them (one account, or all)."""
        consoles = [c for c in self.consoles if user_id is None or c.claims.user_id == user_id]
        if not consoles:
            return
        ids = {console.claims.user_id for console in consoles}
        async with self.database.sessions() as session:
            found = {user.id: user for user in (await session.execute(select(User).where(User.id.in_(ids)))).scalars()}
        for console in consoles:
            reason = refusal(found.get(console.claims.user_id), console.claims)
            if reason is not None:
                self.drop(console, 1008, reason)
