"""Reach per alert, kept in the database: which devices an alert was meant for, written to, and received by.

The fan-out never awaits the database and does no work per device here: the hub notes the matched device ids once
per alert (one list), and a background task writes them every half second, in chunks of CHUNK_ROWS rows, each its own
transaction, yielding to the event loop between them (so neither the loop nor SQLite's one writer is held for a
whole fan-out). Each chunk is an upsert keyed by (alert, device), so a device that gets an alert again (in a snapshot
after a move, on replay after a reconnect) stays one row and its earliest times are kept. Counts are read from the
database, so they add up over workers and survive a Redis flush or a restart. Acknowledgements and check-ins are the
stored answers (alert_responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.db import Database
from tocsin.models import AlertDelivery, AlertResponse
from tocsin.resilience import ThrottledLog

log = logging.getLogger(__name__)

# in_area: devices the alert was meant for (in its area and wanting it: live, in a snapshot or on replay);
# delivered: written to the device's socket; received: the device said it received it (`received` message).
FIELDS = ("in_area", "delivered", "received", "acknowledged", "safe", "need_help")
CHUNK_ROWS = 2_000  # rows per statement and transaction

Noted = list[tuple[uuid.UUID, Sequence[str], datetime]]  # (alert, devices, when), in the order noted
Key = tuple[uuid.UUID, str]


async def _earliest(noted: Noted) -> dict[Key, datetime]:
    """(alert, device) -> its earliest time, yielding to the loop every CHUNK_ROWS devices."""
    earliest: dict[Key, datetime] = {}
    done = 0
    for alert_id, device_ids, at in noted:
        for device_id in device_ids:
            key = (alert_id, device_id)
            known = earliest.get(key)
            if known is None or at < known:
                earliest[key] = at
        done += len(device_ids)
        if done >= CHUNK_ROWS:
            done = 0
            await asyncio.sleep(0)
    return earliest


def _chunks(keys: list[Key]) -> Iterator[list[Key]]:
    for start in range(0, len(keys), CHUNK_ROWS):
        yield keys[start : start + CHUNK_ROWS]


def _upsert(bind: backend.Bind) -> Any:
    table: Any = AlertDelivery.__table__
    return backend.upsert(
        table,
        None,
        bind,
        key=("alert_id", "device_id"),
        set_=lambda excluded: {
            "written_at": func.coalesce(table.c.written_at, excluded.written_at),
            "received_at": func.coalesce(table.c.received_at, excluded.received_at),
        },
    )


def _set_once(column: str) -> Any:
    """UPDATE of one time column where it is still empty; never creates a row (a receipt for an alert the device
    was not sent is ignored: citizen.py notes it as targeted first when the device may have it)."""
    table: Any = AlertDelivery.__table__
    return (
        update(table)
        .where(table.c.alert_id == bindparam("a"), table.c.device_id == bindparam("d"), table.c[column].is_(None))
        .values({column: bindparam("at")})
    )


class _Index:
    """alert -> device ids of one list of notes, extended as the list grows (answers look here, not the fan-out)."""

    def __init__(self, noted: Noted) -> None:
        self.noted = noted
        self.count = 0
        self.devices: dict[uuid.UUID, set[str]] = {}

    def catch_up(self) -> None:
        for alert_id, device_ids, _ in self.noted[self.count :]:
            self.devices.setdefault(alert_id, set()).update(device_ids)
        self.count = len(self.noted)


class DeliveryRecorder:
    """This worker's deliveries not yet in the database, written in the background."""

    def __init__(self, database: Database, interval: float = 0.5) -> None:
        self.database = database
        self.interval = interval
        self.targeted: Noted = []
        self.written: Noted = []
        self.received: Noted = []
        self.in_flight: Noted = []  # being written right now
        self._indexes: list[_Index] = []  # for `noted`: of `targeted` and `in_flight`, built on demand
        self.log = ThrottledLog(log, level=logging.WARNING)  # once per outage, not every half second
        self.flushing = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    # ---- noting: synchronous, no I/O, nothing per device -------------------------------------------------------

    def target(self, alert_id: uuid.UUID, device_ids: Sequence[str], at: datetime | None = None) -> None:
        self.targeted.append((alert_id, device_ids, at or datetime.now(UTC)))

    def wrote(self, alert_id: uuid.UUID, device_ids: Sequence[str], at: datetime | None = None) -> None:
        self.written.append((alert_id, device_ids, at or datetime.now(UTC)))

    def receive(self, alert_id: uuid.UUID, device_id: str) -> None:
        self.received.append((alert_id, (device_id,), datetime.now(UTC)))

    def noted(self, alert_id: uuid.UUID, device_id: str) -> bool:
        """Meant for this device on this worker and not yet flushed (the database does not know it yet)."""
        self._indexes = [self._index_of(self.targeted), self._index_of(self.in_flight)]
        return any(device_id in index.devices.get(alert_id, ()) for index in self._indexes)

    def _index_of(self, noted: Noted) -> _Index:
        index = next((index for index in self._indexes if index.noted is noted), None) or _Index(noted)
        index.catch_up()
        return index

    # ---- writing -----------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self.flushing:
            targeted, written, received = self.targeted, self.written, self.received
            if not (targeted or written or received):
                return
            self.targeted, self.written, self.received = [], [], []
            self.in_flight = targeted
            try:
                await self._write(targeted, written, received)
                self.log.recovered("write", "deliveries are written again")
            except Exception as exc:  # the database is away: keep them for the next try (rewriting is harmless)
                self.log.failure(
                    "write", "could not write deliveries (%s); keeping them for the next try", type(exc).__name__
                )
                self.targeted = targeted + self.targeted  # new lists: `noted` indexes them afresh
                self.written, self.received = written + self.written, received + self.received
            finally:
                self.in_flight = []

    async def _write(self, targeted: Noted, written: Noted, received: Noted) -> None:
        targets, writes, receipts = await _earliest(targeted), await _earliest(written), await _earliest(received)
        # Rows in one global order (UUIDs compare by value, then the device id): on PostgreSQL, two workers upserting
        # overlapping rows (a device that moved between them) then lock them in the same order and cannot deadlock.
        keys = sorted(targets)
        await asyncio.sleep(0)
        engine = self.database.engine
        for chunk in _chunks(keys):
            rows = [
                {
                    "alert_id": key[0],
                    "device_id": key[1],
                    "targeted_at": targets[key],
                    "written_at": writes.pop(key, None),
                    "received_at": receipts.pop(key, None),
                }
                for key in chunk
            ]
            await self._execute(_upsert(engine), rows)
        for column, later in (("written_at", writes), ("received_at", receipts)):
            for chunk in _chunks(sorted(later)):
                await self._execute(_set_once(column), [{"a": a, "d": d, "at": later[(a, d)]} for a, d in chunk])

    async def _execute(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        """One chunk in its own transaction, then a turn for everything else on the loop."""
        async with self.database.sessions() as session:
            await (await session.connection()).execute(statement, rows)
            await session.commit()
        await asyncio.sleep(0)

    async def totals(self, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
        """Counts per alert from the database, after writing what this worker still holds."""
        await self.flush()
        async with self.database.sessions() as session:
            return await alert_counts(session, alert_ids)

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.flush()


async def alert_counts(session: AsyncSession, alert_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    counts = {alert_id: dict.fromkeys(FIELDS, 0) for alert_id in alert_ids}
    if not alert_ids:
        return counts
    deliveries = await session.execute(
        select(
            AlertDelivery.alert_id,
            func.count(),
            func.count(AlertDelivery.written_at),
            func.count(AlertDelivery.received_at),
        )
        .where(AlertDelivery.alert_id.in_(alert_ids))
        .group_by(AlertDelivery.alert_id)
    )
    for alert_id, in_area, delivered, received in deliveries:
        counts[alert_id].update(in_area=in_area, delivered=delivered, received=received)
    answers = await session.execute(
        select(
            AlertResponse.alert_id,
            func.count(AlertResponse.acknowledged_at),
            func.count().filter(AlertResponse.checkin == "safe"),
            func.count().filter(AlertResponse.checkin == "need_help"),
        )
        .where(AlertResponse.alert_id.in_(alert_ids))
        .group_by(AlertResponse.alert_id)
    )
    for alert_id, acknowledged, safe, need_help in answers:
        counts[alert_id].update(acknowledged=acknowledged, safe=safe, need_help=need_help)
    return counts
