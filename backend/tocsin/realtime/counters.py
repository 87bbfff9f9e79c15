"""Reach per alert, kept in the database: which devices an alert was meant for, written to, and received by.

The fan-out never awaits the database. The hub and the connections note deliveries in memory (a dict entry per
device) and a background task writes them every half second in one transaction: an upsert keyed by (alert, device),
so a device that gets an alert again (in a snapshot after a move, on replay after a reconnect) stays one row and its
earliest times are kept. Counts are read from the database, so they add up over workers and survive a Redis flush or
a restart. Acknowledgements and check-ins are the stored answers (alert_responses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.db import Database
from tocsin.models import AlertDelivery, AlertResponse

log = logging.getLogger(__name__)

# in_area: devices the alert was meant for (in its area and wanting it: live, in a snapshot or on replay);
# delivered: written to the device's socket; received: the device said it received it (`received` message).
FIELDS = ("in_area", "delivered", "received", "acknowledged", "safe", "need_help")

Noted = dict[uuid.UUID, dict[str, datetime]]  # alert -> device -> when


def _note(into: Noted, alert_id: uuid.UUID, device_ids: Iterable[str], at: datetime) -> None:
    devices = into.get(alert_id)
    if devices is None:
        devices = into[alert_id] = {}
    for device_id in device_ids:
        devices.setdefault(device_id, at)  # the earliest time wins


def _merge_back(into: Noted, older: Noted) -> None:
    for alert_id, devices in older.items():
        for device_id, at in devices.items():
            _note(into, alert_id, (device_id,), at)


def _copy(noted: Noted) -> Noted:
    return {alert_id: dict(devices) for alert_id, devices in noted.items()}


def _upsert(dialect_name: str) -> Any:
    table: Any = AlertDelivery.__table__
    statement: Any = postgresql.insert(table) if backend.is_postgres(dialect_name) else sqlite.insert(table)
    return statement.on_conflict_do_update(
        index_elements=["alert_id", "device_id"],
        set_={
            "written_at": func.coalesce(table.c.written_at, statement.excluded.written_at),
            "received_at": func.coalesce(table.c.received_at, statement.excluded.received_at),
        },
    )


def _set_once(column: str) -> Any:
    """UPDATE of one time column where it is still empty; never creates a row (a receipt for an alert the device
    was not sent is ignored)."""
    table: Any = AlertDelivery.__table__
    return (
        update(table)
        .where(table.c.alert_id == bindparam("a"), table.c.device_id == bindparam("d"), table.c[column].is_(None))
        .values({column: bindparam("at")})
    )


class DeliveryRecorder:
    """This worker's deliveries not yet in the database, written in the background."""

    def __init__(self, database: Database, interval: float = 0.5) -> None:
        self.database = database
        self.interval = interval
        self.targeted: Noted = {}
        self.written: Noted = {}
        self.received: Noted = {}
        self.in_flight: Noted = {}  # being written right now
        self.failing = False  # warn once per outage, not every half second
        self.flushing = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    # ---- noting: synchronous, no I/O ---------------------------------------------------------------------------

    def target(self, alert_id: uuid.UUID, device_ids: Iterable[str], at: datetime | None = None) -> None:
        _note(self.targeted, alert_id, device_ids, at or datetime.now(UTC))

    def wrote(self, alert_id: uuid.UUID, device_ids: Iterable[str], at: datetime | None = None) -> None:
        _note(self.written, alert_id, device_ids, at or datetime.now(UTC))

    def receive(self, alert_id: uuid.UUID, device_id: str) -> None:
        _note(self.received, alert_id, (device_id,), datetime.now(UTC))

    def noted(self, alert_id: uuid.UUID, device_id: str) -> bool:
        """Meant for this device on this worker and not yet flushed (the database does not know it yet)."""
        return device_id in self.targeted.get(alert_id, {}) or device_id in self.in_flight.get(alert_id, {})

    # ---- writing -----------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self.flushing:
            targeted, written, received = self.targeted, self.written, self.received
            if not (targeted or written or received):
                return
            self.targeted, self.written, self.received = {}, {}, {}
            self.in_flight = targeted
            try:
                await self._write(targeted, _copy(written), _copy(received))
                if self.failing:
                    log.warning("deliveries are written again")
                self.failing = False
            except Exception as exc:  # the database is away: keep them for the next try
                if not self.failing:
                    log.warning("could not write deliveries (%s); keeping them for the next try", type(exc).__name__)
                self.failing = True
                _merge_back(self.targeted, targeted)
                _merge_back(self.written, written)
                _merge_back(self.received, received)
            finally:
                self.in_flight = {}

    async def _write(self, targeted: Noted, written: Noted, received: Noted) -> None:
        rows = []
        for alert_id, devices in targeted.items():
            written_here, received_here = written.get(alert_id, {}), received.get(alert_id, {})
            for device_id, at in devices.items():
                rows.append(
                    {
                        "alert_id": alert_id,
                        "device_id": device_id,
                        "targeted_at": at,
                        "written_at": written_here.pop(device_id, None),
                        "received_at": received_here.pop(device_id, None),
                    }
                )
        rows.sort(key=lambda row: (str(row["alert_id"]), row["device_id"]))  # one lock order on every worker
        later_written = [{"a": a, "d": d, "at": at} for a, devices in written.items() for d, at in devices.items()]
        later_received = [{"a": a, "d": d, "at": at} for a, devices in received.items() for d, at in devices.items()]
        async with self.database.sessions() as session:
            if rows:
                await session.execute(_upsert(self.database.dialect_name), rows)
            connection = await session.connection()
            if later_written:
                await connection.execute(_set_once("written_at"), later_written)
            if later_received:
                await connection.execute(_set_once("received_at"), later_received)
            await session.commit()

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
