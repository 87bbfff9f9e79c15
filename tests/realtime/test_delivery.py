"""Delivery guarantees on a real server, both backends: an alert the dispatcher fails to read is retried, never
skipped; reach is counted on every path and kept in the database; answers come only from devices that were sent the
alert, once each; new device ids are bounded per address."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from sqlalchemy import select, text

from tests.alerts.factories import INSIDE_FAENZA, OUTSIDE, alert_body, info
from tests.alerts.test_lifecycle import approved_and_issued, draft
from tests.conftest import LiveServer, make_settings
from tests.realtime.wsclient import Citizen
from tocsin.auth.schemas import Role
from tocsin.db import Database, open_database
from tocsin.main import create_app
from tocsin.models import AlertDelivery, AlertResponse
from tocsin.realtime import devices
from tocsin.reports import service as reports

INSIDE = {"lon": INSIDE_FAENZA[0], "lat": INSIDE_FAENZA[1]}
FAR = {"lon": OUTSIDE[0], "lat": OUTSIDE[1]}


async def until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def approved(h: LiveServer, body: dict[str, Any] | None = None) -> str:
    alert = await draft(h, body)
    response = await h.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=await h.user("anna", Role.approver))
    assert response.status_code == 200, response.text
    return str(alert["id"])


async def issue(h: LiveServer, alert_id: str) -> None:
    response = await h.client.post(f"/api/v1/alerts/{alert_id}/issue", headers=await h.user("anna", Role.approver))
    assert response.status_code == 200, response.text


async def alerts_until(citizen: Citizen, last_alert_id: str) -> list[tuple[str, int]]:
    """(alert id, seq) of every `alert` message up to and including the one for `last_alert_id`."""
    got = []
    while True:
        message = await citizen.receive_type("alert", wait=20)
        got.append((message["alert_id"], message["seq"]))
        if message["alert_id"] == last_alert_id:
            return got


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    async def seen(self) -> bool:
        return bool(self.records)


@asynccontextmanager
async def dispatcher_warnings() -> AsyncIterator[Warnings]:
    handler = Warnings()
    logger = logging.getLogger("tocsin.realtime.dispatcher")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def execute(database_url: str, *statements: str) -> None:
    database = open_database(database_url, pool=False)
    try:
        async with database.engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await database.dispose()


class TestAnAlertThatCannotBeReadIsNotSkipped:
    async def test_every_device_gets_it_and_the_next_one_in_order_once(
        self, live: LiveServer, database_url: str
    ) -> None:
        away_id = f"away-{uuid.uuid4().hex[:10]}"
        away, first = await Citizen.connect(live.ws_url, device_id=away_id, location=INSIDE)
        last_seq = first[0]["seq"]
        await away.close()
        citizens = [(await Citizen.connect(live.ws_url, location=INSIDE))[0] for _ in range(10)]
        first_id = await approved(live, alert_body(info=[info(headline="the first")]))
        async with dispatcher_warnings() as warnings:
            # A real database failure at the moment the worker reads the just-issued alert: its area is unreadable.
            await execute(database_url, "ALTER TABLE alert_areas RENAME TO alert_areas_away")
            try:
                await issue(live, first_id)
                await until(warnings.seen, "the dispatcher to fail reading the alert")
            finally:
                await execute(database_url, "ALTER TABLE alert_areas_away RENAME TO alert_areas")
        following = await approved_and_issued(live, alert_body(info=[info(headline="the next")]))
        expected = [first_id, following["id"]]
        for citizen in citizens:
            got = await alerts_until(citizen, following["id"])
            assert [alert_id for alert_id, _ in got] == expected
            assert got[0][1] < got[1][1]
            assert [m for m in await citizen.nothing_for(0.3) if m["type"] == "alert"] == []
            await citizen.close()
        back, messages = await Citizen.connect(live.ws_url, device_id=away_id, location=INSIDE, last_seq=last_seq)
        assert [m["alert_id"] for m in messages if m["type"] == "alert"] == expected
        await back.close()

    async def test_a_connection_cut_while_reading_is_retried(
        self, live: LiveServer, database_url: str, is_postgis: bool
    ) -> None:
        if not is_postgis:
            pytest.skip("pg_terminate_backend: PostgreSQL only (the rename above covers SQLite)")
        citizens = [(await Citizen.connect(live.ws_url, location=INSIDE))[0] for _ in range(5)]
        holder = open_database(database_url, pool=False)
        try:
            async with holder.engine.connect() as blocker:
                # The worker's read of the alert's area waits on this lock; its connection is cut while it waits.
                first_id = await approved(live)
                await blocker.execute(text("LOCK TABLE alert_areas IN ACCESS EXCLUSIVE MODE"))
                await issue(live, first_id)
                waiting: list[int] = []

                async def reader_waits() -> bool:
                    async with holder.engine.connect() as probe:
                        rows = await probe.execute(
                            text(
                                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                "AND wait_event_type = 'Lock' AND query LIKE '%alert_areas%' "
                                "AND pid <> pg_backend_pid()"
                            )
                        )
                        waiting[:] = [int(pid) for (pid,) in rows]
                    return bool(waiting)

                await until(reader_waits, "the worker to wait for the alert's area")
                async with holder.engine.connect() as killer:
                    for pid in waiting:
                        await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await blocker.rollback()
        finally:
            await holder.dispose()
        following = await approved_and_issued(live)
        for citizen in citizens:
            got = await alerts_until(citizen, following["id"])
            assert [alert_id for alert_id, _ in got] == [first_id, following["id"]]
            await citizen.close()


async def counts(h: LiveServer, alert_id: str) -> dict[str, Any]:
    response = await h.client.get(f"/api/v1/alerts/{alert_id}/counts", headers=await h.user("olga"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestReach:
    async def test_every_path_counts_and_the_counts_outlive_the_worker(
        self, live: LiveServer, database_url: str, tmp_path: Path
    ) -> None:
        away_id = f"away-{uuid.uuid4().hex[:10]}"
        away, first = await Citizen.connect(live.ws_url, device_id=away_id, location=INSIDE)
        await away.close()
        live_device, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        silent, _ = await Citizen.connect(live.ws_url, location=INSIDE, say_received=False)
        far, _ = await Citizen.connect(live.ws_url, location=FAR)
        alert = await approved_and_issued(live)
        await live_device.receive_type("alert")
        await silent.receive_type("alert")
        # Later: one in its connection snapshot, one on replay.
        late, messages = await Citizen.connect(live.ws_url, location=INSIDE)
        assert [a["alert_id"] for a in messages[-1]["alerts"]] == [alert["id"]]
        back, messages = await Citizen.connect(
            live.ws_url, device_id=away_id, location=INSIDE, last_seq=first[0]["seq"]
        )
        assert [m["alert_id"] for m in messages if m["type"] == "alert"] == [alert["id"]]
        await live_device.send({"type": "ack_alert", "id": "a", "alert_id": alert["id"]})
        await live_device.send({"type": "ack_alert", "id": "b", "alert_id": alert["id"]})
        await live_device.send({"type": "checkin", "id": "c", "alert_id": alert["id"], "status": "safe"})
        await live_device.send({"type": "checkin", "id": "d", "alert_id": alert["id"], "status": "need_help"})
        for _ in range(4):
            await live_device.receive_type("ack")
        expected = {"in_area": 4, "delivered": 4, "received": 3, "acknowledged": 1, "safe": 0, "need_help": 1}

        async def settled() -> bool:
            got = await counts(live, alert["id"])
            return {k: got[k] for k in expected} == expected

        await until(settled, f"counts {expected}")
        for citizen in (live_device, silent, far, late, back):
            await citizen.close()
        # Another worker on the same database (or this one restarted): nothing of the counts lived in memory.
        app = create_app(make_settings(database_url, tmp_path / "second"), migrate_on_start=False)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                response = await client.get(f"/api/v1/alerts/{alert['id']}/counts", headers=await live.user("olga"))
        assert {k: response.json()[k] for k in expected} == expected

    async def test_deliveries_are_purged_with_the_other_traces_of_a_device(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        alert = await approved_and_issued(live)
        await citizen.receive_type("alert")
        await citizen.close()
        assert (await counts(live, alert["id"]))["in_area"] == 1
        async with live.database.sessions() as session:
            await reports.purge(session, older_than=timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31))
            await session.commit()
            assert (await session.execute(select(AlertDelivery))).all() == []


class TestAnswers:
    async def test_only_a_device_that_was_sent_the_alert_may_answer(self, live: LiveServer) -> None:
        inside, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        far, _ = await Citizen.connect(live.ws_url, location=FAR)
        alert = await approved_and_issued(live)
        await inside.receive_type("alert")
        exercise = await approved_and_issued(live, alert_body(status="Exercise"))
        for citizen, alert_id in ((far, alert["id"]), (inside, exercise["id"])):
            for message in (
                {"type": "ack_alert", "id": "x", "alert_id": alert_id},
                {"type": "checkin", "id": "y", "alert_id": alert_id, "status": "need_help", "location": INSIDE},
            ):
                await citizen.send(message)
                error = await citizen.receive_type("error")
                assert (error["id"], error["code"], error["field"]) == (message["id"], "not_delivered", "alert_id")
        await inside.send({"type": "checkin", "id": "ok", "alert_id": alert["id"], "status": "safe"})
        assert (await inside.receive_type("ack"))["id"] == "ok"
        got = await counts(live, alert["id"])
        assert (got["acknowledged"], got["safe"], got["need_help"]) == (1, 1, 0)
        async with live.database.sessions() as session:
            answered = (await session.execute(select(AlertResponse.alert_id, AlertResponse.device_id))).all()
        assert len(answered) == 1
        for citizen in (inside, far):
            await citizen.close()

    async def test_answers_at_once_make_one_row(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, device_id="answers-at-once", location=INSIDE)
        alert = await approved_and_issued(live)
        await citizen.receive_type("alert")
        await live.app.state.realtime.deliveries.flush()
        await citizen.close()
        database: Database = live.database

        async def answer(status: str) -> None:
            async with database.sessions() as session:
                await devices.respond(
                    session, alert_id=uuid.UUID(alert["id"]), device_id="answers-at-once", checkin=status
                )
                await session.commit()

        await asyncio.gather(*(answer("need_help" if i % 2 else "safe") for i in range(8)))
        got = await counts(live, alert["id"])
        assert got["acknowledged"] == 1
        assert got["safe"] + got["need_help"] == 1

    @pytest.mark.parametrize("live", [{"ip_new_devices_per_minute": 4}], indirect=True)
    async def test_new_devices_per_address_are_bounded(self, live: LiveServer) -> None:
        known = [(await Citizen.connect(live.ws_url, device_id=f"bounded-{i}-device"))[0] for i in range(2)]
        async with websockets.connect(f"{live.ws_url}/ws/citizen") as connection:
            await connection.send('{"type": "hello", "id": "h", "device_id": "one-too-many-device"}')
            refused = await Citizen(connection).receive_type("error")
            assert (refused["code"], refused["id"]) == ("too_many_devices", "h")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await connection.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
        for citizen in known:
            await citizen.close()
        again, _ = await Citizen.connect(live.ws_url, device_id="bounded-0-device")  # known devices still connect
        await again.close()
