"""Runs exercises in the one scheduler process: fires injects, contingencies and scripted actions when the scenario
clock reaches them, brings up the synthetic citizens, and finishes the exercise at the end of the scenario.

Each running exercise has one APScheduler job, at the wall time its next pending item falls due at the current speed;
a pause, resume or speed change (the API bumps `clock_version` and wakes us over the bus; we also look every
TOCSIN_SCHEDULER_INTERVAL_SECONDS)
reschedules it. Firing is idempotent: an item is recorded on the timeline under its key once, so a restarted
scheduler carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select, update

from tocsin import backend
from tocsin.alerts.templates import load_templates
from tocsin.bus import Bus
from tocsin.config import Settings
from tocsin.db import Database
from tocsin.exercises import actions, evaluation, service
from tocsin.exercises.links import Link, MemoryLink, WebSocketLink
from tocsin.exercises.population import Population, build_devices
from tocsin.exercises.scenario import Inject, Scenario, minutes
from tocsin.exercises.schemas import ACTIVE_STATES, ExerciseState, Transport
from tocsin.kernel import exercise_clock as clock
from tocsin.kernel.channels import EXERCISES_CHANNEL
from tocsin.kernel.exercise_clock import LiveClock
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Device, Exercise, ExerciseDevice, ExerciseEvent, ExerciseReceipt, User
from tocsin.realtime.runtime import Realtime

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
RANK = {"inject": 0, "contingency": 1, "scripted": 2, "end": 3}


@dataclass(frozen=True)
class Item:
    key: str
    seconds: float
    kind: str  # inject | contingency | scripted | end
    index: int  # inject number, contingency inject number, or scripted action index


def plan(scenario: Scenario, *, autoplay: bool) -> list[Item]:
    """What the exercise fires, in order. Scripted player actions only with `autoplay`: otherwise the players act,
    and a contingency fires when they do not."""
    items = [Item(f"inject:{i.number}", minutes(i.at) * 60.0, "inject", i.number) for i in scenario.timeline]
    items += [
        Item(f"contingency:{c.inject.number}", minutes(c.at) * 60.0, "contingency", c.inject.number)
        for c in scenario.contingencies
    ]
    if autoplay:
        items += [
            Item(f"scripted:{n}", minutes(a.at) * 60.0, "scripted", n) for n, a in enumerate(scenario.scripted_actions)
        ]
    items.append(Item("end", minutes(scenario.duration) * 60.0, "end", 0))
    return sorted(items, key=lambda item: (item.seconds, RANK[item.kind], item.index))


class LiveExercise:
    def __init__(self, runner: ExerciseRunner, row: Exercise) -> None:
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
        async with self.runner.database.sessions() as session:
            values = [
                {
                    "exercise_id": row.id,
                    "device_id": d.device_id,
                    "area": d.area,
                    "lon": d.home[0],
                    "lat": d.home[1],
                    "lang": d.lang,
                    "vulnerable": d.vulnerable,
                }
                for d in devices
            ]
            at = clock.now()
            # Their device rows too, in bulk: each hello is then a read, not one more write per device.
            rows = [
                {
                    "id": d.device_id,
                    "places": [],
                    "languages": [d.lang],
                    "categories": [],
                    "min_severity": "Unknown",
                    "exercise_id": row.id,
                    "created_at": at,
                    "last_seen_at": at,
                }
                for d in devices
            ]
            dialect = session.get_bind().dialect.name
            for start in range(0, len(values), 1_000):
                statement = backend.insert_ignoring_duplicates(ExerciseDevice, dialect)
                await session.execute(statement, values[start : start + 1_000])
                await session.execute(backend.insert_ignoring_duplicates(Device, dialect), rows[start : start + 1_000])
            await session.commit()
        connect = self.runner.connector(row)
        if connect is None:
            await self._note("Synthetic citizens not started: no in-process hub and no TOCSIN_EXERCISE_CITIZEN_URL")
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

    async def _note(self, title: str, key: str | None = None) -> None:
        async with self.runner.database.sessions() as session:
            row = await session.get(Exercise, self.id)
            if row is not None:
                await clock.record(session, row, key=key, kind="clock", title=title)
                await session.commit()

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
        """Fire one item; False when the stored clock says it is not due (paused, slowed): the caller stops."""
        async with self.runner.database.sessions() as session:
            row = (
                await session.execute(select(Exercise).where(Exercise.id == self.id).with_for_update())
            ).scalar_one_or_none()
            if row is None or row.state != ExerciseState.running or clock.scenario_seconds(row) < item.seconds - 1:
                if row is not None:
                    self.clock.update(row)
                return False
            if item.kind == "end":
                work = UnitOfWork(session, self.runner.bus)
                await service.end(work, exercise=row, actor=None, finished=True)
                await work.commit()
                return True
            if item.kind == "scripted":
                await session.rollback()
                await self._scripted(item)
                return True
            inject = self._inject(item)
            if item.kind == "contingency":
                missing = next(c.if_missing for c in self.scenario.contingencies if c.inject.number == item.index)
                if await evaluation.is_done(session, exercise_id=self.id, scenario=self.scenario, action_id=missing):
                    return True  # not needed: the action happened
            written = await clock.record(
                session,
                row,
                key=item.key,
                kind=item.kind,
                title=inject.title,
                detail=inject.content,
                number=inject.number,
                to=inject.to,
                objectives=inject.objectives,
            )
            await session.commit()
        if written:
            self._apply(inject)
        return True

    def _inject(self, item: Item) -> Inject:
        if item.kind == "contingency":
            return next(c.inject for c in self.scenario.contingencies if c.inject.number == item.index)
        return next(i for i in self.scenario.timeline if i.number == item.index)

    def _apply(self, inject: Inject) -> None:
        if self.population is None:
            return
        if inject.reports is not None:
            self.population.report_wave(inject.reports, self.scale)
        if inject.failure is not None:
            self.population.failure(inject.failure)

    async def _scripted(self, item: Item) -> None:
        action = self.scenario.scripted_actions[item.index]
        runner = self.runner
        title = action.kind.replace("_", " ").capitalize()
        async with runner.database.sessions() as session:
            work = UnitOfWork(session, runner.bus)
            row = await service.get_exercise(session, exercise_id=self.id, for_update=True)
            if row.state != ExerciseState.running:  # stopped or paused since: a stop wins
                return
            actor = (await session.execute(select(User).where(User.username == row.created_by))).scalar_one_or_none()
            try:
                if actor is None:
                    raise actions.ActionFailed(f"the planner '{row.created_by}' no longer exists")
                job = actions.Scripted(work, row, self.scenario, action, actor, runner.settings, runner.templates_dir)
                done, alert_id = await actions.perform(job)
            except actions.ActionFailed as failed:
                await work.rollback()
                row = await service.get_exercise(session, exercise_id=self.id)
                await clock.record(
                    session, row, key=item.key, kind="scripted", title=f"{title} failed", detail=str(failed)
                )
                await session.commit()
                return
            await clock.record(
                session,
                row,
                key=item.key,
                kind="scripted",
                title=title,
                detail=action.note or done,
                fulfils=action.fulfils,
                alert_id=alert_id,
                actor=actor.username,
            )
            await work.commit()

    async def flush(self) -> None:
        """Write what the synthetic citizens noted (receipts, counters) since the last flush."""
        if self.population is None:
            return
        receipts, self.population.receipts = self.population.receipts, []
        try:
            await self._write(receipts)
        except Exception:
            self.population.receipts[:0] = receipts  # kept for the next flush
            raise

    async def _write(self, receipts: list[Any]) -> None:
        assert self.population is not None
        async with self.runner.database.sessions() as session:
            values = [
                {
                    "alert_id": uuid.UUID(r.alert_id),
                    "device_id": r.device_id,
                    "exercise_id": self.id,
                    "received_at": r.at,
                    "scenario_seconds": r.scenario_seconds,
                }
                for r in receipts
            ]
            for start in range(0, len(values), 1_000):
                statement = backend.insert_ignoring_duplicates(ExerciseReceipt, session.get_bind().dialect.name)
                await session.execute(statement, values[start : start + 1_000])
            stats = {**self.population.stats, "online": sum(1 for d in self.population.devices if d.online)}
            await session.execute(update(Exercise).where(Exercise.id == self.id).values(stats=stats))
            await session.commit()

    async def close(self) -> None:
        try:
            if self.runner.scheduler is not None:
                self.runner.scheduler.remove_job(self.job_id)
        except JobLookupError:
            pass
        if self.population is not None:
            await self.population.stop()
            await self.flush()


class ExerciseRunner:
    def __init__(
        self,
        database: Database,
        bus: Bus,
        settings: Settings,
        templates_dir: Path,
        realtime: Realtime | None = None,
    ) -> None:
        self.database = database
        self.bus = bus
        self.settings = settings
        self.templates_dir = templates_dir
        self.realtime = realtime
        self.scheduler: AsyncIOScheduler | None = None  # set when this process holds the scheduler lock
        self.live: dict[str, LiveExercise] = {}
        self.sync_lock = asyncio.Lock()
        bus.subscribe(EXERCISES_CHANNEL, self.on_bus)  # before the bus starts: Redis subscribes to what has handlers

    def attach(self, scheduler: AsyncIOScheduler) -> None:
        self.scheduler = scheduler

    async def on_bus(self, message: dict[str, Any]) -> None:
        if self.scheduler is not None:
            await self.sync()

    def connector(self, row: Exercise) -> Any:
        """How this exercise's devices connect, or None if they cannot."""
        url = self.settings.exercise_citizen_url
        realtime = self.realtime
        small = row.devices <= self.settings.exercise_in_process_max
        in_process = realtime is not None and (
            (row.transport == Transport.in_process and (small or not url))
            or (row.transport == Transport.auto and small)
        )
        if in_process and realtime is not None:

            async def memory() -> Link:
                return MemoryLink(realtime)

            return memory
        if url:

            async def websocket() -> Link:
                return await WebSocketLink.open(url)

            return websocket
        return None

    async def sync(self) -> None:
        """Bring the running exercises in line with the database (every second, and on every bus wake-up)."""
        async with self.sync_lock:
            async with self.database.sessions() as session:
                active = [s.value for s in (ExerciseState.ready, *ACTIVE_STATES)]
                rows = list(
                    (
                        await session.execute(
                            select(Exercise).where(
                                (Exercise.state.in_(active)) | (Exercise.id.in_(list(self.live) or [""]))
                            )
                        )
                    ).scalars()
                )
            for row in rows:
                await self._sync_one(row)

    async def _sync_one(self, row: Exercise) -> None:
        live = self.live.get(row.id)
        if row.state not in (ExerciseState.ready, *ACTIVE_STATES):
            if live is not None:
                del self.live[row.id]
                await live.close()
            return
        if live is None:
            live = LiveExercise(self, row)
            try:
                await live.open(row)
            except Exception:  # tried again at the next sync
                log.exception("exercise %s: could not start", row.id)
                await live.close()
                return
            self.live[row.id] = live
        elif live.clock.update(row) or (
            live.clock.running and self.scheduler is not None and self.scheduler.get_job(live.job_id) is None
        ):
            live.reschedule()  # the clock changed, or a job went missing: never leave a running exercise idle
        try:
            await live.flush()
        except Exception:
            log.exception("exercise %s: writing receipts failed", row.id)

    async def close(self) -> None:
        for live in list(self.live.values()):
            await live.close()
        self.live.clear()
