"""Group commit (reports/writer.py) on a real server, both backends: an acknowledgement follows the commit, and when
a batch's commit fails every sender gets `unavailable`, nothing is stored, and every report acknowledged after the
resend is in the database once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select, text

from tests.conftest import LiveServer
from tests.realtime.test_citizen import report
from tests.realtime.test_delivery import execute
from tests.realtime.wsclient import Citizen
from tests.waiting import wait_until
from tocsin.db import open_database
from tocsin.models import Report

# A fault that strikes at COMMIT, after every INSERT of the batch succeeded: a deferred constraint.
POSTGRES_FAULT = (
    "CREATE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$",
    "CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON reports "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_at_commit()",
)
POSTGRES_REPAIR = (
    "DROP TRIGGER IF EXISTS test_refuse_at_commit ON reports",
    "DROP FUNCTION IF EXISTS test_refuse_at_commit()",
)
SQLITE_FAULT = (  # a deferred foreign key that every new report violates: checked at COMMIT
    "CREATE TABLE test_nowhere (id INTEGER PRIMARY KEY)",
    "CREATE TABLE test_poison (ref INTEGER REFERENCES test_nowhere (id) DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TRIGGER test_refuse_at_commit AFTER INSERT ON reports BEGIN INSERT INTO test_poison VALUES (1); END",
)
SQLITE_REPAIR = (
    "DROP TRIGGER IF EXISTS test_refuse_at_commit",
    "DROP TABLE IF EXISTS test_poison",
    "DROP TABLE IF EXISTS test_nowhere",
)


@asynccontextmanager
async def commits_fail(database_url: str, is_postgis: bool) -> AsyncIterator[None]:
    await execute(database_url, *(POSTGRES_FAULT if is_postgis else SQLITE_FAULT))
    try:
        yield
    finally:
        await execute(database_url, *(POSTGRES_REPAIR if is_postgis else SQLITE_REPAIR))


async def answer_to(citizen: Citizen, report_id: str) -> dict[str, object]:
    while True:
        message = await citizen.receive(20)
        if message["type"] in ("ack", "error") and message.get("id") == report_id:
            return message


async def stored(live: LiveServer) -> list[uuid.UUID]:
    async with live.database.sessions() as session:
        return list((await session.execute(select(Report.client_id))).scalars())


class TestGroupCommit:
    async def test_when_the_commit_fails_nobody_gets_an_ack_and_resends_are_stored_once(
        self, live: LiveServer, database_url: str, is_postgis: bool
    ) -> None:
        citizens = [(await Citizen.connect(live.ws_url))[0] for _ in range(12)]
        reports = [report() for _ in citizens]
        async with commits_fail(database_url, is_postgis):
            # Sent together, so they share batches; each INSERT succeeds, then the COMMIT is refused.
            await asyncio.gather(*(c.send(r) for c, r in zip(citizens, reports, strict=True)))
            answers = [await answer_to(c, str(r["id"])) for c, r in zip(citizens, reports, strict=True)]
            # An ack sent before the commit would be here, for a report that is not stored.
            assert [(a["type"], a["code"]) for a in answers] == [("error", "unavailable")] * len(citizens)
            assert await stored(live) == []
        await asyncio.gather(*(c.send(r) for c, r in zip(citizens, reports, strict=True)))  # the apps resend
        acks = [await answer_to(c, str(r["id"])) for c, r in zip(citizens, reports, strict=True)]
        assert {a["type"] for a in acks} == {"ack"}
        assert sorted(map(str, await stored(live))) == sorted(str(r["id"]) for r in reports)
        async with live.database.sessions() as session:
            assert (await session.execute(select(func.count()).select_from(Report))).scalar() == len(reports)
        for citizen in citizens:
            await citizen.close()

    async def test_a_connection_lost_between_batches_costs_no_report(
        self, live: LiveServer, database_url: str, is_postgis: bool
    ) -> None:
        """The writer keeps its connection from one batch to the next. When the database dropped it meanwhile (a
        restart), the next batch is written on a fresh connection and acknowledged, not refused."""
        if not is_postgis:
            pytest.skip("pg_terminate_backend: PostgreSQL only")
        citizen, _ = await Citizen.connect(live.ws_url)
        first, second = report(), report()
        try:
            await citizen.send(first)
            assert (await answer_to(citizen, str(first["id"])))["type"] == "ack"
            await execute(
                database_url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            await citizen.send(second)
            assert (await answer_to(citizen, str(second["id"])))["type"] == "ack"
            assert sorted(map(str, await stored(live))) == sorted([str(first["id"]), str(second["id"])])
        finally:
            await citizen.close()

    async def test_the_ack_waits_for_the_commit(self, live: LiveServer, database_url: str, is_postgis: bool) -> None:
        """While the commit cannot finish, no ack; the moment it does, the ack comes and the report is there."""
        if not is_postgis:
            pytest.skip("holds a COMMIT open with an advisory lock: PostgreSQL only (the failure test covers SQLite)")
        holder = open_database(database_url, pool=False)
        await execute(
            database_url,
            *(
                "CREATE FUNCTION test_wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$",
                "CREATE CONSTRAINT TRIGGER test_wait_at_commit AFTER INSERT ON reports "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_wait_at_commit()",
            ),
        )
        citizen, _ = await Citizen.connect(live.ws_url)
        body = report()
        try:
            async with holder.engine.connect() as lock:
                await lock.execute(text("SELECT pg_advisory_lock(4242)"))
                await citizen.send(body)
                async with holder.engine.connect() as probe:

                    async def writer_inside_commit() -> bool:  # waiting for our advisory lock
                        waiting = await probe.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event = 'advisory' AND pid <> pg_backend_pid()"
                            )
                        )
                        return bool(waiting.scalar())

                    await wait_until(writer_inside_commit, what="the writer to reach its COMMIT", seconds=20)
                assert await citizen.nothing_for(0.5) == []
                assert await stored(live) == []
                await lock.execute(text("SELECT pg_advisory_unlock(4242)"))
            ack = await answer_to(citizen, str(body["id"]))
            assert ack["type"] == "ack"
            assert [str(i) for i in await stored(live)] == [body["id"]]
        finally:
            await citizen.close()
            await holder.dispose()
            await execute(
                database_url,
                *(
                    "DROP TRIGGER IF EXISTS test_wait_at_commit ON reports",
                    "DROP FUNCTION IF EXISTS test_wait_at_commit()",
                ),
            )
