"""Exactly one scheduler: on PostgreSQL the second waits on the advisory lock; the standalone runner stops cleanly."""

from __future__ import annotations

import asyncio

from tests.conftest import Harness
from tocsin import backend
from tocsin.scheduler.leader import run_standalone


class TestSchedulerLock:
    async def test_second_scheduler_does_not_get_the_lock(self, harness: Harness, is_postgis: bool) -> None:
        engine = harness.database.engine
        async with engine.connect() as first, engine.connect() as second:
            assert await backend.try_scheduler_lock(first) is True
            # SQLite is one process by construction; PostgreSQL must refuse the second holder.
            assert await backend.try_scheduler_lock(second) is (not is_postgis)

    async def test_standby_returns_when_stopped(self, harness: Harness, is_postgis: bool) -> None:
        stop = asyncio.Event()
        async with harness.database.engine.connect() as holder:
            await backend.try_scheduler_lock(holder)
            runner = asyncio.create_task(run_standalone(harness.database, harness.app.state.bus, 0.1, stop))
            await asyncio.sleep(0.3)
            assert not runner.done()
            stop.set()
            await asyncio.wait_for(runner, timeout=10)
