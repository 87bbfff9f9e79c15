"""Runs exercises in the one scheduler process: keeps one `LiveExercise` (live.py) for each exercise that is ready,
running or paused, in line with the database (every TOCSIN_SCHEDULER_INTERVAL_SECONDS, and at once when the API
wakes it over the bus), and says how its synthetic citizens connect (in-process or over WebSockets)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from tocsin.bus import Bus
from tocsin.config import Settings
from tocsin.db import Database
from tocsin.exercises.schemas import ACTIVE_STATES, ExerciseState, Transport
from tocsin.exercises.simulation.links import Link, MemoryLink, WebSocketLink
from tocsin.exercises.simulation.live import LiveExercise
from tocsin.exercises.simulation.population import Connect
from tocsin.kernel.channels import EXERCISES_CHANNEL
from tocsin.models import Exercise
from tocsin.realtime.runtime import Realtime

log = logging.getLogger(__name__)


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

    def connector(self, row: Exercise) -> Connect | None:
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
