"""The citizen protocol over real WebSockets on a real server, on both backends."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from tests.alerts.factories import INSIDE_FAENZA, OUTSIDE, alert_body, info
from tests.alerts.test_lifecycle import approved_and_issued
from tests.conftest import LiveServer
from tests.realtime.wsclient import Citizen
from tests.waiting import wait_until
from tocsin.auth.schemas import Role
from tocsin.models import Device, Report

INSIDE = {"lon": INSIDE_FAENZA[0], "lat": INSIDE_FAENZA[1]}
FAR = {"lon": OUTSIDE[0], "lat": OUTSIDE[1]}


def report(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "report",
        "id": str(uuid.uuid4()),
        "category": "flooding",
        "text": "Water in via Roma",
        "location": INSIDE,
        "observed_at": datetime.now(UTC).isoformat(),
    }
    body.update(overrides)
    return body


class TestConnect:
    async def test_welcome_then_snapshot_with_the_alerts_that_apply(self, live: LiveServer) -> None:
        alert = await approved_and_issued(live)
        citizen, messages = await Citizen.connect(live.ws_url, location=INSIDE)
        assert [m["type"] for m in messages] == ["welcome", "snapshot"]
        snapshot = messages[-1]
        assert all(a["alert_seq"] <= snapshot["seq"] for a in snapshot["alerts"])
        # Issued a moment ago: in the snapshot if this worker had fanned it out already, else live just after.
        later = [m["alert_id"] for m in await citizen.nothing_for(1.5) if m["type"] == "alert"]
        assert [a["alert_id"] for a in snapshot["alerts"]] + later == [alert["id"]]
        await citizen.close()

    async def test_first_message_must_be_hello(self, live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/ws/citizen") as connection:
            await connection.send(json.dumps({"type": "ping"}))
            assert json.loads(await connection.recv())["code"] == "hello_first"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await connection.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008


class TestLiveAlerts:
    async def test_alert_reaches_devices_in_the_area_only_in_their_language(self, live: LiveServer) -> None:
        french, _ = await Citizen.connect(live.ws_url, location=INSIDE, languages=["fr", "en"])
        german, _ = await Citizen.connect(live.ws_url, location=INSIDE, languages=["de"])
        far, _ = await Citizen.connect(live.ws_url, location=FAR)
        alert = await approved_and_issued(live, alert_body("en", "fr"))
        got = await french.receive_type("alert")
        assert got["alert_id"] == alert["id"]
        assert got["language"] == "fr"
        assert got["headline"] == "Flood warning (fr)"
        fallback = await german.receive_type("alert")
        assert fallback["language"] == "en"  # the alert's first language
        assert fallback["seq"] == got["seq"]
        assert await far.nothing_for(0.8) == []
        for c in (french, german, far):
            await c.close()

    async def test_saved_place_receives_without_a_location(self, live: LiveServer) -> None:
        place = {"name": "Grandma", "point": INSIDE, "radius_km": 0.5}
        citizen, _ = await Citizen.connect(live.ws_url, places=[place])
        alert = await approved_and_issued(live)
        assert (await citizen.receive_type("alert"))["alert_id"] == alert["id"]
        await citizen.close()

    async def test_location_change_sends_a_new_snapshot(self, live: LiveServer) -> None:
        alert = await approved_and_issued(live)

        async def fanned_out() -> bool:
            from tocsin.models import AlertEvent

            async with live.database.sessions() as session:
                newest = await session.scalar(select(AlertEvent.seq).order_by(AlertEvent.seq.desc()).limit(1))
            return bool(live.app.state.realtime.dispatcher.last_seq >= (newest or 0))

        await wait_until(fanned_out, what="the dispatcher to fan the alert out, so the snapshot below holds it")
        citizen, messages = await Citizen.connect(live.ws_url, location=FAR)
        assert messages[-1]["alerts"] == []
        await citizen.send({"type": "location", "id": "m1", "location": INSIDE})
        assert (await citizen.receive_type("ack"))["id"] == "m1"
        snapshot = await citizen.receive_type("snapshot")
        assert [a["alert_id"] for a in snapshot["alerts"]] == [alert["id"]]
        await citizen.close()

    async def test_exercise_alerts_never_reach_the_public(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        approver = await live.user("anna", Role.approver)
        created = await live.client.post(
            "/api/v1/alerts", json=alert_body(status="Exercise"), headers=await live.user("olga", Role.operator)
        )
        issued = await live.client.post(f"/api/v1/alerts/{created.json()['id']}/issue", headers=approver)
        assert issued.json()["state"] == "issued"
        assert await citizen.nothing_for(0.8) == []
        await citizen.close()

    async def test_threshold_filters_alerts_but_not_their_cancellation(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, location=INSIDE, min_severity="Extreme")
        alert = await approved_and_issued(live)  # Severe
        assert await citizen.nothing_for(0.6) == []
        operator, approver = await live.user("olga"), await live.user("anna", Role.approver)
        cancel = (await live.client.post(f"/api/v1/alerts/{alert['id']}/cancel", headers=operator)).json()
        await live.client.post(f"/api/v1/alerts/{cancel['id']}/approve", headers=approver)
        await live.client.post(f"/api/v1/alerts/{cancel['id']}/issue", headers=approver)
        got = await citizen.receive_type("alert")
        assert got["msgType"] == "Cancel"
        assert got["references"] == alert["id"]
        await citizen.close()


class TestReplay:
    async def test_reconnect_gets_every_missed_message_in_order_once(self, live: LiveServer) -> None:
        device = f"dev-{uuid.uuid4().hex[:12]}"
        citizen, messages = await Citizen.connect(live.ws_url, device_id=device, location=INSIDE)
        last_seq = messages[0]["seq"]
        await citizen.close()
        inside = [await approved_and_issued(live, alert_body(info=[info(headline=f"n{i}")])) for i in range(3)]
        ring = {"type": "Polygon", "coordinates": [[[12.4, 44.9], [12.6, 44.9], [12.6, 45.1], [12.4, 44.9]]]}
        await approved_and_issued(live, alert_body(info=[info(area=[{"areaDesc": "far", "geometry": ring}])]))
        again, messages = await Citizen.connect(live.ws_url, device_id=device, location=INSIDE, last_seq=last_seq)
        replayed = [m for m in messages if m["type"] == "alert"]
        assert [m["alert_id"] for m in replayed] == [a["id"] for a in inside]
        seqs = [m["seq"] for m in replayed]
        assert seqs == sorted(set(seqs))
        assert all(s > last_seq for s in seqs)
        later = await approved_and_issued(live)
        live_message = await again.receive_type("alert")
        assert live_message["alert_id"] == later["id"]
        assert live_message["seq"] > seqs[-1]
        await again.close()


class TestReports:
    async def test_ack_after_commit_and_a_resend_gets_the_same_ack(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        body = report()
        await citizen.send(body)
        first = await citizen.receive_type("ack")
        await citizen.send(body)
        second = await citizen.receive_type("ack")
        assert first == second
        assert first["id"] == body["id"]
        async with live.database.sessions() as session:
            rows = (await session.execute(select(Report))).scalars().all()
        assert [r.id for r in rows] == [first["report_id"]]
        await citizen.close()

    async def test_nul_in_a_report_is_refused_and_others_are_stored(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url)
        bad = report(text="water\u0000level")
        await citizen.send(bad)
        error = await citizen.receive_type("error")
        assert (error["id"], error["field"]) == (bad["id"], "text")
        good = report()
        await citizen.send(good)
        assert (await citizen.receive_type("ack"))["id"] == good["id"]
        await citizen.close()

    async def test_restricted_alert_does_not_reach_citizens(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        await approved_and_issued(live, alert_body(scope="Restricted", restriction="fire brigade"))
        assert await citizen.nothing_for(0.8) == []
        await citizen.close()

    async def test_refused_report_names_its_uuid_and_reason(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url)
        body = report(category="alien_invasion")
        await citizen.send(body)
        error = await citizen.receive_type("error")
        assert error["id"] == body["id"]
        assert error["field"] == "category"
        await citizen.close()

    async def test_rest_report_201_then_200_with_the_same_body(self, live: LiveServer) -> None:
        body = {k: v for k, v in report().items() if k != "type"} | {"device_id": "rest-device-1"}
        first = await live.client.post("/api/v1/reports", json=body)
        second = await live.client.post("/api/v1/reports", json=body)
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json() == second.json()

    async def test_device_sees_its_own_reports_and_their_status_changes(self, live: LiveServer) -> None:
        device = f"dev-{uuid.uuid4().hex[:12]}"
        citizen, _ = await Citizen.connect(live.ws_url, device_id=device)
        await citizen.send(report())
        ack = await citizen.receive_type("ack")
        other = {k: v for k, v in report().items() if k != "type"} | {"device_id": "someone-else"}
        await live.client.post("/api/v1/reports", json=other)
        await citizen.send({"type": "my_reports", "id": "r"})
        mine = await citizen.receive_type("my_reports")
        assert [r["id"] for r in mine["reports"]] == [ack["report_id"]]
        changed = await live.client.post(
            f"/api/v1/reports/{ack['report_id']}/status", json={"status": "verified"}, headers=await live.user("olga")
        )
        assert changed.status_code == 200
        pushed = await citizen.receive_type("report_status")
        assert (pushed["report_id"], pushed["status"]) == (ack["report_id"], "verified")
        await citizen.close()


class TestResponses:
    async def test_ack_and_checkin_show_in_the_counts(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        alert = await approved_and_issued(live)
        await citizen.receive_type("alert")
        await citizen.send({"type": "ack_alert", "id": "a1", "alert_id": alert["id"]})
        assert (await citizen.receive_type("ack"))["id"] == "a1"
        await citizen.send(
            {"type": "checkin", "id": "c1", "alert_id": alert["id"], "status": "need_help", "location": INSIDE}
        )
        assert (await citizen.receive_type("ack"))["id"] == "c1"
        counts = (await live.client.get(f"/api/v1/alerts/{alert['id']}/counts", headers=await live.user("olga"))).json()
        assert counts["in_area"] == 1
        assert counts["delivered"] == 1
        assert (counts["acknowledged"], counts["safe"], counts["need_help"]) == (1, 0, 1)
        await citizen.close()


class TestProtocolErrors:
    async def test_bad_messages_get_errors_then_a_policy_close_and_others_are_unaffected(
        self, live: LiveServer
    ) -> None:
        bystander, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        rogue, _ = await Citizen.connect(live.ws_url)
        for i in range(5):
            await rogue.send({"type": "teleport", "id": f"x{i}"})
        codes = [(await rogue.receive_type("error"))["code"] for _ in range(5)]
        assert codes == ["unknown_type"] * 5
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await rogue.receive(5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        await bystander.send({"type": "ping", "id": "p"})
        assert (await bystander.receive_type("pong"))["id"] == "p"
        await bystander.close()

    async def test_binary_frame_closes_with_1003(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url)
        await citizen.connection.send(b"\x00\x01")
        assert (await citizen.receive_type("error"))["code"] == "binary_frame"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await citizen.receive(5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1003

    async def test_null_coordinates_in_a_place_are_an_error_not_a_crash(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url)
        ring = [[11.87, 44.28], [None, 44.28], [11.89, 44.30], [11.87, 44.28]]
        polygon = {"type": "Polygon", "coordinates": [ring]}
        await citizen.send({"type": "places", "id": "p", "places": [{"name": "x", "polygon": polygon}]})
        error = await citizen.receive_type("error")
        assert (error["id"], error["code"]) == ("p", "invalid")
        await citizen.send({"type": "ping", "id": "still-here"})
        assert (await citizen.receive_type("pong"))["id"] == "still-here"
        await citizen.close()

    async def test_oversized_message_closes_with_1009(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(live.ws_url)
        await citizen.send({"type": "ping", "id": "x" * 20_000})
        assert (await citizen.receive_type("error"))["code"] == "too_big"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await citizen.receive(5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


class TestPrivacy:
    async def test_location_is_not_stored_and_dropped_places_are_deleted(self, live: LiveServer) -> None:
        device = f"dev-{uuid.uuid4().hex[:12]}"
        place = {"name": "Home", "point": INSIDE, "radius_km": 0.2}
        citizen, _ = await Citizen.connect(live.ws_url, device_id=device, location=INSIDE, places=[place])
        async with live.database.sessions() as session:
            row = await session.get(Device, device)
            assert row is not None
            assert [p["name"] for p in row.places] == ["Home"]
            stored = json.dumps({c.name: str(getattr(row, c.name)) for c in Device.__table__.columns})
        assert str(INSIDE["lon"]) in stored  # the saved place, which the device chose to keep
        await citizen.send({"type": "places", "id": "p", "places": []})
        await citizen.receive_type("ack")
        async with live.database.sessions() as session:
            row = await session.get(Device, device)
            assert row is not None
            assert row.places == []
            leftovers = json.dumps({c.name: str(getattr(row, c.name)) for c in Device.__table__.columns})
        assert str(INSIDE["lon"]) not in leftovers
        await citizen.close()


class TestRetention:
    async def test_old_reports_are_purged(self, live: LiveServer) -> None:
        from tocsin.reports import service

        body = {k: v for k, v in report().items() if k != "type"} | {"device_id": "old-device-1"}
        await live.client.post("/api/v1/reports", json=body)
        async with live.database.sessions() as session:
            purged = await service.purge(
                session, older_than=timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31)
            )
            await session.commit()
            left = (await session.execute(select(Report))).scalars().all()
        assert purged[0] == 1
        assert left == []
        await asyncio.sleep(0)
