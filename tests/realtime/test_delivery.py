"""Delivery guarantees on a real server, both backends: an alert the dispatcher fails to read is retried, never
skipped; reach is counted on every path and kept in the database; answers come only from devices that were sent the
alert, once each; new device ids are bounded per address."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from asgi_lifespan import LifespanManager
from sqlalchemy import event, select, text

from tests.alerts.factories import INSIDE_FAENZA, OUTSIDE, alert_body, info
from tests.alerts.test_lifecycle import approved_and_issued, draft
from tests.conftest import LiveServer, make_settings
from tests.realtime.wsclient import Citizen
from tests.waiting import wait_until
from tocsin.auth.schemas import Role
from tocsin.db import Database, open_database
from tocsin.main import create_app
from tocsin.models import AlertDelivery, AlertResponse, Device
from tocsin.realtime import devices
from tocsin.realtime.counters import CHUNK_ROWS, DeliveryRecorder
from tocsin.realtime.protocol import Hello
from tocsin.reports import service as reports
from tocsin.testing import free_port

INSIDE = {"lon": INSIDE_FAENZA[0], "lat": INSIDE_FAENZA[1]}
FAR = {"lon": OUTSIDE[0], "lat": OUTSIDE[1]}


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
                await wait_until(warnings.seen, what="the dispatcher to fail reading the alert", seconds=20)
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

                await wait_until(reader_waits, what="the worker to wait for the alert's area", seconds=20)
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


@asynccontextmanager
async def second_worker(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """Another worker on the same database that looks for new alerts only once a minute; yields its WebSocket URL."""
    import uvicorn

    port = free_port()
    settings = make_settings(database_url, tmp_path / "worker-b", realtime_poll_seconds=60)
    app = create_app(settings, migrate_on_start=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), what="the second worker to start", seconds=30)
    assert not task.done(), "the second worker did not start"
    try:
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


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

        await wait_until(settled, what=f"counts {expected}", seconds=20)
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

    async def test_the_same_acknowledgement_twice_at_once_is_one_row_and_no_error(self, live: LiveServer) -> None:
        """Two transactions acknowledge at the same moment (two workers, a resend racing the original): both end
        well (INSERT ... ON CONFLICT DO NOTHING), and the device counts once."""
        citizen, _ = await Citizen.connect(live.ws_url, device_id="acked-twice-at-once", location=INSIDE)
        alert = await approved_and_issued(live)
        await citizen.receive_type("alert")
        await live.app.state.realtime.deliveries.flush()
        await citizen.close()
        database: Database = live.database

        async def acknowledge() -> None:
            async with database.sessions() as session:
                await devices.respond(session, alert_id=uuid.UUID(alert["id"]), device_id="acked-twice-at-once")
                await session.commit()

        await asyncio.gather(acknowledge(), acknowledge())
        async with database.sessions() as session:
            rows = (await session.execute(select(AlertResponse.acknowledged_at, AlertResponse.checkin))).all()
        assert len(rows) == 1
        assert rows[0].acknowledged_at is not None
        assert rows[0].checkin is None
        assert (await counts(live, alert["id"]))["acknowledged"] == 1

    async def test_a_new_device_saying_hello_twice_at_once_is_one_row_and_no_error(self, live: LiveServer) -> None:
        """The same new device id reaching two workers at once: one writes the row, the other finds it."""

        async def hello() -> None:
            async with live.database.sessions() as session:
                await devices.remember(session, Hello(type="hello", device_id="hello-twice-at-once", languages=["it"]))
                await session.commit()

        await asyncio.gather(hello(), hello())
        async with live.database.sessions() as session:
            rows = (await session.execute(select(Device.languages).where(Device.id == "hello-twice-at-once"))).all()
        assert [row.languages for row in rows] == [["it"]]

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


class TestAnswersBeforeTheDeliveryIsWritten:
    async def test_a_device_that_may_have_the_alert_is_heard_and_counted_once(self, live: LiveServer) -> None:
        """The alert went out from another worker that has not written the delivery yet: the answer is taken and
        the delivery row written with it; a device the alert cannot have been sent to is still refused."""
        alert = await approved_and_issued(live)
        alert_id = uuid.UUID(alert["id"])
        for device_id in ("moved-here", "never-sent"):
            async with live.database.sessions() as session:
                await devices.remember(session, Hello(type="hello", device_id=device_id))
                await session.commit()

        async def answer(device_id: str, *, may_have: bool) -> None:
            async with live.database.sessions() as session:
                await devices.respond(
                    session, alert_id=alert_id, device_id=device_id, checkin="safe", may_have=may_have
                )
                await session.commit()

        await asyncio.gather(*(answer("moved-here", may_have=True) for _ in range(4)))
        with pytest.raises(devices.NotDelivered):
            await answer("never-sent", may_have=False)
        got = await counts(live, alert["id"])
        assert (got["in_area"], got["acknowledged"], got["safe"]) == (1, 1, 1)

    async def test_a_worker_that_has_not_sent_it_yet_takes_answers_and_receipts_from_its_area(
        self, live: LiveServer, database_url: str, tmp_path: Path
    ) -> None:
        """Worker B reads new alerts once a minute, so it has neither sent nor noted the alert that worker A issued;
        a device in the area answering B (it got the alert on A a moment ago) is heard, one outside is not."""
        async with second_worker(database_url, tmp_path) as ws_url:
            inside, _ = await Citizen.connect(ws_url, location=INSIDE)
            far, _ = await Citizen.connect(ws_url, location=FAR)
            alert = await approved_and_issued(live)
            await inside.send({"type": "received", "id": "r", "alert_ids": [alert["id"]]})
            await inside.send({"type": "checkin", "id": "c", "alert_id": alert["id"], "status": "need_help"})
            assert [(await inside.receive_type("ack"))["id"] for _ in range(2)] == ["r", "c"]
            await far.send({"type": "ack_alert", "id": "x", "alert_id": alert["id"]})
            assert (await far.receive_type("error"))["code"] == "not_delivered"
            expected = {"in_area": 1, "delivered": 0, "received": 1, "acknowledged": 1, "need_help": 1}

            async def settled() -> bool:
                got = await counts(live, alert["id"])
                return {k: got[k] for k in expected} == expected

            await wait_until(settled, what=f"counts {expected}", seconds=20)
            for citizen in (inside, far):
                await citizen.close()


class TestASnapshotThatFails:
    async def test_after_a_move_the_device_is_told_to_reconnect(self, live: LiveServer, database_url: str) -> None:
        """A failed read of the active alerts after a move must not leave the device holding live alerts unsent."""
        await approved_and_issued(live)
        citizen, _ = await Citizen.connect(live.ws_url, location=FAR)
        dispatcher = live.app.state.realtime.dispatcher
        await wait_until(lambda: not dispatcher._active_fresh(), what="the cached active alerts to go stale")
        await execute(database_url, "ALTER TABLE alert_events RENAME TO alert_events_away")
        try:
            await citizen.send({"type": "location", "id": "move", "location": INSIDE})
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await citizen.nothing_for(10)  # until the close (without it: the internal error, then silence)
        finally:
            await execute(database_url, "ALTER TABLE alert_events_away RENAME TO alert_events")
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013


class TestWritingDeliveries:
    async def test_a_big_fan_out_is_written_in_chunks_with_its_earliest_times(self, live: LiveServer) -> None:
        """Each statement carries at most CHUNK_ROWS rows (one transaction each, the loop gets a turn between them);
        a device noted twice stays one row with its earliest times, and late writes/receipts fill in."""
        alert_id = uuid.UUID((await approved_and_issued(live))["id"])
        recorder = DeliveryRecorder(live.database)
        devices_ = [f"chunk-{i:05d}" for i in range(2 * CHUNK_ROWS + 10)]
        early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
        recorder.target(alert_id, devices_[CHUNK_ROWS:], at=late)
        recorder.target(alert_id, devices_[: CHUNK_ROWS + 5], at=early)
        recorder.wrote(alert_id, devices_[:3], at=late)
        recorder.wrote(alert_id, devices_[:1], at=early)
        assert recorder.noted(alert_id, devices_[-1])
        assert not recorder.noted(alert_id, "chunk-other")
        sizes: list[int] = []

        def count_rows(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
            if "alert_deliveries" in statement:
                sizes.append(len(parameters) if many else 1)

        engine = live.database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count_rows)
        try:
            await recorder.flush()
            recorder.receive(alert_id, devices_[0])  # after its row exists: a later receipt
            await recorder.flush()
        finally:
            event.remove(engine, "before_cursor_execute", count_rows)
        assert len(sizes) >= 4
        assert max(sizes) <= CHUNK_ROWS
        async with live.database.sessions() as session:
            rows = {
                row.device_id: row
                for row in (await session.execute(select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)))
                .scalars()
                .all()
            }
        assert sorted(rows) == devices_
        assert rows[devices_[CHUNK_ROWS]].targeted_at == early  # noted late, then early: the earliest wins
        assert rows[devices_[-1]].targeted_at == late
        assert [rows[d].written_at for d in devices_[:3]] == [early, late, late]
        assert rows[devices_[0]].received_at is not None
        assert rows[devices_[1]].received_at is None
