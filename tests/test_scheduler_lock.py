"""Exactly one active scheduler, even when PostgreSQL drops the lock: the holder proves it every check period and
stops its jobs the moment it cannot; a standby takes over only after that. Every job is safe when run twice at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from tests.alerts.factories import alert_body, info
from tests.alerts.test_lifecycle import approved_and_issued
from tests.conftest import Harness
from tests.waiting import wait_until
from tocsin import backend
from tocsin.alerts import service as alerts
from tocsin.bus import InProcessBus
from tocsin.db import open_database
from tocsin.kernel.work import unit_of_work
from tocsin.models import AlertEvent, AuditEntry, SchedulerHeartbeat
from tocsin.scheduler.leader import HEARTBEAT_NAME, SchedulerLeader, leader_for


class TestExpiryRunTwice:
    async def test_two_expiry_runs_at_once_change_the_alert_once(self, harness: Harness) -> None:
        soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
        alert = await approved_and_issued(harness, alert_body(info=[info(expires=soon)]))
        later = datetime.now(UTC) + timedelta(minutes=1)

        async def expire() -> int:
            async with unit_of_work(harness.database, harness.app.state.bus) as work:
                return await alerts.expire_due(work, now=later)

        published = await asyncio.gather(expire(), expire(), expire())
        assert sum(published) == 1
        async with harness.database.sessions() as session:
            expired_events = await session.scalar(
                select(func.count()).select_from(AlertEvent).where(AlertEvent.kind == "expired")
            )
            audit_entries = await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "expire")
            )
        assert (expired_events, audit_entries) == (1, 1)
        approver = harness.tokens["anna"]
        assert (await harness.client.get(f"/api/v1/alerts/{alert['id']}", headers=approver)).json()["state"] == (
            "expired"
        )


async def lock_backend_pid(harness: Harness) -> int | None:
    async with harness.database.engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid::bigint = :key AND l.granted "
                "AND a.datname = current_database()"
            ),
            {"key": backend.SCHEDULER_LOCK_KEY},
        )
        pid = found.scalar()
    return None if pid is None else int(pid)


async def heartbeat_holder(harness: Harness) -> str | None:
    async with harness.database.sessions() as session:
        beat = await session.get(SchedulerHeartbeat, HEARTBEAT_NAME)
        return None if beat is None else beat.holder


class TestLockLoss:
    async def test_a_dropped_lock_stops_the_jobs_before_the_standby_runs(
        self, harness: Harness, database_url: str, is_postgis: bool
    ) -> None:
        if not is_postgis:
            pytest.skip("embedded mode has one process and no lock")
        first_db, second_db = open_database(database_url), open_database(database_url)
        first = leader_for(first_db, InProcessBus(), 0.2)
        second = leader_for(second_db, InProcessBus(), 0.2)
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        running = [asyncio.create_task(first.run(stop_first))]
        try:
            await wait_until(lambda: first.active, what="the first scheduler to lead", seconds=30)
            running.append(asyncio.create_task(second.run(stop_second)))
            pid = await lock_backend_pid(harness)
            assert pid is not None
            await wait_until(
                lambda: not second.active, what="the standby to start", seconds=30
            )  # it waits: the lock is held
            async with harness.database.engine.connect() as connection:  # only a backend of our own database
                assert (await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar()
            await wait_until(lambda: second.active, what="the standby to take over", seconds=30)
            assert not first.active
            assert_never_both_active(first, second)
            await wait_until(
                lambda: holder_is(harness, second.holder), what="the new leader to write its heartbeat", seconds=30
            )
        finally:
            stop_first.set()
            stop_second.set()
            await asyncio.gather(*running)
            await first_db.dispose()
            await second_db.dispose()
        assert_never_both_active(first, second)

    async def test_embedded_leads_at_once_without_a_lock(self, harness: Harness, is_postgis: bool) -> None:
        if is_postgis:
            pytest.skip("embedded mode is SQLite")
        leader = leader_for(harness.database, InProcessBus(), 0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(leader.run(stop))
        await wait_until(lambda: leader.active, what="the embedded scheduler to run", seconds=30)
        stop.set()
        await task
        assert not leader.active
        assert leader.tenures[0].ended is not None


def assert_never_both_active(first: SchedulerLeader, second: SchedulerLeader) -> None:
    for a in first.tenures:
        for b in second.tenures:
            a_end = a.ended if a.ended is not None else float("inf")
            b_end = b.ended if b.ended is not None else float("inf")
            assert a_end <= b.started or b_end <= a.started, f"both active: {a} and {b}"


async def holder_is(harness: Harness, holder: str) -> bool:
    return await heartbeat_holder(harness) == holder
