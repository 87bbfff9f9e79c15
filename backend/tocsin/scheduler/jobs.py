from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from tocsin import metrics
from tocsin.alerts import service as alerts
from tocsin.bus import Bus
from tocsin.db import Database
from tocsin.exercises.simulation.runner import ExerciseRunner
from tocsin.kernel.work import unit_of_work
from tocsin.reports import service as reports

log = logging.getLogger(__name__)

JOB_OPTIONS = {"replace_existing": True, "coalesce": True, "max_instances": 1, "misfire_grace_time": None}


async def issue_due_alerts(database: Database, bus: Bus) -> int:
    async with unit_of_work(database, bus) as work:
        return await alerts.issue_due(work)


async def expire_alerts(database: Database, bus: Bus) -> int:
    async with unit_of_work(database, bus) as work:
        return await alerts.expire_due(work)


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
        self.lag_seconds = 0.0  # how late the latest job run started
        self.running: set[asyncio.Task[Any]] = set()
        self.scheduler.add_listener(self._note_lag, EVENT_JOB_SUBMITTED)
        if exercises is not None:
            exercises.attach(self.scheduler)

    def _note_lag(self, event: JobSubmissionEvent) -> None:
        if event.scheduled_run_times:
            self.lag_seconds = max(0.0, (datetime.now(UTC) - event.scheduled_run_times[-1]).total_seconds())
            metrics.SCHEDULER_LAG.set(self.lag_seconds)

    def _tracked(self, job: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """The job, with its run remembered until it ends, so `stop` can wait for cancelled runs to finish."""

        @functools.wraps(job)
        async def run(*args: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            self.running.add(task)
            try:
                return await job(*args)
            finally:
                self.running.discard(task)

        return run

    def start(self) -> None:
        if self.exercises is not None:
            self.scheduler.add_job(
                self._tracked(self.exercises.sync), "interval", seconds=self.interval, id="exercise_sync", **JOB_OPTIONS
            )
        self.scheduler.add_job(
            self._tracked(issue_due_alerts),
            "interval",
            seconds=self.interval,
            id="issue_due_alerts",
            args=[self.database, self.bus],
            **JOB_OPTIONS,
        )
        self.scheduler.add_job(
            self._tracked(expire_alerts),
            "interval",
            seconds=self.interval,
            id="expire_alerts",
            args=[self.database, self.bus],
            **JOB_OPTIONS,
        )
        self.scheduler.add_job(
            self._tracked(purge_old_reports),
            "interval",
            hours=1,
            id="purge_old_reports",
            args=[self.database, self.retention_days],
            **JOB_OPTIONS,
        )
        self.scheduler.start()

    async def stop(self) -> None:
        """No job starts after this; runs in flight are cancelled (their transactions roll back)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # the asyncio executor cancels the running coroutine jobs
        await asyncio.gather(*self.running, return_exceptions=True)
        if self.exercises is not None:
            self.exercises.scheduler = None  # bus wake-ups must not start exercises in a process that lost the lock
            await self.exercises.close()
