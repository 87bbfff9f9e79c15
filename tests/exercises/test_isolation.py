"""Exercise traffic stays inside its exercise: its alerts reach only its devices, its devices get nothing else, real
alerts are not held up, and one stop ends all of it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.alerts.factories import INSIDE_FAENZA, alert_body
from tests.conftest import LiveServer
from tests.exercises.helpers import RUN, planner, short_scenario, wait_for
from tests.realtime.wsclient import Citizen
from tests.waiting import wait_until
from tocsin.auth.schemas import Role
from tocsin.models import AlertResponse, Exercise, ExerciseReceipt


async def _exercise(live: LiveServer, devices: int = 40) -> dict[str, Any]:
    headers = await planner(live)
    body = {"scenario": short_scenario(), "speed": 1, "devices": devices, "seed": 3, "start": True}
    response = await live.client.post("/api/v1/exercises", json=body, headers=headers)
    assert response.status_code == 201, response.text
    exercise: dict[str, Any] = response.json()
    await wait_for(live, exercise["id"], headers, lambda e: e["devices_online"] >= devices * 0.7)
    return exercise


async def _issue(live: LiveServer, **fields: Any) -> str:
    """Draft, approve (a second person) and issue an alert over Faenza; returns its id."""
    author = await live.user("author", Role.operator)
    approver = await live.user("approver", Role.approver)
    draft = await live.client.post("/api/v1/alerts", json=alert_body(**fields), headers=author)
    assert draft.status_code == 201, draft.text
    alert_id: str = draft.json()["id"]
    for step in ("approve", "issue"):
        response = await live.client.post(f"/api/v1/alerts/{alert_id}/{step}", headers=approver)
        assert response.status_code == 200, response.text
    return alert_id


async def _receipts(live: LiveServer, alert_id: str) -> int:
    async with live.database.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(ExerciseReceipt).where(ExerciseReceipt.alert_id == uuid.UUID(alert_id))
        )
    return int(count or 0)


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_exercise_alerts_reach_only_the_exercise(live: LiveServer) -> None:
    exercise = await _exercise(live)
    lon, lat = INSIDE_FAENZA
    public, _ = await Citizen.connect(live.ws_url, location={"lon": lon, "lat": lat})
    token = exercise["join_token"]
    player, _ = await Citizen.connect(
        live.ws_url, location={"lon": lon, "lat": lat}, exercise={"id": exercise["id"], "token": token}
    )

    drill = await _issue(live, status="Exercise", exercise_id=exercise["id"])
    got = await player.receive_type("alert")
    assert (got["alert_id"], got["status"], got["marking"]) == (drill, "Exercise", "EXERCISE")
    assert [m for m in await public.nothing_for(0.5) if m["type"] == "alert"] == []

    real = await _issue(live)  # Actual: reaches the public at once, and no exercise device
    assert (await public.receive_type("alert", wait=3))["alert_id"] == real
    assert [m for m in await player.nothing_for(0.5) if m["type"] == "alert"] == []
    await wait_until(lambda: _receipts(live, drill), what="a flush of the synthetic citizens' receipts")
    assert await _receipts(live, real) == 0
    async with live.database.sessions() as session:
        answered = await session.scalar(
            select(func.count()).select_from(AlertResponse).where(AlertResponse.alert_id == uuid.UUID(real))
        )
    assert answered == 0
    await public.close()
    await player.close()


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_one_stop_ends_all_exercise_traffic(live: LiveServer) -> None:
    exercise = await _exercise(live)
    headers = await planner(live)
    lon, lat = INSIDE_FAENZA
    join = {"id": exercise["id"], "token": exercise["join_token"]}
    player, _ = await Citizen.connect(live.ws_url, location={"lon": lon, "lat": lat}, exercise=join)
    drill = await _issue(live, status="Exercise", exercise_id=exercise["id"])
    await player.receive_type("alert")

    stopped = await live.client.post(f"/api/v1/exercises/{exercise['id']}/stop", headers=headers)
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"

    farewell = await player.receive_type("error", wait=3)
    assert farewell["code"] == "exercise_ended"
    hub = live.app.state.realtime.hub
    for _ in range(50):
        if not any(c.device.exercise_id == exercise["id"] for c in hub.by_device.values()):
            break
        await asyncio.sleep(0.1)
    assert not any(c.device.exercise_id == exercise["id"] for c in hub.by_device.values())
    assert (await live.client.get(f"/api/v1/alerts/{drill}", headers=headers)).json()["state"] == "expired"

    again, messages = await _hello(live, join)
    assert messages[0]["code"] == "exercise_ended"
    author = await live.user("author", Role.operator)
    late = await live.client.post(
        "/api/v1/alerts", json=alert_body(status="Exercise", exercise_id=exercise["id"]), headers=author
    )
    assert late.status_code == 409
    assert late.json()["error"]["field"] == "exercise_id"
    await again.close()


async def _hello(live: LiveServer, join: dict[str, str], device_id: str = "late-device-1") -> tuple[Any, list[Any]]:
    import json

    import websockets

    connection = await websockets.connect(f"{live.ws_url}/ws/citizen", compression=None)
    await connection.send(json.dumps({"type": "hello", "device_id": device_id, "exercise": join}))
    messages = [json.loads(await asyncio.wait_for(connection.recv(), 5))]
    return connection, messages


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_joining_needs_the_token_and_a_device_of_its_own(live: LiveServer) -> None:
    exercise = await _exercise(live, devices=0)
    wrong, messages = await _hello(live, {"id": exercise["id"], "token": "guessed"})
    assert messages[0]["code"] == "exercise_unknown"
    public, _ = await Citizen.connect(live.ws_url, device_id="public-device-1")
    await public.close()
    join = {"id": exercise["id"], "token": exercise["join_token"]}
    reused, messages = await _hello(live, join, device_id="public-device-1")
    assert messages[0]["code"] == "device_in_use"
    for connection in (wrong, reused):
        await connection.close()


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_exercise_fields_are_checked_on_alerts(live: LiveServer) -> None:
    author = await live.user("author", Role.operator)
    actual = await live.client.post("/api/v1/alerts", json=alert_body(exercise_id="x-1"), headers=author)
    assert actual.status_code == 422
    assert actual.json()["error"]["field"] == "exercise_id"
    unknown = await live.client.post(
        "/api/v1/alerts", json=alert_body(status="Exercise", exercise_id="nope"), headers=author
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "exercise_id"
    async with live.database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Exercise)) == 0


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_a_worker_that_missed_the_stop_closes_the_devices_anyway(live: LiveServer) -> None:
    """The bus is only the fast path: with the stop written but never announced, the devices still go."""
    exercise = await _exercise(live, devices=0)
    join = {"id": exercise["id"], "token": exercise["join_token"]}
    player, _ = await Citizen.connect(live.ws_url, exercise=join)
    async with live.database.sessions() as session:
        row = await session.get(Exercise, exercise["id"])
        assert row is not None
        row.state = "stopped"
        await session.commit()
    farewell = await player.receive_type("error", wait=10)
    assert farewell["code"] == "exercise_ended"
    await player.close()
