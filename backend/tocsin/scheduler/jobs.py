from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tocsin import backend
from tocsin.alerts import service as alerts
from tocsin.alerts.service import AlertEventOut
from tocsin.bus import ALERTS_CHANNEL, Bus
from tocsin.db import Database
from tocsin.exercises.runner import ExerciseRunner
from tocsin.reports import service as reports

log = logging.getLogger(__name__)

JOB_OPTIONS = {"replace_existing": True, "coalesce": True, "max_instances": 1, "misfire_grace_time": None}


async def issue_due_alerts(database: Database, bus: Bus) -> int:
    async with database.sessions() as session:
        events = await alerts.issue_due(session)
        await session.commit()
    await _publish(bus, events)
    return len(events)


async def expire_alerts(database: Database, bus: Bus) -> int:
    async with database.sessions() as session:
        events = await alerts.expire_due(session)
        await session.commit()
    await _publish(bus, events)
    return len(events)


async def _publish(bus: Bus, events: list[AlertEventOut]) -> None:
    for event in events:
        await bus.publish(ALERTS_CHANNEL, event.message())


async def purge_old_reports(database: Database, retention_days: int) -> tuple[int, int]:
    async with database.sessions() as session:
        purged = await reports.purge(session, older_than=timedelta(days=retention_days))
        await session.commit()
    if any(purged):
        log.info("retention: purged %d reports and %d devices", *purged)
    return purged


class Scheduler:
    """APScheduler with our jobs, each with an explicit id so a restart replaces rather than duplicates it."""

    def __init__(
        self,
        database: Database,
        bus: Bus,
        interval_seconds: float,
        retention_days: int = 30,
        exercises: ExerciseRunner | None = None,
    ) -> None:
        self.database = database
        self.bus = bus
        self.interval = interval_seconds
        self.retention_days = retention_days
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.exercises = exercises
        if exercises is not None:
            exercises.attach(self.scheduler)

    def start(self) -> None:
        if self.exercises is not None:
            self.scheduler.add_job(
                self.exercises.sync, "interval", seconds=self.interval, id="exercise_sync", **JOB_OPTIONS
            )
        self.scheduler.add_job(
            issue_due_alerts,
            "interval",
            seconds=self.interval,
            id="issue_due_alerts",
            args=[self.database, self.bus],
            **JOB_OPTIONS,
        )
        self.scheduler.add_job(
            expire_alerts,
            "interval",
            seconds=self.interval,
            id="expire_alerts",
            args=[self.database, self.bus],
            **JOB_OPTIONS,
        )
        self.scheduler.add_job(
            purge_old_reports,
            "interval",
            hours=1,
            id="purge_old_reports",
            args=[self.database, self.retention_days],
            **JOB_OPTIONS,
        )
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.exercises is not None:
            await self.exercises.close()


async def run_standalone(
    database: Database,
    bus: Bus,
    interval_seconds: float,
    stop: asyncio.Event,
    retention_days: int = 30,
    exercises: ExerciseRunner | None = None,
) -> None:
    """`tocsin scheduler`: wait for the scheduler lock (a standby waits here), then run until `stop` is set."""
    async with database.engine.connect() as lock_connection:
        while not await backend.try_scheduler_lock(lock_connection):
            log.info("another scheduler holds the lock; waiting as standby")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
            if stop.is_set():
                return
        log.info("scheduler lock acquired; running jobs every %.1fs", interval_seconds)
        scheduler = Scheduler(database, bus, interval_seconds, retention_days, exercises)
        scheduler.start()
        try:
            await stop.wait()
        finally:
            await scheduler.stop()
