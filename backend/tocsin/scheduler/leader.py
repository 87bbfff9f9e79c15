"""Which process runs the scheduler, and only while it can prove it.

PostgreSQL: the scheduler lock is a session-level advisory lock on a connection of its own. The lock lives exactly as
long as that server backend: a PostgreSQL restart, a failover or `pg_terminate_backend` drops it without a word to
the client. So the holder proves it every `check_seconds` (the connection answers, and `pg_locks` shows the lock
granted to this backend); the moment a proof fails or is late, the jobs stop, runs in flight are cancelled, and the
process goes back to standby and tries again with backoff.

A standby that gets the lock waits `takeover_seconds` before it runs anything: an earlier holder that lost the lock
notices within two check periods (a failed or a late proof) and stops, so two schedulers are never active at once.

SQLite (embedded) has one process and no lock: the scheduler simply runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tocsin import backend
from tocsin.bus import Bus
from tocsin.db import Database
from tocsin.exercises.simulation.runner import ExerciseRunner
from tocsin.models import SchedulerHeartbeat
from tocsin.resilience import Backoff, ThrottledLog
from tocsin.scheduler.jobs import Scheduler

log = logging.getLogger(__name__)

HEARTBEAT_NAME = "scheduler"
_PROVE_LOCK = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid::bigint = :key "
    "AND objsubid = 1 AND pid = pg_backend_pid() AND granted)"
)


@dataclass
class Tenure:
    """A span of wall time (time.time()) during which this process ran scheduled jobs."""

    started: float
    ended: float | None = None


class SchedulerLeader:
    def __init__(
        self,
        database: Database,
        make_scheduler: Callable[[], Scheduler],
        *,
        check_seconds: float = 1.0,
        standby_seconds: float = 2.0,
    ) -> None:
        self.database = database
        self.make_scheduler = make_scheduler
        self.check_seconds = check_seconds
        self.standby_seconds = standby_seconds
        self.takeover_seconds = 2 * check_seconds + 0.5
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.tenures: list[Tenure] = []
        self.scheduler: Scheduler | None = None
        self.failures = ThrottledLog(log)

    @property
    def active(self) -> bool:
        return self.scheduler is not None

    @property
    def uses_lock(self) -> bool:
        return not backend.single_process(self.database.engine)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: standby, then leader while the lock holds, then standby again."""
        # After losing the lock (or failing to reach the database), wait two standby periods: a standby that is
        # already waiting takes over first instead of racing the process that just failed.
        backoff = Backoff(initial=2 * self.standby_seconds, cap=30.0)
        while not stop.is_set():
            try:
                led = await self._term(stop)
            except Exception as exc:  # the database is unreachable or the lock connection broke
                self.failures.failure("term", "scheduler: database unavailable (%s)", exc, level=logging.WARNING)
                led = False
            if led:
                backoff.reset()
            if not stop.is_set():
                delay = backoff.next_delay()
                log.info("scheduler: standby; trying for the lock again in %.1fs", delay)
                await _wait(stop, delay)

    async def _term(self, stop: asyncio.Event) -> bool:
        """One try at leading: wait as standby for the lock, run the jobs while it is proven. True if it led."""
        connection = await self.database.engine.connect()
        try:
            if not await self._acquire(connection, stop):
                return False
            log.info("scheduler: lock acquired (%s); running jobs every %.1fs", self.holder, self.check_seconds)
            if self.uses_lock and not await self._prove_for(connection, stop, self.takeover_seconds):
                return False
            await self._lead(connection, stop)
            return True
        finally:
            # Invalidate, never return it to the pool: a pooled connection would keep the session lock.
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    async def _acquire(self, connection: AsyncConnection, stop: asyncio.Event) -> bool:
        said = False
        while not await backend.try_scheduler_lock(connection):
            if not said:
                log.info("scheduler: another scheduler holds the lock; waiting as standby")
                said = True
            if await _wait(stop, self.standby_seconds):
                return False
        return not stop.is_set()

    async def _prove_for(self, connection: AsyncConnection, stop: asyncio.Event, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await _wait(stop, min(self.check_seconds, max(0.0, deadline - time.monotonic()))):
                return False
            if not await self.prove(connection):
                return False
        return True

    async def _lead(self, connection: AsyncConnection, stop: asyncio.Event) -> None:
        scheduler = self.make_scheduler()
        self.scheduler = scheduler
        tenure = Tenure(started=time.time())
        self.tenures.append(tenure)
        scheduler.start()
        try:
            while not await _wait(stop, self.check_seconds):
                if not await self.prove(connection):
                    log.warning("scheduler: cannot prove it holds the lock; jobs stopped, back to standby")
                    return
                await self._beat(scheduler)
        finally:
            self.scheduler = None
            await scheduler.stop()
            tenure.ended = time.time()

    async def prove(self, connection: AsyncConnection) -> bool:
        """The lock connection answers within a check period and the server shows the lock held by its backend."""
        if not self.uses_lock:
            return True
        try:
            async with asyncio.timeout(self.check_seconds):
                held = (await connection.execute(_PROVE_LOCK, {"key": backend.SCHEDULER_LOCK_KEY})).scalar()
                await connection.commit()
        except Exception as exc:  # timeout, connection lost, server gone: all mean "not proven"
            log.warning("scheduler: lock proof failed (%s: %s)", type(exc).__name__, exc)
            return False
        return bool(held)

    async def _beat(self, scheduler: Scheduler) -> None:
        """The heartbeat that `/readyz` and `/metrics` read (production; embedded runs the scheduler in-process)."""
        if not self.uses_lock:
            return
        try:
            async with asyncio.timeout(self.check_seconds), self.database.sessions() as session:
                values = {
                    "name": HEARTBEAT_NAME,
                    "holder": self.holder,
                    "beat_at": datetime.now(UTC),
                    "lag_seconds": scheduler.lag_seconds,
                }
                await session.execute(backend.upsert(SchedulerHeartbeat, values, session, key="name"))
                await session.commit()
            self.failures.recovered("heartbeat", "scheduler: heartbeat written again")
        except Exception as exc:
            self.failures.failure("heartbeat", "scheduler: heartbeat not written (%s)", exc, level=logging.WARNING)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True if `stop` was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


def leader_for(
    database: Database,
    bus: Bus,
    interval_seconds: float,
    retention_days: int = 30,
    exercises: ExerciseRunner | None = None,
) -> SchedulerLeader:
    """A leader whose every term runs a fresh `Scheduler` with our jobs."""

    def make_scheduler() -> Scheduler:
        return Scheduler(database, bus, interval_seconds, retention_days, exercises)

    return SchedulerLeader(database, make_scheduler)


async def run_standalone(
    database: Database,
    bus: Bus,
    interval_seconds: float,
    stop: asyncio.Event,
    retention_days: int = 30,
    exercises: ExerciseRunner | None = None,
) -> None:
    """`tocsin scheduler`: standby until it holds the lock, run the jobs while it can prove it, until `stop`."""
    await leader_for(database, bus, interval_seconds, retention_days, exercises).run(stop)
