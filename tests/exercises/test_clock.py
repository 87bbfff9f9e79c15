"""The scenario clock (start, pause, resume, speed, stop), contingencies, and what planners may send."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.exercises.helpers import RUN, planner, short_scenario, timeline, wait_for
from tests.waiting import wait_until
from tocsin.auth.schemas import Role


async def _start(live: LiveServer, speed: float = 60, **body: Any) -> str:
    payload = {"scenario": short_scenario(), "speed": speed, "devices": 0, "start": True, **body}
    response = await live.client.post("/api/v1/exercises", json=payload, headers=await planner(live))
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "running"
    exercise_id: str = response.json()["id"]
    return exercise_id


def _fired(entries: list[dict[str, Any]]) -> list[int]:
    return [e["number"] for e in entries if e["kind"] in ("inject", "contingency")]


async def _fired_now(live: LiveServer, exercise_id: str, headers: dict[str, str]) -> list[int]:
    return _fired(await timeline(live, exercise_id, headers))


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_pause_resume_and_speed(live: LiveServer) -> None:
    headers = await planner(live)
    exercise_id = await _start(live)
    await wait_for(live, exercise_id, headers, lambda e: e["injects_fired"] >= 1)  # 0:01 at 60x: after a second

    paused = await live.client.post(f"/api/v1/exercises/{exercise_id}/pause", headers=headers)
    assert paused.json()["state"] == "paused"
    frozen = paused.json()["scenario_seconds"]
    fired = await wait_until(
        lambda: _fired_now(live, exercise_id, headers), what="inject 1 on the timeline (past its settling second)"
    )
    assert fired == [1]
    still = (await live.client.get(f"/api/v1/exercises/{exercise_id}", headers=headers)).json()
    assert still["scenario_seconds"] == frozen
    again = await live.client.post(f"/api/v1/exercises/{exercise_id}/pause", headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "exercise_state"

    await live.client.post(f"/api/v1/exercises/{exercise_id}/resume", headers=headers)
    # At 60x the rest would take two minutes; at 3600x the pending injects are rescheduled to the next two seconds.
    faster = await live.client.put(f"/api/v1/exercises/{exercise_id}/speed", json={"speed": 3600}, headers=headers)
    assert faster.json()["speed"] == 3600
    done = await wait_for(live, exercise_id, headers, lambda e: e["state"] == "finished", seconds=15)
    assert done["progress"] == 1.0
    assert done["injects_fired"] == 13
    entries = await timeline(live, exercise_id, headers)
    assert _fired(entries) == [1, 101, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert [e["title"] for e in entries if e["kind"] == "clock"][-3:] == [
        "Resumed",
        "Speed 3600x",
        "Finished: end of the scenario",
    ]


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_contingency_does_not_fire_when_the_action_was_done(live: LiveServer) -> None:
    headers = await planner(live)
    exercise_id = await _start(live)
    await wait_for(live, exercise_id, headers, lambda e: e["injects_fired"] >= 1)
    logged = await live.client.post(
        f"/api/v1/exercises/{exercise_id}/actions",
        json={"kind": "issue_alert", "fulfils": ["A1"], "note": "Sirens and loudspeaker vans in the Borgo"},
        headers=headers,
    )
    assert logged.status_code == 201, logged.text
    await live.client.put(f"/api/v1/exercises/{exercise_id}/speed", json={"speed": 3600}, headers=headers)
    await wait_for(live, exercise_id, headers, lambda e: e["state"] == "finished", seconds=15)
    assert 101 not in _fired(await timeline(live, exercise_id, headers))
    report = (await live.client.get(f"/api/v1/exercises/{exercise_id}/report", headers=headers)).json()
    a1 = next(a for a in report["expected_actions"] if a["id"] == "A1")
    assert (a1["done_by"], a1["on_time"], a1["contingency_fired"]) == ("player_action", True, None)


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_players_see_only_their_injects(live: LiveServer) -> None:
    scenario = short_scenario()
    scenario["timeline"][1]["to"] = "controller"  # inject 2, at 0:10
    headers = await planner(live)
    created = await live.client.post(
        "/api/v1/exercises", json={"scenario": scenario, "speed": 3600, "devices": 0, "start": True}, headers=headers
    )
    exercise_id = created.json()["id"]
    await wait_for(live, exercise_id, headers, lambda e: e["state"] == "finished", seconds=15)
    player = await live.user("player", Role.operator)
    assert 2 not in _fired(await timeline(live, exercise_id, player))
    assert 2 in _fired(await timeline(live, exercise_id, headers))
    assert (await live.client.get(f"/api/v1/exercises/{exercise_id}", headers=player)).json()["join_token"] is None
    base = f"/api/v1/exercises/{exercise_id}/timeline"
    full = (await live.client.get(base, headers=headers)).json()
    tail = (await live.client.get(f"{base}?after={full['next'] - 2}", headers=headers)).json()
    assert 1 <= len(tail["entries"]) <= 2  # the cursor returns only what came after it
    assert tail["entries"] == full["entries"][-len(tail["entries"]) :]
    assert tail["next"] == full["next"]


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_evaluation_and_roles(live: LiveServer) -> None:
    await planner(live)
    exercise_id = await _start(live, speed=3600)
    evaluator = await live.user("evaluator", Role.evaluator)
    operator = await live.user("player", Role.operator)
    base = f"/api/v1/exercises/{exercise_id}"

    assert (await live.client.post(f"{base}/stop", headers=evaluator)).status_code == 403
    assert (await live.client.put(f"{base}/ratings/O1", json={"rating": "S"}, headers=operator)).status_code == 403
    forbidden = await live.client.post(
        "/api/v1/exercises", json={"scenario_id": "romagna-river-flood"}, headers=operator
    )
    assert forbidden.status_code == 403

    rated = await live.client.put(
        f"{base}/ratings/O1",
        json={"rating": "S", "rationale": "Warned in 25 minutes, French text missing"},
        headers=evaluator,
    )
    assert rated.status_code == 200
    assert rated.json()["rating"] == "S"
    rerated = await live.client.put(f"{base}/ratings/O1", json={"rating": "M"}, headers=evaluator)
    assert rerated.json()["rating"] == "M"
    unknown = await live.client.put(f"{base}/ratings/O99", json={"rating": "P"}, headers=evaluator)
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "objective"
    bad = await live.client.put(f"{base}/ratings/O1", json={"rating": "X"}, headers=evaluator)
    assert bad.status_code == 422
    assert "rating" in bad.json()["error"]["field"]
    for kind, text in (("strength", "Clear Italian texts"), ("improvement", "No Arabic version")):
        observed = await live.client.post(
            f"{base}/observations", json={"kind": kind, "objective": "O1", "inject": 1, "text": text}, headers=evaluator
        )
        assert observed.status_code == 201, observed.text
    no_inject = await live.client.post(f"{base}/observations", json={"inject": 555, "text": "?"}, headers=evaluator)
    assert no_inject.status_code == 422
    assert no_inject.json()["error"]["field"] == "inject"
    planned = await live.client.post(
        f"{base}/improvements",
        json={
            "objective": "O1",
            "issue": "No Arabic text",
            "corrective_action": "Translate the flood template",
            "owner": "Public information cell",
            "due": "2027-03-01",
        },
        headers=evaluator,
    )
    assert planned.status_code == 201, planned.text

    report = (await live.client.get(f"{base}/report", headers=evaluator)).json()
    o1 = next(r for r in report["ratings"] if r["objective"] == "O1")
    assert (o1["rating"], o1["rated_by"]) == ("M", "evaluator")
    assert report["strengths"] == ["Clear Italian texts"]
    assert report["areas_for_improvement"] == ["No Arabic version"]
    assert report["improvement_plan"][0]["owner"] == "Public information cell"
    assert (await live.client.get(f"{base}/report", headers=operator)).status_code == 403


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_bad_requests_name_the_field(live: LiveServer) -> None:
    headers = await planner(live)

    async def refused(body: dict[str, Any]) -> dict[str, Any]:
        response = await live.client.post("/api/v1/exercises", json=body, headers=headers)
        assert 400 <= response.status_code < 500, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    assert (await refused({"scenario_id": "romagna-river-flood", "speed": 0}))["field"] == "speed"
    assert (await refused({"scenario_id": "romagna-river-flood", "speed": 3601}))["field"] == "speed"
    assert (await refused({"scenario_id": "romagna-river-flood", "devices": 10**6}))["field"] == "devices"
    assert (await refused({"scenario_id": "no-such-scenario"}))["code"] == "scenario_not_found"
    both = await refused({"scenario_id": "romagna-river-flood", "scenario": short_scenario()})
    assert "either" in both["message"]
    short = short_scenario()
    short["timeline"] = short["timeline"][:3]
    assert (await refused({"scenario": short}))["field"].startswith("scenario.timeline")
    dangling = short_scenario(
        scripted_actions=[{"at": "0:02", "kind": "issue_alert", "template": "flood", "area": "atlantis"}]
    )
    assert "atlantis" in (await refused({"scenario": dangling}))["message"]
    assert (await live.client.get("/api/v1/exercises/nope", headers=headers)).status_code == 404
    exercise_id = await _start(live)
    twice = await live.client.post(f"/api/v1/exercises/{exercise_id}/start", headers=headers)
    assert twice.status_code == 409
    slow = await live.client.put(f"/api/v1/exercises/{exercise_id}/speed", json={"speed": 0.5}, headers=headers)
    assert slow.status_code == 422
    assert slow.json()["error"]["field"] == "speed"
    library = (await live.client.get("/api/v1/exercises/scenarios", headers=headers)).json()
    assert len(library) == 7
    assert all(s["injects"] >= 12 for s in library)
