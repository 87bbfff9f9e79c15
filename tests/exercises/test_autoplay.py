"""Scripted player actions run only when the exercise is asked to play itself (`autoplay`): in a real team's
exercise the players act, and a contingency fires when they do not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.exercises.helpers import RUN, planner, short_scenario, timeline, wait_for

# The short scenario's A1 (warn the Borgo by 0:05, contingency 101 at 0:06), answered by a scripted move at 0:02.
SCRIPTED = [{"at": "0:02", "kind": "respond_to_inquiry", "fulfils": ["A1"], "note": "Sirens in the Borgo"}]


async def _run_to_the_end(
    live: LiveServer, **body: object
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    headers = await planner(live)
    payload = {"scenario": short_scenario(scripted_actions=SCRIPTED), "speed": 3600, "devices": 0, "start": True}
    created = await live.client.post("/api/v1/exercises", json=payload | body, headers=headers)
    assert created.status_code == 201, created.text
    exercise_id = created.json()["id"]
    finished = await wait_for(live, exercise_id, headers, lambda e: e["state"] == "finished", seconds=30)
    entries = await timeline(live, exercise_id, headers)
    report = (await live.client.get(f"/api/v1/exercises/{exercise_id}/report", headers=headers)).json()
    a1 = next(a for a in report["expected_actions"] if a["id"] == "A1")
    return finished, entries, a1


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_without_autoplay_no_scripted_move_runs_and_the_contingency_fires(live: LiveServer) -> None:
    exercise, entries, a1 = await _run_to_the_end(live)
    assert [e for e in entries if e["kind"] == "scripted"] == []
    assert [e["number"] for e in entries if e["kind"] == "contingency"] == [101]
    assert a1["done_by"] is None
    assert a1["contingency_fired"] is not None
    assert exercise["autoplay"] is False


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_with_autoplay_the_scripted_move_runs_and_no_contingency_is_needed(live: LiveServer) -> None:
    exercise, entries, a1 = await _run_to_the_end(live, autoplay=True)
    assert exercise["autoplay"] is True
    assert [e["title"] for e in entries if e["kind"] == "scripted"] == ["Respond to inquiry"]
    assert [e for e in entries if e["kind"] == "contingency"] == []
    assert a1["done_by"] == "scripted"
