"""One running exercise in the scheduler process: its scenario clock, its timetable, its synthetic citizens.

It has one APScheduler job, at the wall time its next pending item falls due at the current speed; a pause, resume or
speed change (the API bumps `clock_version` and wakes the runner over the bus) reschedules it. Firing is idempotent:
an item is recorded on the timeline under its key once, so a restarted scheduler carries on where the last one
stopped.

Every write is one unit of work (`_work`): it commits once, and only then go its events out (alert events, report
statuses, the wake-up of an exercise that ended). Firing an item locks the exercise's row first, so a pause, a stop
or a speed change from the API waits for it, or it for them, and it sees the clock they left.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from tocsin import backend
from tocsin.alerts.templates import load_templates
from tocsin.bus import Bus
from tocsin.config import Settings
from tocsin.db import Database
from tocsin.exercises import service
from tocsin.exercises.scenario import Inject, Scenario
from tocsin.exercises.schemas import ExerciseState
from tocsin.exercises.simulation import steps
from tocsin.exercises.simulation.devices import build_devices
from tocsin.exercises.simulation.population import Connect, Population
from tocsin.exercises.simulation.timetable import Item, plan
from tocsin.kernel import exercise_clock as clock
from tocsin.kernel.exercise_clock import LiveClock
from tocsin.kernel.work import UnitOfWork, unit_of_work
from tocsin.models import Exercise, ExerciseEvent

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class Host(Protocol):
    """What a live exercise needs of the process that runs it (runner.ExerciseRunner)."""

    database: Database
    bus: Bus
    settings: Settings
    templates_dir: Path
    scheduler: AsyncIOScheduler | None

    def connector(self, row: Exercise) -> Connect | None: ...


class LiveExercise:
    def __init__(self, runner: Host, row: Exercise) -> None:
        self.runner = runner
        self.id = row.id
        self.scenario = Scenario.model_validate(row.scenario)
        self.clock = LiveClock(row)
        self.items = plan(self.scenario, autoplay=row.autoplay)
        self.fired: set[str] = set()
        self.population: Population | None = None
        self.scale = row.devices / self.scenario.population.size
        self.lock = asyncio.Lock()
        self.job_id = f"exercise:{row.id}"
        self.playbook = steps.Playbook(runner.settings, runner.templates_dir)

    def _work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        return unit_of_work(self.runner.database, self.runner.bus)

    async def open(self, row: Exercise) -> None:
        await asyncio.to_thread(load_templates, self.runner.templates_dir)  # read once, not at the first action
        async with self.runner.database.sessions() as session:
            keys = await session.execute(select(ExerciseEvent.key).where(ExerciseEvent.exercise_id == self.id))
            self.fired = set(keys.scalars())
        if row.devices:
            await self._start_population(row)
        self.reschedule()

    async def _start_population(self, row: Exercise) -> None:
        devices = build_devices(self.scenario, exercise_id=row.id, count=row.devices, seed=row.seed)
        async with self._work() as work:
            await steps.join_devices(work, exercise_id=row.id, devices=devices)
        connect = self.runner.connector(row)
        if connect is None:
            async with self._work() as work:
                title = "Synthetic citizens not started: no in-process hub and no TOCSIN_EXERCISE_CITIZEN_URL"
                await steps.note(work, exercise_id=self.id, title=title)
            return
        self.population = Population(
            self.scenario,
            devices,
            exercise_id=row.id,
            join_token=row.join_token,
            clock=self.clock,
            connect=connect,
            seed=row.seed,
        )
        for name in self.population.stats:  # carry on counting after a restart of the scheduler
            self.population.stats[name] = int(row.stats.get(name, 0))
        self.population.start()

    def reschedule(self, *, retry: bool = False) -> None:
        scheduler = self.runner.scheduler
        assert scheduler is not None
        pending = [item for item in self.items if item.key not in self.fired]
        when = self.clock.wall_time(pending[0].seconds) if pending else None
        if retry and when is not None:
            when = max(when, clock.now() + timedelta(seconds=RETRY_SECONDS))
        if when is None:
            try:
                scheduler.remove_job(self.job_id)
            except JobLookupError:
                pass
            return
        scheduler.add_job(
            self.fire_due,
            "date",
            run_date=max(when, clock.now()),
            id=self.job_id,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )

    async def fire_due(self) -> None:
        async with self.lock:
            try:
                for item in self.items:
                    if item.key in self.fired:
                        continue
                    if item.seconds > self.clock.seconds() + 1e-6 or not await self._fire(item):
                        break
                    self.fired.add(item.key)
            except Exception:  # the database failed us: try again shortly, from what is recorded
                log.exception("exercise %s: firing failed; retrying", self.id)
                self.reschedule(retry=True)
                return
            self.reschedule()

    async def _fire(self, item: Item) -> bool:
        """Fire one item, in one unit of work; False when the stored clock says it is not due (paused, slowed): the
        caller stops."""
        async with self._work() as work:
            row = await backend.get_for_update(work.session, Exercise, self.id)
            if row is None or row.state != ExerciseState.running or clock.scenario_seconds(row) < item.seconds - 1:
                if row is not None:
                    self.clock.update(row)
                return False
            inject = await self._perform(work, row, item)
        if inject is not None:  # committed: the synthetic citizens play their part
            self._apply(inject)
        return True

    async def _perform(self, work: UnitOfWork, row: Exercise, item: Item) -> Inject | None:
        """Do what `item` says in `work`; the inject when one was written now."""
        if item.kind == "end":
            await service.end(work, exercise=row, actor=None, finished=True)
            return None
        if item.kind == "scripted":
            await steps.perform_scripted(work, exercise=row, scenario=self.scenario, item=item, playbook=self.playbook)
            return None
        return await steps.fire_inject(work, exercise=row, scenario=self.scenario, item=item)

    def _apply(self, inject: Inject) -> None:
        if self.population is None:
            return
        if inject.reports is not None:
            self.population.report_wave(inject.reports, self.scale)
        if inject.failure is not None:
            self.population.failure(inject.failure)

    async def flush(self) -> None:
        """Write what the synthetic citizens noted (receipts, counters) since the last flush."""
        population = self.population
        if population is None:
            return
        receipts, population.receipts = population.receipts, []
        stats = {**population.stats, "online": sum(1 for d in population.devices if d.online)}
        try:
            async with self._work() as work:
                await steps.write_counts(work, exercise_id=self.id, receipts=receipts, stats=stats)
        except Exception:
            population.receipts[:0] = receipts  # kept for the next flush
            raise

    async def close(self) -> None:
        try:
            if self.runner.scheduler is not None:
                self.runner.scheduler.remove_job(self.job_id)
        except JobLookupError:
            pass
        if self.population is not None:
            await self.population.stop()
            await self.flush()
